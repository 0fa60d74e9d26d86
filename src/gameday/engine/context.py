"""What a Chaos Toolkit provider of ours needs to know: which run, which cell, which store.

In our worker process the worker sets it before chaoslib starts. Under the plain Chaos Toolkit
CLI (`chaos run`), it is built from the experiment's configuration (``gameday_cell``,
``gameday_cells_file``, ``gameday_store``), so a fault still goes through the ledger.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gameday.config import DEFAULT_CELLS_FILE
from gameday.config.cells import Cell, find_cell, load_cells
from gameday.errors import InputError
from gameday.model import LedgerFault
from gameday.store import Store
from gameday.targets import open_target
from gameday.targets.base import Target


@dataclass
class RunContext:
    run_id: str | None
    cell: Cell
    store: Store
    target: Target
    on_applied: Callable[[LedgerFault], None] | None = None


_current: RunContext | None = None


def set_current(context: RunContext | None) -> None:
    global _current
    _current = context


def run_context(configuration: dict[str, Any] | None) -> RunContext:
    """The worker's context, else one built (once per process) from the configuration."""
    global _current
    if _current is not None:
        return _current
    configuration = configuration or {}
    name = configuration.get("gameday_cell")
    if not name:
        raise InputError("configuration.gameday_cell", "the cell to run against", "nothing",
                         "set gameday_cell in the experiment's configuration")
    cells_file = Path(str(configuration.get("gameday_cells_file") or DEFAULT_CELLS_FILE))
    cell = find_cell(load_cells(cells_file), str(name), str(cells_file))
    store = Store.open(configuration.get("gameday_store"))
    _current = RunContext(run_id=None, cell=cell, store=store, target=open_target(cell))
    return _current
