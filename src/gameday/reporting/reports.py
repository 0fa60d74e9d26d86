"""Reports from the store: read what a report needs, build its data, pick its folder.

    run_report(store, run_id, now)                         -> report data (dict)
    run_reports(store, run_ids, now)                       -> report data of each, read together
    planned_run_reports(store, run_ids, now, root)         -> for render.write_reports
    window_report(store, window_id, now)                   -> report data
    resilience_report(store, now, since, until, cells,
                      outlook, environments)               -> report data
    resilience_report_tally(store, ...)                    -> what it reads, tallied
    parse_since("90d", now)                                -> datetime

Unknown ids and cells are InputErrors (exit 2): nothing is written for them.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gameday.collections_paused import no_collections
from gameday.errors import InputError
from gameday.reporting.context import build_run_report
from gameday.reporting.planned import BuildReports, PlannedReport
from gameday.reporting.window_context import build_window_report
from gameday.store import Store, StoreError

if TYPE_CHECKING:  # the fleet's modules are imported by the resilience report alone (below):
    # a run or window report, the common command, starts a tenth of a second sooner
    from gameday.analytics.coverage import ScheduleOutlook
    from gameday.reporting.resilience_context import ReportTally

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
    return run_reports(store, [run_id], now)[0]


def run_reports(store: Store, run_ids: Sequence[str], now: datetime) -> list[dict[str, Any]]:
    """The data of these runs' reports, in the order given (read together)."""
    details = store.run_details(run_ids)
    _known_runs(run_ids, details)
    return [build_run_report(d.record, d.samples, d.events, d.faults, now)
            for d in (details[run_id] for run_id in run_ids)]


def planned_run_reports(store: Store, run_ids: Sequence[str], now: datetime,
                        root: Path | None = None) -> tuple[list[PlannedReport], BuildReports]:
    """The reports of these runs (each once, in the order given), each in ``<root>/run-<id>``,
    and what builds their data, for ``render.write_reports``; an unknown id is an InputError
    before anything is written."""
    ordered = list(dict.fromkeys(run_ids))
    _known_runs(ordered, store.stored_run_ids(ordered))
    return ([PlannedReport(default_folder("run", run_id, root), "run", run_id) for run_id in ordered],
            lambda part: run_reports(store, [p.ident for p in part], now))


def _known_runs(run_ids: Sequence[str], stored: Collection[str]) -> None:
    unknown = [r for r in run_ids if r not in stored]
    if len(run_ids) == 1 and unknown:
        raise InputError("RUN_ID", "the id of a stored run", unknown[0],
                         "`gameday runs` lists the stored runs")
    if unknown:
        raise InputError("RUN_ID", "ids of stored runs", " ".join(unknown[:5])
                         + (f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""),
                         "`gameday runs` lists the stored runs")


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
                      environments: Sequence[str] | None = None,
                      shards: int | None = None) -> dict[str, Any]:
    """The resilience report's data; ``outlook``: the schedule's plan as plain data (the CLI
    builds it from the scheduler; None: no schedule, coverage says so). ``shards``: see
    ``resilience_report_tally``."""
    from gameday.reporting.resilience_context import resilience_report_of

    with no_collections():
        tally = resilience_report_tally(store, now, since, until, cells, outlook, environments, shards)
        return resilience_report_of(tally, now, since, until or now, cells, outlook, environments)


def resilience_report_tally(store: Store, now: datetime, since: datetime,
                            until: datetime | None = None,
                            cells: Sequence[str] | None = None,
                            outlook: ScheduleOutlook | None = None,
                            environments: Sequence[str] | None = None,
                            shards: int | None = None) -> ReportTally:
    """What the resilience report reads of the store, tallied (resilience_tally).

    ``shards``: how many processes read and tally the runs, each the runs of its own cells
    (None: one per CPU, up to MAX_SHARDS, when there are SHARD_MIN_RUNS runs or more and this
    process runs no other thread; else one).
    """
    from gameday.forked import cpus, may_fork

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
    read = _ShardRead(store, earliest, end, tuple(environments) if environments else None,
                      (now, since, end, cells, outlook, environments))
    counts = store.run_counts(since=earliest, until=end) if shards is None or shards > 1 else {}
    if cells:
        wanted = set(cells)
        counts = {cell: n for cell, n in counts.items() if cell in wanted}
    if shards is None:
        shards = min(MAX_SHARDS, cpus()) if may_fork() and sum(counts.values()) >= SHARD_MIN_RUNS else 1
    parts = _balanced(counts, min(shards, len(counts)))
    read = replace(read, readers=len(parts))
    with no_collections():
        return _sharded_tally(read, parts) if len(parts) > 1 else read.tally(tuple(cells) if cells else None)


# A fleet's year is some 100,000 runs: reading and tallying them is most of the report's time,
# and a cell's runs tally apart from another's (merge_tallies), so each CPU takes some cells.
# Below this many runs, one process is done before a second has started.
SHARD_MIN_RUNS = 20_000
MAX_SHARDS = 4
CHILD_RUN_COST = 1.5  # measured: benchmarks/reports.py, 100,000 runs in two parts


def _balanced(counts: Mapping[str, int], shards: int) -> list[tuple[str, ...]]:
    """The cells in ``shards`` parts of nearly equal work (the largest cell first to the part
    least loaded for its share), each part's cells by name. The first part, read here, takes
    more: a child's runs cost CHILD_RUN_COST more (copy-on-write after the fork, and its tally
    sent back)."""
    if shards <= 1:
        return [tuple(counts)]
    parts: list[list[str]] = [[] for _ in range(shards)]
    loads = [0.0] * shards
    costs = [1.0] + [CHILD_RUN_COST] * (shards - 1)
    for cell in sorted(counts, key=lambda c: (-counts[c], c)):
        lightest = min(range(shards), key=lambda i: (loads[i] + counts[cell] * costs[i], i))
        parts[lightest].append(cell)
        loads[lightest] += counts[cell] * costs[lightest]
    return [tuple(sorted(part)) for part in parts if part]


@dataclass(frozen=True)
class _ShardRead:
    """One report's read of the runs of some cells, and its tally."""

    store: Store
    earliest: datetime
    end: datetime
    environments: tuple[str, ...] | None
    report: tuple[Any, ...]  # resilience_tally's arguments after the runs

    readers: int = 1  # how many of these reads run at once

    def tally(self, cells: Sequence[str] | None) -> ReportTally:
        from gameday.reporting.resilience_context import FIGURES as RESILIENCE_FIGURES
        from gameday.reporting.resilience_context import resilience_tally

        runs = self.store.stream_report_runs(since=self.earliest, until=self.end, cells=cells,
                                             environments=self.environments, figures=RESILIENCE_FIGURES,
                                             readers=self.readers, by_cell=self.readers > 1)
        return resilience_tally(runs, *self.report)


def _sharded_tally(read: _ShardRead, parts: Sequence[tuple[str, ...]]) -> ReportTally:
    """The first part tallied here while a forked child tallies each other part, their
    tallies merged."""
    from gameday.forked import Forked, ForkedError
    from gameday.reporting.resilience_context import merge_tallies

    with ExitStack() as children:
        shards = [children.enter_context(Forked(read.tally, part, name="gameday-report-shard"))
                  for part in parts[1:]]
        tallies = [read.tally(parts[0])]
        for shard in shards:
            try:
                tallies.append(shard.result())
            except ForkedError as exc:
                raise StoreError(exc.message if exc.kind == "StoreError" else
                                 f"list runs for a report in {read.store.url}: {exc.kind}: {exc.message}"
                                 ) from None
        return merge_tallies(tallies)
