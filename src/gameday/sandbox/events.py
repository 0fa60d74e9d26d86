"""Ground-truth events of the sandbox: one JSON object a line in ``events.jsonl``.

Every process of the sandbox appends to the same file; each event is written with a single
``write`` on a descriptor opened with ``O_APPEND``, so lines from several processes never
interleave.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gameday.errors import InputError
from gameday.sandbox.state import decode_json, open_ours
from gameday.sandbox.writer import BackgroundWriter

EVENT_NAMES = frozenset(
    {
        "replica_exit",
        "replica_started",
        "replica_stopped",  # retired by a scale-in (not a crash): reason, returncode
        "replica_ready",
        "lb_endpoint_removed",
        "lb_endpoint_added",
        "toxic_added",
        "toxic_removed",
        "stress_started",
        "stress_stopped",
        "primary_lost",
        "standby_lost",
        "standby_promoted",
        "proxy_repointed",
        "standby_rebuilt",
        "fault_injected",
        "fault_reverted",
        "autoscaler_scaled",  # from_replicas, to_replicas, cpu_pct, reason
        "cell_ready",
        "cell_stopped",
    }
)

# emit("replica_ready", replica=2, pid=123): how components report ground truth.
EventSink = Callable[..., None]


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class EventLog:
    """Appends events of one cell to the sandbox's shared event file; with a ``writer``, the
    append happens on its thread (the event's time is still taken at ``emit``)."""

    def __init__(self, path: Path, cell: str, writer: BackgroundWriter | None = None) -> None:
        self.path = path
        self.cell = cell
        self.writer = writer

    def emit(self, event: str, **details: Any) -> None:
        if event not in EVENT_NAMES:
            raise ValueError(f"unknown sandbox event {event!r}")
        record = {"cell": self.cell, "event": event, "utc": utc_now_iso(),
                  "monotonic": time.monotonic(), **details}
        line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()
        if self.writer is None:
            self._append(line)
        else:
            self.writer.submit(lambda: self._append(line))

    def _append(self, line: bytes) -> None:
        # O_NOFOLLOW: a symlink planted in the state dir must not make us append elsewhere.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def read_events(path: Path, cell: str | None = None) -> list[dict[str, Any]]:
    return list(iter_events(path, cell))


def iter_events(path: Path, cell: str | None = None) -> Iterator[dict[str, Any]]:
    """The events of ``path`` (a regular file of ours, see ``open_ours``), oldest first."""
    try:
        fd = open_ours(path)
    except FileNotFoundError:
        return
    with os.fdopen(fd, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            record = _event(line)
            if record is not None and (cell is None or record.get("cell") == cell):
                yield record


def _event(line: str) -> dict[str, Any] | None:
    """One event line, or None for what is no event (a line cut by a crash mid-write)."""
    line = line.strip()
    if not line:
        return None
    try:
        record = decode_json(line, "event")
    except InputError:
        return None
    return record if isinstance(record, dict) else None
