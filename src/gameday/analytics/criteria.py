"""Success criteria: each names a figure and a bound; the verdict follows from them (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gameday.model import CriterionResult, Verdict

# Figures only the target can give (its own observation of the cell; see targets.base).
TARGET_FIGURES = frozenset({"restore_s", "failover_s", "scale_out_s", "replica_crashes",
                            "target_restored_s"})
# Names of version 1 that experiment files may still use: each is now the same value as its
# version-2 figure (the error rate over the fixed span; recovery from the end of the cause).
ALIASES = {"error_rate_during_recovery": "error_rate", "recovery_after_fault_end_s": "recovery_s"}
# Figures that exist only when the probes saw an impact: with impact "none" a bound on them is
# met, and says so, rather than compared with a made-up 0.
IMPACT_FIGURES = frozenset({"time_to_impact_s", "impact_s", "recovery_s",
                            "recovery_after_fault_end_s"})
NO_IMPACT = "no impact seen"
NOT_MEASURED = "not measured"


def criterion_figures() -> frozenset[str]:
    """The figures a criterion may name: every number a run stores from its probes
    (recovery.Figures), the target's own, and the version-1 aliases."""
    from dataclasses import fields

    from gameday.analytics.recovery import Figures

    skip = {"t_inject", "t_cause_end", "t_first_breach", "t_recovered", "recovered", "impact",
            "adapted", "error_span_s", "figures_version"}
    return frozenset({f.name for f in fields(Figures) if f.name not in skip}
                     | TARGET_FIGURES | set(ALIASES))


@dataclass(frozen=True)
class Criterion:
    figure: str
    name: str
    max: float | None = None
    min: float | None = None


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def evaluate(criteria: Sequence[Criterion], figures: dict[str, Any]) -> list[CriterionResult]:
    results = []
    for c in criteria:
        value = figures.get(ALIASES.get(c.figure, c.figure))
        bounds = []
        if c.max is not None:
            bounds.append(f"{c.figure} <= {c.max:g}")
        if c.min is not None:
            bounds.append(f"{c.figure} >= {c.min:g}")
        if c.figure in IMPACT_FIGURES and figures.get("impact") == "none":
            results.append(CriterionResult(c.name, " and ".join(bounds), NO_IMPACT, True))
            continue
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) \
            and (c.max is None or value <= c.max) and (c.min is None or value >= c.min)
        actual = NOT_MEASURED if value is None else _show(value)
        results.append(CriterionResult(c.name, " and ".join(bounds), actual, bool(ok)))
    return results


def verdict(results: Sequence[CriterionResult], *, recovered: bool, halted: str | None,
            injected: bool) -> tuple[Verdict, str]:
    """Ours, not chaoslib's status: halts first, then recovery, then the criteria."""
    if halted is not None:
        return "aborted", halted
    if not injected:
        return "failed", "no fault was injected"
    if not recovered:
        return "not_recovered", "the cell did not recover within the recovery timeout"
    missed = [r for r in results if not r.ok]
    if missed:
        return "failed", "missed: " + "; ".join(f"{r.name} ({r.actual})" for r in missed)
    return "passed", "every criterion met"
