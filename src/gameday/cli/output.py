"""What every command shares: exit codes, the error printer, and the progress channel."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import click
from rich.console import Console

from gameday.errors import GamedayError, InputError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INPUT = 2
EXIT_INTERNAL = 3

# Results go to stdout; progress and errors to stderr, so `--json` output stays parseable.
progress_console = Console(stderr=True, highlight=False,
                           width=None if sys.stderr.isatty() else 160)


def say(message: str) -> None:
    progress_console.print(message, markup=False)


def fail(code: int, message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


@contextmanager
def exit_codes() -> Iterator[None]:
    """Map our errors to exit codes: input errors 2, anything else of ours 3."""
    try:
        yield
    except InputError as exc:
        fail(EXIT_INPUT, f"error: {exc.message()}")
    except GamedayError as exc:
        fail(EXIT_INTERNAL, f"error: {exc}")
    except Exception:
        traceback.print_exc()
        fail(EXIT_INTERNAL, "internal error: the traceback above says where; please report it")


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def progress_printer(enabled: bool) -> Callable[[str], None]:
    return say if enabled else (lambda _msg: None)
