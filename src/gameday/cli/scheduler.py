"""``gameday scheduler start``: run the schedule's chaos windows in the foreground."""

from __future__ import annotations

import faulthandler
import signal
import threading
from datetime import timedelta
from pathlib import Path

import click

from gameday.cli.output import exit_codes, literal, progress_console, say
from gameday.cli.params import finite
from gameday.cli.runs import _progress_renderer
from gameday.cli.stores import open_store, store_option
from gameday.config import DEFAULT_SCHEDULE_FILE


@click.group()
def scheduler() -> None:
    """The chaos-window scheduler: one cell at a time, gates before every run."""


@scheduler.command()
@click.option("--schedule", "schedule_file", type=click.Path(path_type=Path),
              default=DEFAULT_SCHEDULE_FILE, show_default=True, help="The schedule file.")
@store_option
@click.option("--reports-dir", type=click.Path(path_type=Path),
              help="Where window reports go (default reports/).")
@click.option("--lease-ttl", type=finite(2.0, 300.0), default=15.0,
              show_default=True,
              help="Seconds the global fault lease and a window's claim outlive their holder's "
                   "last heartbeat (then another scheduler takes over).")
def start(schedule_file: Path, store_url: str | None, reports_dir: Path | None,
          lease_ttl: float) -> None:
    """Run windows as the schedule says until SIGTERM or Ctrl-C, which halt the run in
    progress, revert its faults, release the lease and exit 0. Any number of schedulers may
    run on one store: each window runs once, and one whose scheduler died is taken over by
    another of the same schedule."""
    from gameday.config.schedule import load_schedule
    from gameday.scheduler.service import SchedulerService
    from gameday.store import resolve_store_url

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    # A long-running daemon: SIGQUIT (Ctrl-\) prints every thread's stack and goes on, as a
    # JVM's does, so a scheduler that seems stuck can be asked where it is.
    faulthandler.register(signal.SIGQUIT, all_threads=True, chain=False)
    _, show = _progress_renderer(progress_console())
    with exit_codes():
        schedule = load_schedule(schedule_file)  # bad input: exit 2, nothing scheduled
        open_store(store_url).close()  # reverts what a crash left behind
        say(f"scheduler {literal(schedule.name)} started ({literal(schedule_file)}); SIGTERM or "
            "Ctrl-C stops it")
        # Window ids, cell names and error text come from files and targets: print literally.
        SchedulerService(schedule, resolve_store_url(store_url), stop, lambda m: say(literal(m)),
                         show, reports_dir, timedelta(seconds=lease_ttl)).run_forever()
    say(f"scheduler {literal(schedule.name)} stopped: nothing left under fault")
