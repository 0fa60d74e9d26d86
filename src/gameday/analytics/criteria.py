"""Success criteria: each names a figure and a bound; the verdict follows from them (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gameday.model import CriterionResult, Verdict


def criterion_figures() -> frozenset[str]:
    """The figures a criterion may name: every number a run stores (recovery.Figures) and the
    two the engine adds."""
    from dataclasses import fields

    from gameday.analytics.recovery import Figures

    skip = {"t_inject", "t_fault_end", "recovered"}
    return frozenset({f.name for f in fields(Figures) if f.name not in skip}
                     | {"replica_crashes", "recovery_after_fault_end_s"})


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
        value = figures.get(c.figure)
        bounds = []
        if c.max is not None:
            bounds.append(f"{c.figure} <= {c.max:g}")
        if c.min is not None:
            bounds.append(f"{c.figure} >= {c.min:g}")
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) \
            and (c.max is None or value <= c.max) and (c.min is None or value >= c.min)
        results.append(CriterionResult(c.name, " and ".join(bounds), _show(value), bool(ok)))
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
