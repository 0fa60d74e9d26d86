"""Are we resilient, and what should we do next? Objectives with a status, and findings with
a recommended next step (pure: runs, coverage and budgets in, plain records out).

Objectives and their targets (seeds 000 and 001):

- pass rate: more than 95 % of experiments pass ("Success rate: > 95 %"); with fewer than
  MIN_PASS_RUNS runs a rate above it is "unproven" (one failure in 19 runs is 5.3 %).
- recovery time: every run meets the experiments' own criteria on recovery figures.
- time to full redundancy: the target back at its desired state within 30 s ("Kubernetes
  restarts pod within 30 seconds"), at risk up to 60 s ("full recovery within 1 minute").
- RTO and RPO: each database failover within its cell's objectives (the seed's DR objectives
  are RTO 15 min, RPO 5 min); cells that never ran one leave it unproven.
- error budget: chaos keeps each cell under 50 % of its rolling budget; 50-80 % is caution;
  above 80 % the policy freezes chaos on the cell.

Statuses: "met", "at risk", "unproven" (nothing missed, but not enough evidence to say it is
met), "missed", "unknown" (no evidence at all).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from gameday.analytics import fleet
from gameday.analytics.coverage import CoverageCell
from gameday.analytics.fleet import RunLike
from gameday.model import CriterionResult

Status = Literal["met", "at risk", "unproven", "missed", "unknown"]
PASS_TARGET = 0.95
MIN_PASS_RUNS = 20
RESTORE_TARGET_S = 30.0
RESTORE_LIMIT_S = 60.0
BUDGET_CAUTION_PCT = 50.0
BUDGET_FREEZE_PCT = 80.0
RECOVERY_FIGURES = frozenset({"recovery_s", "impact_s", "time_to_impact_s", "recovery_after_fault_end_s",
                              "restore_s"})
KIND_WORDS = {"pod-kill": "pod kill", "latency": "network latency", "cpu-stress": "CPU stress",
              "db-failover": "database failover"}


@dataclass(frozen=True)
class Objective:
    key: str  # pass_rate | recovery | restore | rto | rpo | error_budget
    name: str
    target: str
    status: Status
    met: int  # runs (cells for error budget) meeting it
    total: int  # runs (cells) judged
    value: float | None  # the headline figure (rate 0..1, seconds, percent)
    unit: str  # how ``value`` reads: ratio, s, pct
    untested: int = 0  # cells that never ran what it needs
    detail: str = ""  # what the status rests on, in words


@dataclass(frozen=True)
class Action:
    """A finding and the recommended next step."""

    rule: str  # a key of NEXT_STEPS
    severity: int  # 0 most urgent
    cell: str | None
    kind: str | None
    finding: str
    next_step: str
    run_id: str | None = None
    window_id: str | None = None
    tier: int = fleet.DEFAULT_TIER
    count: int = 1  # runs behind it
    when: datetime | None = None


# rule -> (severity, the next step). The texts are filled with cell, kind, limit.
NEXT_STEPS: Mapping[str, tuple[int, str]] = {
    "rpo_loss": (0, "make replication synchronous, or accept the loss in the cell's RPO and tell its "
                    "tenants; then re-run the failover"),
    "not_recovered": (1, "find why the cell did not come back (runbook, self-healing, health checks), "
                         "fix it and re-run the experiment before the next window"),
    "halted": (1, "the cell crossed its halt limit: review its capacity and the blast radius before "
                  "the next run"),
    "budget_freeze": (2, "freeze chaos on this cell until its error budget is back under {limit:g} % "
                         "(rolling {period:g} days); spend the time on reliability work"),
    "rto_missed": (2, "shorten the failover (promotion, connection re-establishment) or revisit the "
                      "RTO objective with the cell's owners"),
    "criterion": (3, "fix what missed the criterion and re-run the experiment on this cell"),
    "never_tested": (4, "schedule it: add the kind to the rotation for this cell"),
    "blocked": (4, "move the window or the freeze: nothing of this kind can run on this cell in the "
                   "schedule's horizon"),
    "excluded": (5, "remove the exclusion, or record why the risk is accepted and by whom"),
    "restore_slow": (5, "find what holds back full redundancy (image pulls, readiness probes, "
                        "rebuilds); the seed expects it within 30 s"),
    "stale": (6, "re-run it: the newest evidence is older than {days:g} days and fades from the score"),
    "budget_caution": (6, "run chaos on this cell with caution: its error budget is above {caution:g} %"),
    "sandbox_only": (7, "run the experiments on staging, then production (one cell at a time), before "
                        "claiming production resilience"),
}


def _step(rule: str, **values: float) -> tuple[int, str]:
    severity, text = NEXT_STEPS[rule]
    return severity, text.format(**values) if values else text


# -- objectives ------------------------------------------------------------------------------


class ObjectivesTally:
    """What the objectives read of a set of evidence runs (one environment's), one run at a
    time (``add``): passes, the recovery criteria, the times to full redundancy, failovers."""

    __slots__ = ("_criteria", "bounds", "evidence", "failovers", "judged", "max_rows", "met", "passed",
                 "restore_within", "restores", "rpo_ok", "rto_ok", "tested", "worst_restore", "worst_rto")

    def __init__(self) -> None:
        self.evidence = self.passed = self.judged = self.met = 0
        self.bounds: dict[str, set[str]] = {}
        self.restores = self.restore_within = 0
        self.worst_restore: float | None = None
        self.failovers = self.rto_ok = self.rpo_ok = 0
        self.tested: set[str] = set()
        self.worst_rto: float | None = None
        self.max_rows: float | None = None
        # (any criterion on a recovery figure, all of those met) by the id of a run's criteria,
        # which ReportRuns share, and its kind; kept with the criteria, so that the id stays theirs
        self._criteria: dict[tuple[int, str], tuple[Sequence[CriterionResult], bool, bool]] = {}

    def add(self, run: RunLike) -> None:
        """Tally an evidence run."""
        self.add_known(run, fleet.halted(run), fleet.figure(run, "restore_s"))

    def add_known(self, run: RunLike, halted: bool, restore: float | None) -> None:
        """Tally an evidence run, with what the caller read of it already."""
        verdict = run.verdict
        self.evidence += 1
        if verdict == "passed":
            self.passed += 1
        if verdict == "not_recovered" or halted:
            self.judged += 1
        else:
            criteria, kind = run.criteria, run.kind
            known = self._criteria.get((id(criteria), kind))
            if known is None or known[0] is not criteria:
                known = self._recovery_criteria(criteria, kind)
            if known[1]:
                self.judged += 1
                self.met += known[2]
        if restore is not None:
            self.restores += 1
            self.restore_within += restore <= RESTORE_TARGET_S
            if self.worst_restore is None or restore > self.worst_restore:
                self.worst_restore = restore
        if run.kind == "db-failover" and run.objectives is not None:
            figures = run.figures
            rto, rows = fleet.number(figures.get("rto_s")), fleet.number(figures.get("rpo_rows"))
            self.failovers += 1
            self.tested.add(run.cell)
            self.rto_ok += _within(rto, run.objectives)
            self.rpo_ok += _within(fleet.number(figures.get("rpo_s")), run.objectives, rpo=True)
            if rto is not None and (self.worst_rto is None or rto > self.worst_rto):
                self.worst_rto = rto
            if rows is not None and (self.max_rows is None or rows > self.max_rows):
                self.max_rows = rows

    def __getstate__(self) -> dict[str, Any]:
        # Not the criteria cache: it is keyed by the ids of this process's objects.
        return {name: getattr(self, name) for name in self.__slots__ if name != "_criteria"}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self._criteria = {}
        for name, value in state.items():
            setattr(self, name, value)

    def merge(self, other: ObjectivesTally) -> ObjectivesTally:
        """Add ``other``'s runs to this tally (no figure depends on their order); returns it."""
        self.evidence += other.evidence
        self.passed += other.passed
        self.judged += other.judged
        self.met += other.met
        for words, bounds in other.bounds.items():
            self.bounds.setdefault(words, set()).update(bounds)
        self.restores += other.restores
        self.restore_within += other.restore_within
        self.worst_restore = _larger(self.worst_restore, other.worst_restore)
        self.failovers += other.failovers
        self.rto_ok += other.rto_ok
        self.rpo_ok += other.rpo_ok
        self.tested |= other.tested
        self.worst_rto = _larger(self.worst_rto, other.worst_rto)
        self.max_rows = _larger(self.max_rows, other.max_rows)
        return self

    def _recovery_criteria(self, criteria: Sequence[CriterionResult], kind: str
                           ) -> tuple[Sequence[CriterionResult], bool, bool]:
        """Whether a run's criteria hold any on recovery figures, and whether it met all of
        them; their bounds go to the kind's."""
        mine = [c for c in criteria if c.expected.split(" ", 1)[0] in RECOVERY_FIGURES]
        if mine:
            words = KIND_WORDS.get(kind, kind)
            bounds = self.bounds.get(words)
            if bounds is None:
                bounds = self.bounds[words] = set()
            bounds.update(c.expected for c in mine)
        known = self._criteria[(id(criteria), kind)] = (criteria, bool(mine), all(c.ok for c in mine))
        return known


def _larger(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def objectives(runs: Sequence[RunLike], cells: Sequence[str], budgets: Sequence[fleet.RollingBudget],
               budget_limit_pct: float = BUDGET_FREEZE_PCT) -> tuple[Objective, ...]:
    """The objectives over ``runs`` (one environment's, or one stated set's) for ``cells``."""
    tally = ObjectivesTally()
    for run in fleet.evidence(runs):
        tally.add(run)
    return objectives_of(tally, cells, budgets, budget_limit_pct)


def objectives_of(tally: ObjectivesTally, cells: Sequence[str], budgets: Sequence[fleet.RollingBudget],
                  budget_limit_pct: float = BUDGET_FREEZE_PCT) -> tuple[Objective, ...]:
    """``objectives`` from the tally of the evidence runs."""
    return (_pass_rate(tally), _recovery(tally), _restore(tally), *_dr(tally, cells),
            _budget(budgets, budget_limit_pct))


def _pass_rate(tally: ObjectivesTally) -> Objective:
    passed, n = tally.passed, tally.evidence
    rate = passed / n if n else None
    status: Status
    if rate is None:
        status = "unknown"
    elif rate <= PASS_TARGET:
        status = "missed"
    else:
        status = "met" if n >= MIN_PASS_RUNS else "unproven"
    detail = "" if status != "unproven" else \
        f"{n} runs: at least {MIN_PASS_RUNS} are needed to show more than 95 %"
    return Objective("pass_rate", "Pass rate", "more than 95 % of experiments pass", status, passed, n,
                     rate, "ratio", detail=detail)


def _recovery(tally: ObjectivesTally) -> Objective:
    judged, met = tally.judged, tally.met
    status: Status = "unknown" if judged == 0 else ("met" if met == judged else "missed")
    detail = "; ".join(f"{kind}: {', '.join(sorted(b))}" for kind, b in sorted(tally.bounds.items()))
    return Objective("recovery", "Recovery time", "within each experiment's recovery criteria", status,
                     met, judged, None, "", detail=detail)


def _restore(tally: ObjectivesTally) -> Objective:
    worst = tally.worst_restore
    status: Status
    if worst is None:
        status = "unknown"
    elif worst <= RESTORE_TARGET_S:
        status = "met"
    else:
        status = "at risk" if worst <= RESTORE_LIMIT_S else "missed"
    detail = "" if tally.restores else "no run has the target's own observation of full redundancy"
    return Objective("restore", "Time to full redundancy",
                     f"within {RESTORE_TARGET_S:g} s (at risk up to {RESTORE_LIMIT_S:g} s)", status,
                     tally.restore_within, tally.restores, worst, "s", detail=detail)


def _dr(tally: ObjectivesTally, cells: Sequence[str]) -> tuple[Objective, Objective]:
    failovers = tally.failovers
    untested = sum(1 for c in cells if c not in tally.tested)
    rto_ok, rpo_ok = tally.rto_ok, tally.rpo_ok

    def status(ok: int) -> Status:
        if not failovers:
            return "unknown"
        if ok < failovers:
            return "missed"
        return "unproven" if untested else "met"

    gap = f"; {untested} of {len(cells)} cells never ran one" if untested else ""
    rto = Objective("rto", "RTO (database failover)", "writes acknowledged again within each cell's RTO",
                    status(rto_ok), rto_ok, failovers, tally.worst_rto, "s", untested,
                    f"worst RTO of the failovers that took writes again{gap}")
    rpo = Objective("rpo", "RPO (database failover)", "lost writes within each cell's RPO",
                    status(rpo_ok), rpo_ok, failovers, tally.max_rows, "rows", untested,
                    f"most acknowledged writes lost in one failover{gap}")
    return rto, rpo


def _within(value: float | None, objectives: object, rpo: bool = False) -> bool:
    bound = getattr(objectives, "rpo_s" if rpo else "rto_s", None)
    return value is not None and bound is not None and value <= float(bound)


def _budget(budgets: Sequence[fleet.RollingBudget], limit: float) -> Objective:
    if not budgets:
        return Objective("error_budget", "Error budget used by chaos",
                         f"under {BUDGET_CAUTION_PCT:g} % per cell; chaos freezes above {limit:g} %",
                         "unknown", 0, 0, None, "pct", detail="no run with objectives in the budget period")
    worst = max(budgets, key=lambda b: b.pct)
    under = sum(1 for b in budgets if b.pct <= BUDGET_CAUTION_PCT)
    status: Status = "met" if worst.pct <= BUDGET_CAUTION_PCT else (
        "at risk" if worst.pct <= limit else "missed")
    frozen = sum(1 for b in budgets if b.pct > limit)
    detail = f"highest: {worst.cell}" + (f"; {frozen} cells above {limit:g} %" if frozen else "")
    return Objective("error_budget", "Error budget used by chaos",
                     f"under {BUDGET_CAUTION_PCT:g} % per cell; chaos freezes above {limit:g} %", status,
                     under, len(budgets), worst.pct if math.isfinite(worst.pct) else None, "pct",
                     detail=detail)


# -- findings and next steps -----------------------------------------------------------------


def actions(runs: Sequence[RunLike], cover: Sequence[CoverageCell], budgets: Sequence[fleet.RollingBudget],
            tiers: Mapping[str, int], budget_limit_pct: float = BUDGET_FREEZE_PCT,
            budget_period_days: float = 30.0) -> tuple[Action, ...]:
    """Every finding with its next step, most urgent first (then tier 1 first, newest first).

    Runs that went wrong the same way in the same cell and kind are one finding with a count,
    named by the newest run."""
    newest_first = sorted(fleet.evidence(runs), key=fleet.newest_key, reverse=True)
    return actions_of(newest_first, cover, budgets, tiers, fleet.environments(runs), bool(runs),
                      budget_limit_pct, budget_period_days)


def actions_of(newest_first: Iterable[RunLike], cover: Sequence[CoverageCell],
               budgets: Sequence[fleet.RollingBudget], tiers: Mapping[str, int],
               envs: Sequence[str], any_runs: bool, budget_limit_pct: float = BUDGET_FREEZE_PCT,
               budget_period_days: float = 30.0) -> tuple[Action, ...]:
    """``actions`` from the evidence runs newest first (fleet.newest_key), the environments of
    all the runs, and whether there were any. Runs that passed, lost no acknowledged write and
    were back at full redundancy within RESTORE_TARGET_S add nothing: they may be left out."""
    found: dict[tuple[str, str | None, str | None], Action] = {}
    counts: dict[tuple[str, str | None, str | None], int] = {}

    def again(rule: str, cell: str | None, kind: str | None) -> bool:
        """Count one more run behind a finding made already (its text is the newest run's)."""
        key = (rule, cell, kind)
        if key in found:
            counts[key] += 1
            return True
        return False

    def add(rule: str, cell: str | None, kind: str | None, finding: str, run: RunLike | None = None,
            window_id: str | None = None, **values: float) -> None:
        if again(rule, cell, kind):
            return
        severity, step = _step(rule, **values)
        key = (rule, cell, kind)
        counts[key] = 1
        found[key] = Action(rule, severity, cell, kind, finding, step,
                            run.run_id if run else None, window_id or (run.window_id if run else None),
                            tiers.get(cell or "", fleet.DEFAULT_TIER), 1,
                            fleet.as_utc(run.started_utc) if run else None)

    for run in newest_first:
        cell, kind = run.cell, run.kind
        words = KIND_WORDS.get(kind, kind)
        rows = fleet.figure(run, "rpo_rows")
        if kind == "db-failover" and rows and not again("rpo_loss", cell, kind):
            add("rpo_loss", cell, kind,
                f"the {words} lost {int(rows)} acknowledged write{'s' if rows != 1 else ''}", run)
        if run.verdict == "not_recovered":
            if not again("not_recovered", cell, kind):
                add("not_recovered", cell, kind, f"did not recover from the {words} within the timeout", run)
        elif fleet.halted(run):
            if not again("halted", cell, kind):
                add("halted", cell, kind, f"the {words} was halted: {run.reason}", run)
        elif run.verdict == "failed":
            missed = [c for c in run.criteria if not c.ok and not (kind == "db-failover" and rows
                                                                   and c.expected.startswith("rpo_rows"))]
            rto_missed = [c for c in missed if c.expected.startswith("rto_s")]
            if rto_missed and not again("rto_missed", cell, kind):
                add("rto_missed", cell, kind,
                    f"the {words} missed {rto_missed[0].name} ({rto_missed[0].actual})", run)
            others = [c for c in missed if c not in rto_missed]
            if others and not again("criterion", cell, kind):
                add("criterion", cell, kind,
                    f"the {words} missed {others[0].name} ({others[0].actual})"
                    + (f" and {len(others) - 1} more" if len(others) > 1 else ""), run)
        restore = fleet.figure(run, "restore_s")
        if restore is not None and restore > RESTORE_TARGET_S and not again("restore_slow", cell, kind):
            add("restore_slow", cell, kind, f"full redundancy took {restore:.1f} s after the {words}", run)
    for entry in cover:
        words = KIND_WORDS.get(entry.kind, entry.kind)
        if entry.state == "excluded":
            add("excluded", entry.cell, entry.kind, f"{words} is excluded: {entry.excluded_reason}")
        elif entry.state == "never":
            if entry.blocked_reason and entry.blocked_by in ("freeze", "target", "exclusion"):
                add("blocked", entry.cell, entry.kind,
                    f"{words} was never tested, and every planned window is blocked "
                    f"({entry.blocked_reason})", window_id=entry.blocked_window_id)
            else:
                add("never_tested", entry.cell, entry.kind, f"{words} was never tested")
        elif entry.stale and entry.age_days is not None:
            add("stale", entry.cell, entry.kind,
                f"the newest {words} evidence is {entry.age_days:.0f} days old", days=30.0)
        if entry.state == "tested" and entry.next_utc is None and entry.blocked_by in ("freeze", "target"):
            add("blocked", entry.cell, entry.kind,
                f"{words} cannot run in the schedule's horizon ({entry.blocked_reason})",
                window_id=entry.blocked_window_id)
    for budget in budgets:
        if budget.pct > budget_limit_pct:
            add("budget_freeze", budget.cell, None,
                f"chaos used {_pct(budget.pct)} of the {budget.period_days:g}-day error budget",
                limit=budget_limit_pct, period=budget_period_days)
        elif budget.pct > BUDGET_CAUTION_PCT:
            add("budget_caution", budget.cell, None,
                f"chaos used {_pct(budget.pct)} of the {budget.period_days:g}-day error budget",
                caution=BUDGET_CAUTION_PCT)
    if any_runs and "production" not in envs:
        add("sandbox_only", None, None,
            f"every run's evidence is from {' and '.join(envs)}: nothing here shows how production recovers")
    counted = [replace(a, count=counts[key]) if counts[key] != 1 else a for key, a in found.items()]
    return tuple(sorted(counted, key=lambda a: (
        a.severity, a.tier, -(a.when.timestamp() if a.when else 0.0), a.cell or "", a.kind or "")))


def _pct(value: float) -> str:
    return f"{value:.1f} %" if math.isfinite(value) else "all (the SLO allows no downtime)"


__all__ = ["NEXT_STEPS", "Action", "Objective", "ObjectivesTally", "actions", "actions_of", "objectives",
           "objectives_of"]
