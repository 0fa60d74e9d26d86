"""Reports from the store: read what a report needs, build its data, pick its folder.

    run_report(store, run_id, now)                         -> report data (dict)
    window_report(store, window_id, now)                   -> report data
    resilience_report(store, now, since, until, cells,
                      outlook, environments)               -> report data
    parse_since("90d", now)                                -> datetime

Unknown ids and cells are InputErrors (exit 2): nothing is written for them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gameday.analytics.coverage import ScheduleOutlook
from gameday.errors import InputError
from gameday.reporting.context import build_run_report
from gameday.reporting.resilience_context import FIGURES as RESILIENCE_FIGURES
from gameday.reporting.resilience_context import build_resilience_report
from gameday.reporting.window_context import build_window_report
from gameday.store import Store

DEFAULT_REPORTS_DIR = Path("reports")
DEFAULT_SINCE = "90d"
_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([hdw])$")
_UNIT = {"h": "hours", "d": "days", "w": "weeks"}


MAX_SINCE_DAYS = 3660  # ten years: as far back as a resilience report is meaningful


def parse_since(value: str, now: datetime) -> datetime:
    """``90d``, ``12w``, ``36h`` before ``now``, or an ISO date/time (UTC when no offset)."""
    text = value.strip()
    match = _SPAN.match(text)
    if match:
        try:
            span = timedelta(**{_UNIT[match.group(2)]: float(match.group(1))})
            start = now - span
        except OverflowError as exc:  # 99999999d: before year 1
            raise InputError("--since", f"a span of at most {MAX_SINCE_DAYS} days", value,
                             "pass e.g. --since 90d, or an ISO date") from exc
        if span <= timedelta(0) or span > timedelta(days=MAX_SINCE_DAYS):
            raise InputError("--since", f"a span above 0 and at most {MAX_SINCE_DAYS} days",
                             value, "pass e.g. --since 90d")
        return start
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InputError("--since", "a span like 90d, 12w, 36h or an ISO date like 2026-01-31",
                         value, "pass e.g. --since 90d") from exc
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if parsed >= now:
        raise InputError("--since", "a time in the past", value, "pass an earlier date")
    return parsed


def default_folder(kind: str, ident: str, root: Path | None = None) -> Path:
    """``<root>/<kind>-<id>``; root defaults to reports/."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", ident)
    return (root or DEFAULT_REPORTS_DIR) / f"{kind}-{safe}"


def run_report(store: Store, run_id: str, now: datetime) -> dict[str, Any]:
    record = store.get_run(run_id)
    if record is None:
        raise InputError("RUN_ID", "the id of a stored run", run_id,
                         "`gameday runs` lists the stored runs")
    return build_run_report(record, store.samples(run_id), store.events(run_id),
                            store.ledger_for_run(run_id), now)


def window_report(store: Store, window_id: str, now: datetime) -> dict[str, Any]:
    window = store.get_window(window_id)
    if window is None:
        raise InputError("WINDOW_ID", "the id of a window in the store", window_id,
                         "`gameday window list` lists the windows")
    runs = store.list_runs(window_id=window_id, limit=None, with_journal=False)
    return build_window_report(window, runs, now)


def resilience_report(store: Store, now: datetime, since: datetime,
                      until: datetime | None = None,
                      cells: Sequence[str] | None = None,
                      outlook: ScheduleOutlook | None = None,
                      environments: Sequence[str] | None = None) -> dict[str, Any]:
    """The resilience report's data; ``outlook``: the schedule's plan as plain data (the CLI
    builds it from the scheduler; None: no schedule, coverage says so)."""
    end = until or now
    # The previous period too: the report's trend compares against it (and coverage's "last
    # tested" looks that far back); at least the error-budget gate's period.
    budget_days = outlook.budget_period_days if outlook is not None else 30.0
    earliest = min(since - (end - since), end - timedelta(days=budget_days))
    if cells:
        known = set(store.run_cells())
        unknown = sorted(set(cells) - known)
        if unknown:
            raise InputError("--cells", "cells with runs in the store: "
                             + (", ".join(sorted(known)) or "none yet"), ", ".join(unknown),
                             "name cells that have run experiments (`gameday runs` lists them)")
    # The lean read: no journals, and only the figures the report reads, tallied as they come.
    runs = store.stream_report_runs(since=earliest, until=end, cells=cells or None,
                                    environments=environments or None, figures=RESILIENCE_FIGURES)
    return build_resilience_report(runs, now, since, end, cells, outlook, environments)
