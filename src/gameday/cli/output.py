"""What every command shares: exit codes, the error printer, and the progress channel."""

from __future__ import annotations

import json
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from gameday.errors import GamedayError, InputError

if TYPE_CHECKING:
    from rich.console import Console

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INPUT = 2
EXIT_INTERNAL = 3


@cache
def progress_console() -> Console:
    """Where progress goes. Results go to stdout; progress and errors to stderr, so `--json`
    output stays parseable. Made at first use: commands that print no progress import no rich."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)


# C0 and C1 control characters (and DEL): a title or an error text from a file or a target
# must not move the cursor, recolour or retitle the user's terminal.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def literal(text: object) -> str:
    """``text`` made safe for a terminal: control characters written as escapes (``\\x1b``).

    Print the result with markup off (``say``, ``click.echo``, ``rich.text.Text``): square
    brackets in untrusted text are then shown as they are.
    """
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


def literal_lines(text: object) -> str:
    """Like ``literal``, keeping line breaks (a message of several lines)."""
    return "\n".join(literal(line) for line in str(text).split("\n"))


def say(message: str) -> None:
    """Progress on stderr, printed literally: messages carry names and texts from files and
    targets."""
    progress_console().print(literal_lines(message), markup=False, highlight=False)


def fail(code: int, message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


ERROR_LOG_DIR = Path(".gameday/logs")


@contextmanager
def exit_codes() -> Iterator[None]:
    """Map our errors to exit codes: input errors 2, anything else of ours 3. An unexpected
    exception is an internal fault: its traceback goes to a log file (0600), not the screen."""
    try:
        yield
    except InputError as exc:
        fail(EXIT_INPUT, literal_lines(f"error: {exc.message()}"))
    except GamedayError as exc:
        fail(EXIT_INTERNAL, literal_lines(f"error: {exc}"))
    except Exception as exc:
        where = _write_traceback()
        seen = f"{type(exc).__name__}: {literal(exc)}"
        fail(EXIT_INTERNAL, f"internal error ({seen}); the traceback is in {where}: please "
                            "report it with that file" if where else
             f"internal error ({seen}); traceback:\n{traceback.format_exc()}")


def _write_traceback() -> Path | None:
    from datetime import UTC, datetime

    from gameday.engine.redact import redact_text
    from gameday.files import open_private

    path = ERROR_LOG_DIR / f"internal-error-{datetime.now(UTC):%Y%m%dT%H%M%S%f}.log"
    try:
        with open_private(path, exclusive=True) as fh:
            fh.write(redact_text(traceback.format_exc(), ()).encode())
    except OSError:
        return None
    return path


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def progress_printer(enabled: bool) -> Callable[[str], None]:
    return say if enabled else (lambda _msg: None)
