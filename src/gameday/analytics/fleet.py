"""Analytics across runs: pure functions over run records (``now`` is passed in).

Definitions, as reports state them (figures version 2, shared/DESIGN.md "Measurements"):

- Evidence run: a run that passed, failed (it recovered but missed a criterion) or did not
  recover, or that was aborted because the cell breached its hard halt limit. Runs aborted for
  any other reason (by an operator, at the end of the window, because the worker died or was
  interrupted) are inconclusive. Skipped runs and runs still in progress are neither.
- Environment: where a run's evidence came from (``RunRecord.environment``: sandbox, staging,
  production; "unknown" for runs stored before it existed). Every fleet figure is computed per
  environment or over runs of one stated set of environments: sandbox evidence says nothing
  about production.
- Impact: "none" when the probes saw no sample out of tolerance after injection, "seen" when
  they did, unknown (missing or null) when no fault was injected or the run is an upgraded
  version-1 run whose figures could not say.
- MTTR (mean time to recover): over evidence runs with impact "seen" and a recovery time, the
  mean of ``recovery_s`` (from the end of the cause of impact), with the median (at least
  MIN_MEDIAN_RUNS values) and the 90th percentile (linear interpolation, at least
  MIN_P90_RUNS values); otherwise those are None: too few runs to mean anything. Always given
  with "k of n runs had no user-visible impact" (n: evidence runs whose impact is known), the
  runs that did not recover (counted, not averaged: their recovery time is unknown), the runs
  whose impact is unknown (left out) and the mean time to full redundancy (``restore_s``, the
  target's own observation, over every evidence run that has it). It is automated recovery
  under injected faults, not incident MTTR (people detecting, acknowledging, mitigating).
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
  minutes); 99.95 % allows 21.9 minutes. The gate's figure (``rolling_budget``) is the same
  downtime over a rolling period ending now, as the scheduler's error-budget gate reads it.
- Resilience score: see SCORE_FORMULA; ``explain_kind`` splits what lowered each kind's score
  into stale evidence and outcomes.
- Findings: every missed criterion of evidence runs that did not pass, plus every run that did
  not recover or hit the halt limit, newest first.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from statistics import fmean
from typing import Literal

from gameday.model import CellObjectives, RunRecord

RunClass = Literal["evidence", "inconclusive", "skipped", "running"]
GroupKey = Literal["cell", "kind", "week", "month", "environment"]

KINDS = ("pod-kill", "latency", "cpu-stress", "db-failover")
ENVIRONMENTS = ("sandbox", "staging", "production")
UNKNOWN_ENVIRONMENT = "unknown"
HALT_PREFIX = "halt:"
MONTH_MINUTES = 365.25 * 24 * 60 / 12  # an average month: 43,830 minutes
HALF_LIFE_DAYS = 30.0
TIER_WEIGHTS: Mapping[int, int] = {1: 3, 2: 2, 3: 1}
DEFAULT_TIER = 2
OUTCOME_VALUES: Mapping[str, float] = {"passed": 1.0, "failed": 0.5, "not_recovered": 0.0, "aborted": 0.0}
NOT_RECOVERED_CRITERION = "recovered within the timeout"
HALT_CRITERION = "stayed under the halt limit"
# Percentiles of fewer values than these are not given: a p90 of 4 values is one of them.
MIN_MEDIAN_RUNS = 3
MIN_P90_RUNS = 10

SCORE_FORMULA = (
    "Each cell is scored on the four fault kinds: pod kill, latency, CPU stress and database failover. "
    "A kind's score is the sum of its evidence runs' outcomes (passed 1, failed 0.5, not recovered or "
    "halted 0) times their weights, divided by the sum of the weights or by 1 if that is smaller, "
    "where a run's weight is 1 when new and halves with every 30 days of age: a lone pass 30 days old "
    "scores 0.5, stale evidence fades, and a kind with no evidence run scores 0 (untested or excluded "
    "is unproven). A cell's score is 100 times the mean of its four kind scores, so each kind can cost "
    "it 25 points, and the fleet's score is the mean of the cell scores weighted by tier (tier 1 counts "
    "3 times, tier 2 twice, tier 3 once; an unknown tier counts as tier 2)."
)


# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mttr:
    runs: int  # recovery times averaged (impact seen, recovered)
    not_recovered: int  # evidence runs with impact that never recovered (not averaged)
    mean_s: float | None
    median_s: float | None  # None below MIN_MEDIAN_RUNS recovery times
    p90_s: float | None  # None below MIN_P90_RUNS recovery times
    evidence: int = 0  # evidence runs whose impact is known: the n of "k of n"
    no_impact: int = 0  # of those, runs with no user-visible impact: the k
    impact_unknown: int = 0  # evidence runs without a known impact (left out of everything above)
    adapted: int = 0  # recoveries while a sustained fault was still on
    restore_runs: int = 0  # evidence runs with a time to full redundancy
    restore_mean_s: float | None = None
    restore_max_s: float | None = None


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
    environments: tuple[str, ...] = ()  # where the failovers ran


@dataclass(frozen=True)
class ErrorBudget:
    cell: str
    month: str  # "YYYY-MM", UTC
    consumed_min: float
    budget_min: float
    pct: float  # 0..100 and beyond when overspent


@dataclass(frozen=True)
class RollingBudget:
    """A cell's error budget over [now - period, now), as the scheduler's gate reads it."""

    cell: str
    period_days: float
    consumed_min: float
    budget_min: float | None  # None: a 100 % SLO allows no downtime
    pct: float  # 0..100 and beyond; inf when a 100 % SLO saw downtime


@dataclass(frozen=True)
class KindScore:
    kind: str
    score: float  # 0..1
    runs: int
    newest_utc: datetime | None
    weight: float = 0.0  # sum of the runs' decay weights
    outcome_loss: float = 0.0  # 1 - score = outcome_loss + decay_loss (each 0..1)
    decay_loss: float = 1.0


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


def environment(run: RunRecord) -> str:
    """Where the run's evidence came from; "unknown" when the record cannot say."""
    return run.environment or UNKNOWN_ENVIRONMENT


def environments(runs: Iterable[RunRecord]) -> tuple[str, ...]:
    """The environments of ``runs``, production first (the strongest evidence), unknown last."""
    found = {environment(run) for run in runs}
    order = {name: i for i, name in enumerate(reversed(ENVIRONMENTS))}
    return tuple(sorted(found, key=lambda e: (order.get(e, len(order)), e)))


def week_label(moment: datetime) -> str:
    """ISO week in UTC, e.g. "2026-W03" (ISO year: 2027-01-01 is in "2026-W53")."""
    # UTC on purpose: a DST change in any local zone can then neither split nor merge a week.
    year, week, _ = as_utc(moment).isocalendar()
    return f"{year:04d}-W{week:02d}"


@lru_cache(maxsize=8192)
def _week_of_day(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year:04d}-W{week:02d}"


def month_label(moment: datetime) -> str:
    """Calendar month in UTC, e.g. "2026-03"."""
    utc = as_utc(moment)
    return f"{utc.year:04d}-{utc.month:02d}"


_LABELS: Mapping[str, Callable[[RunRecord], str]] = {
    "cell": lambda run: run.cell,
    "kind": lambda run: run.kind,
    "week": lambda run: _week_of_day(as_utc(run.started_utc).date()),
    "month": lambda run: month_label(run.started_utc),
    "environment": environment,
}


# -- MTTR and pass rate ----------------------------------------------------------------------


def impact(run: RunRecord) -> str | None:
    """"none", "seen", or None when unknown (no fault injected, or an upgraded v1 run)."""
    value = run.figures.get("impact")
    return value if value in ("none", "seen") else None


def mttr(runs: Iterable[RunRecord]) -> Mttr:
    values: list[float] = []
    restores: list[float] = []
    unrecovered = known = none = unknown = adapted = 0
    for run in runs:
        verdict = run.verdict
        if verdict is None or verdict == "skipped" or (verdict == "aborted" and not halted(run)):
            continue  # not evidence (classify, inlined: this loop runs over every run)
        figures = run.figures
        restore = _number(figures.get("restore_s"))
        if restore is not None:
            restores.append(restore)
        seen = figures.get("impact")
        if seen == "none":
            known += 1
            none += 1
            continue
        if seen != "seen":
            unknown += 1
            continue
        known += 1
        recovery = _number(figures.get("recovery_s"))
        if recovery is not None:
            values.append(recovery)
            adapted += figures.get("adapted") is True
        elif verdict == "not_recovered" or verdict == "aborted":
            unrecovered += 1
    return Mttr(len(values), unrecovered, fmean(values) if values else None,
                percentile(values, 50) if len(values) >= MIN_MEDIAN_RUNS else None,
                percentile(values, 90) if len(values) >= MIN_P90_RUNS else None,
                evidence=known, no_impact=none, impact_unknown=unknown, adapted=adapted,
                restore_runs=len(restores), restore_mean_s=fmean(restores) if restores else None,
                restore_max_s=max(restores, default=None))


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
    out = {}
    for labels, group in _group(_evidence(runs), keys).items():
        passed = sum(1 for run in group if run.verdict == "passed")  # the group is evidence already
        out[labels] = PassRate(len(group), passed, passed / len(group))
    return out


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


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
                        rto_objective_s=float(newest.rto_s), rpo_objective_s=float(newest.rpo_s),
                        environments=environments(runs))


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


def rolling_budget(runs: Iterable[RunRecord], now: datetime, period: timedelta) -> tuple[RollingBudget, ...]:
    """Per cell with objectives, the downtime of its runs started in [now - period, now) that
    were not skipped, against (100 % - SLO) of the period: what the error-budget gate reads
    (scheduler.gates.budget_consumed_pct, the same arithmetic)."""
    if period <= timedelta(0):
        raise ValueError(f"rolling_budget: period must be positive, got {period}")
    now = as_utc(now)
    inside = [run for run in runs if now - period <= _started(run) < now and run.verdict != "skipped"]
    out = []
    for (cell,), group in _group(inside, ("cell",)).items():
        objectives = _newest_objectives(group)
        if objectives is None:
            continue
        downtime_s = sum(figure(run, "downtime_s") or 0.0 for run in group)
        budget_s = (1 - objectives.availability_slo / 100) * period.total_seconds()
        if budget_s <= 0:
            pct = math.inf if downtime_s > 0 else 0.0
            out.append(RollingBudget(cell, period / timedelta(days=1), downtime_s / 60, None, pct))
        else:
            out.append(RollingBudget(cell, period / timedelta(days=1), downtime_s / 60, budget_s / 60,
                                     100 * downtime_s / budget_s))
    return tuple(out)


# -- resilience score ------------------------------------------------------------------------


def decay_weight(age_days: float) -> float:
    """A run's weight in its kind score: 1 when new, halving every HALF_LIFE_DAYS."""
    return float(0.5 ** (age_days / HALF_LIFE_DAYS))


def resilience_score(runs: Iterable[RunRecord], now: datetime,
                     cells: Collection[str] = ()) -> ResilienceScore:
    """Per cell and for the fleet, from the runs started before ``now`` (see SCORE_FORMULA).
    ``cells``: cells to score even without any run (e.g. the schedule's): they score 0."""
    now = as_utc(now)
    past = [run for run in runs if _started(run) < now]
    groups = _group(past, ("cell",))
    for cell in cells:
        groups.setdefault((cell,), [])
    scored = tuple(_cell_score(cell, group, now) for (cell,), group in sorted(groups.items()))
    weights = [_tier_weight(cell.tier) for cell in scored]
    fleet = sum(w * cell.score for w, cell in zip(weights, scored, strict=True)) / sum(weights) \
        if scored else None
    return ResilienceScore(fleet, scored)


def _cell_score(cell: str, runs: Sequence[RunRecord], now: datetime) -> CellScore:
    by_kind: dict[str, list[RunRecord]] = {kind: [] for kind in KINDS}
    for run in runs:
        if run.kind in by_kind and classify(run) == "evidence":
            by_kind[run.kind].append(run)
    kinds = tuple(_kind_score(kind, by_kind[kind], now) for kind in KINDS)
    objectives = _newest_objectives(runs)
    tier = objectives.tier if objectives is not None else DEFAULT_TIER
    return CellScore(cell, tier, 100 * fmean(k.score for k in kinds), kinds)


def _kind_score(kind: str, runs: Sequence[RunRecord], now: datetime) -> KindScore:
    if not runs:
        return KindScore(kind, 0.0, 0, None)
    weights = [decay_weight((now - _started(run)) / timedelta(days=1)) for run in runs]
    total = sum(w * OUTCOME_VALUES[run.verdict or ""] for w, run in zip(weights, runs, strict=True))
    weight = sum(weights)
    # Dividing by at least 1 (one fresh run's weight) lets old evidence fade instead of counting
    # fully whenever it is the only evidence there is.
    divisor = max(weight, 1.0)
    return KindScore(kind, total / divisor, len(runs), max(_started(run) for run in runs),
                     weight=weight, outcome_loss=(weight - total) / divisor,
                     decay_loss=(divisor - weight) / divisor)


def _tier_weight(tier: int) -> int:
    # tiers outside 1..3 weigh like the nearest one (0 like 1, 4 and beyond like 3)
    return TIER_WEIGHTS[min(max(tier, 1), 3)]


def kind_points(kind: KindScore) -> tuple[float, float]:
    """The points (of 100) a kind took off its cell's score: (for outcomes, for stale or no
    evidence). Each kind is a quarter of the cell's score."""
    share = 100 / len(KINDS)
    return share * kind.outcome_loss, share * kind.decay_loss


# -- findings, selection, counts -------------------------------------------------------------


def findings(runs: Iterable[RunRecord], limit: int = 20) -> tuple[Finding, ...]:
    """What went wrong in evidence runs that did not pass, newest run first, at most ``limit``."""
    missed = [run for run in _evidence(runs) if run.verdict != "passed"]
    missed.sort(key=lambda run: (_started(run), run.run_id), reverse=True)
    found: list[Finding] = []
    for run in missed:
        if len(found) >= limit:
            break
        found.extend(run_findings(run))
    return tuple(found[:max(limit, 0)])


def run_findings(run: RunRecord) -> list[Finding]:
    """What went wrong in one run: not recovered or halted, then each missed criterion."""
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
                cells: Collection[str] | None = None,
                envs: Collection[str] | None = None) -> tuple[RunRecord, ...]:
    """Runs started in [since, until) (either bound optional) in the given cells and
    environments (None: all)."""
    low = None if since is None else as_utc(since)
    high = None if until is None else as_utc(until)
    wanted = None if cells is None else frozenset(cells)
    where = None if envs is None else frozenset(envs)
    return tuple(run for run in runs
                 if (low is None or _started(run) >= low) and (high is None or _started(run) < high)
                 and (wanted is None or run.cell in wanted)
                 and (where is None or environment(run) in where))


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
    zone = moment.tzinfo
    if zone is UTC:  # what the store returns: the common case, and the hot path at fleet scale
        return moment
    return moment.replace(tzinfo=UTC) if zone is None else moment.astimezone(UTC)


def _started(run: RunRecord) -> datetime:
    return as_utc(run.started_utc)


def _evidence(runs: Iterable[RunRecord]) -> list[RunRecord]:
    return [run for run in runs if classify(run) == "evidence"]


def evidence(runs: Iterable[RunRecord]) -> list[RunRecord]:
    """The evidence runs of ``runs``, in order."""
    return _evidence(runs)


def figure(run: RunRecord, name: str) -> float | None:
    """A numeric figure as a plain float; None when missing, None, not a number or NaN."""
    return _number(run.figures.get(name))


def _number(value: object) -> float | None:
    kind = type(value)
    if kind is float:
        return None if value != value else value  # type: ignore[return-value]  # NaN != NaN
    if kind is int:
        return float(value)  # type: ignore[arg-type]
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) \
            or math.isnan(value):
        return None
    return float(value)


def _group(runs: Iterable[RunRecord], keys: Sequence[GroupKey]) -> dict[tuple[str, ...], list[RunRecord]]:
    """Runs grouped by their labels for ``keys``, sorted by those labels."""
    unknown = [key for key in keys if key not in _LABELS]
    if unknown:
        raise ValueError(f"unknown grouping {unknown}: expected some of {sorted(_LABELS)}")
    labels = [_LABELS[key] for key in keys]
    groups: dict[tuple[str, ...], list[RunRecord]] = defaultdict(list)
    if len(labels) == 1:  # the common cases, without a generator per run
        (only,) = labels
        single: dict[str, list[RunRecord]] = defaultdict(list)
        for run in runs:
            single[only(run)].append(run)
        return {(label,): group for label, group in sorted(single.items())}
    if len(labels) == 2:
        first, second = labels
        for run in runs:
            groups[(first(run), second(run))].append(run)
        return dict(sorted(groups.items(), key=lambda item: item[0]))
    for run in runs:
        groups[tuple(label(run) for label in labels)].append(run)
    return dict(sorted(groups.items(), key=lambda item: item[0]))


def group(runs: Iterable[RunRecord], keys: Sequence[GroupKey]) -> dict[tuple[str, ...], list[RunRecord]]:
    """Runs grouped by their labels for ``keys`` (cell, kind, week, month, environment), sorted."""
    return _group(runs, keys)


def newest_objectives(runs: Iterable[RunRecord]) -> CellObjectives | None:
    """Objectives of the newest run that has any (ties broken by run id)."""
    return _newest_objectives(runs)


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
