"""File writes off a controller's event loop: one thread, in the order they were asked for.

The controller's event loop carries the cell's traffic (the load balancer and the database
proxy run on it). A write to the state dir can block for a long time on a shared disk: on
these machines an atomic rename blocked 0.1-0.4 s now and then while PostgreSQL fsynced its
WAL, and every request in flight stalled with it. Writes therefore go to this thread; the
caller takes its timestamps before it hands the write over, so ground truth keeps the instant
things happened.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Write = Callable[[], None]


class BackgroundWriter:
    """Runs writes one at a time, in order, on a daemon thread; ``flush`` waits for them."""

    def __init__(self, name: str = "writer") -> None:
        self._queue: queue.SimpleQueue[Write | threading.Event | None] = queue.SimpleQueue()
        self._latest: dict[str, Write] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, write: Write) -> None:
        """Run ``write`` after every write submitted before it."""
        self._queue.put(write)

    def submit_latest(self, key: str, write: Write) -> None:
        """Like ``submit``, but a write still waiting under ``key`` is replaced by this one: a
        file rewritten whole need only be written in its newest form."""
        with self._lock:
            waiting = key in self._latest
            self._latest[key] = write
        if not waiting:
            self._queue.put(lambda: self._run_latest(key))

    def _run_latest(self, key: str) -> None:
        with self._lock:
            write = self._latest.pop(key)
        write()

    def flush(self, timeout_s: float | None = None) -> bool:
        """Block until every write submitted so far is done; False if ``timeout_s`` ran out."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout_s)

    def close(self) -> None:
        """Finish every submitted write, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                item()
            except Exception:  # a failed write must not stop the ones after it
                log.exception("background write failed")
