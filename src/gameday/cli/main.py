"""Entry point of the ``gameday`` command."""

from __future__ import annotations

import logging

import click

from gameday import __version__
from gameday.cli.demo import demo
from gameday.cli.runs import recover, run, runs, show, validate
from gameday.cli.sandbox import sandbox


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gameday")
@click.option("-v", "--verbose", is_flag=True, help="Log what the core does to stderr.")
def cli(verbose: bool) -> None:
    """gameday-runner: break one cell on purpose, safely, and measure how fast it recovers."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


cli.add_command(sandbox)
cli.add_command(demo)
for command in (validate, run, runs, show, recover):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="gameday")
