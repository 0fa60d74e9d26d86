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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from gameday.analytics import fleet
from gameday.analytics.coverage import CoverageCell
from gameday.model import RunRecord

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


def objectives(runs: Sequence[RunRecord], cells: Sequence[str], budgets: Sequence[fleet.RollingBudget],
               budget_limit_pct: float = BUDGET_FREEZE_PCT) -> tuple[Objective, ...]:
    """The objectives over ``runs`` (one environment's, or one stated set's) for ``cells``."""
    evidence = fleet.evidence(runs)
    return (_pass_rate(evidence), _recovery(evidence), _restore(evidence), *_dr(evidence, cells),
            _budget(budgets, budget_limit_pct))


def _pass_rate(evidence: Sequence[RunRecord]) -> Objective:
    passed = sum(1 for r in evidence if r.verdict == "passed")
    n = len(evidence)
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


def _recovery(evidence: Sequence[RunRecord]) -> Objective:
    judged = met = 0
    bounds: dict[str, set[str]] = {}
    for run in evidence:
        mine = [c for c in run.criteria if c.expected.split(" ", 1)[0] in RECOVERY_FIGURES]
        if run.verdict == "not_recovered" or fleet.halted(run):
            judged += 1
            continue
        if not mine:
            continue
        judged += 1
        met += all(c.ok for c in mine)
        for c in mine:
            bounds.setdefault(KIND_WORDS.get(run.kind, run.kind), set()).add(c.expected)
    status: Status = "unknown" if judged == 0 else ("met" if met == judged else "missed")
    detail = "; ".join(f"{kind}: {', '.join(sorted(b))}" for kind, b in sorted(bounds.items()))
    return Objective("recovery", "Recovery time", "within each experiment's recovery criteria", status,
                     met, judged, None, "", detail=detail)


def _restore(evidence: Sequence[RunRecord]) -> Objective:
    values = [v for v in (fleet.figure(r, "restore_s") for r in evidence) if v is not None]
    within = sum(1 for v in values if v <= RESTORE_TARGET_S)
    worst = max(values, default=None)
    status: Status
    if worst is None:
        status = "unknown"
    elif worst <= RESTORE_TARGET_S:
        status = "met"
    else:
        status = "at risk" if worst <= RESTORE_LIMIT_S else "missed"
    detail = "" if values else "no run has the target's own observation of full redundancy"
    return Objective("restore", "Time to full redundancy",
                     f"within {RESTORE_TARGET_S:g} s (at risk up to {RESTORE_LIMIT_S:g} s)", status, within,
                     len(values), worst, "s", detail=detail)


def _dr(evidence: Sequence[RunRecord], cells: Sequence[str]) -> tuple[Objective, Objective]:
    failovers = [r for r in evidence if r.kind == "db-failover" and r.objectives is not None]
    tested = {r.cell for r in failovers}
    untested = sum(1 for c in cells if c not in tested)
    rto_ok = sum(1 for r in failovers if _within(fleet.figure(r, "rto_s"), r.objectives))
    rpo_ok = sum(1 for r in failovers if _within(fleet.figure(r, "rpo_s"), r.objectives, rpo=True))
    rtos = [v for v in (fleet.figure(r, "rto_s") for r in failovers) if v is not None]
    rows = [v for v in (fleet.figure(r, "rpo_rows") for r in failovers) if v is not None]

    def status(ok: int) -> Status:
        if not failovers:
            return "unknown"
        if ok < len(failovers):
            return "missed"
        return "unproven" if untested else "met"

    gap = f"; {untested} of {len(cells)} cells never ran one" if untested else ""
    rto = Objective("rto", "RTO (database failover)", "writes acknowledged again within each cell's RTO",
                    status(rto_ok), rto_ok, len(failovers), max(rtos, default=None), "s", untested,
                    f"worst RTO of the failovers that took writes again{gap}")
    rpo = Objective("rpo", "RPO (database failover)", "lost writes within each cell's RPO",
                    status(rpo_ok), rpo_ok, len(failovers), max(rows, default=None), "rows", untested,
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


def actions(runs: Sequence[RunRecord], cover: Sequence[CoverageCell], budgets: Sequence[fleet.RollingBudget],
            tiers: Mapping[str, int], budget_limit_pct: float = BUDGET_FREEZE_PCT,
            budget_period_days: float = 30.0) -> tuple[Action, ...]:
    """Every finding with its next step, most urgent first (then tier 1 first, newest first).

    Runs that went wrong the same way in the same cell and kind are one finding with a count,
    named by the newest run."""
    found: dict[tuple[str, str | None, str | None], Action] = {}

    def add(rule: str, cell: str | None, kind: str | None, finding: str, run: RunRecord | None = None,
            window_id: str | None = None, **values: float) -> None:
        severity, step = _step(rule, **values)
        key = (rule, cell, kind)
        old = found.get(key)
        if old is not None:
            found[key] = Action(old.rule, old.severity, cell, kind, old.finding, old.next_step, old.run_id,
                                old.window_id, old.tier, old.count + 1, old.when)
            return
        found[key] = Action(rule, severity, cell, kind, finding, step,
                            run.run_id if run else None, window_id or (run.window_id if run else None),
                            tiers.get(cell or "", fleet.DEFAULT_TIER), 1,
                            fleet.as_utc(run.started_utc) if run else None)

    newest_first = sorted(fleet.evidence(runs), key=lambda r: (fleet.as_utc(r.started_utc), r.run_id),
                          reverse=True)
    for run in newest_first:
        words = KIND_WORDS.get(run.kind, run.kind)
        rows = fleet.figure(run, "rpo_rows")
        if run.kind == "db-failover" and rows:
            add("rpo_loss", run.cell, run.kind,
                f"the {words} lost {int(rows)} acknowledged write{'s' if rows != 1 else ''}", run)
        if run.verdict == "not_recovered":
            add("not_recovered", run.cell, run.kind, f"did not recover from the {words} within the timeout",
                run)
        elif fleet.halted(run):
            add("halted", run.cell, run.kind, f"the {words} was halted: {run.reason}", run)
        elif run.verdict == "failed":
            missed = [c for c in run.criteria if not c.ok and not (run.kind == "db-failover" and rows
                                                                   and c.expected.startswith("rpo_rows"))]
            rto_missed = [c for c in missed if c.expected.startswith("rto_s")]
            if rto_missed:
                add("rto_missed", run.cell, run.kind,
                    f"the {words} missed {rto_missed[0].name} ({rto_missed[0].actual})", run)
            others = [c for c in missed if c not in rto_missed]
            if others:
                add("criterion", run.cell, run.kind,
                    f"the {words} missed {others[0].name} ({others[0].actual})"
                    + (f" and {len(others) - 1} more" if len(others) > 1 else ""), run)
        restore = fleet.figure(run, "restore_s")
        if restore is not None and restore > RESTORE_TARGET_S:
            add("restore_slow", run.cell, run.kind,
                f"full redundancy took {restore:.1f} s after the {words}", run)
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
    envs = fleet.environments(runs)
    if runs and "production" not in envs:
        add("sandbox_only", None, None,
            f"every run's evidence is from {' and '.join(envs)}: nothing here shows how production recovers")
    return tuple(sorted(found.values(), key=lambda a: (
        a.severity, a.tier, -(a.when.timestamp() if a.when else 0.0), a.cell or "", a.kind or "")))


def _pct(value: float) -> str:
    return f"{value:.1f} %" if math.isfinite(value) else "all (the SLO allows no downtime)"


__all__ = ["NEXT_STEPS", "Action", "Objective", "actions", "objectives"]
