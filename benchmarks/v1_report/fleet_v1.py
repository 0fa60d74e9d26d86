"""Analytics across runs: pure functions over run records (``now`` is passed in).

Definitions, as reports state them:

- Evidence run: a run that passed, failed (it recovered but missed a criterion) or did not
  recover, or that was aborted because the cell breached its hard halt limit. Runs aborted for
  any other reason (by an operator, at the end of the window, because the worker died or was
  interrupted) are inconclusive. Skipped runs and runs still in progress are neither.
- MTTR (mean time to recover): the mean, median and 90th percentile (linear interpolation) of
  the recovery times of evidence runs. Runs that never recovered are counted, but not averaged
  in: their recovery time is unknown.
- Weeks are ISO weeks (labelled like "2026-W03", with the ISO year) and months are calendar
  months (labelled like "2026-03"), both in UTC.
- Pass rate: passed runs divided by evidence runs.
- Trend: the last period [now - period, now) against the period before it; a change is the
  current figure minus the previous one, given only when both periods have that figure.
- DR compliance, from database-failover evidence runs, each judged by the objectives it ran
  under: the RTO is met when writes were acknowledged again within the RTO objective (a
  failover after which no write was ever acknowledged does not meet it); the RPO is met when
  the window of lost writes is within the RPO objective.
- Error budget consumed by chaos: per cell and UTC calendar month, the minutes the probes saw
  the cell down during runs, against (100 % - availability SLO) of an average month (43,830
  minutes); 99.95 % allows 21.9 minutes.
- Resilience score: see SCORE_FORMULA.
- Findings: every missed criterion of evidence runs that did not pass, plus every run that did
  not recover or hit the halt limit, newest first.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from statistics import fmean
from typing import Literal

from gameday.analytics.recovery import percentile
from gameday.model import CellObjectives, RunRecord

RunClass = Literal["evidence", "inconclusive", "skipped", "running"]
GroupKey = Literal["cell", "kind", "week", "month"]

KINDS = ("pod-kill", "latency", "cpu-stress", "db-failover")
HALT_PREFIX = "halt:"
MONTH_MINUTES = 365.25 * 24 * 60 / 12  # an average month: 43,830 minutes
HALF_LIFE_DAYS = 30.0
TIER_WEIGHTS: Mapping[int, int] = {1: 3, 2: 2, 3: 1}
DEFAULT_TIER = 2
OUTCOME_VALUES: Mapping[str, float] = {"passed": 1.0, "failed": 0.5, "not_recovered": 0.0, "aborted": 0.0}
NOT_RECOVERED_CRITERION = "recovered within the timeout"
HALT_CRITERION = "stayed under the halt limit"

SCORE_FORMULA = (
    "Each cell is scored on the four fault kinds: pod kill, latency, CPU stress and database failover. "
    "A kind's score is the sum of its evidence runs' outcomes (passed 1, failed 0.5, not recovered or "
    "halted 0) times their weights, divided by the sum of the weights or by 1 if that is smaller, "
    "where a run's weight is 1 when new and halves with every 30 days of age: a lone pass 30 days old "
    "scores 0.5, stale evidence fades, and a kind with no evidence run scores 0 (untested is unproven). "
    "A cell's score is 100 times the mean of its four kind scores, and the fleet's score is the mean "
    "of the cell scores weighted by tier (tier 1 counts 3 times, tier 2 twice, tier 3 once; "
    "an unknown tier counts as tier 2)."
)


# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mttr:
    runs: int  # recovery times averaged
    not_recovered: int  # evidence runs that never recovered (not averaged)
    mean_s: float | None
    median_s: float | None
    p90_s: float | None


@dataclass(frozen=True)
class PassRate:
    evidence: int
    passed: int
    rate: float | None  # 0..1


@dataclass(frozen=True)
class PeriodFigures:
    start: datetime
    end: datetime  # exclusive
    mttr: Mttr
    pass_rate: PassRate


@dataclass(frozen=True)
class Trend:
    current: PeriodFigures
    previous: PeriodFigures
    mttr_change_s: float | None  # current mean - previous mean
    pass_rate_change: float | None  # current rate - previous rate


@dataclass(frozen=True)
class DrCompliance:
    cell: str
    runs: int
    rto_compliant: int
    rpo_compliant: int
    rto_pct: float | None  # 0..100
    rpo_pct: float | None
    worst_rto_s: float | None  # of the failovers that took writes again
    max_rpo_rows: int | None
    rto_objective_s: float
    rpo_objective_s: float


@dataclass(frozen=True)
class ErrorBudget:
    cell: str
    month: str  # "YYYY-MM", UTC
    consumed_min: float
    budget_min: float
    pct: float  # 0..100 and beyond when overspent


@dataclass(frozen=True)
class KindScore:
    kind: str
    score: float  # 0..1
    runs: int
    newest_utc: datetime | None


@dataclass(frozen=True)
class CellScore:
    cell: str
    tier: int
    score: float  # 0..100
    kinds: tuple[KindScore, ...]


@dataclass(frozen=True)
class ResilienceScore:
    fleet: float | None
    cells: tuple[CellScore, ...]


@dataclass(frozen=True)
class Finding:
    started_utc: datetime
    run_id: str
    cell: str
    kind: str
    verdict: str
    criterion: str
    expected: str
    actual: str


@dataclass(frozen=True)
class SummaryCounts:
    total: int
    evidence: int
    inconclusive: int
    skipped: int
    running: int
    passed: int
    failed: int
    not_recovered: int
    aborted: int  # every abort, halted or not
    halted: int  # aborts on the cell's halt limit (evidence)


# -- classification and labels ---------------------------------------------------------------


def halted(run: RunRecord) -> bool:
    """Aborted because the cell breached its hard halt limit."""
    return run.verdict == "aborted" and (run.reason or "").startswith(HALT_PREFIX)


def classify(run: RunRecord) -> RunClass:
    if run.verdict is None:
        return "running"
    if run.verdict == "skipped":
        return "skipped"
    if run.verdict == "aborted" and not halted(run):
        return "inconclusive"
    return "evidence"


def week_label(moment: datetime) -> str:
    """ISO week in UTC, e.g. "2026-W03" (ISO year: 2027-01-01 is in "2026-W53")."""
    # UTC on purpose: a DST change in any local zone can then neither split nor merge a week.
    year, week, _ = as_utc(moment).isocalendar()
    return f"{year:04d}-W{week:02d}"


def month_label(moment: datetime) -> str:
    """Calendar month in UTC, e.g. "2026-03"."""
    utc = as_utc(moment)
    return f"{utc.year:04d}-{utc.month:02d}"


_LABELS: Mapping[str, Callable[[RunRecord], str]] = {
    "cell": lambda run: run.cell,
    "kind": lambda run: run.kind,
    "week": lambda run: week_label(run.started_utc),
    "month": lambda run: month_label(run.started_utc),
}


# -- MTTR and pass rate ----------------------------------------------------------------------


def mttr(runs: Iterable[RunRecord]) -> Mttr:
    values: list[float] = []
    unrecovered = 0
    for run in _evidence(runs):
        recovery = figure(run, "recovery_s")
        if recovery is not None:
            values.append(recovery)
        elif run.verdict in ("not_recovered", "aborted"):
            # a failed run without a recovery time had no fault injected: nothing to recover from
            unrecovered += 1
    return Mttr(len(values), unrecovered, fmean(values) if values else None,
                percentile(values, 50), percentile(values, 90))


def mttr_by(runs: Iterable[RunRecord], key: GroupKey) -> tuple[tuple[str, Mttr], ...]:
    """MTTR per group of evidence runs, sorted by label."""
    return tuple((label, mttr(group)) for (label,), group in _group(_evidence(runs), (key,)).items())


def pass_rate(runs: Iterable[RunRecord]) -> PassRate:
    evidence = _evidence(runs)
    passed = sum(1 for run in evidence if run.verdict == "passed")
    return PassRate(len(evidence), passed, passed / len(evidence) if evidence else None)


def pass_rate_by(runs: Iterable[RunRecord], keys: Sequence[GroupKey] = ("cell", "kind")
                 ) -> dict[tuple[str, ...], PassRate]:
    """Pass rate per group of evidence runs, keyed by label tuples (e.g. (cell, kind)), sorted."""
    return {labels: pass_rate(group) for labels, group in _group(_evidence(runs), keys).items()}


# -- trend -----------------------------------------------------------------------------------


def period_figures(runs: Iterable[RunRecord], start: datetime, end: datetime) -> PeriodFigures:
    """MTTR and pass rate of the runs started in [start, end)."""
    start, end = as_utc(start), as_utc(end)
    inside = [run for run in runs if start <= _started(run) < end]
    return PeriodFigures(start, end, mttr(inside), pass_rate(inside))


def trend(runs: Sequence[RunRecord], now: datetime, period: timedelta) -> Trend:
    if period <= timedelta(0):
        raise ValueError(f"trend: period must be positive, got {period}")
    now = as_utc(now)
    current = period_figures(runs, now - period, now)
    previous = period_figures(runs, now - 2 * period, now - period)
    return Trend(current, previous,
                 _change(current.mttr.mean_s, previous.mttr.mean_s),
                 _change(current.pass_rate.rate, previous.pass_rate.rate))


# -- DR compliance and error budget ----------------------------------------------------------


def dr_compliance(runs: Iterable[RunRecord]) -> tuple[DrCompliance, ...]:
    """Per cell, database-failover evidence runs against the objectives each ran under."""
    failovers = [run for run in _evidence(runs) if run.kind == "db-failover" and run.objectives is not None]
    return tuple(_cell_compliance(cell, group) for (cell,), group in _group(failovers, ("cell",)).items())


def _cell_compliance(cell: str, runs: Sequence[RunRecord]) -> DrCompliance:
    rto_ok = rpo_ok = 0
    for run in runs:
        objectives = run.objectives
        assert objectives is not None  # filtered by the caller
        rto_ok += _within(figure(run, "rto_s"), objectives.rto_s)
        rpo_ok += _within(figure(run, "rpo_s"), objectives.rpo_s)
    rtos = [v for v in (figure(run, "rto_s") for run in runs) if v is not None]
    rows = [int(v) for v in (figure(run, "rpo_rows") for run in runs) if v is not None]
    newest = _newest_objectives(runs)
    assert newest is not None
    return DrCompliance(cell=cell, runs=len(runs), rto_compliant=rto_ok, rpo_compliant=rpo_ok,
                        rto_pct=_pct(rto_ok, len(runs)), rpo_pct=_pct(rpo_ok, len(runs)),
                        worst_rto_s=max(rtos, default=None), max_rpo_rows=max(rows, default=None),
                        rto_objective_s=float(newest.rto_s), rpo_objective_s=float(newest.rpo_s))


def error_budget(runs: Iterable[RunRecord]) -> tuple[ErrorBudget, ...]:
    """Per cell and UTC month, downtime during runs against the availability SLO's budget.

    Cell-months without objectives, or with a 100 % SLO (no budget to consume), are left out.
    """
    counted = [run for run in runs if run.verdict != "skipped"]
    budgets = []
    for (cell, month), group in _group(counted, ("cell", "month")).items():
        objectives = _newest_objectives(group)
        if objectives is None:
            continue
        budget = (1 - objectives.availability_slo / 100) * MONTH_MINUTES
        if budget <= 0:
            continue
        consumed = sum(figure(run, "downtime_s") or 0.0 for run in group) / 60
        budgets.append(ErrorBudget(cell, month, consumed, budget, 100 * consumed / budget))
    return tuple(budgets)


# -- resilience score ------------------------------------------------------------------------


def decay_weight(age_days: float) -> float:
    """A run's weight in its kind score: 1 when new, halving every HALF_LIFE_DAYS."""
    return float(0.5 ** (age_days / HALF_LIFE_DAYS))


def resilience_score(runs: Iterable[RunRecord], now: datetime) -> ResilienceScore:
    """Per cell and for the fleet, from the runs started before ``now`` (see SCORE_FORMULA)."""
    now = as_utc(now)
    past = [run for run in runs if _started(run) < now]
    cells = tuple(_cell_score(cell, group, now) for (cell,), group in _group(past, ("cell",)).items())
    weights = [_tier_weight(cell.tier) for cell in cells]
    fleet = sum(w * cell.score for w, cell in zip(weights, cells, strict=True)) / sum(weights) \
        if cells else None
    return ResilienceScore(fleet, cells)


def _cell_score(cell: str, runs: Sequence[RunRecord], now: datetime) -> CellScore:
    evidence = _evidence(runs)
    kinds = tuple(_kind_score(kind, [run for run in evidence if run.kind == kind], now) for kind in KINDS)
    objectives = _newest_objectives(runs)
    tier = objectives.tier if objectives is not None else DEFAULT_TIER
    return CellScore(cell, tier, 100 * fmean(k.score for k in kinds), kinds)


def _kind_score(kind: str, runs: Sequence[RunRecord], now: datetime) -> KindScore:
    if not runs:
        return KindScore(kind, 0.0, 0, None)
    weights = [decay_weight((now - _started(run)) / timedelta(days=1)) for run in runs]
    total = sum(w * OUTCOME_VALUES[run.verdict or ""] for w, run in zip(weights, runs, strict=True))
    # Dividing by at least 1 (one fresh run's weight) lets old evidence fade instead of counting
    # fully whenever it is the only evidence there is.
    return KindScore(kind, total / max(sum(weights), 1.0), len(runs),
                     max(_started(run) for run in runs))


def _tier_weight(tier: int) -> int:
    # tiers outside 1..3 weigh like the nearest one (0 like 1, 4 and beyond like 3)
    return TIER_WEIGHTS[min(max(tier, 1), 3)]


# -- findings, selection, counts -------------------------------------------------------------


def findings(runs: Iterable[RunRecord], limit: int = 20) -> tuple[Finding, ...]:
    """What went wrong in evidence runs that did not pass, newest run first, at most ``limit``."""
    missed = [run for run in _evidence(runs) if run.verdict != "passed"]
    missed.sort(key=lambda run: (_started(run), run.run_id), reverse=True)
    found: list[Finding] = []
    for run in missed:
        if len(found) >= limit:
            break
        found.extend(_run_findings(run))
    return tuple(found[:max(limit, 0)])


def _run_findings(run: RunRecord) -> list[Finding]:
    def finding(criterion: str, expected: str, actual: str) -> Finding:
        return Finding(_started(run), run.run_id, run.cell, run.kind, run.verdict or "",
                       criterion, expected, actual)

    found = []
    if run.verdict == "not_recovered":
        found.append(finding(NOT_RECOVERED_CRITERION, "recovery within the recovery timeout",
                             run.reason or "none"))
    elif halted(run):
        found.append(finding(HALT_CRITERION, "error rate under the cell's halt limit", run.reason or "none"))
    found.extend(finding(c.name, c.expected, c.actual) for c in run.criteria if not c.ok)
    return found


def select_runs(runs: Iterable[RunRecord], since: datetime | None = None, until: datetime | None = None,
                cells: Collection[str] | None = None) -> tuple[RunRecord, ...]:
    """Runs started in [since, until) (either bound optional) in the given cells (None: all)."""
    low = None if since is None else as_utc(since)
    high = None if until is None else as_utc(until)
    wanted = None if cells is None else frozenset(cells)
    return tuple(run for run in runs
                 if (low is None or _started(run) >= low) and (high is None or _started(run) < high)
                 and (wanted is None or run.cell in wanted))


def summary_counts(runs: Iterable[RunRecord]) -> SummaryCounts:
    classes: dict[str, int] = defaultdict(int)
    verdicts: dict[str, int] = defaultdict(int)
    total = halts = 0
    for run in runs:
        total += 1
        classes[classify(run)] += 1
        verdicts[run.verdict or "running"] += 1
        halts += halted(run)
    return SummaryCounts(total=total, evidence=classes["evidence"], inconclusive=classes["inconclusive"],
                         skipped=classes["skipped"], running=classes["running"], passed=verdicts["passed"],
                         failed=verdicts["failed"], not_recovered=verdicts["not_recovered"],
                         aborted=verdicts["aborted"], halted=halts)


# -- helpers ---------------------------------------------------------------------------------


def as_utc(moment: datetime) -> datetime:
    # a naive value is taken as UTC, never as the machine's local time
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _started(run: RunRecord) -> datetime:
    return as_utc(run.started_utc)


def _evidence(runs: Iterable[RunRecord]) -> list[RunRecord]:
    return [run for run in runs if classify(run) == "evidence"]


def figure(run: RunRecord, name: str) -> float | None:
    """A numeric figure as a plain float; None when missing, None, not a number or NaN."""
    value = run.figures.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def _group(runs: Iterable[RunRecord], keys: Sequence[GroupKey]) -> dict[tuple[str, ...], list[RunRecord]]:
    """Runs grouped by their labels for ``keys``, sorted by those labels."""
    unknown = [key for key in keys if key not in _LABELS]
    if unknown:
        raise ValueError(f"unknown grouping {unknown}: expected some of {sorted(_LABELS)}")
    labels = [_LABELS[key] for key in keys]
    groups: dict[tuple[str, ...], list[RunRecord]] = defaultdict(list)
    for run in runs:
        groups[tuple(label(run) for label in labels)].append(run)
    return dict(sorted(groups.items(), key=lambda item: item[0]))


def _newest_objectives(runs: Iterable[RunRecord]) -> CellObjectives | None:
    """Objectives of the newest run that has any (ties broken by run id)."""
    dated = [(_started(run), run.run_id, run.objectives) for run in runs if run.objectives is not None]
    return max(dated, key=lambda d: (d[0], d[1]))[2] if dated else None


def _within(value: float | None, bound: float) -> bool:
    return value is not None and value <= bound


def _pct(part: int, whole: int) -> float | None:
    return 100 * part / whole if whole else None


def _change(current: float | None, previous: float | None) -> float | None:
    return None if current is None or previous is None else current - previous
