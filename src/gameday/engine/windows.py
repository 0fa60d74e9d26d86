"""Chaos windows: a span of time in which runs happen one cell at a time.

The scheduler opens them on its timetable; a facilitator can open one by hand for a game day
(``gameday window open``) and run experiments into it (``gameday run --window``).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from gameday.errors import InputError
from gameday.model import WindowRecord
from gameday.store import Store


def new_window_id(started: datetime) -> str:
    return f"win-{started:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def open_window(store: Store, name: str, now: datetime, duration: timedelta | None = None,
                timezone: str = "UTC", detail: dict[str, Any] | None = None) -> WindowRecord:
    if not name.strip():
        raise InputError("NAME", "a window name", name, "name the window, e.g. 'game day 12'")
    if duration is not None and duration <= timedelta(0):
        raise InputError("--duration", "a duration above 0", duration, "pass minutes above 0")
    window = WindowRecord(window_id=new_window_id(now), name=name, started_utc=now,
                          planned_end_utc=None if duration is None else now + duration,
                          timezone=timezone, detail=detail or {})
    store.create_window(window)
    return window


def open_window_named(store: Store, window_id: str, where: str = "--window") -> WindowRecord:
    """The open window ``window_id``; an InputError when there is none (nothing touched)."""
    window = store.get_window(window_id)
    if window is None:
        raise InputError(where, "the id of a window in the store", window_id,
                         "open one with `gameday window open NAME`; `gameday window list` "
                         "lists them")
    if window.status != "open":
        raise InputError(where, "an open window", f"{window_id} (closed)",
                         "open a new window with `gameday window open NAME`")
    return window


def close_window(store: Store, window_id: str, now: datetime) -> WindowRecord:
    window = store.get_window(window_id)
    if window is None:
        raise InputError("WINDOW_ID", "the id of a window in the store", window_id,
                         "`gameday window list` lists them")
    if window.status == "open":
        store.update_window(window_id, status="closed", ended_utc=now)
    closed = store.get_window(window_id)
    assert closed is not None
    return closed
