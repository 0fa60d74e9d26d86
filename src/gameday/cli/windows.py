"""``gameday window open | close | list``: chaos windows opened by hand (game days)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from gameday.cli.output import exit_codes, literal, print_json
from gameday.cli.params import finite
from gameday.cli.stores import open_store, store_option
from gameday.model import WindowRecord

MAX_WINDOW_MINUTES = 7 * 24 * 60  # a game day, or a week of chaos at most


def window_json(window: WindowRecord) -> dict[str, object]:
    return {"window_id": window.window_id, "name": window.name, "status": window.status,
            "started_at": window.started_utc.isoformat(),
            "planned_end_at": window.planned_end_utc.isoformat() if window.planned_end_utc else None,
            "ended_at": window.ended_utc.isoformat() if window.ended_utc else None,
            "timezone": window.timezone}


@click.group()
def window() -> None:
    """Chaos windows: open one for a game day, run experiments into it, close it."""


@window.command("open")
@click.argument("name")
@click.option("--duration", "minutes", type=finite(0, MAX_WINDOW_MINUTES, low_open=True),
              help=f"Planned length in minutes (above 0, at most {MAX_WINDOW_MINUTES}).")
@store_option
@click.option("--json", "as_json", is_flag=True)
def open_(name: str, minutes: float | None, store_url: str | None, as_json: bool) -> None:
    """Open a window NAME; prints its id (pass it to `gameday run --window`)."""
    from gameday.engine.windows import open_window

    with exit_codes():
        store = open_store(store_url)
        try:
            opened = open_window(store, name, datetime.now(UTC),
                                 None if minutes is None else timedelta(minutes=minutes))
        finally:
            store.close()
    if as_json:
        print_json(window_json(opened))
    else:
        click.echo(literal(opened.window_id))


@window.command()
@click.argument("window_id")
@store_option
@click.option("--json", "as_json", is_flag=True)
def close(window_id: str, store_url: str | None, as_json: bool) -> None:
    """Close WINDOW_ID; `gameday report window WINDOW_ID` then renders its report."""
    from gameday.engine.windows import close_window

    with exit_codes():
        store = open_store(store_url)
        try:
            closed = close_window(store, window_id, datetime.now(UTC))
        finally:
            store.close()
    if as_json:
        print_json(window_json(closed))
    else:
        click.echo(literal(f"{closed.window_id} closed"))


@window.command("list")
@store_option
@click.option("--json", "as_json", is_flag=True)
def list_(store_url: str | None, as_json: bool) -> None:
    """List windows, newest first."""
    with exit_codes():
        store = open_store(store_url, create=False)
        try:
            windows = store.list_windows()
        finally:
            store.close()
    if as_json:
        print_json([window_json(w) for w in windows])
        return
    table = Table(box=None)
    for col in ("window id", "name", "started (UTC)", "status"):
        table.add_column(col)
    for w in windows:
        table.add_row(Text(literal(w.window_id)), Text(literal(w.name)),
                      f"{w.started_utc:%Y-%m-%d %H:%M:%S}", w.status)
    Console().print(table)
