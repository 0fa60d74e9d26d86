"""Work done by a forked child of this process, its answer sent back pickled (``Forked``).

A report over a fleet's year is CPU work in Python: a child forked from this process (its
imports, its open store, the report data so far) does a share on another CPU. Store drops the
connections a child inherits, so each opens its own.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any, Generic, TypeVar

T = TypeVar("T")
JOIN_S = 5.0  # how long a child that answered is given to exit before it is killed


def cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def may_fork() -> bool:
    """Whether forking helps and is safe: another CPU to run on, and no other thread here (a
    child forked while a thread holds a lock, the logging module's say, would wait on it
    forever)."""
    return cpus() > 1 and threading.active_count() == 1


class ForkedError(Exception):
    """The child failed (``kind``: the name of what it raised) or ended without answering."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class Forked(Generic[T]):
    """``fn(*args)`` in a forked child, started at once; ``result()`` waits for its answer.
    Use as a context manager: leaving it reaps the child (killed if it has not ended)."""

    def __init__(self, fn: Callable[..., T], *args: Any, name: str = "gameday-forked") -> None:
        fork = multiprocessing.get_context("fork")  # the child is this process, not a new one
        self._receive, send = fork.Pipe(duplex=False)
        self._child = fork.Process(target=_answer, args=(send, fn, args), daemon=True, name=name)
        self._child.start()
        send.close()

    def result(self) -> T:
        try:
            outcome, kind, value = self._receive.recv()
        except EOFError:
            self._child.join(JOIN_S)
            raise ForkedError("exit", f"a child process ended (exit code {self._child.exitcode}) "
                                      "without answering") from None
        if outcome != "ok":
            raise ForkedError(kind, value)
        result: T = value
        return result

    def close(self) -> None:
        self._receive.close()
        self._child.join(JOIN_S)
        if self._child.is_alive():
            self._child.kill()
            self._child.join()

    def __enter__(self) -> Forked[T]:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _answer(send: Connection, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    gc.disable()  # a short life that makes no cycles: collections would only walk what it inherited
    try:
        send.send(("ok", "", fn(*args)))
    except Exception as exc:  # the parent says what happened: this child has no terminal of its own
        from gameday.errors import GamedayError

        # Our own errors say what went wrong; anything else is a bug: its traceback goes along.
        text = str(exc) if isinstance(exc, GamedayError) else traceback.format_exc().rstrip()
        send.send(("error", type(exc).__name__, text))
    finally:
        send.close()
