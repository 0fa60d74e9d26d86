"""``gameday plan``: the coming chaos windows of a schedule, which cell runs what, what is skipped."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from gameday.cli.output import exit_codes, literal, print_json
from gameday.cli.params import whole
from gameday.config import DEFAULT_SCHEDULE_FILE

if TYPE_CHECKING:
    from gameday.scheduler.plan import PlannedRun


def planned_run_json(run: PlannedRun) -> dict[str, Any]:
    w = run.window
    return {"window_id": w.window_id, "start_utc": w.start_utc.isoformat(),
            "start_local": w.start_local.isoformat(), "end_utc": w.end_utc.isoformat(),
            "timezone": w.timezone, "cell": run.cell, "experiment": run.experiment,
            "skip_reason": run.skip_reason}


@click.command("plan")
@click.option("--schedule", "schedule_file", type=click.Path(path_type=Path),
              default=DEFAULT_SCHEDULE_FILE, show_default=True, help="The schedule file.")
@click.option("--weeks", type=whole(1, 520), default=4, show_default=True,
              help="How many weeks ahead to plan.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the runs.")
def plan_command(schedule_file: Path, weeks: int, as_json: bool) -> None:
    """Show the chaos windows of the next --weeks weeks: one cell at a time, what each runs and
    what a freeze, the rotation or an exclusion skips. Gates that depend on the moment (error
    budget, incidents) are checked when a window opens, not here."""
    from gameday.config.schedule import load_schedule
    from gameday.scheduler.plan import plan as plan_runs

    with exit_codes():
        schedule = load_schedule(schedule_file)
        runs = plan_runs(schedule, datetime.now(UTC), weeks)
    if as_json:
        print_json({"runs": [planned_run_json(r) for r in runs]})
        return
    table = Table(box=None, title_justify="left",
                  title=f"{schedule.name}: the next {weeks} weeks (local times in {schedule.timezone})")
    for col in ("start (UTC)", "local start", "cell", "experiment", "status"):
        table.add_column(col)
    for r in runs:
        w = r.window
        table.add_row(f"{w.start_utc:%Y-%m-%d %H:%M}", f"{w.start_local:%a %H:%M %Z}", r.cell,
                      r.experiment or "-", Text(literal(r.skip_reason or "will run")))
    Console().print(table)


# `from gameday.cli.plan import plan` gives the command; the scheduler's function is plan_runs.
plan = plan_command

__all__ = ["plan", "plan_command", "planned_run_json"]
