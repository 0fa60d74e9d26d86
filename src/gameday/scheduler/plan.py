"""The plan: when a schedule's chaos windows fall, which fault each runs, on which cells.

Pure: no clock (callers pass ``now``), no I/O. Window times are wall-clock times in the
schedule's zone, turned into instants by :func:`gameday.config.schedule.wall_time_utc` (first
occurrence when clocks go back, shifted forward by the gap when they go forward); durations are
elapsed time. A window is identified by its nominal local date and its index in
``schedule.windows``, so every configured day yields exactly one window: none lost, none doubled.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from gameday.config.schedule import Freeze, Schedule, wall_time_utc


@dataclass(frozen=True)
class PlannedWindow:
    window_id: str  # "<schedule name>-<start UTC %Y%m%dT%H%MZ>"
    start_utc: datetime
    end_utc: datetime
    start_local: datetime  # aware, in the schedule's zone
    timezone: str
    week_of_month: int  # (local day - 1) // 7 + 1
    experiment: str | None  # the fault kind the rotation picks; None: nothing this window


@dataclass(frozen=True)
class PlannedRun:
    window: PlannedWindow
    cell: str
    experiment: str | None
    skip_reason: str | None  # None: nothing the plan knows of blocks it


def _aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment!r}")
    return moment


def _week_of_month(day: date) -> int:
    return (day.day - 1) // 7 + 1


def _days_between(first: date, last: date, weekdays: tuple[int, ...]) -> int:
    """How many dates in [first, last) fall on one of ``weekdays``."""
    full, rest = divmod((last - first).days, 7)
    return full * len(weekdays) + sum(
        1 for k in range(rest) if (first + timedelta(days=k)).weekday() in weekdays)


def _ordinal(schedule: Schedule, day: date, start_utc: datetime) -> int:
    """The window's number counted from the rotation's anchor (0 = the anchor day's first
    window; negative before it): windows on earlier dates, then earlier ones that day."""
    anchor = schedule.rotation.anchor
    zone = ZoneInfo(schedule.timezone)
    if day >= anchor:
        before = sum(_days_between(anchor, day, w.days) for w in schedule.windows)
    else:
        before = -sum(_days_between(day, anchor, w.days) for w in schedule.windows)
    same_day = sum(1 for w in schedule.windows
                   if day.weekday() in w.days and wall_time_utc(day, w.start, zone) < start_utc)
    return before + same_day


def _experiment(schedule: Schedule, day: date, start_utc: datetime) -> str | None:
    rotation = schedule.rotation
    if rotation.by == "week_of_month":
        return rotation.weeks.get(_week_of_month(day))
    return rotation.sequence[_ordinal(schedule, day, start_utc) % len(rotation.sequence)]


def _nominal_day(schedule: Schedule, start_utc: datetime, zone: ZoneInfo) -> date | None:
    """The configured local date of the window starting at ``start_utc``, if one does (a
    gap-shifted start can fall on the next local date)."""
    local_day = start_utc.astimezone(zone).date()
    for day in (local_day, local_day - timedelta(days=1)):
        for spec in schedule.windows:
            if day.weekday() in spec.days and wall_time_utc(day, spec.start, zone) == start_utc:
                return day
    return None


def experiment_for(schedule: Schedule, start_local: datetime) -> str | None:
    """The fault kind the rotation runs in the window starting at ``start_local``.

    For an instant that is not a window start, the rotation entry of its local date (by
    week of month) or of the next window (by list).
    """
    zone = ZoneInfo(schedule.timezone)
    start_utc = _aware(start_local, "start_local").astimezone(UTC)
    day = _nominal_day(schedule, start_utc, zone) or start_utc.astimezone(zone).date()
    return _experiment(schedule, day, start_utc)


def _windows_between_dates(schedule: Schedule, first: date, last: date) -> Iterator[PlannedWindow]:
    zone = ZoneInfo(schedule.timezone)
    day = first
    while day <= last:
        for spec in schedule.windows:
            if day.weekday() in spec.days:
                start = wall_time_utc(day, spec.start, zone)
                yield PlannedWindow(
                    window_id=f"{schedule.name}-{start:%Y%m%dT%H%MZ}", start_utc=start,
                    end_utc=start + spec.duration, start_local=start.astimezone(zone),
                    timezone=schedule.timezone, week_of_month=_week_of_month(day),
                    experiment=_experiment(schedule, day, start))
        day += timedelta(days=1)


def window_occurrences(schedule: Schedule, start: datetime, end: datetime) -> tuple[PlannedWindow, ...]:
    """Windows whose start_utc is in [start, end), in order."""
    zone = ZoneInfo(schedule.timezone)
    start, end = _aware(start, "start").astimezone(UTC), _aware(end, "end").astimezone(UTC)
    if end <= start:
        return ()
    # A start shifted by a gap can land on the next local date: look one date back.
    first = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date()
    found = [w for w in _windows_between_dates(schedule, first, last) if start <= w.start_utc < end]
    return tuple(sorted(found, key=lambda w: w.start_utc))


def window_containing(schedule: Schedule, moment: datetime) -> PlannedWindow | None:
    """The window with start_utc <= moment < end_utc, if any."""
    moment = _aware(moment, "moment").astimezone(UTC)
    # Windows last at most 24 h (+ a DST hour); two days back covers any that is still open.
    recent = window_occurrences(schedule, moment - timedelta(days=2), moment + timedelta(microseconds=1))
    for window in recent:
        if window.start_utc <= moment < window.end_utc:
            return window
    return None


def _resolutions(day: date, wall: time, zone: ZoneInfo) -> tuple[datetime, datetime]:
    local = datetime.combine(day, wall, tzinfo=zone)
    return local.astimezone(UTC), local.replace(fold=1).astimezone(UTC)


def _freeze_spans(freeze: Freeze, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The freeze's [from, to) spans in UTC that may touch [start, end]."""
    if not freeze.recurring:
        assert freeze.starts_utc is not None and freeze.ends_utc is not None
        yield freeze.starts_utc, freeze.ends_utc
        return
    assert freeze.start is not None and freeze.end is not None and freeze.timezone is not None
    zone = ZoneInfo(freeze.timezone)
    spans_midnight = freeze.end <= freeze.start
    day = start.astimezone(zone).date() - timedelta(days=2)
    last = end.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        if day.weekday() in freeze.days:
            # Across a clock change a freeze errs on the side of freezing: it starts at the
            # earliest instant its start wall time can mean and ends at the latest its end can
            # (both readings of a repeated hour; a time in a gap read with either offset).
            begins = min(_resolutions(day, freeze.start, zone))
            end_day = day + timedelta(days=1) if spans_midnight else day
            yield begins, max(_resolutions(end_day, freeze.end, zone))
        day += timedelta(days=1)


def freeze_at(schedule: Schedule, moment: datetime) -> Freeze | None:
    """The first freeze (in file order) active at ``moment``."""
    moment = _aware(moment, "moment").astimezone(UTC)
    for freeze in schedule.freezes:
        if any(s <= moment < e for s, e in _freeze_spans(freeze, moment, moment)):
            return freeze
    return None


def freeze_during(schedule: Schedule, start: datetime, end: datetime) -> Freeze | None:
    """The first freeze (in file order) active at any instant of [start, end)."""
    start, end = _aware(start, "start").astimezone(UTC), _aware(end, "end").astimezone(UTC)
    if end <= start:
        return None
    for freeze in schedule.freezes:
        if any(s < end and start < e for s, e in _freeze_spans(freeze, start, end)):
            return freeze
    return None


def _skip_reason(schedule: Schedule, window: PlannedWindow, cell: str, freeze: Freeze | None) -> str | None:
    # Only what the plan can know ahead; error budget, incidents, locks and the cell's
    # minimum interval are gates evaluated when the window opens.
    if freeze is not None:
        return f"freeze: {freeze.name}"
    if cell in schedule.cells.cannot_run:
        return f"target: {schedule.cells.cannot_run[cell]}"
    if window.experiment is None:
        return f"rotation: no experiment in week {window.week_of_month}"
    if window.experiment in schedule.cells.exclude.get(cell, frozenset()):
        return f"excluded: {cell} never runs {window.experiment}"
    return None


def plan(schedule: Schedule, now: datetime, weeks: int) -> tuple[PlannedRun, ...]:
    """Runs of the windows starting in [now, now + weeks * 7 days): per window one entry per
    cell, in the schedule's cell order (one cell at a time)."""
    if weeks < 0:
        raise ValueError(f"weeks must be >= 0, got {weeks}")
    now = _aware(now, "now")
    runs: list[PlannedRun] = []
    for window in window_occurrences(schedule, now, now + timedelta(weeks=weeks)):
        freeze = freeze_during(schedule, window.start_utc, window.end_utc)
        runs.extend(PlannedRun(window=window, cell=cell, experiment=window.experiment,
                               skip_reason=_skip_reason(schedule, window, cell, freeze))
                    for cell in schedule.cells.order)
    return tuple(runs)


__all__ = ["PlannedRun", "PlannedWindow", "experiment_for", "freeze_at", "freeze_during",
           "plan", "window_containing", "window_occurrences"]
