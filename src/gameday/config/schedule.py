"""The chaos schedule: weekly windows, a rotation of fault kinds, cells one at a time, freezes, gates.

``schedules/weekly.yaml`` is the default and documents the format. The file is untrusted input:
pydantic models with extra="forbid" check its shape, then the conversion below checks what
pydantic cannot (day names, time zones, overlapping windows, cells and files that must exist)
and builds frozen dataclasses. Every problem is an InputError raised before anything is
scheduled.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import combinations, pairwise
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, model_validator

from gameday.config import DEFAULT_SCHEDULE_FILE
from gameday.config._errors import StrictModel, read_model
from gameday.config.cells import load_cells
from gameday.config.policy import DEFAULT_POLICY, AllowModel, ProviderPolicy
from gameday.errors import InputError
from gameday.targets import target_unavailable
from gameday.targets.base import FAULT_KINDS

NOTIFY_EVENTS = ("window_start", "window_end", "run_failed", "run_aborted", "run_skipped")
DEFAULT_ANCHOR = date(2026, 1, 1)
SCHEDULE_SCHEMA_VERSION = 1
FIX = "correct the schedule (schedules/weekly.yaml documents the format)"

DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAYS = {**{name: i for i, name in enumerate(DAY_NAMES)},
         **{name[:3]: i for i, name in enumerate(DAY_NAMES)}}
_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")
_KINDS = ", ".join(FAULT_KINDS)


# ------------------------------------------------------------------------------ the file's shape


_Strict = StrictModel


# Wall times are checked by hand (_wall_time): YAML 1.1 reads an unquoted 12:30 as the base-60
# integer 750, and the message should say exactly that; a pydantic union would not.
_WallTime = Any


class WindowModel(_Strict):
    days: list[str] = Field(min_length=1)
    start: _WallTime
    duration_minutes: int = Field(gt=0, le=1440)


class RotationModel(_Strict):
    by: Literal["week_of_month", "list"] = "week_of_month"
    weeks: dict[int, str | None] | None = None
    sequence: list[str] | None = None
    anchor: date | None = None


class CellsModel(_Strict):
    file: str = "schedules/cells.yaml"
    order: list[str] = Field(min_length=1)
    exclude: dict[str, list[str]] = Field(default_factory=dict)
    min_interval_hours: float = Field(default=0.0, ge=0)


class RecurringModel(_Strict):
    days: list[str] = Field(min_length=1)
    start: _WallTime
    end: _WallTime
    timezone: str


class FreezeModel(_Strict):
    name: str = Field(min_length=1)
    recurring: RecurringModel | None = None
    # Checked by hand: YAML hands over a str or an (aware or naive) datetime or a date.
    from_: Any = Field(default=None, alias="from")
    to: Any = None


class PrometheusModel(_Strict):
    url: str
    query: str = Field(min_length=1)


class ErrorBudgetModel(_Strict):
    max_consumed_pct: float = Field(default=80.0, gt=0, le=100)
    period_days: float = Field(default=30.0, gt=0)
    prometheus: PrometheusModel | None = None


class IncidentsModel(_Strict):
    alertmanager_url: str | None = None
    file: str | None = None
    matchers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=5.0, gt=0, le=60)


class GatesModel(_Strict):
    # Absent: the seed's policy (no chaos above 80 % of the error budget consumed) is on.
    error_budget: ErrorBudgetModel | None = ErrorBudgetModel()
    incidents: IncidentsModel | None = None

    @model_validator(mode="before")
    @classmethod
    def _switches(cls, data: Any) -> Any:
        # `false` turns a gate off like null; `error_budget: true` means on with the defaults.
        if isinstance(data, dict):
            data = dict(data)
            if data.get("error_budget") is False:
                data["error_budget"] = None
            elif data.get("error_budget") is True:
                data["error_budget"] = {}
            if data.get("incidents") is False:
                data["incidents"] = None
        return data


class NotificationsModel(_Strict):
    webhook_url: str | None = None
    events: list[Literal["window_start", "window_end", "run_failed", "run_aborted",
                         "run_skipped"]] | None = None
    timeout_s: float = Field(default=5.0, gt=0, le=60)


class ScheduleModel(_Strict):
    schema_version: Literal[1]
    name: str = Field(pattern=r"^[a-z0-9-]+$")
    timezone: str = "UTC"
    windows: list[WindowModel] = Field(min_length=1)
    rotation: RotationModel
    experiments: dict[str, str]
    cells: CellsModel
    freezes: list[FreezeModel] = Field(default_factory=list)
    gates: GatesModel = GatesModel()
    notifications: NotificationsModel | None = None
    # Providers beyond gameday's own that this schedule's experiments may use (probes only).
    allow: AllowModel | None = None


# ------------------------------------------------------------------------------ what code uses


@dataclass(frozen=True)
class WindowSpec:
    days: tuple[int, ...]  # 0 = Monday .. 6 = Sunday, sorted, unique
    start: time  # wall-clock time in the schedule's zone
    duration: timedelta  # elapsed time


@dataclass(frozen=True)
class Rotation:
    by: Literal["week_of_month", "list"]
    weeks: Mapping[int, str] = field(hash=False)  # week of month 1..5 -> kind (by: week_of_month)
    sequence: tuple[str, ...]  # kinds, window after window (by: list)
    anchor: date  # by: list counts windows from this local date


@dataclass(frozen=True)
class CellPolicy:
    file: Path
    order: tuple[str, ...]
    exclude: Mapping[str, frozenset[str]] = field(hash=False)
    min_interval: timedelta  # 0: no limit
    # Cells whose target gameday cannot drive yet, and why: planned as skipped, never run.
    cannot_run: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}),
                                          hash=False)


@dataclass(frozen=True)
class Freeze:
    name: str
    # recurring: wall-clock times in `timezone` on `days`; end <= start spans midnight
    days: tuple[int, ...]
    start: time | None
    end: time | None
    timezone: str | None
    # absolute: [starts_utc, ends_utc)
    starts_utc: datetime | None
    ends_utc: datetime | None

    @property
    def recurring(self) -> bool:
        return self.starts_utc is None


@dataclass(frozen=True)
class ErrorBudgetGate:
    max_consumed_pct: float = 80.0
    period_days: float = 30.0
    prometheus_url: str | None = None
    prometheus_query: str | None = None


@dataclass(frozen=True)
class IncidentGate:
    alertmanager_url: str | None = None
    file: Path | None = None
    matchers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    timeout_s: float = 5.0


@dataclass(frozen=True)
class Notifications:
    webhook_url: str | None = None
    events: frozenset[str] = frozenset(NOTIFY_EVENTS)
    timeout_s: float = 5.0


@dataclass(frozen=True)
class Schedule:
    name: str
    timezone: str
    windows: tuple[WindowSpec, ...]
    rotation: Rotation
    experiments: Mapping[str, Path] = field(hash=False)
    cells: CellPolicy
    freezes: tuple[Freeze, ...]
    error_budget: ErrorBudgetGate | None
    incidents: IncidentGate | None
    notifications: Notifications | None
    source: str
    allow: ProviderPolicy = DEFAULT_POLICY


def wall_time_utc(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The instant a window configured at ``wall`` on local ``day`` starts, in UTC.

    fold=0 everywhere (PEP 495): a wall time that happens twice (clocks go back) is its first
    occurrence; one that does not exist (clocks go forward) is read with the offset in force
    before the change, which shifts it forward by the length of the gap (02:30 on a night that
    jumps 02:00 -> 03:00 starts at 03:30). Shifting keeps two windows in the gap apart and
    their durations whole, so a window is never lost nor doubled.
    """
    return datetime.combine(day, wall, tzinfo=zone).astimezone(UTC)


# ------------------------------------------------------------------------------ conversion


def _day(value: str, where: str) -> int:
    key = value.strip().lower()
    if key not in _DAYS:
        raise InputError(where, "a day: monday..sunday (or mon..sun)", value,
                         "spell the day in English, e.g. saturday or sat")
    return _DAYS[key]


def _days(values: list[str], where: str) -> tuple[int, ...]:
    days: list[int] = []
    for i, value in enumerate(values):
        day = _day(value, f"{where}.{i}")
        if day in days:
            raise InputError(f"{where}.{i}", "each day once", value, "remove the repeated day")
        days.append(day)
    return tuple(sorted(days))


def _wall_time(value: object, where: str) -> time:
    if isinstance(value, int) and not isinstance(value, bool):
        raise InputError(where, 'a time "HH:MM" in quotes', value,
                         'quote the time, e.g. "12:30": YAML reads an unquoted 12:30 as the '
                         "base-60 number 750")
    match = _HHMM.match(value.strip()) if isinstance(value, str) else None
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise InputError(where, "a time HH:MM from 00:00 to 23:59", value,
                         'write a 24-hour time, e.g. "02:00"')
    return time(int(match[1]), int(match[2]))


def _zone(name: str, where: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(where, "an IANA time zone name", name,
                         "use a name such as UTC, Europe/London or America/New_York") from exc


def _kind(value: str, where: str) -> str:
    if value not in FAULT_KINDS:
        raise InputError(where, f"a fault kind: one of {_KINDS}", value,
                         "use one of the four fault kinds")
    return value


def _url(value: str, where: str, example: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError(where, "an http:// or https:// URL", value,
                         f"write the full URL, e.g. {example}")
    return value


def _fmt_span(days: Iterable[int], start: time) -> str:
    return "/".join(DAY_NAMES[d] for d in days) + f" {start:%H:%M}"


def _check_week_overlaps(windows: tuple[WindowSpec, ...], source: str) -> None:
    """No two occurrences overlap in a wall-clock week, wrapping from Sunday into Monday."""
    week = 7 * 1440
    spans = []  # (start minute of the week, end minute, window index, day)
    for index, spec in enumerate(windows):
        for day in spec.days:
            begin = day * 1440 + spec.start.hour * 60 + spec.start.minute
            spans.append((begin, begin + int(spec.duration.total_seconds() // 60), index, day))
    for a, b in combinations(spans, 2):
        # Shifting one span by a whole week catches a window running past Sunday midnight.
        if any(a[0] < b[1] + shift and b[0] + shift < a[1] for shift in (-week, 0, week)):
            first, second = sorted((a, b), key=lambda s: (s[2], s[0]))
            first_spec = windows[first[2]]
            raise InputError(
                f"{source}: windows.{second[2]}", "windows that do not overlap one another",
                f"windows.{first[2]} ({_fmt_span([first[3]], first_spec.start)} for "
                f"{first[1] - first[0]} min) overlaps windows.{second[2]} "
                f"({_fmt_span([second[3]], windows[second[2]].start)})",
                "move or shorten one of them; one window runs at a time")


@lru_cache(maxsize=64)
def _dst_change_dates(zone_key: str) -> tuple[date, ...]:
    """Local dates on which the zone's UTC offset changes, 2026-2060.

    tzdata extends one rule into the future, and 28 years repeat every weekday/date pattern, so
    a schedule that is safe across these changes is safe across later ones too.
    """
    zone = ZoneInfo(zone_key)
    found: list[date] = []
    day = DEFAULT_ANCHOR
    previous = datetime.combine(day, time(12), tzinfo=zone).utcoffset()
    while day < date(2060, 1, 1):
        day += timedelta(days=1)
        offset = datetime.combine(day, time(12), tzinfo=zone).utcoffset()
        if offset != previous:
            found.append(day)
        previous = offset
    return tuple(found)


def _check_dst_overlaps(windows: tuple[WindowSpec, ...], zone: ZoneInfo, source: str) -> None:
    """Windows apart in wall-clock time can still meet in real time on a daylight-saving night
    (durations are elapsed time, so a window crossing a spring-forward gap ends an hour later in
    wall time): check the real instants around every change."""
    for change in _dst_change_dates(zone.key):
        starts = []
        for offset in range(-2, 2):
            day = change + timedelta(days=offset)
            for index, spec in enumerate(windows):
                if day.weekday() in spec.days:
                    starts.append((wall_time_utc(day, spec.start, zone), index, day))
        starts.sort()
        for (a_start, a_index, a_day), (b_start, b_index, _) in pairwise(starts):
            a_end = a_start + windows[a_index].duration
            if b_start < a_end:
                raise InputError(
                    f"{source}: windows.{b_index}",
                    "windows that do not overlap, also across a daylight-saving change",
                    f"windows.{a_index} of {a_day} runs until {a_end.astimezone(zone):%H:%M %Z} "
                    f"but windows.{b_index} starts at {b_start.astimezone(zone):%H:%M %Z} "
                    f"(clocks change on {change})",
                    "leave more time between the windows: start times are wall-clock times, "
                    "durations are elapsed time")


def _windows(models: list[WindowModel], zone: ZoneInfo, source: str) -> tuple[WindowSpec, ...]:
    windows = tuple(
        WindowSpec(days=_days(m.days, f"{source}: windows.{i}.days"),
                   start=_wall_time(m.start, f"{source}: windows.{i}.start"),
                   duration=timedelta(minutes=m.duration_minutes))
        for i, m in enumerate(models))
    _check_week_overlaps(windows, source)
    _check_dst_overlaps(windows, zone, source)
    return windows


def _rotation(model: RotationModel, source: str) -> Rotation:
    where = f"{source}: rotation"
    if model.by == "week_of_month":
        if model.sequence is not None:
            raise InputError(f"{where}.sequence", "no sequence with by: week_of_month",
                             model.sequence, "remove sequence, or set by: list")
        if model.anchor is not None:
            raise InputError(f"{where}.anchor", "no anchor with by: week_of_month", model.anchor,
                             "remove anchor, or set by: list")
        weeks: dict[int, str] = {}
        for week, kind in sorted((model.weeks or {}).items()):
            if not 1 <= week <= 5:
                raise InputError(f"{where}.weeks.{week}", "a week of the month from 1 to 5", week,
                                 "week N is the Nth such weekday of the month: days 1-7 are "
                                 "week 1, 8-14 week 2, ..., 29-31 week 5")
            if kind is not None:  # `5: null` says "nothing in week 5" out loud
                weeks[week] = _kind(kind, f"{where}.weeks.{week}")
        if not weeks:
            raise InputError(f"{where}.weeks", "at least one week with a fault kind",
                             model.weeks or "nothing",
                             "e.g. weeks: {1: pod-kill, 2: latency, 3: cpu-stress, 4: db-failover}")
        return Rotation(by="week_of_month", weeks=MappingProxyType(weeks), sequence=(),
                        anchor=DEFAULT_ANCHOR)
    if model.weeks is not None:
        raise InputError(f"{where}.weeks", "no weeks with by: list", model.weeks,
                         "remove weeks, or set by: week_of_month")
    if not model.sequence:
        raise InputError(f"{where}.sequence", "a list of fault kinds, one per window",
                         model.sequence or "nothing",
                         "e.g. sequence: [pod-kill, latency, cpu-stress, db-failover]")
    sequence = tuple(_kind(k, f"{where}.sequence.{i}") for i, k in enumerate(model.sequence))
    return Rotation(by="list", weeks=MappingProxyType({}), sequence=sequence,
                    anchor=model.anchor or DEFAULT_ANCHOR)


def _experiments(files: dict[str, str], rotation: Rotation, source: str) -> dict[str, Path]:
    experiments: dict[str, Path] = {}
    for kind, file in files.items():
        where = f"{source}: experiments.{kind}"
        _kind(kind, where)
        path = Path(file)
        # Relative paths resolve against the current directory, like the cells file's.
        if not path.is_file():
            raise InputError(where, "an existing experiment file (relative to the current "
                             "directory)", file,
                             f"point it at a file such as experiments/local/{kind}.yaml, or run "
                             "gameday from the project directory")
        experiments[kind] = path
    used = ([(f"rotation.weeks.{w}", k) for w, k in rotation.weeks.items()]
            + [(f"rotation.sequence.{i}", k) for i, k in enumerate(rotation.sequence)])
    for rotation_where, kind in used:
        if kind not in experiments:
            raise InputError(f"{source}: experiments.{kind}",
                             f"an experiment file for {kind} ({rotation_where} runs it)", "nothing",
                             f"add `{kind}: experiments/local/{kind}.yaml` under experiments")
    return experiments


def _cells(model: CellsModel, source: str) -> CellPolicy:
    path = Path(model.file)
    if not path.is_file():
        raise InputError(f"{source}: cells.file", "a cells file (relative to the current "
                         "directory)", f"no file at {path}",
                         "point it at the cells file, e.g. schedules/cells.yaml")
    known = load_cells(path)  # its own errors point into the cells file
    expected = "one of " + ", ".join(sorted(known)) + f" (from {path})"
    fix = "name a cell of the cells file, or add the cell there"
    order: list[str] = []
    for i, name in enumerate(model.order):
        if name not in known:
            raise InputError(f"{source}: cells.order.{i}", expected, name, fix)
        if name in order:
            raise InputError(f"{source}: cells.order.{i}", "each cell once", name,
                             "remove the repeated cell")
        order.append(name)
    exclude: dict[str, frozenset[str]] = {}
    for name, kinds in model.exclude.items():
        if name not in known:
            raise InputError(f"{source}: cells.exclude.{name}", expected, name, fix)
        exclude[name] = frozenset(_kind(k, f"{source}: cells.exclude.{name}.{i}")
                                  for i, k in enumerate(kinds))
    cannot_run = {name: why for name in order
                  if (why := target_unavailable(known[name])) is not None}
    return CellPolicy(file=path, order=tuple(order), exclude=MappingProxyType(exclude),
                      min_interval=timedelta(hours=model.min_interval_hours),
                      cannot_run=MappingProxyType(cannot_run))


def _check_experiments(experiments: Mapping[str, Path], cells: CellPolicy,
                       allow: ProviderPolicy, source: str) -> None:
    """Each mapped file is a valid experiment of its slot's kind for every cell that may run
    it (each cell's own opt-ins with the schedule's), so a bad file fails now, not at 02:00."""
    from gameday.config.experiments import load_experiment

    known = load_cells(cells.file)
    for kind, path in experiments.items():
        runners = [c for c in cells.order if c not in cells.cannot_run
                   and kind not in cells.exclude.get(c, frozenset())]
        policies = {known[c].allow.union(allow) for c in runners} or {allow}
        for policy in policies:
            experiment = load_experiment(path, policy)
            if experiment.settings.kind != kind:
                raise InputError(f"{source}: experiments.{kind}",
                                 f"an experiment of kind {kind} (extensions.gameday.kind)",
                                 f"{path}, of kind {experiment.settings.kind}",
                                 f"point {kind} at a {kind} experiment, e.g. "
                                 f"experiments/local/{kind}.yaml")


def _instant(value: Any, where: str) -> datetime:
    fix = 'write an ISO 8601 time with an offset, e.g. "2026-12-21T00:00:00Z"'
    if value is None:
        raise InputError(where, "an ISO 8601 time with an offset", "nothing", fix)
    moment = value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise InputError(where, "an ISO 8601 time with an offset", value, fix) from exc
    if not isinstance(moment, datetime):
        raise InputError(where, "an ISO 8601 time with an offset", value, fix)
    if moment.utcoffset() is None:
        # A time without an offset means a different instant on every machine.
        raise InputError(where, "a time with an offset (Z or +HH:MM)", str(value), fix)
    return moment.astimezone(UTC)


def _freeze(model: FreezeModel, source: str, index: int) -> Freeze:
    where = f"{source}: freezes.{index}"
    absolute = model.from_ is not None or model.to is not None
    if model.recurring is not None and absolute:
        raise InputError(where, "either recurring or from/to", "both",
                         "split it into two freezes")
    if model.recurring is not None:
        r = model.recurring
        zone = _zone(r.timezone, f"{where}.recurring.timezone")
        return Freeze(name=model.name, days=_days(r.days, f"{where}.recurring.days"),
                      start=_wall_time(r.start, f"{where}.recurring.start"),
                      end=_wall_time(r.end, f"{where}.recurring.end"), timezone=zone.key,
                      starts_utc=None, ends_utc=None)
    if not absolute:
        raise InputError(where, "recurring: {days, start, end, timezone} or from/to", "neither",
                         "add the freeze's times, or remove it")
    starts = _instant(model.from_, f"{where}.from")
    ends = _instant(model.to, f"{where}.to")
    if ends <= starts:
        raise InputError(f"{where}.to", f"a time after from ({starts.isoformat()})",
                         ends.isoformat(), "a freeze runs from `from` up to `to`: swap or fix them")
    return Freeze(name=model.name, days=(), start=None, end=None, timezone=None,
                  starts_utc=starts, ends_utc=ends)


def _gates(model: GatesModel, source: str) -> tuple[ErrorBudgetGate | None, IncidentGate | None]:
    where = f"{source}: gates"
    budget = None
    if model.error_budget is not None:
        prom = model.error_budget.prometheus
        budget = ErrorBudgetGate(
            max_consumed_pct=model.error_budget.max_consumed_pct,
            period_days=model.error_budget.period_days,
            prometheus_url=_url(prom.url, f"{where}.error_budget.prometheus.url",
                                "http://prometheus:9090") if prom else None,
            prometheus_query=prom.query if prom else None)
    incidents = None
    inc = model.incidents
    if inc is not None:
        if inc.alertmanager_url is None and inc.file is None:
            # An empty section (`incidents: {}`) is off; settings without a source are a mistake.
            if inc.matchers:
                raise InputError(f"{where}.incidents", "alertmanager_url or file with matchers",
                                 "matchers only", "add alertmanager_url: http://...:9093 or "
                                 "file: PATH, or remove the matchers")
        else:
            incidents = IncidentGate(
                alertmanager_url=(_url(inc.alertmanager_url, f"{where}.incidents.alertmanager_url",
                                       "http://alertmanager:9093")
                                  if inc.alertmanager_url else None),
                file=Path(inc.file) if inc.file else None,
                matchers=MappingProxyType(dict(inc.matchers)), timeout_s=inc.timeout_s)
    return budget, incidents


def _notifications(model: NotificationsModel | None, source: str) -> Notifications | None:
    if model is None:
        return None
    where = f"{source}: notifications"
    if model.webhook_url is None:
        if model.events is not None:
            raise InputError(f"{where}.webhook_url", "a webhook URL to send the events to",
                             "nothing", "add webhook_url: https://..., or remove events")
        return None  # `notifications: {}`: nothing to send
    events = frozenset(model.events) if model.events is not None else frozenset(NOTIFY_EVENTS)
    return Notifications(webhook_url=_url(model.webhook_url, f"{where}.webhook_url",
                                                     "https://hooks.slack.com/services/..."),
                         events=events, timeout_s=model.timeout_s)


def load_schedule(path: Path = DEFAULT_SCHEDULE_FILE) -> Schedule:
    """Parse and check ``path`` completely; raise InputError before anything is scheduled."""
    source = str(path)
    model = read_model(path, ScheduleModel, "--schedule", "schedule", FIX)
    zone = _zone(model.timezone, f"{source}: timezone")
    windows = _windows(model.windows, zone, source)
    rotation = _rotation(model.rotation, source)
    experiments = _experiments(model.experiments, rotation, source)
    cells = _cells(model.cells, source)
    allow = ProviderPolicy.from_model(model.allow)
    _check_experiments(experiments, cells, allow, source)
    freezes = tuple(_freeze(f, source, i) for i, f in enumerate(model.freezes))
    error_budget, incidents = _gates(model.gates, source)
    return Schedule(name=model.name, timezone=zone.key, windows=windows, rotation=rotation,
                    experiments=MappingProxyType(experiments), cells=cells, freezes=freezes,
                    error_budget=error_budget, incidents=incidents,
                    notifications=_notifications(model.notifications, source), source=source,
                    allow=allow)


__all__ = [
    "DAY_NAMES", "DEFAULT_SCHEDULE_FILE", "NOTIFY_EVENTS", "CellPolicy", "ErrorBudgetGate",
    "Freeze", "IncidentGate", "Notifications", "Rotation", "Schedule", "WindowSpec",
    "load_schedule", "wall_time_utc",
]
