"""Coverage: for every cell and fault kind, when it was last tested, or never, or excluded, and
when the schedule will run it next or what blocks it (pure; ``now`` and the plan passed in).

The schedule's plan is computed by the caller (the CLI, from ``gameday.scheduler.plan``) and
handed over as plain data, a ScheduleOutlook: analytics and reporting never import the
scheduler.

- Last tested: the newest evidence run of the cell and kind (its id, verdict, start and
  environment). Stale when older than STALE_DAYS (the score's half-life).
- Excluded: the schedule's ``cells.exclude`` names the kind for the cell, or, without a
  schedule, the cell's newest run of that kind was skipped because of an exclusion.
- Next: the first planned window of the horizon that runs the kind on the cell and that
  nothing the plan knows blocks. Blocked: every planned window of the kind is blocked (by a
  freeze, an exclusion, the target), or the error-budget gate would block the cell today
  (its rolling budget above the gate's limit; the gate decides when the window opens).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Literal

from gameday.analytics.fleet import (
    HALF_LIFE_DAYS,
    KINDS,
    RollingBudget,
    RunClass,
    RunLike,
    as_utc,
    classify,
    environment,
)

STALE_DAYS = HALF_LIFE_DAYS
State = Literal["tested", "never", "excluded"]
Blocker = Literal["freeze", "exclusion", "error budget", "target", "rotation", "other"]
EXCLUDED_PREFIX = "excluded:"


@dataclass(frozen=True)
class Upcoming:
    """One planned run: the schedule's window ``when`` runs ``kind`` on ``cell``, unless
    ``blocked_reason`` says why not (e.g. "freeze: year-end change freeze")."""

    cell: str
    kind: str | None
    when: datetime
    blocked_reason: str | None = None
    window_id: str | None = None


@dataclass(frozen=True)
class ScheduleOutlook:
    """What the schedule will do, as plain data (built by the caller from the scheduler)."""

    name: str
    horizon_days: float
    cells: tuple[str, ...]
    upcoming: tuple[Upcoming, ...]
    excluded: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}),
                                                   hash=False)
    budget_max_pct: float | None = 80.0  # the error-budget gate's limit; None: the gate is off
    budget_period_days: float = 30.0
    source: str = ""  # the schedule file, for the report's header


@dataclass(frozen=True)
class CoverageCell:
    cell: str
    kind: str
    state: State
    runs: int  # evidence runs of the cell and kind
    last_run_id: str | None = None
    last_verdict: str | None = None
    last_utc: datetime | None = None
    last_environment: str | None = None
    age_days: float | None = None
    stale: bool = False
    excluded_reason: str | None = None
    next_utc: datetime | None = None
    next_window_id: str | None = None
    blocked_by: Blocker | None = None
    blocked_reason: str | None = None  # the planned window's reason, or the budget gate's
    blocked_utc: datetime | None = None  # the first blocked window of the horizon
    blocked_window_id: str | None = None
    planned: int = 0  # planned windows of the kind for the cell in the horizon
    scheduled: bool = False  # a schedule was given


def blocker(reason: str) -> Blocker:
    """The kind of block a plan's skip reason or a gate's reason names."""
    head = reason.split(":", 1)[0].strip()
    return {"freeze": "freeze", "excluded": "exclusion", "error_budget": "error budget",
            "target": "target", "rotation": "rotation"}.get(head, "other")  # type: ignore[return-value]


class CoverageTally:
    """What coverage reads of the runs, one run at a time: per cell and kind, the number of
    evidence runs and the newest of them (ties broken by run id), and the newest skipped run
    (the first of equals); each newest with its start in UTC."""

    __slots__ = ("counts", "newest", "skipped")

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self.newest: dict[tuple[str, str], tuple[datetime, RunLike]] = {}
        self.skipped: dict[tuple[str, str], tuple[datetime, RunLike]] = {}

    def add(self, run: RunLike, kind_of: RunClass, started: datetime) -> None:
        """Tally ``run`` (of class ``kind_of``, started at ``started`` UTC)."""
        if kind_of == "evidence":
            key = (run.cell, run.kind)
            counts = self.counts
            counts[key] = counts.get(key, 0) + 1
            best = self.newest.get(key)
            if best is None or started > best[0] or (started == best[0] and run.run_id > best[1].run_id):
                self.newest[key] = (started, run)
        elif kind_of == "skipped":
            key = (run.cell, run.kind)
            last = self.skipped.get(key)
            if last is None or started > last[0]:
                self.skipped[key] = (started, run)


    def merge(self, other: CoverageTally) -> CoverageTally:
        """Add ``other``'s runs to this tally, as if they had come one by one; returns it."""
        for key, count in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + count
        for key, (started, run) in other.newest.items():
            best = self.newest.get(key)
            if best is None or started > best[0] or (started == best[0] and run.run_id > best[1].run_id):
                self.newest[key] = (started, run)
        for key, (started, run) in other.skipped.items():
            last = self.skipped.get(key)
            if last is None or started > last[0]:
                self.skipped[key] = (started, run)
        return self


def coverage(runs: Iterable[RunLike], now: datetime, cells: Sequence[str],
             outlook: ScheduleOutlook | None = None,
             budgets: Sequence[RollingBudget] = ()) -> tuple[CoverageCell, ...]:
    """One entry per cell of ``cells`` and kind of KINDS, in that order (cells as given)."""
    tally = CoverageTally()
    for run in runs:
        tally.add(run, classify(run), as_utc(run.started_utc))
    return coverage_of(tally, now, cells, outlook, budgets)


def coverage_of(tally: CoverageTally, now: datetime, cells: Sequence[str],
                outlook: ScheduleOutlook | None = None,
                budgets: Sequence[RollingBudget] = ()) -> tuple[CoverageCell, ...]:
    """``coverage`` from the tally of the runs."""
    now = as_utc(now)
    planned: dict[tuple[str, str], list[Upcoming]] = {}
    if outlook is not None:
        for item in sorted(outlook.upcoming, key=lambda u: (as_utc(u.when), u.window_id or "")):
            if item.kind is not None:
                planned.setdefault((item.cell, item.kind), []).append(item)
    over_budget: dict[str, RollingBudget] = {}
    limit = outlook.budget_max_pct if outlook is not None else None
    if limit is not None:
        over_budget = {b.cell: b for b in budgets if b.pct > limit}
    newest, counts, skipped = tally.newest, tally.counts, tally.skipped
    return tuple(_entry(cell, kind, now, _run(newest.get((cell, kind))), counts.get((cell, kind), 0),
                        _run(skipped.get((cell, kind))), outlook, planned.get((cell, kind), []),
                        over_budget.get(cell))
                 for cell in cells for kind in KINDS)


def _run(tallied: tuple[datetime, RunLike] | None) -> RunLike | None:
    return None if tallied is None else tallied[1]


def _entry(cell: str, kind: str, now: datetime, last: RunLike | None, runs: int,
           skipped: RunLike | None, outlook: ScheduleOutlook | None, planned: Sequence[Upcoming],
           budget: RollingBudget | None) -> CoverageCell:
    excluded_reason = None
    if outlook is not None and kind in outlook.excluded.get(cell, frozenset()):
        excluded_reason = f"the schedule {outlook.name} excludes {kind} on {cell}"
    elif outlook is None and skipped is not None and (skipped.reason or "").startswith(EXCLUDED_PREFIX) \
            and (last is None or as_utc(skipped.started_utc) > as_utc(last.started_utc)):
        excluded_reason = (skipped.reason or "").split(":", 1)[1].strip() or "excluded"
    state: State = "excluded" if excluded_reason else ("tested" if last is not None else "never")
    fields: dict[str, object] = {}
    if last is not None:
        age = (now - as_utc(last.started_utc)) / timedelta(days=1)
        fields.update(last_run_id=last.run_id, last_verdict=last.verdict, last_utc=as_utc(last.started_utc),
                      last_environment=environment(last), age_days=age, stale=age > STALE_DAYS)
    free = next((u for u in planned if u.blocked_reason is None), None)
    first_blocked = next((u for u in planned if u.blocked_reason is not None), None)
    if free is not None:
        fields.update(next_utc=as_utc(free.when), next_window_id=free.window_id)
    if budget is not None and outlook is not None and outlook.budget_max_pct is not None \
            and state != "excluded":
        fields.update(blocked_by="error budget",
                      blocked_reason=_budget_reason(budget, outlook.budget_max_pct),
                      blocked_utc=as_utc(free.when) if free else None,
                      blocked_window_id=free.window_id if free else None)
    elif free is None and first_blocked is not None and first_blocked.blocked_reason is not None:
        fields.update(blocked_by=blocker(first_blocked.blocked_reason),
                      blocked_reason=first_blocked.blocked_reason, blocked_utc=as_utc(first_blocked.when),
                      blocked_window_id=first_blocked.window_id)
    return CoverageCell(cell=cell, kind=kind, state=state, runs=runs, excluded_reason=excluded_reason,
                        planned=len(planned), scheduled=outlook is not None,
                        **fields)  # type: ignore[arg-type]


def _budget_reason(budget: RollingBudget, limit: float) -> str:
    return (f"error_budget: {budget.pct:.1f} % of the {budget.period_days:g}-day budget consumed "
            f"(limit {limit:g} %)")


__all__ = ["STALE_DAYS", "CoverageCell", "CoverageTally", "ScheduleOutlook", "Upcoming", "blocker",
           "coverage", "coverage_of"]
