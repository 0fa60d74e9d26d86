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

Each figure has its function over runs (``mttr(runs)``, ``rolling_budget(runs, now, period)``
...). At fleet scale a report reads its runs once instead (reporting.resilience_context's
tally_report): the tallies here (MttrTally, DrTally, DowntimeTally, CellScoreTally) take one
run at a time, and the ``*_of`` functions give the same figures from them. The functions over
runs use the same tallies, so both give the same figures by construction: sums whose result
depends on the order (the score's weights, downtime) add the runs in the order given, and MTTR
tallies merge in any order (means are exactly rounded sums, percentiles sort).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from statistics import fmean
from typing import Literal, Protocol, TypeVar

from gameday.model import CellObjectives, CriterionResult

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



class RunLike(Protocol):
    """What fleet figures read of a run: a RunRecord, or the lean ReportRun a report over many
    runs reads from the store (model.records)."""

    @property
    def run_id(self) -> str: ...
    @property
    def cell(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def environment(self) -> str: ...
    @property
    def started_utc(self) -> datetime: ...
    @property
    def verdict(self) -> str | None: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def window_id(self) -> str | None: ...
    @property
    def objectives(self) -> CellObjectives | None: ...
    @property
    def figures(self) -> Mapping[str, object]: ...
    @property
    def criteria(self) -> Sequence[CriterionResult]: ...


Run = TypeVar("Run", bound=RunLike)


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
class CellBudget:
    """One cell's months of error budget in a few figures: a fleet's months, one row a cell."""

    cell: str
    months: int  # months in which chaos consumed budget
    worst_month: str
    worst_consumed_min: float
    worst_pct: float
    budget_min: float  # the worst month's budget
    latest_month: str
    latest_pct: float


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


def halted(run: RunLike) -> bool:
    """Aborted because the cell breached its hard halt limit."""
    return run.verdict == "aborted" and (run.reason or "").startswith(HALT_PREFIX)


def classify(run: RunLike) -> RunClass:
    verdict = run.verdict
    if verdict is None:
        return "running"
    if verdict == "skipped":
        return "skipped"
    if verdict == "aborted" and not (run.reason or "").startswith(HALT_PREFIX):
        return "inconclusive"
    return "evidence"


def environment(run: RunLike) -> str:
    """Where the run's evidence came from; "unknown" when the record cannot say."""
    return run.environment or UNKNOWN_ENVIRONMENT


def environments(runs: Iterable[RunLike]) -> tuple[str, ...]:
    """The environments of ``runs``, production first (the strongest evidence), unknown last."""
    return ordered_environments({environment(run) for run in runs})


def ordered_environments(found: Iterable[str]) -> tuple[str, ...]:
    """Environment names, production first (the strongest evidence), unknown last."""
    order = {name: i for i, name in enumerate(reversed(ENVIRONMENTS))}
    return tuple(sorted(set(found), key=lambda e: (order.get(e, len(order)), e)))


def week_label(moment: datetime) -> str:
    """ISO week in UTC, e.g. "2026-W03" (ISO year: 2027-01-01 is in "2026-W53")."""
    # UTC on purpose: a DST change in any local zone can then neither split nor merge a week.
    year, week, _ = as_utc(moment).isocalendar()
    return f"{year:04d}-W{week:02d}"


@lru_cache(maxsize=8192)
def _week_of_day(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year:04d}-W{week:02d}"


@lru_cache(maxsize=8192)
def day_labels(day: date) -> tuple[str, str]:
    """The ISO week and the calendar month of a UTC day, e.g. ("2026-W09", "2026-03"): what a
    pass over a fleet's runs asks of every run, answered once a day."""
    return _week_of_day(day), f"{day.year:04d}-{day.month:02d}"


def month_label(moment: datetime) -> str:
    """Calendar month in UTC, e.g. "2026-03"."""
    utc = as_utc(moment)
    return f"{utc.year:04d}-{utc.month:02d}"


_LABELS: Mapping[str, Callable[[RunLike], str]] = {
    "cell": lambda run: run.cell,
    "kind": lambda run: run.kind,
    "week": lambda run: _week_of_day(as_utc(run.started_utc).date()),
    "month": lambda run: month_label(run.started_utc),
    "environment": environment,
}


# -- MTTR and pass rate ----------------------------------------------------------------------


def impact(run: RunLike) -> str | None:
    """"none", "seen", or None when unknown (no fault injected, or an upgraded v1 run)."""
    value = run.figures.get("impact")
    return value if value in ("none", "seen") else None


class MttrTally:
    """MTTR and pass rate of evidence runs, tallied one run at a time. Tallies merge: one pass
    over a fleet's runs tallies small groups (environment, kind and week), and each coarser
    figure merges theirs. No figure depends on the order the runs come in (means are exactly
    rounded sums, percentiles sort)."""

    __slots__ = ("adapted", "evidence", "known", "no_impact", "passed", "recoveries", "restores",
                 "unknown", "unrecovered")

    def __init__(self) -> None:
        self.evidence = self.passed = self.known = self.no_impact = self.unknown = 0
        self.unrecovered = self.adapted = 0
        self.recoveries: list[float] = []
        self.restores: list[float] = []

    def add(self, run: RunLike) -> None:
        """Tally an evidence run (the caller classifies)."""
        self.add_values(run.verdict, *mttr_values(run.verdict, run.figures))

    def add_values(self, verdict: str | None, restore: float | None, impact: object,
                   recovery: float | None, adapted: bool) -> None:
        """Tally an evidence run from its ``mttr_values`` (read once for several tallies)."""
        self.evidence += 1
        if verdict == "passed":
            self.passed += 1
        if restore is not None:
            self.restores.append(restore)
        if impact == "none":
            self.known += 1
            self.no_impact += 1
        elif impact != "seen":
            self.unknown += 1
        else:
            self.known += 1
            if recovery is not None:
                self.recoveries.append(recovery)
                self.adapted += adapted
            elif verdict == "not_recovered" or verdict == "aborted":
                self.unrecovered += 1

    def merge(self, other: MttrTally) -> MttrTally:
        """Add ``other``'s runs to this tally; returns it."""
        self.evidence += other.evidence
        self.passed += other.passed
        self.known += other.known
        self.no_impact += other.no_impact
        self.unknown += other.unknown
        self.unrecovered += other.unrecovered
        self.adapted += other.adapted
        self.recoveries.extend(other.recoveries)
        self.restores.extend(other.restores)
        return self

    def mttr(self) -> Mttr:
        values, restores = self.recoveries, self.restores
        ordered = sorted(values)
        return Mttr(len(values), self.unrecovered, fmean(values) if values else None,
                    _sorted_percentile(ordered, 50) if len(values) >= MIN_MEDIAN_RUNS else None,
                    _sorted_percentile(ordered, 90) if len(values) >= MIN_P90_RUNS else None,
                    evidence=self.known, no_impact=self.no_impact, impact_unknown=self.unknown,
                    adapted=self.adapted, restore_runs=len(restores),
                    restore_mean_s=fmean(restores) if restores else None,
                    restore_max_s=max(restores, default=None))

    def pass_rate(self) -> PassRate:
        return PassRate(self.evidence, self.passed, self.passed / self.evidence if self.evidence else None)


def mttr_values(verdict: str | None, figures: Mapping[str, object]
                ) -> tuple[float | None, object, float | None, bool]:
    """What MTTR reads of a run's figures: (restore_s, impact, recovery_s when impact was seen,
    adapted)."""
    if figures.get("impact") == "seen":
        recovery = _number(figures.get("recovery_s"))
        return (_number(figures.get("restore_s")), "seen", recovery,
                recovery is not None and figures.get("adapted") is True)
    return _number(figures.get("restore_s")), figures.get("impact"), None, False


def merged(tallies: Iterable[MttrTally]) -> MttrTally:
    """One tally of the runs of ``tallies``."""
    out = MttrTally()
    for tally in tallies:
        out.merge(tally)
    return out


def mttr(runs: Iterable[RunLike]) -> Mttr:
    tally = MttrTally()
    for run in runs:
        if classify(run) == "evidence":
            tally.add(run)
    return tally.mttr()


def mttr_by(runs: Iterable[RunLike], key: GroupKey) -> tuple[tuple[str, Mttr], ...]:
    """MTTR per group of evidence runs, sorted by label."""
    return tuple((label, mttr(group)) for (label,), group in _group(_evidence(runs), (key,)).items())


def pass_rate(runs: Iterable[RunLike]) -> PassRate:
    evidence = _evidence(runs)
    passed = sum(1 for run in evidence if run.verdict == "passed")
    return PassRate(len(evidence), passed, passed / len(evidence) if evidence else None)


def pass_rate_by(runs: Iterable[RunLike], keys: Sequence[GroupKey] = ("cell", "kind")
                 ) -> dict[tuple[str, ...], PassRate]:
    """Pass rate per group of evidence runs, keyed by label tuples (e.g. (cell, kind)), sorted."""
    out = {}
    for labels, group in _group(_evidence(runs), keys).items():
        passed = sum(1 for run in group if run.verdict == "passed")  # the group is evidence already
        out[labels] = PassRate(len(group), passed, passed / len(group))
    return out


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    return _sorted_percentile(sorted(values), q)


def _sorted_percentile(ordered: Sequence[float], q: float) -> float | None:
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


# -- trend -----------------------------------------------------------------------------------


def period_figures(runs: Iterable[RunLike], start: datetime, end: datetime) -> PeriodFigures:
    """MTTR and pass rate of the runs started in [start, end)."""
    start, end = as_utc(start), as_utc(end)
    inside = [run for run in runs if start <= _started(run) < end]
    return PeriodFigures(start, end, mttr(inside), pass_rate(inside))


def trend(runs: Iterable[RunLike], now: datetime, period: timedelta) -> Trend:
    _check_period("trend", period)
    now = as_utc(now)
    middle, low = now - period, now - 2 * period
    current, previous = MttrTally(), MttrTally()
    for run in runs:
        if classify(run) == "evidence":
            started = _started(run)
            if middle <= started < now:
                current.add(run)
            elif low <= started < middle:
                previous.add(run)
    return trend_of(current, previous, now, period)


def trend_of(current: MttrTally, previous: MttrTally, now: datetime, period: timedelta) -> Trend:
    """The trend from the tallies of the evidence runs of [now - period, now) and of the
    period before it."""
    _check_period("trend", period)
    now = as_utc(now)
    this = PeriodFigures(now - period, now, current.mttr(), current.pass_rate())
    last = PeriodFigures(now - 2 * period, now - period, previous.mttr(), previous.pass_rate())
    return Trend(this, last, _change(this.mttr.mean_s, last.mttr.mean_s),
                 _change(this.pass_rate.rate, last.pass_rate.rate))


def _check_period(what: str, period: timedelta) -> None:
    if period <= timedelta(0):
        raise ValueError(f"{what}: period must be positive, got {period}")


# -- newest objectives -----------------------------------------------------------------------


class NewestObjectives:
    """The objectives of the newest run offered that has any (ties broken by run id, then the
    first offered): what a cell's budget, tier and RTO objective are judged by."""

    __slots__ = ("objectives", "run_id", "started")

    def __init__(self) -> None:
        self.started: datetime | None = None
        self.run_id = ""
        self.objectives: CellObjectives | None = None

    def offer(self, started: datetime, run_id: str, objectives: CellObjectives | None) -> None:
        if objectives is None:
            return
        newest = self.started
        if newest is None or started > newest or (started == newest and run_id > self.run_id):
            self.started, self.run_id, self.objectives = started, run_id, objectives


def newest_objectives(runs: Iterable[RunLike]) -> CellObjectives | None:
    """Objectives of the newest run that has any (ties broken by run id)."""
    return _newest_objectives(runs)


def _newest_objectives(runs: Iterable[RunLike]) -> CellObjectives | None:
    newest = NewestObjectives()
    for run in runs:
        newest.offer(_started(run), run.run_id, run.objectives)
    return newest.objectives


# -- DR compliance and error budget ----------------------------------------------------------


class DrTally:
    """One cell's database-failover evidence runs that ran under objectives, each judged by
    its own."""

    __slots__ = ("envs", "max_rows", "newest", "rpo_ok", "rto_ok", "runs", "worst_rto")

    def __init__(self) -> None:
        self.runs = self.rto_ok = self.rpo_ok = 0
        self.worst_rto: float | None = None
        self.max_rows: int | None = None
        self.newest = NewestObjectives()
        self.envs: set[str] = set()

    def add(self, run: RunLike, started: datetime) -> None:
        objectives = run.objectives
        assert objectives is not None  # the caller's filter
        figures = run.figures
        rto, rows = _number(figures.get("rto_s")), _number(figures.get("rpo_rows"))
        self.runs += 1
        self.rto_ok += _within(rto, objectives.rto_s)
        self.rpo_ok += _within(_number(figures.get("rpo_s")), objectives.rpo_s)
        if rto is not None and (self.worst_rto is None or rto > self.worst_rto):
            self.worst_rto = rto
        if rows is not None and (self.max_rows is None or int(rows) > self.max_rows):
            self.max_rows = int(rows)
        self.newest.offer(started, run.run_id, objectives)
        self.envs.add(run.environment or UNKNOWN_ENVIRONMENT)

    def compliance(self, cell: str) -> DrCompliance:
        newest = self.newest.objectives
        assert newest is not None  # one run at least
        return DrCompliance(cell=cell, runs=self.runs, rto_compliant=self.rto_ok, rpo_compliant=self.rpo_ok,
                            rto_pct=_pct(self.rto_ok, self.runs), rpo_pct=_pct(self.rpo_ok, self.runs),
                            worst_rto_s=self.worst_rto, max_rpo_rows=self.max_rows,
                            rto_objective_s=float(newest.rto_s), rpo_objective_s=float(newest.rpo_s),
                            environments=ordered_environments(self.envs))


def dr_compliance(runs: Iterable[RunLike]) -> tuple[DrCompliance, ...]:
    """Per cell, database-failover evidence runs against the objectives each ran under."""
    tallies: dict[str, DrTally] = {}
    for run in runs:
        if run.kind == "db-failover" and run.objectives is not None and classify(run) == "evidence":
            tally = tallies.get(run.cell)
            if tally is None:
                tally = tallies[run.cell] = DrTally()
            tally.add(run, _started(run))
    return dr_compliance_of(tallies)


def dr_compliance_of(tallies: Mapping[str, DrTally]) -> tuple[DrCompliance, ...]:
    """DR compliance per cell from its tally, sorted by cell."""
    return tuple(tallies[cell].compliance(cell) for cell in sorted(tallies))


class DowntimeTally:
    """The downtime of a cell's runs (skipped runs left out by the caller), summed in the order
    the runs come, and the objectives of the newest of them."""

    __slots__ = ("downtime_s", "newest")

    def __init__(self) -> None:
        self.downtime_s: float = 0  # as sum() starts
        self.newest = NewestObjectives()

    def add(self, run: RunLike, started: datetime) -> None:
        self.add_downtime(_number(run.figures.get("downtime_s")) or 0.0, started, run.run_id, run.objectives)

    def add_downtime(self, downtime_s: float, started: datetime, run_id: str,
                     objectives: CellObjectives | None) -> None:
        self.downtime_s += downtime_s
        self.newest.offer(started, run_id, objectives)


def error_budget(runs: Iterable[RunLike]) -> tuple[ErrorBudget, ...]:
    """Per cell and UTC month, downtime during runs against the availability SLO's budget.

    Cell-months without objectives, or with a 100 % SLO (no budget to consume), are left out.
    """
    tallies: dict[tuple[str, str], DowntimeTally] = {}
    for run in runs:
        if run.verdict != "skipped":
            started = _started(run)
            key = (run.cell, month_label(started))
            tally = tallies.get(key)
            if tally is None:
                tally = tallies[key] = DowntimeTally()
            tally.add(run, started)
    return error_budget_of(tallies)


def error_budget_of(tallies: Mapping[tuple[str, str], DowntimeTally]) -> tuple[ErrorBudget, ...]:
    """The error budget per (cell, month) from its downtime tally, sorted by cell and month."""
    budgets = []
    for cell, month in sorted(tallies):
        tally = tallies[(cell, month)]
        objectives = tally.newest.objectives
        if objectives is None:
            continue
        budget = (1 - objectives.availability_slo / 100) * MONTH_MINUTES
        if budget <= 0:
            continue
        consumed = tally.downtime_s / 60
        budgets.append(ErrorBudget(cell, month, consumed, budget, 100 * consumed / budget))
    return tuple(budgets)


def budget_by_cell(budgets: Iterable[ErrorBudget]) -> tuple[CellBudget, ...]:
    """Each cell's worst and latest month of ``budgets`` (error_budget's rows); the cells that
    used most of a month's budget first (then by name), so the ones nearest a freeze lead."""
    months: dict[str, list[ErrorBudget]] = {}
    for budget in budgets:
        months.setdefault(budget.cell, []).append(budget)
    rows = []
    for cell, own in months.items():
        worst = max(own, key=lambda b: (b.pct, b.month))
        latest = max(own, key=lambda b: b.month)
        rows.append(CellBudget(cell, len(own), worst.month, worst.consumed_min, worst.pct,
                               worst.budget_min, latest.month, latest.pct))
    return tuple(sorted(rows, key=lambda r: (-r.worst_pct, r.cell)))


def rolling_budget(runs: Iterable[RunLike], now: datetime, period: timedelta) -> tuple[RollingBudget, ...]:
    """Per cell with objectives, the downtime of its runs started in [now - period, now) that
    were not skipped, against (100 % - SLO) of the period: what the error-budget gate reads
    (scheduler.gates.budget_consumed_pct, the same arithmetic)."""
    _check_period("rolling_budget", period)
    now = as_utc(now)
    start = now - period
    tallies: dict[str, DowntimeTally] = {}
    for run in runs:
        started = _started(run)
        if start <= started < now and run.verdict != "skipped":
            tally = tallies.get(run.cell)
            if tally is None:
                tally = tallies[run.cell] = DowntimeTally()
            tally.add(run, started)
    return rolling_budget_of(tallies, period)


def rolling_budget_of(tallies: Mapping[str, DowntimeTally], period: timedelta) -> tuple[RollingBudget, ...]:
    """The rolling budget per cell from the downtime tally of its runs in the period, by cell."""
    _check_period("rolling_budget", period)
    out = []
    for cell in sorted(tallies):
        tally = tallies[cell]
        objectives = tally.newest.objectives
        if objectives is None:
            continue
        downtime_s = tally.downtime_s
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


class KindTally:
    """A cell's evidence runs of one kind for its score: their decayed weights and outcomes,
    summed in the order the runs come."""

    __slots__ = ("newest", "runs", "total", "weight")

    def __init__(self) -> None:
        self.runs = 0
        self.weight: float = 0  # as sum() starts
        self.total: float = 0
        self.newest: datetime | None = None

    def add(self, verdict: str | None, started: datetime, weight: float) -> None:
        self.runs += 1
        self.weight += weight
        self.total += weight * OUTCOME_VALUES[verdict or ""]
        if self.newest is None or started > self.newest:
            self.newest = started

    def score(self, kind: str) -> KindScore:
        if not self.runs:
            return KindScore(kind, 0.0, 0, None)
        weight, total = self.weight, self.total
        # Dividing by at least 1 (one fresh run's weight) lets old evidence fade instead of counting
        # fully whenever it is the only evidence there is.
        divisor = max(weight, 1.0)
        return KindScore(kind, total / divisor, self.runs, self.newest, weight=weight,
                         outcome_loss=(weight - total) / divisor, decay_loss=(divisor - weight) / divisor)


class CellScoreTally:
    """What a cell's score needs: a KindTally per fault kind, and the newest objectives of any
    of its runs (its tier)."""

    __slots__ = ("kinds", "newest")

    def __init__(self) -> None:
        self.kinds = {kind: KindTally() for kind in KINDS}
        self.newest = NewestObjectives()

    def score(self, cell: str) -> CellScore:
        kinds = tuple(self.kinds[kind].score(kind) for kind in KINDS)
        objectives = self.newest.objectives
        tier = objectives.tier if objectives is not None else DEFAULT_TIER
        return CellScore(cell, tier, 100 * fmean(k.score for k in kinds), kinds)


def resilience_score(runs: Iterable[RunLike], now: datetime,
                     cells: Collection[str] = ()) -> ResilienceScore:
    """Per cell and for the fleet, from the runs started before ``now`` (see SCORE_FORMULA).
    ``cells``: cells to score even without any run (e.g. the schedule's): they score 0."""
    now = as_utc(now)
    tallies: dict[str, CellScoreTally] = {}
    for run in runs:
        started = _started(run)
        if started < now:
            tally = tallies.get(run.cell)
            if tally is None:
                tally = tallies[run.cell] = CellScoreTally()
            tally.newest.offer(started, run.run_id, run.objectives)
            if run.kind in tally.kinds and classify(run) == "evidence":
                tally.kinds[run.kind].add(run.verdict, started, decay_weight((now - started) / _DAY))
    return resilience_score_of(tallies, cells)


def resilience_score_of(tallies: Mapping[str, CellScoreTally], cells: Collection[str] = ()
                        ) -> ResilienceScore:
    """The score from each cell's tally (the weights decayed to the same ``now``); ``cells``
    without a tally score 0."""
    empty = CellScoreTally()
    names = sorted(set(tallies) | set(cells))
    scored = tuple(tallies.get(cell, empty).score(cell) for cell in names)
    weights = [_tier_weight(cell.tier) for cell in scored]
    fleet = sum(w * cell.score for w, cell in zip(weights, scored, strict=True)) / sum(weights) \
        if scored else None
    return ResilienceScore(fleet, scored)


def _tier_weight(tier: int) -> int:
    # tiers outside 1..3 weigh like the nearest one (0 like 1, 4 and beyond like 3)
    return TIER_WEIGHTS[min(max(tier, 1), 3)]


def kind_points(kind: KindScore) -> tuple[float, float]:
    """The points (of 100) a kind took off its cell's score: (for outcomes, for stale or no
    evidence). Each kind is a quarter of the cell's score."""
    share = 100 / len(KINDS)
    return share * kind.outcome_loss, share * kind.decay_loss


# -- findings, selection, counts -------------------------------------------------------------


def findings(runs: Iterable[RunLike], limit: int = 20) -> tuple[Finding, ...]:
    """What went wrong in evidence runs that did not pass, newest run first, at most ``limit``."""
    missed = [run for run in _evidence(runs) if run.verdict != "passed"]
    missed.sort(key=newest_key, reverse=True)
    return findings_of(missed, limit)


def findings_of(newest_first: Iterable[RunLike], limit: int = 20) -> tuple[Finding, ...]:
    """``findings`` of evidence runs that did not pass, given newest first (by newest_key)."""
    found: list[Finding] = []
    for run in newest_first:
        if len(found) >= limit:
            break
        found.extend(run_findings(run))
    return tuple(found[:max(limit, 0)])


def run_findings(run: RunLike) -> list[Finding]:
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


def newest_key(run: RunLike) -> tuple[datetime, str]:
    """Sort key of runs by start, then id (``reverse=True``: newest first, as the store lists)."""
    return _started(run), run.run_id


def select_runs(runs: Iterable[Run], since: datetime | None = None, until: datetime | None = None,
                cells: Collection[str] | None = None,
                envs: Collection[str] | None = None) -> tuple[Run, ...]:
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


def summary_counts(runs: Iterable[RunLike]) -> SummaryCounts:
    counts: dict[tuple[str | None, bool], int] = defaultdict(int)
    for run in runs:
        counts[(run.verdict, halted(run))] += 1
    return summary_counts_of(counts)


def summary_counts_of(counts: Mapping[tuple[str | None, bool], int]) -> SummaryCounts:
    """SummaryCounts from the number of runs per (verdict, halted)."""
    classes: dict[str, int] = defaultdict(int)
    verdicts: dict[str, int] = defaultdict(int)
    total = halts = 0
    for (verdict, halt), n in counts.items():
        total += n
        if verdict is None:
            classes["running"] += n
        elif verdict == "skipped":
            classes["skipped"] += n
        elif verdict == "aborted" and not halt:
            classes["inconclusive"] += n
        else:
            classes["evidence"] += n
        verdicts[verdict or "running"] += n
        halts += n if halt else 0
    return SummaryCounts(total=total, evidence=classes["evidence"], inconclusive=classes["inconclusive"],
                         skipped=classes["skipped"], running=classes["running"], passed=verdicts["passed"],
                         failed=verdicts["failed"], not_recovered=verdicts["not_recovered"],
                         aborted=verdicts["aborted"], halted=halts)


# -- helpers ---------------------------------------------------------------------------------


_DAY = timedelta(days=1)


def as_utc(moment: datetime) -> datetime:
    # a naive value is taken as UTC, never as the machine's local time
    zone = moment.tzinfo
    if zone is UTC:  # what the store returns: the common case, and the hot path at fleet scale
        return moment
    return moment.replace(tzinfo=UTC) if zone is None else moment.astimezone(UTC)


def _started(run: RunLike) -> datetime:
    return as_utc(run.started_utc)


def _evidence(runs: Iterable[Run]) -> list[Run]:
    return [run for run in runs if classify(run) == "evidence"]


def evidence(runs: Iterable[Run]) -> list[Run]:
    """The evidence runs of ``runs``, in order."""
    return _evidence(runs)


def figure(run: RunLike, name: str) -> float | None:
    """A numeric figure as a plain float; None when missing, None, not a number or NaN."""
    return _number(run.figures.get(name))


def number(value: object) -> float | None:
    """A figure's value as a plain float; None when None, not a number or NaN."""
    return _number(value)


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


def _group(runs: Iterable[Run], keys: Sequence[GroupKey]) -> dict[tuple[str, ...], list[Run]]:
    """Runs grouped by their labels for ``keys``, sorted by those labels."""
    unknown = [key for key in keys if key not in _LABELS]
    if unknown:
        raise ValueError(f"unknown grouping {unknown}: expected some of {sorted(_LABELS)}")
    labels = [_LABELS[key] for key in keys]
    groups: dict[tuple[str, ...], list[Run]] = defaultdict(list)
    if len(labels) == 1:  # the common cases, without a generator per run
        (only,) = labels
        single: dict[str, list[Run]] = defaultdict(list)
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


def group(runs: Iterable[Run], keys: Sequence[GroupKey]) -> dict[tuple[str, ...], list[Run]]:
    """Runs grouped by their labels for ``keys`` (cell, kind, week, month, environment), sorted."""
    return _group(runs, keys)


def _within(value: float | None, bound: float) -> bool:
    return value is not None and value <= bound


def _pct(part: int, whole: int) -> float | None:
    return 100 * part / whole if whole else None


def _change(current: float | None, previous: float | None) -> float | None:
    return None if current is None or previous is None else current - previous
