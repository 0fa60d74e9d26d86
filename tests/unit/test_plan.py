"""The plan: windows at their local wall time across DST changes, the seed's rotation, freezes,
exclusions, and the `gameday plan` command."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from click.testing import CliRunner

from gameday.cli.plan import plan_command
from gameday.config.schedule import Schedule, load_schedule
from gameday.scheduler.plan import (
    experiment_for,
    freeze_at,
    freeze_during,
    plan,
    window_containing,
    window_occurrences,
)
from helpers import ROOT

KINDS = ("pod-kill", "latency", "cpu-stress", "db-failover")
SEED_WEEKS = {1: "pod-kill", 2: "latency", 3: "cpu-stress", 4: "db-failover"}
CELLS_YAML = """
schema_version: 1
cells:
  - {name: cell-1, target: local}
  - {name: cell-2, target: local}
"""


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def write_schedule(tmp_path: Path, **changes: Any) -> Path:
    """Write the seed's schedule with ``changes`` on top to tmp_path, with its files."""
    (tmp_path / "cells.yaml").write_text(CELLS_YAML)
    for kind in KINDS:
        shutil.copy(ROOT / "experiments" / "local" / f"{kind}.yaml", tmp_path / f"{kind}.yaml")
    data: dict[str, Any] = {
        "schema_version": 1, "name": "chaos", "timezone": "UTC",
        "windows": [{"days": ["saturday"], "start": "02:00", "duration_minutes": 120}],
        "rotation": {"by": "week_of_month", "weeks": SEED_WEEKS},
        "experiments": {kind: str(tmp_path / f"{kind}.yaml") for kind in KINDS},
        "cells": {"file": str(tmp_path / "cells.yaml"), "order": ["cell-1", "cell-2"]},
        **changes,
    }
    path = tmp_path / "schedule.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def make_schedule(tmp_path: Path, **changes: Any) -> Schedule:
    return load_schedule(write_schedule(tmp_path, **changes))


@pytest.fixture
def default_schedule(monkeypatch: pytest.MonkeyPatch) -> Schedule:
    monkeypatch.chdir(ROOT)
    return load_schedule()


# ---------------------------------------------------------------- the seed's schedule


def test_default_plan_follows_the_seed(default_schedule: Schedule) -> None:
    # August 2026 has five Saturdays: 1, 8, 15, 22, 29.
    runs = plan(default_schedule, utc(2026, 8, 1), weeks=8)
    assert len(runs) == 16
    by_window: dict[str, list[Any]] = defaultdict(list)
    for run in runs:
        by_window[run.window.window_id].append(run)
    assert list(by_window) == [f"weekly-chaos-2026{d}T0200Z" for d in
                               ("0801", "0808", "0815", "0822", "0829", "0905", "0912", "0919")]
    expected = ["pod-kill", "latency", "cpu-stress", "db-failover", None,
                "pod-kill", "latency", "cpu-stress"]
    for (window_id, window_runs), kind in zip(by_window.items(), expected, strict=True):
        assert [r.cell for r in window_runs] == ["cell-1", "cell-2"], window_id
        window = window_runs[0].window
        assert window.start_utc.weekday() == 5 and window.start_utc.time() == time(2, 0)
        assert window.end_utc - window.start_utc == timedelta(hours=2)
        assert window.experiment == kind
        for run in window_runs:
            assert run.experiment == kind
            assert run.skip_reason == (None if kind else "rotation: no experiment in week 5")
    assert by_window["weekly-chaos-20260829T0200Z"][0].window.week_of_month == 5


def test_default_plan_skips_the_year_end_freeze(default_schedule: Schedule) -> None:
    runs = plan(default_schedule, utc(2026, 12, 1), weeks=6)
    reasons = {r.window.start_utc.date(): r.skip_reason for r in runs}
    assert reasons[date(2026, 12, 19)] is None
    assert reasons[date(2026, 12, 26)] == "freeze: year-end change freeze"
    assert reasons[date(2027, 1, 2)] == "freeze: year-end change freeze"
    assert reasons[date(2027, 1, 9)] is None


def test_plan_starts_at_now_and_ends_before_the_horizon(default_schedule: Schedule) -> None:
    # now inside the 2026-08-01 window: that window has started, it is not planned.
    runs = plan(default_schedule, utc(2026, 8, 1, 2, 30), weeks=1)
    assert [r.window.window_id for r in runs] == ["weekly-chaos-20260808T0200Z"] * 2
    assert plan(default_schedule, utc(2026, 8, 1, 2), weeks=1)[0].window.start_utc == utc(2026, 8, 1, 2)
    assert plan(default_schedule, utc(2026, 8, 1, 2), weeks=0) == ()


# ---------------------------------------------------------------- DST

# (zone, wall time) -> the UTC start on the Saturday before and the Sunday of each 2026 change.
DST_CASES: dict[tuple[str, str], dict[date, datetime]] = {
    ("Europe/London", "02:00"): {
        date(2026, 3, 28): utc(2026, 3, 28, 2), date(2026, 3, 29): utc(2026, 3, 29, 1),
        date(2026, 10, 24): utc(2026, 10, 24, 1), date(2026, 10, 25): utc(2026, 10, 25, 2)},
    # 01:30 does not exist on 2026-03-29 (01:00 GMT -> 02:00 BST): shifted by the gap to 02:30
    # BST; it happens twice on 2026-10-25: the first (BST) one.
    ("Europe/London", "01:30"): {
        date(2026, 3, 28): utc(2026, 3, 28, 1, 30), date(2026, 3, 29): utc(2026, 3, 29, 1, 30),
        date(2026, 10, 24): utc(2026, 10, 24, 0, 30), date(2026, 10, 25): utc(2026, 10, 25, 0, 30)},
    # 02:00 does not exist on 2026-03-08 (02:00 EST -> 03:00 EDT): 03:00 EDT.
    ("America/New_York", "02:00"): {
        date(2026, 3, 7): utc(2026, 3, 7, 7), date(2026, 3, 8): utc(2026, 3, 8, 7),
        date(2026, 10, 31): utc(2026, 10, 31, 6), date(2026, 11, 1): utc(2026, 11, 1, 7)},
    # 01:30 happens twice on 2026-11-01: the first (EDT) one.
    ("America/New_York", "01:30"): {
        date(2026, 3, 7): utc(2026, 3, 7, 6, 30), date(2026, 3, 8): utc(2026, 3, 8, 6, 30),
        date(2026, 10, 31): utc(2026, 10, 31, 5, 30), date(2026, 11, 1): utc(2026, 11, 1, 5, 30)},
}
GAP_SHIFTED = {("Europe/London", "01:30"): (date(2026, 3, 29), time(2, 30)),
               ("America/New_York", "02:00"): (date(2026, 3, 8), time(3, 0))}


@pytest.mark.parametrize(("zone", "wall"), list(DST_CASES))
def test_windows_keep_their_wall_time_across_dst(tmp_path: Path, zone: str, wall: str) -> None:
    schedule = make_schedule(tmp_path, timezone=zone, windows=[
        {"days": ["saturday", "sunday"], "start": wall, "duration_minutes": 120}])
    windows = window_occurrences(schedule, utc(2026, 1, 1), utc(2027, 1, 1))
    configured = time.fromisoformat(wall)

    # Every week of 2026 has exactly one Saturday and one Sunday window: none lost or doubled.
    per_week: dict[int, list[int]] = defaultdict(list)
    for w in windows:
        per_week[w.start_local.isocalendar().week].append(w.start_local.weekday())
    assert sorted(per_week) == list(range(1, 53))
    assert all(days == [5, 6] for days in per_week.values())
    assert len({w.window_id for w in windows}) == len(windows) == 104
    assert all(a.end_utc <= b.start_utc for a, b in pairwise(windows))

    starts = {w.start_local.date(): w for w in windows}
    for day, start_utc in DST_CASES[(zone, wall)].items():
        assert starts[day].start_utc == start_utc, day
    for w in windows:
        local = w.start_local
        assert local.tzinfo == ZoneInfo(zone) and w.timezone == zone
        assert w.end_utc - w.start_utc == timedelta(hours=2)  # elapsed time, even across a change
        if GAP_SHIFTED.get((zone, wall), (None,))[0] == local.date():
            assert local.time() == GAP_SHIFTED[(zone, wall)][1]
        else:
            assert (local.hour, local.minute) == (configured.hour, configured.minute), local

    # The UTC offset changes with the clocks: winter, summer, winter.
    offsets = {w.start_local.date(): w.start_local.utcoffset() for w in windows}
    winter, summer = ((timedelta(0), timedelta(hours=1)) if zone == "Europe/London"
                      else (timedelta(hours=-5), timedelta(hours=-4)))
    assert offsets[date(2026, 1, 3)] == offsets[date(2026, 12, 27)] == winter
    assert offsets[date(2026, 7, 4)] == summer


def test_window_ids_and_local_offsets_in_json_shape(tmp_path: Path) -> None:
    schedule = make_schedule(tmp_path, timezone="America/New_York")
    (window,) = window_occurrences(schedule, utc(2026, 7, 1), utc(2026, 7, 8))
    assert window.window_id == "chaos-20260704T0600Z"
    assert window.start_local.isoformat() == "2026-07-04T02:00:00-04:00"
    assert window.week_of_month == 1 and window.experiment == "pod-kill"


def test_window_occurrences_is_half_open(default_schedule: Schedule) -> None:
    start = utc(2026, 8, 1, 2)
    assert [w.start_utc for w in window_occurrences(default_schedule, start, start + timedelta(weeks=1))] \
        == [start]
    assert window_occurrences(default_schedule, start - timedelta(weeks=1), start)[-1].start_utc \
        == start - timedelta(weeks=1)
    assert window_occurrences(default_schedule, start, start) == ()


def test_window_containing(default_schedule: Schedule) -> None:
    start = utc(2026, 8, 8, 2)
    window = window_containing(default_schedule, start)
    assert window is not None and window.start_utc == start and window.experiment == "latency"
    last = start + timedelta(hours=2) - timedelta(microseconds=1)
    assert window_containing(default_schedule, last) == window
    assert window_containing(default_schedule, start + timedelta(hours=2)) is None
    assert window_containing(default_schedule, start - timedelta(microseconds=1)) is None
    # Any zone for the moment: it is an instant.
    london = datetime(2026, 8, 8, 4, 30, tzinfo=ZoneInfo("Europe/London"))  # 03:30 UTC
    assert window_containing(default_schedule, london) == window


def test_window_crossing_midnight_is_found_the_next_day(tmp_path: Path) -> None:
    schedule = make_schedule(tmp_path, windows=[{"days": ["saturday"], "start": "23:00",
                                                 "duration_minutes": 180}])
    window = window_containing(schedule, utc(2026, 8, 9, 1, 30))
    assert window is not None and window.start_utc == utc(2026, 8, 8, 23)
    assert window.week_of_month == 2 and window.experiment == "latency"


def test_naive_times_are_refused(default_schedule: Schedule) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        plan(default_schedule, datetime(2026, 8, 1), weeks=1)


# ---------------------------------------------------------------- rotation


def test_experiment_for_week_of_month(default_schedule: Schedule) -> None:
    for day, kind in [(1, "pod-kill"), (7, "pod-kill"), (8, "latency"), (14, "latency"),
                      (15, "cpu-stress"), (22, "db-failover"), (28, "db-failover"), (29, None)]:
        assert experiment_for(default_schedule, utc(2026, 8, day, 2)) == kind, day


def test_list_rotation_cycles_window_after_window(tmp_path: Path) -> None:
    schedule = make_schedule(
        tmp_path, windows=[{"days": ["saturday", "sunday"], "start": "02:00", "duration_minutes": 60},
                           {"days": ["sunday"], "start": "04:00", "duration_minutes": 60}],
        rotation={"by": "list", "sequence": ["pod-kill", "latency", "cpu-stress"],
                  "anchor": "2026-01-01"})
    # 2026-01-01 is a Thursday: Sat 3 02:00 is window 0, Sun 4 02:00 window 1, Sun 4 04:00 window 2.
    windows = window_occurrences(schedule, utc(2026, 1, 1), utc(2026, 1, 12))
    assert [w.experiment for w in windows] == ["pod-kill", "latency", "cpu-stress",
                                               "pod-kill", "latency", "cpu-stress"]
    # Counted in whole windows, also far from the anchor and before it.
    later = window_occurrences(schedule, utc(2026, 6, 1), utc(2026, 6, 15))
    n = 3 * 21  # 21 whole weeks from Thu 2026-01-01 to Thu 2026-05-28; Sat 30 and Sun 31 add 3
    assert [w.experiment for w in later] == [schedule.rotation.sequence[(n + 3 + i) % 3] for i in range(6)]
    before = window_occurrences(schedule, utc(2025, 12, 27), utc(2026, 1, 1))
    assert [w.experiment for w in before] == ["pod-kill", "latency", "cpu-stress"]
    for w in windows + later + before:
        assert experiment_for(schedule, w.start_local) == w.experiment


def test_exclusion_skips_only_that_cell(tmp_path: Path) -> None:
    schedule = make_schedule(tmp_path, cells={"file": str(tmp_path / "cells.yaml"),
                                              "order": ["cell-2", "cell-1"],
                                              "exclude": {"cell-2": ["db-failover"]}})
    runs = plan(schedule, utc(2026, 8, 22), weeks=1)
    assert [(r.cell, r.experiment, r.skip_reason) for r in runs] == [
        ("cell-2", "db-failover", "excluded: cell-2 never runs db-failover"),
        ("cell-1", "db-failover", None)]


# ---------------------------------------------------------------- freezes


def test_recurring_freeze_in_its_own_zone(default_schedule: Schedule) -> None:
    # US market hours 09:30-16:00 America/New_York: 14:30 UTC in winter, 13:30 UTC in summer.
    assert freeze_at(default_schedule, utc(2026, 3, 2, 14, 30)) is not None  # Monday, EST
    assert freeze_at(default_schedule, utc(2026, 3, 2, 14, 29)) is None
    assert freeze_at(default_schedule, utc(2026, 3, 9, 13, 30)) is not None  # Monday, EDT
    assert freeze_at(default_schedule, utc(2026, 3, 9, 13, 29)) is None
    assert freeze_at(default_schedule, utc(2026, 3, 9, 19, 59)) is not None
    assert freeze_at(default_schedule, utc(2026, 3, 9, 20, 0)) is None  # 16:00 EDT: the end is open
    assert freeze_at(default_schedule, utc(2026, 3, 14, 15)) is None  # Saturday
    frozen = freeze_during(default_schedule, utc(2026, 3, 9, 12), utc(2026, 3, 9, 13, 31))
    assert frozen is not None and frozen.name == "US market hours"
    assert freeze_during(default_schedule, utc(2026, 3, 9, 12), utc(2026, 3, 9, 13, 30)) is None


def test_absolute_freeze_is_half_open(default_schedule: Schedule) -> None:
    start, end = utc(2026, 12, 21), utc(2027, 1, 4)
    assert freeze_at(default_schedule, start - timedelta(microseconds=1)) is None
    frozen = freeze_at(default_schedule, start)
    assert frozen is not None and frozen.name == "year-end change freeze"
    assert freeze_at(default_schedule, end - timedelta(microseconds=1)) == frozen
    assert freeze_at(default_schedule, end) is None
    assert freeze_during(default_schedule, start - timedelta(hours=1), start) is None
    assert freeze_during(default_schedule, start - timedelta(hours=1), start + timedelta(seconds=1)) == frozen
    assert freeze_during(default_schedule, end, end + timedelta(hours=1)) is None


def test_freeze_spanning_midnight(tmp_path: Path) -> None:
    schedule = make_schedule(tmp_path, freezes=[
        {"name": "friday night release", "recurring": {"days": ["friday"], "start": "22:00",
                                                       "end": "03:00", "timezone": "Europe/London"}}])
    # Winter: London is UTC. Friday 22:00 to Saturday 03:00.
    assert freeze_at(schedule, utc(2026, 1, 9, 21, 59)) is None
    assert freeze_at(schedule, utc(2026, 1, 9, 22)) is not None
    assert freeze_at(schedule, utc(2026, 1, 10, 2, 59)) is not None
    assert freeze_at(schedule, utc(2026, 1, 10, 3)) is None
    assert freeze_at(schedule, utc(2026, 1, 8, 23)) is None  # Thursday night: not a freeze day
    assert freeze_at(schedule, utc(2026, 1, 10, 23)) is None  # Saturday night neither
    # The plan: in winter the Saturday 02:00 UTC window (02:00 GMT) is frozen; in summer it is
    # 03:00-05:00 BST, just after the freeze ends.
    winter = plan(schedule, utc(2026, 1, 5), weeks=1)
    assert [r.skip_reason for r in winter] == ["freeze: friday night release"] * 2
    summer = plan(schedule, utc(2026, 7, 6), weeks=1)
    assert [r.skip_reason for r in summer] == [None, None]


def test_first_freeze_in_file_order_wins(tmp_path: Path) -> None:
    schedule = make_schedule(tmp_path, freezes=[
        {"name": "maintenance", "from": "2026-08-08T03:00:00+00:00", "to": "2026-08-08T05:00:00+00:00"},
        {"name": "weekend", "recurring": {"days": ["saturday"], "start": "00:00", "end": "00:00",
                                          "timezone": "UTC"}}])
    assert freeze_at(schedule, utc(2026, 8, 8, 1)).name == "weekend"  # type: ignore[union-attr]
    assert freeze_at(schedule, utc(2026, 8, 8, 4)).name == "maintenance"  # type: ignore[union-attr]
    assert freeze_at(schedule, utc(2026, 8, 9, 0)) is None  # start == end: a whole day
    (run, _) = plan(schedule, utc(2026, 8, 8), weeks=1)
    assert run.skip_reason == "freeze: maintenance"  # overlaps 03:00-04:00 of the window


def test_freeze_boundaries_across_dst_err_on_freezing(tmp_path: Path) -> None:
    schedule = make_schedule(tmp_path, freezes=[
        {"name": "night", "recurring": {"days": ["sunday"], "start": "00:00", "end": "01:30",
                                        "timezone": "America/New_York"}}])
    # 2026-11-01: 01:30 happens twice; the freeze lasts until the second one (06:30 UTC).
    assert freeze_at(schedule, utc(2026, 11, 1, 6, 29)) is not None
    assert freeze_at(schedule, utc(2026, 11, 1, 6, 30)) is None


# ---------------------------------------------------------------- the CLI


def test_cli_json_shape(tmp_path: Path) -> None:
    make_schedule(tmp_path, timezone="Europe/London")
    result = CliRunner().invoke(plan_command, ["--schedule", str(tmp_path / "schedule.yaml"),
                                               "--weeks", "3", "--json"])
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert len(runs) == 6  # three Saturdays, two cells each
    for run in runs:
        assert list(run) == ["window_id", "start_utc", "start_local", "end_utc", "timezone", "cell",
                             "experiment", "skip_reason"]
        start_utc = datetime.fromisoformat(run["start_utc"])
        start_local = datetime.fromisoformat(run["start_local"])
        assert start_utc.utcoffset() == timedelta(0) and start_utc == start_local
        assert (start_local.hour, start_local.minute) == (2, 0)
        assert datetime.fromisoformat(run["end_utc"]) - start_utc == timedelta(hours=2)
        assert run["timezone"] == "Europe/London"
        assert run["window_id"] == f"chaos-{start_utc:%Y%m%dT%H%MZ}"
        assert run["experiment"] in (*KINDS, None)
        assert run["skip_reason"] == (None if run["experiment"] else "rotation: no experiment in week 5")
    assert [r["cell"] for r in runs] == ["cell-1", "cell-2"] * 3


def test_cli_default_schedule_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(plan_command, [])
    assert result.exit_code == 0, result.output
    assert "weekly-chaos" in result.stdout and "cell-1" in result.stdout and "cell-2" in result.stdout
    result = CliRunner().invoke(plan_command, ["--json"])
    assert len(json.loads(result.stdout)["runs"]) == 8  # four Saturdays, two cells


def test_cli_bad_schedule_exits_2(tmp_path: Path) -> None:
    path = write_schedule(tmp_path, timezone="Nowhere/Land")
    result = CliRunner().invoke(plan_command, ["--schedule", str(path), "--json"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"error: {path}: timezone: expected an IANA time zone name, found 'Nowhere/Land'" \
        in result.stderr
    assert "fix:" in result.stderr

    result = CliRunner().invoke(plan_command, ["--schedule", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "--schedule" in result.stderr


@pytest.mark.parametrize("weeks", ["0", "521", "x"])
def test_cli_bad_weeks_exits_2(weeks: str) -> None:
    assert CliRunner().invoke(plan_command, ["--weeks", weeks]).exit_code == 2
