"""The schedule file: the default loads as the seed describes it; every bad input is an InputError
that names the field, what was expected, what was found and how to fix it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from gameday.config.schedule import (
    NOTIFY_EVENTS,
    ErrorBudgetGate,
    IncidentGate,
    Notifications,
    WindowSpec,
    load_schedule,
)
from gameday.errors import InputError
from helpers import ROOT

KINDS = ("pod-kill", "latency", "cpu-stress", "db-failover")
CELLS_YAML = """
schema_version: 1
cells:
  - {name: cell-1, target: local}
  - {name: cell-2, target: local}
"""


def base_schedule(tmp_path: Path) -> dict[str, Any]:
    """A valid schedule whose files all live in tmp_path (absolute paths)."""
    (tmp_path / "cells.yaml").write_text(CELLS_YAML)
    for kind in KINDS:
        # The schedule loader validates every mapped experiment, so these are real ones.
        shutil.copy(ROOT / "experiments" / "local" / f"{kind}.yaml", tmp_path / f"{kind}.yaml")
    return {
        "schema_version": 1, "name": "test-chaos", "timezone": "UTC",
        "windows": [{"days": ["saturday"], "start": "02:00", "duration_minutes": 120}],
        "rotation": {"by": "week_of_month",
                     "weeks": {1: "pod-kill", 2: "latency", 3: "cpu-stress", 4: "db-failover"}},
        "experiments": {kind: str(tmp_path / f"{kind}.yaml") for kind in KINDS},
        "cells": {"file": str(tmp_path / "cells.yaml"), "order": ["cell-1", "cell-2"]},
    }


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "schedule.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_default_schedule_is_the_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # its paths are relative to the project directory
    schedule = load_schedule()
    assert schedule.name == "weekly-chaos"
    assert schedule.timezone == "UTC"
    assert schedule.windows == (WindowSpec(days=(5,), start=time(2, 0), duration=timedelta(hours=2)),)
    assert schedule.rotation.by == "week_of_month"
    assert dict(schedule.rotation.weeks) == {1: "pod-kill", 2: "latency", 3: "cpu-stress",
                                             4: "db-failover"}
    assert dict(schedule.experiments) == {k: Path(f"experiments/local/{k}.yaml") for k in KINDS}
    assert schedule.cells.order == ("cell-1", "cell-2")
    assert schedule.cells.file == Path("schedules/cells.yaml")
    assert schedule.cells.min_interval == timedelta(hours=24)
    market, year_end = schedule.freezes
    assert market.recurring and market.timezone == "America/New_York"
    assert (market.days, market.start, market.end) == ((0, 1, 2, 3, 4), time(9, 30), time(16, 0))
    assert not year_end.recurring
    assert year_end.starts_utc == datetime(2026, 12, 21, tzinfo=UTC)
    assert year_end.ends_utc == datetime(2027, 1, 4, tzinfo=UTC)
    assert schedule.error_budget == ErrorBudgetGate(max_consumed_pct=80.0, period_days=30.0)
    assert schedule.incidents is None  # `incidents: {}` has no source: off
    assert schedule.notifications is None
    assert schedule.source == "schedules/weekly.yaml"


def test_minimal_schedule_defaults(tmp_path: Path) -> None:
    schedule = load_schedule(write(tmp_path, base_schedule(tmp_path)))
    # Absent gates: the seed's 80 % error-budget policy is on, the incident gate off.
    assert schedule.error_budget == ErrorBudgetGate()
    assert schedule.incidents is None
    assert schedule.notifications is None
    assert schedule.freezes == ()
    assert schedule.cells.min_interval == timedelta(0)
    assert dict(schedule.cells.exclude) == {}


@pytest.mark.parametrize(("value", "on"), [(None, False), (False, False), (True, True), ({}, True)])
def test_error_budget_switch(tmp_path: Path, value: Any, on: bool) -> None:
    data = base_schedule(tmp_path)
    data["gates"] = {"error_budget": value}
    schedule = load_schedule(write(tmp_path, data))
    assert (schedule.error_budget == ErrorBudgetGate()) if on else schedule.error_budget is None


def test_full_gates_and_notifications(tmp_path: Path) -> None:
    data = base_schedule(tmp_path)
    data["gates"] = {
        "error_budget": {"max_consumed_pct": 50, "period_days": 7,
                         "prometheus": {"url": "http://prom:9090", "query": 'budget{cell="$cell"}'}},
        "incidents": {"alertmanager_url": "http://am:9093", "file": "incidents.json",
                      "matchers": {"severity": "critical", "cell": "$cell"}},
    }
    data["notifications"] = {"webhook_url": "https://hooks.example.com/x",
                             "events": ["run_failed", "run_aborted"]}
    data["cells"]["exclude"] = {"cell-2": ["db-failover"]}
    data["cells"]["min_interval_hours"] = 12
    schedule = load_schedule(write(tmp_path, data))
    assert schedule.error_budget == ErrorBudgetGate(50.0, 7.0, "http://prom:9090", 'budget{cell="$cell"}')
    assert schedule.incidents == IncidentGate("http://am:9093", Path("incidents.json"),
                                              {"severity": "critical", "cell": "$cell"})
    assert schedule.notifications == Notifications("https://hooks.example.com/x",
                                                   frozenset({"run_failed", "run_aborted"}))
    assert dict(schedule.cells.exclude) == {"cell-2": frozenset({"db-failover"})}
    assert schedule.cells.min_interval == timedelta(hours=12)

    data["notifications"] = {"webhook_url": "https://hooks.example.com/x"}
    assert load_schedule(write(tmp_path, data)).notifications == Notifications(
        "https://hooks.example.com/x", frozenset(NOTIFY_EVENTS))


def test_list_rotation_and_day_spellings(tmp_path: Path) -> None:
    data = base_schedule(tmp_path)
    data["windows"] = [{"days": ["Sun", "sat", "wednesday"], "start": "2:05", "duration_minutes": 1440}]
    data["rotation"] = {"by": "list", "sequence": ["latency", "pod-kill"], "anchor": "2026-02-01"}
    data["experiments"] = {k: v for k, v in data["experiments"].items() if k in ("latency", "pod-kill")}
    schedule = load_schedule(write(tmp_path, data))
    assert schedule.windows[0].days == (2, 5, 6)
    assert schedule.windows[0].start == time(2, 5)
    assert schedule.rotation.sequence == ("latency", "pod-kill")
    assert schedule.rotation.anchor == date(2026, 2, 1)


def test_back_to_back_windows_do_not_overlap(tmp_path: Path) -> None:
    data = base_schedule(tmp_path)
    # Touching is fine: saturday 22:00-02:00 then sunday 02:00-03:00, and sunday 23:00 to the
    # monday 01:00 window across the week's wrap.
    data["windows"] = [{"days": ["saturday"], "start": "22:00", "duration_minutes": 240},
                       {"days": ["sunday"], "start": "02:00", "duration_minutes": 60},
                       {"days": ["sunday"], "start": "23:00", "duration_minutes": 120},
                       {"days": ["monday"], "start": "01:00", "duration_minutes": 60}]
    assert len(load_schedule(write(tmp_path, data)).windows) == 4


def test_touching_windows_across_a_dst_night(tmp_path: Path) -> None:
    data = base_schedule(tmp_path)
    data["windows"] = [{"days": ["saturday"], "start": "22:00", "duration_minutes": 240},
                       {"days": ["sunday"], "start": "02:00", "duration_minutes": 60}]
    # New York: on 2026-03-08 the first ends at 03:00 EDT and the second, 02:00 being in the
    # gap, starts at 03:00 EDT: still touching.
    data["timezone"] = "America/New_York"
    assert len(load_schedule(write(tmp_path, data)).windows) == 2
    # London: the night is an hour shorter, the first runs to 03:00 BST, the second starts at
    # 02:00 BST (which exists): they overlap in real time on 2026-03-29.
    data["timezone"] = "Europe/London"
    with pytest.raises(InputError) as caught:
        load_schedule(write(tmp_path, data))
    assert caught.value.where.endswith(": windows.1")
    assert "2026-03-29" in str(caught.value.found)


Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return mutate


def _delete(path: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        del node[last]
    return mutate


def _windows(*windows: tuple[list[str], str, int], timezone: str = "UTC") -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        data["timezone"] = timezone
        data["windows"] = [{"days": d, "start": s, "duration_minutes": m} for d, s, m in windows]
    return mutate


def _freeze(**freeze: Any) -> Mutation:
    return _set("freezes", [{"name": "f", **freeze}])


RECURRING = {"days": ["monday"], "start": "09:30", "end": "16:00", "timezone": "America/New_York"}

BAD_INPUTS: list[tuple[str, Mutation, str]] = [
    ("unknown field", _set("colour", "red"), "colour"),
    ("unknown window field", _set("windows.0.colour", "red"), "windows.0.colour"),
    ("schema version", _set("schema_version", 2), "schema_version"),
    ("name pattern", _set("name", "Weekly Chaos"), "name"),
    ("no rotation", _delete("rotation"), "rotation"),
    ("no windows", _set("windows", []), "windows"),
    ("unknown day", _set("windows.0.days", ["saturday", "caturday"]), "windows.0.days.1"),
    ("repeated day", _set("windows.0.days", ["saturday", "sat"]), "windows.0.days.1"),
    ("unknown timezone", _set("timezone", "Mars/Olympus_Mons"), "timezone"),
    ("start not HH:MM", _set("windows.0.start", "2am"), "windows.0.start"),
    ("no start", _delete("windows.0.start"), "windows.0.start"),
    ("start not a time", _set("windows.0.start", 2.5), "windows.0.start"),
    ("start 24:00", _set("windows.0.start", "24:00"), "windows.0.start"),
    ("unquoted 12:30", _set("windows.0.start", 750), "windows.0.start"),
    ("duration 0", _set("windows.0.duration_minutes", 0), "windows.0.duration_minutes"),
    ("duration 1441", _set("windows.0.duration_minutes", 1441), "windows.0.duration_minutes"),
    ("overlap past midnight",
     _windows((["saturday"], "23:00", 180), (["sunday"], "01:00", 60)), "windows.1"),
    ("overlap same day",
     _windows((["saturday"], "02:00", 120), (["saturday", "sunday"], "03:30", 30)), "windows.1"),
    ("overlap across the week's wrap",
     _windows((["sunday"], "23:00", 180), (["monday"], "01:00", 60)), "windows.1"),
    ("overlap only in real time on the spring-forward night",
     _windows((["saturday"], "23:00", 210), (["sunday"], "03:00", 60), timezone="America/New_York"),
     "windows.1"),
    ("unknown rotation kind", _set("rotation.weeks", {1: "meteor"}), "rotation.weeks.1"),
    ("week 6", _set("rotation.weeks", {1: "pod-kill", 6: "latency"}), "rotation.weeks.6"),
    ("week 0", _set("rotation.weeks", {0: "pod-kill"}), "rotation.weeks.0"),
    ("sequence with week_of_month", _set("rotation.sequence", ["pod-kill"]), "rotation.sequence"),
    ("list without sequence", _set("rotation", {"by": "list"}), "rotation.sequence"),
    ("unknown kind in sequence", _set("rotation", {"by": "list", "sequence": ["pod-kill", "x"]}),
     "rotation.sequence.1"),
    ("unknown rotation", _set("rotation.by", "moon_phase"), "rotation.by"),
    ("rotation kind with no experiment file", _delete("experiments.latency"), "experiments.latency"),
    ("experiment file missing", _set("experiments.pod-kill", "/nonexistent/pod-kill.yaml"),
     "experiments.pod-kill"),
    ("unknown experiment kind", _set("experiments.meteor", "/etc/hostname"), "experiments.meteor"),
    ("cells file missing", _set("cells.file", "/nonexistent/cells.yaml"), "cells.file"),
    ("unknown cell", _set("cells.order", ["cell-1", "cell-9"]), "cells.order.1"),
    ("repeated cell", _set("cells.order", ["cell-1", "cell-1"]), "cells.order.1"),
    ("empty order", _set("cells.order", []), "cells.order"),
    ("exclude unknown cell", _set("cells.exclude", {"cell-9": ["latency"]}), "cells.exclude.cell-9"),
    ("exclude unknown kind", _set("cells.exclude", {"cell-2": ["meteor"]}), "cells.exclude.cell-2.0"),
    ("negative min interval", _set("cells.min_interval_hours", -1), "cells.min_interval_hours"),
    ("freeze without timezone", _freeze(recurring={k: v for k, v in RECURRING.items() if k != "timezone"}),
     "freezes.0.recurring.timezone"),
    ("freeze unknown timezone", _freeze(recurring={**RECURRING, "timezone": "Eastern"}),
     "freezes.0.recurring.timezone"),
    ("freeze unknown day", _freeze(recurring={**RECURRING, "days": ["funday"]}),
     "freezes.0.recurring.days.0"),
    ("freeze bad end", _freeze(recurring={**RECURRING, "end": "16h"}), "freezes.0.recurring.end"),
    ("freeze from after to", _freeze(**{"from": "2026-12-21T00:00:00Z", "to": "2026-12-20T00:00:00Z"}),
     "freezes.0.to"),
    ("freeze from == to", _freeze(**{"from": "2026-12-21T00:00:00Z", "to": "2026-12-21T00:00:00Z"}),
     "freezes.0.to"),
    ("freeze without offset", _freeze(**{"from": "2026-12-21T00:00:00", "to": "2027-01-04T00:00:00Z"}),
     "freezes.0.from"),
    ("freeze not a time", _freeze(**{"from": "next tuesday", "to": "2027-01-04T00:00:00Z"}),
     "freezes.0.from"),
    ("freeze date only", _freeze(**{"from": "2026-12-21T00:00:00Z", "to": "2027-01-04"}), "freezes.0.to"),
    ("freeze without to", _freeze(**{"from": "2026-12-21T00:00:00Z"}), "freezes.0.to"),
    ("freeze both kinds", _freeze(recurring=RECURRING, to="2027-01-04T00:00:00Z"), "freezes.0"),
    ("freeze neither kind", _freeze(), "freezes.0"),
    ("budget 0 %", _set("gates", {"error_budget": {"max_consumed_pct": 0}}),
     "gates.error_budget.max_consumed_pct"),
    ("budget 101 %", _set("gates", {"error_budget": {"max_consumed_pct": 101}}),
     "gates.error_budget.max_consumed_pct"),
    ("budget period 0", _set("gates", {"error_budget": {"period_days": 0}}),
     "gates.error_budget.period_days"),
    ("prometheus not http", _set("gates", {"error_budget": {"prometheus": {"url": "ftp://p", "query": "q"}}}),
     "gates.error_budget.prometheus.url"),
    ("alertmanager without scheme", _set("gates", {"incidents": {"alertmanager_url": "am:9093"}}),
     "gates.incidents.alertmanager_url"),
    ("matchers without a source", _set("gates", {"incidents": {"matchers": {"severity": "critical"}}}),
     "gates.incidents"),
    ("unknown gate", _set("gates", {"moon": {}}), "gates.moon"),
    ("webhook not a URL", _set("notifications", {"webhook_url": "hooks.slack.com/x"}),
     "notifications.webhook_url"),
    ("unknown event", _set("notifications", {"webhook_url": "https://h/x", "events": ["run_exploded"]}),
     "notifications.events.0"),
    ("events without webhook", _set("notifications", {"events": ["run_failed"]}),
     "notifications.webhook_url"),
]


@pytest.mark.parametrize(("mutate", "where"), [pytest.param(m, w, id=i) for i, m, w in BAD_INPUTS])
def test_bad_input_names_the_field(tmp_path: Path, mutate: Mutation, where: str) -> None:
    data = base_schedule(tmp_path)
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(InputError) as caught:
        load_schedule(path)
    error = caught.value
    assert error.where == f"{path}: {where}"
    assert error.expected and error.fix
    message = error.message()
    assert error.where in message and "fix:" in message


def test_unknown_cell_lists_the_cells_file(tmp_path: Path) -> None:
    data = base_schedule(tmp_path)
    data["cells"]["order"] = ["cell-1", "cell-3"]
    with pytest.raises(InputError) as caught:
        load_schedule(write(tmp_path, data))
    assert caught.value.expected == f"one of cell-1, cell-2 (from {tmp_path / 'cells.yaml'})"
    assert caught.value.found == "cell-3"


def test_unknown_timezone_says_what_was_found(tmp_path: Path) -> None:
    data = base_schedule(tmp_path)
    data["timezone"] = "Mars/Olympus_Mons"
    with pytest.raises(InputError) as caught:
        load_schedule(write(tmp_path, data))
    assert caught.value.found == "Mars/Olympus_Mons"
    assert "IANA" in caught.value.expected


def test_overlap_message_names_both_windows(tmp_path: Path) -> None:
    data = base_schedule(tmp_path)
    _windows((["saturday"], "23:00", 180), (["sunday"], "01:00", 60))(data)
    with pytest.raises(InputError) as caught:
        load_schedule(write(tmp_path, data))
    assert caught.value.found == "windows.0 (saturday 23:00 for 180 min) overlaps windows.1 (sunday 01:00)"


def test_rotation_kind_without_file_says_who_runs_it(tmp_path: Path) -> None:
    data = base_schedule(tmp_path)
    del data["experiments"]["cpu-stress"]
    with pytest.raises(InputError) as caught:
        load_schedule(write(tmp_path, data))
    assert "rotation.weeks.3" in caught.value.expected
    assert caught.value.found == "nothing"


def test_malformed_yaml_points_at_the_line(tmp_path: Path) -> None:
    path = tmp_path / "schedule.yaml"
    path.write_text("schema_version: 1\nname: [unclosed\n")
    with pytest.raises(InputError) as caught:
        load_schedule(path)
    assert caught.value.where.startswith(f"{path}:")
    assert caught.value.expected == "valid YAML"


def test_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "schedule.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(InputError) as caught:
        load_schedule(path)
    assert caught.value.where == str(path)


def test_missing_schedule_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        load_schedule(tmp_path / "nope.yaml")
    assert caught.value.where == "--schedule"
    assert caught.value.fix


def test_bad_cells_file_points_into_it(tmp_path: Path) -> None:
    data = base_schedule(tmp_path)
    (tmp_path / "cells.yaml").write_text("schema_version: 1\ncells:\n  - {name: cell-1, target: moon}\n")
    with pytest.raises(InputError) as caught:
        load_schedule(write(tmp_path, data))
    assert caught.value.where == f"{tmp_path / 'cells.yaml'}: cells.0.target"
