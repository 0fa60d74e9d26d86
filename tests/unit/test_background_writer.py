"""The controller's writer thread: in order, the newest state only, nothing lost at close."""

from __future__ import annotations

import threading
import time

from gameday.sandbox.writer import BackgroundWriter


def test_writes_run_in_the_order_they_were_asked_for_and_flush_waits_for_them() -> None:
    writer = BackgroundWriter()
    done: list[int] = []
    for i in range(200):
        writer.submit(lambda i=i: done.append(i))
    assert writer.flush(10)
    assert done == list(range(200))
    writer.close()


def test_submit_returns_while_a_write_is_blocked_and_only_the_newest_state_is_written() -> None:
    writer = BackgroundWriter()
    disk = threading.Event()
    written: list[str] = []
    writer.submit(lambda: disk.wait(10))  # a disk that does not answer
    started = time.monotonic()
    for version in ("v1", "v2", "v3"):
        writer.submit_latest("state", lambda v=version: written.append(v))
    writer.submit(lambda: written.append("event"))
    assert time.monotonic() - started < 0.5  # the caller never waited for the disk
    assert not writer.flush(0.2) and written == []
    disk.set()
    assert writer.flush(10)
    # v2 and v1 were replaced while waiting; the event, submitted after, still comes after.
    assert written == ["v3", "event"]
    writer.close()


def test_a_failed_write_does_not_stop_the_next_and_close_finishes_everything() -> None:
    writer = BackgroundWriter()
    done: list[str] = []

    def broken() -> None:
        raise OSError("disk full")

    writer.submit(broken)
    writer.submit(lambda: done.append("after"))
    writer.submit_latest("state", lambda: done.append("state"))
    writer.close()
    assert done == ["after", "state"]
