"""Entry point of the ``gameday`` command."""

from __future__ import annotations

import logging
import sys

import click

from gameday import __version__
from gameday.cli.demo import demo
from gameday.cli.plan import plan_command
from gameday.cli.report import report
from gameday.cli.runs import reconcile_default_store, recover, run, runs, show, validate
from gameday.cli.sandbox import sandbox
from gameday.cli.scheduler import scheduler
from gameday.cli.windows import window


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gameday")
@click.option("-v", "--verbose", is_flag=True, help="Log what the core does to stderr.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """gameday-runner: break one cell on purpose, safely, and measure how fast it recovers."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Every command starts by reverting what a crash left behind; the ones with a --store
    # option do it on that store.
    if ctx.invoked_subcommand in ("sandbox", "validate", "demo") and "--help" not in sys.argv:
        reconcile_default_store()


cli.add_command(sandbox)
cli.add_command(demo)
cli.add_command(window)
cli.add_command(report)
cli.add_command(scheduler)
cli.add_command(plan_command)
for command in (validate, run, runs, show, recover):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="gameday")
