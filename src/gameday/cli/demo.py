"""``gameday demo``: the main job on the embedded default."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from gameday.cli.output import EXIT_FAILED, exit_codes, progress_console, say
from gameday.sandbox.demo import run_demo


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@click.command()
@click.option("--state-dir", type=click.Path(path_type=Path), default=Path(".gameday/demo"),
              show_default=True, help="Where the demo's sandbox keeps its state.")
def demo(state_dir: Path) -> None:
    """Bring a sandbox cell up, break it once with each fault kind, print the recovery."""
    with exit_codes():
        result = run_demo(state_dir, say)
    table = Table(title="Recovery measured from the sandbox's ground-truth events")
    for column in ("fault", "impact s", "recovered s", "redundancy s", "writes back s",
                   "writes", "errors"):
        table.add_column(column, no_wrap=True)
    table.add_column("what happened")
    for outcome in result.outcomes:
        r = outcome.recovery
        table.add_row(r.kind, _seconds(r.impact_s), _seconds(r.recovered_s),
                      _seconds(r.redundancy_s), _seconds(outcome.writes_back_s),
                      str(outcome.writes), str(outcome.errors), r.detail)
    progress_console.print(table, width=max(progress_console.width, 120))
    say(f"acknowledged writes: {result.acknowledged}; lost after failover: {len(result.lost)}")
    if result.lost:
        raise SystemExit(EXIT_FAILED)
