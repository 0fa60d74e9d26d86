"""An experiment checked against the cell it will run on, touching nothing.

What ``gameday validate --cell``, ``gameday run`` and the scheduler share: the provider policy
of the cell (and of the schedule), a target gameday can drive, and every fault of the file
against what the cell can take now (a kill of 50 replicas on a cell of 3 is refused here, not
after the run started).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gameday.config.cells import Cell
from gameday.config.experiments import Experiment, load_experiment
from gameday.config.policy import DEFAULT_POLICY, ProviderPolicy
from gameday.errors import InputError
from gameday.targets import open_target, target_unavailable


@dataclass(frozen=True)
class CellCheck:
    experiment: Experiment
    unchecked: str | None  # why the faults could not be checked against the live cell


def check_for_cell(path: Path, cell: Cell, extra: ProviderPolicy = DEFAULT_POLICY) -> CellCheck:
    """Load ``path`` under ``cell``'s policy (with ``extra``) and check each fault against the
    cell; raise InputError for anything the run would trip over."""
    experiment = load_experiment(path, cell.allow.union(extra))
    why = target_unavailable(cell)
    if why is not None:
        raise InputError(f"cell {cell.name}: target", "a target gameday can drive (local)",
                         cell.target, f"{why}; use a local sandbox cell")
    target = open_target(cell)
    problem = target.reachable()
    if problem is not None:
        return CellCheck(experiment, problem)
    for fault in experiment.faults:
        try:
            target.check(fault.kind, fault.spec)
        except InputError as exc:
            raise InputError(f"{path}: {fault.where} (against cell {cell.name})",
                             exc.expected, exc.found, exc.fix) from exc
    return CellCheck(experiment, None)


__all__ = ["CellCheck", "check_for_cell"]
