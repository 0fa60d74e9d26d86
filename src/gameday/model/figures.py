"""What a run's figures mean, by version (shared/DESIGN.md "Measurements").

Version 1 measured recovery from injection and wrote "no impact" as a recovery of 0 s, so a
sustained fault reported its own length as recovery. Version 2 says "impact: none" instead and
measures recovery from the end of the cause. Stored runs of version 1 are upgraded once, by the
store's migration, with ``upgrade_v1``: what can be derived is, the rest is null.
"""

from __future__ import annotations

from typing import Any, Literal

FIGURES_VERSION = 2
Impact = Literal["none", "seen"]
Environment = Literal["sandbox", "staging", "production"]
ENVIRONMENTS: tuple[Environment, ...] = ("sandbox", "staging", "production")
# Faults whose cause of impact ends the moment they land (DESIGN.md: t_cause_end = t_inject).
INSTANTANEOUS_KINDS = frozenset({"pod-kill", "db-failover"})


def upgrade_v1(kind: str, figures: dict[str, Any]) -> dict[str, Any]:
    """Version-1 figures as version 2. Returns ``figures`` unchanged when already version 2."""
    if figures.get("figures_version") == FIGURES_VERSION:
        return figures
    out = dict(figures)
    out.update(figures_version=FIGURES_VERSION, upgraded_from=1)
    if figures.get("t_inject") is None:
        out.update(impact=None, recovery_s=None)
        return out
    old = figures.get("recovery_s")
    if figures.get("time_to_impact_s") is None:
        # v1 wrote "no breach seen" as 0 s of recovery.
        out.update(impact="none" if old is not None else None, recovery_s=None, impact_s=None,
                   adapted=False)
        return out
    out.update(impact="seen", adapted=False)
    if old is None:
        out.update(recovery_s=None, impact_s=None)
    elif kind in INSTANTANEOUS_KINDS:
        out.update(recovery_s=old, impact_s=max(0.0, old - float(figures["time_to_impact_s"])))
    else:
        # v1 kept the part after the fault's end apart; the rest was the fault's own length.
        out.update(recovery_s=figures.get("recovery_after_fault_end_s"),
                   impact_s=max(0.0, old - float(figures["time_to_impact_s"])))
    return out
