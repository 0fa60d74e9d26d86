"""The store options and opening: what every command that touches a store shares.

Cheap to import (click and the default paths only): SQLAlchemy and the engine load when a
store is really opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from gameday.cli.output import say
from gameday.config import DEFAULT_CELLS_FILE
from gameday.errors import InputError

if TYPE_CHECKING:
    from gameday.store import Store

store_option = click.option("--store", "store_url", envvar="GAMEDAY_STORE",
                            help="Store URL: sqlite:///PATH (default .gameday/gameday.db) or "
                                 "postgresql://... (env GAMEDAY_STORE).")
cells_option = click.option("--cells-file", type=click.Path(path_type=Path),
                            default=DEFAULT_CELLS_FILE, show_default=True,
                            help="The cells file.")


def open_store(url: str | None, *, create: bool = True) -> Store:
    """Open the store and clean up after any crash before doing anything else.

    ``create=False`` for commands that only read: a store that does not exist is an input
    error (exit 2), not a new empty file."""
    from gameday.engine.reconcile import reconcile
    from gameday.store import Store, resolve_store_url

    store = Store.open(resolve_store_url(url), create=create)
    result = reconcile(store)
    for fault in result.faults:
        say(f"reverted orphaned fault {fault.fault_id} ({fault.kind} on {fault.cell})")
    for run_id in result.runs:
        say(f"marked run {run_id} interrupted: its runner died")
    if result.lease_released:
        say(f"released the fault lease of a dead process ({result.lease_released})")
    return store


def reconcile_default_store() -> None:
    """For commands without a --store: clean up the default store after a crash, if there is
    one (never create it just for that)."""
    import os

    from gameday.files import DEFAULT_STORE_URL, STORE_ENV

    url = os.environ.get(STORE_ENV) or DEFAULT_STORE_URL
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return
    from gameday.store import StoreError

    try:
        open_store(url).close()
    except (StoreError, InputError) as exc:
        say(f"warning: could not check the fault ledger at the default store: {exc}")
