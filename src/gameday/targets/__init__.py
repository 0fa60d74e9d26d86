"""Targets: where faults land and probes go. One small interface, one module per family.

    Target.check(kind, spec)        would this fault apply to the cell now? (touches nothing)
    Target.inject(fault_id, kind, spec) -> detail
    Target.revert_spec(fault_id, kind)  how any process can revert it later (stored in the ledger)
    revert(revert_spec)             idempotent; True when something was still to revert
    Target.probe(seq, tag)          one steady-state sample (a sequence-numbered write)
    Target.missing_writes(tag, seqs)  acknowledged writes the database no longer holds
    Target.observe(span)            the target's own figures and events for a run (capability
                                    "observes"; the runner shows them beside its own)

Retries, timeouts, ledger and journaling stay in the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gameday.errors import InputError
from gameday.targets.base import FAULT_KINDS, Probe, Target

if TYPE_CHECKING:  # a type only: reconciling the ledger (every store command) parses no cells file
    from gameday.config.cells import Cell


def target_unavailable(cell: Cell) -> str | None:
    """Why gameday cannot drive ``cell``'s target (None: it can)."""
    if cell.target == "local":
        return None
    return f"{cell.target} target: gameday cannot drive {cell.target} cells yet (local only)"


def open_target(cell: Cell) -> Target:
    if cell.target == "local":
        from gameday.targets.local import LocalTarget

        return LocalTarget(cell)
    raise InputError(f"cell {cell.name}: target", "local (the kubernetes target is not built yet)",
                     cell.target, "use a local sandbox cell")


def revert(spec: dict[str, Any]) -> bool:
    """Revert a fault from its ledger revert spec alone (no cells file needed)."""
    if spec.get("target") == "local":
        from gameday.targets.local import revert_local

        return revert_local(spec)
    raise InputError("ledger revert spec", "a spec of a known target", spec.get("target"),
                     "revert the fault by hand, then mark it with `gameday recover --forget`")


__all__ = ["FAULT_KINDS", "Probe", "Target", "open_target", "revert", "target_unavailable"]
