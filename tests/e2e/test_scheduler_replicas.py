"""Scheduler replicas on one store: real `gameday scheduler start` processes on SQLite and
PostgreSQL, windows that start a minute ahead (so the fire path runs, not the catch-up), SIGKILLs
and restarts. Every window runs exactly once, and one whose runner died is finished by another.

The windows wait for a whole minute, so one module fixture starts every scenario at once and
drives their kills and restarts; the tests then check each scenario's store.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_scheduler import (
    assert_one_cell_at_a_time,
    fault_intervals,
    quick_latency,
    wait_cells_ready,
    write_cells,
)
from test_scheduler import write_schedule as write_schedule_file

from gameday.model import RunRecord
from gameday.store import Store
from helpers import ROOT, Sandbox

# One group: under `pytest -n --dist loadgroup` every test of the module shares one worker, so
# the scenarios (and their minute of waiting) run once, not once per worker.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(280),
              pytest.mark.xdist_group("scheduler-replicas")]

LEAD_S = 30  # the windows start at the first whole minute at least this far ahead
WINDOW_MINUTES = 2
LEASE_TTL = "3"  # seconds: how soon a dead runner's claim (and fault lease) expires
RESTART_AFTER_S = 10  # a restart this long after the window's start
DONE_AFTER_S = 100  # give up on the windows this long after their start
_PID = re.compile(r" pid (\d+) ")


@dataclass
class Scenario:
    """Scheduler processes on one store, and what the driver did to them."""

    name: str
    store: str
    folder: Path
    windows: set[str]  # the window ids that must end closed
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    killed: int | None = None  # the pid SIGKILLed mid-window
    killed_at: datetime | None = None
    started_at: datetime | None = None  # when the late start (or the restart) was launched
    step: Callable[[Scenario, datetime], None] = lambda _s, _now: None
    _store: Store | None = None

    def db(self) -> Store:
        """The driver's own store for this scenario (opened once: polling stays cheap)."""
        if self._store is None:
            self._store = Store.open(self.store)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def start(self, schedule: Path) -> subprocess.Popen[bytes]:
        log = self.folder / f"scheduler-{len(self.procs)}.log"
        with log.open("wb") as out:  # a file, not a pipe: a full pipe would block the process
            proc = subprocess.Popen(
                [sys.executable, "-m", "gameday", "scheduler", "start", "--schedule",
                 str(schedule), "--store", self.store, "--reports-dir",
                 str(self.folder / "reports"), "--lease-ttl", LEASE_TTL],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.procs.append(proc)
        self.logs.append(log)
        return proc

    def output(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')}" for log in self.logs)

    def closed(self) -> bool:
        done = {w.window_id for w in self.db().list_windows() if w.status == "closed"}
        return self.windows <= done

    def runs(self, window_id: str) -> list[RunRecord]:
        return self.db().list_runs(window_id=window_id, limit=None, with_journal=False)


def first_whole_minute(after: datetime) -> datetime:
    return (after + timedelta(seconds=59)).replace(second=0, microsecond=0)


def window_id(name: str, start: datetime) -> str:
    return f"{name}-{start:%Y%m%dT%H%MZ}"


def kill_the_holder_under_fault(scenario: Scenario, _now: datetime) -> None:
    """SIGKILL the scheduler whose run has a fault applied (mid-run); once."""
    if scenario.killed is not None:
        return
    store = scenario.db()
    lease = store.lease_get("faults")
    applied = lease is not None and any(f.state == "applied" for f in store.ledger_all())
    match = _PID.search(lease.holder) if lease is not None and applied else None
    holder = next((p for p in scenario.procs if match and p.pid == int(match[1])), None)
    if holder is not None:
        holder.send_signal(signal.SIGKILL)  # no goodbye: claim and fault lease stay behind
        holder.wait(10)
        scenario.killed, scenario.killed_at = holder.pid, datetime.now(UTC)


def start_late(schedule: Path, at: datetime) -> Callable[[Scenario, datetime], None]:
    """Start a scheduler (once) at ``at``."""
    def step(scenario: Scenario, now: datetime) -> None:
        if scenario.started_at is None and now >= at:
            scenario.started_at = now
            scenario.start(schedule)
    return step


def kill_then_restart(schedule: Path, at: datetime) -> Callable[[Scenario, datetime], None]:
    """SIGKILL the one scheduler mid-run, then start it again at ``at`` (or right away when the
    kill came later)."""
    restart = start_late(schedule, at)

    def step(scenario: Scenario, now: datetime) -> None:
        kill_the_holder_under_fault(scenario, now)
        if scenario.killed is not None:
            restart(scenario, now)
    return step


@dataclass
class Setup:
    folder: Path
    sandbox: Sandbox
    start: datetime  # every window's start
    experiment: Path

    def schedule(self, name: str, cells: Path, order: list[str]) -> Path:
        return write_schedule_file(self.folder / f"{name}.yaml", name, cells, order,
                                   self.experiment, start=self.start, minutes=WINDOW_MINUTES)

    def scenario(self, name: str, store: str, windows: list[str]) -> Scenario:
        folder = self.folder / name
        folder.mkdir()
        return Scenario(name, store, folder, {window_id(w, self.start) for w in windows})


def build(setup: Setup, pg_url: Callable[[], str]) -> dict[str, Scenario]:
    """Every scenario, its processes started (or planned) for windows at ``setup.start``."""
    nowhere = write_cells(setup.folder / "nowhere.yaml", setup.folder / "no-sandbox")
    real = write_cells(setup.folder / "cells.yaml", setup.sandbox.state_dir,
                       ("cell-1", "cell-2", "cell-3", "cell-4"))
    scenarios: dict[str, Scenario] = {}
    # Three replicas, two of one schedule and one of another, started together on a new store.
    race_a = setup.schedule("race-a", nowhere, ["cell-1", "cell-2"])
    race_b = setup.schedule("race-b", nowhere, ["cell-2"])
    for backend, store in (("sqlite", f"sqlite:///{setup.folder / 'race.db'}"),
                           ("postgresql", pg_url())):
        race = scenarios[f"race-{backend}"] = setup.scenario(f"race-{backend}", store,
                                                             ["race-a", "race-b"])
        for schedule in (race_a, race_b, race_a):
            race.start(schedule)
    # Two replicas of one schedule: the one running the window is killed mid-run.
    kill = scenarios["kill"] = setup.scenario("kill", f"sqlite:///{setup.folder / 'kill.db'}",
                                              ["kill"])
    kill_schedule = setup.schedule("kill", real, ["cell-1", "cell-2"])
    kill.start(kill_schedule)
    kill.start(kill_schedule)
    kill.step = kill_the_holder_under_fault
    # One scheduler killed mid-run and restarted 10 s after the window's start.
    restart = scenarios["restart"] = setup.scenario("restart", pg_url(), ["restart"])
    restart_schedule = setup.schedule("restart", real, ["cell-3", "cell-4"])
    restart.start(restart_schedule)
    restart.step = kill_then_restart(restart_schedule,
                                     setup.start + timedelta(seconds=RESTART_AFTER_S))
    # The first scheduler of a schedule starts 10 s into its window.
    late = scenarios["late"] = setup.scenario("late", f"sqlite:///{setup.folder / 'late.db'}",
                                              ["late"])
    late.step = start_late(setup.schedule("late", nowhere, ["cell-1"]),
                           setup.start + timedelta(seconds=RESTART_AFTER_S))
    return scenarios


def drive(scenarios: dict[str, Scenario], start: datetime) -> None:
    """Run every scenario's steps until all their windows are closed (or DONE_AFTER_S after
    they started)."""
    waiting = dict(scenarios)
    checked = time.monotonic()
    while waiting and datetime.now(UTC) < start + timedelta(seconds=DONE_AFTER_S):
        now = datetime.now(UTC)
        for scenario in waiting.values():
            scenario.step(scenario, now)
        if now > start and time.monotonic() - checked >= 2:
            checked = time.monotonic()
            waiting = {name: s for name, s in waiting.items() if not s.closed()}
        time.sleep(0.25)


def stop_all(scenarios: dict[str, Scenario]) -> None:
    for scenario in scenarios.values():
        scenario.close()
    procs = [p for s in scenarios.values() for p in s.procs if p.poll() is None]
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            # Stuck: its threads' stacks go to its log (SIGQUIT), for the failure to show.
            proc.send_signal(signal.SIGQUIT)
            time.sleep(2)
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory,
             postgres_server: Any) -> Iterator[tuple[datetime, dict[str, Scenario], Sandbox]]:
    folder = tmp_path_factory.mktemp("replicas")
    box = Sandbox(folder / "sandbox")
    box.cli("sandbox", "up", "--cells", "4", "--replicas", "1", "--quiet", check=True)
    scenarios: dict[str, Scenario] = {}
    try:
        wait_cells_ready(box)
        start = first_whole_minute(datetime.now(UTC) + timedelta(seconds=LEAD_S))
        # Long enough to be killed while it is injecting; short enough to keep the module quick.
        setup = Setup(folder, box, start, quick_latency(folder, duration_s=5, pause_s=5))
        scenarios = build(setup, postgres_server.new_database_url)
        drive(scenarios, start)
        stop_all(scenarios)
        yield start, scenarios, box
    finally:
        stop_all(scenarios)
        box.cli("sandbox", "down")


# ------------------------------------------------------------------------------ checks


def assert_each_cell_ran_once(scenario: Scenario, wid: str, cells: list[str]) -> dict[str, RunRecord]:
    runs = scenario.runs(wid)
    assert sorted(r.cell for r in runs) == sorted(cells), (runs, scenario.output())
    return {r.cell: r for r in runs}


def assert_exited_cleanly(scenario: Scenario) -> None:
    out = scenario.output()
    for proc in scenario.procs:
        if proc.pid != scenario.killed:
            assert proc.returncode == 0, out
    assert "Traceback" not in out and "internal error" not in out, out


def assert_closed_with_report(scenario: Scenario, wid: str) -> None:
    with Store.open(scenario.store) as store:
        window = store.get_window(wid)
        faults = fault_intervals(scenario.store)  # also: every fault was reverted
        assert store.lease_get("faults") is None
    assert window is not None and window.status == "closed", scenario.output()
    assert (scenario.folder / "reports" / f"window-{wid}" / "index.html").is_file()
    assert_one_cell_at_a_time(faults)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_replicas_started_together_fire_every_window_exactly_once(
        replicas: tuple[datetime, dict[str, Scenario], Sandbox], backend: str) -> None:
    start, scenarios, _ = replicas
    race = scenarios[f"race-{backend}"]
    with Store.open(race.store) as store:
        windows = store.list_windows(limit=None)
    assert sorted(w.window_id for w in windows) == sorted(race.windows), race.output()
    assert all(w.status == "closed" and w.started_utc >= start for w in windows), windows
    assert_each_cell_ran_once(race, window_id("race-a", start), ["cell-1", "cell-2"])
    assert_each_cell_ran_once(race, window_id("race-b", start), ["cell-2"])
    with Store.open(race.store) as store:
        assert len(store.list_runs(limit=None)) == 3  # none outside the windows either
    assert_exited_cleanly(race)


def test_a_replica_resumes_the_window_whose_runner_was_killed(
        replicas: tuple[datetime, dict[str, Scenario], Sandbox]) -> None:
    start, scenarios, box = replicas
    kill = scenarios["kill"]
    wid = window_id("kill", start)
    assert kill.killed is not None and kill.killed_at is not None, kill.output()
    assert_closed_with_report(kill, wid)
    runs = assert_each_cell_ran_once(kill, wid, ["cell-1", "cell-2"])
    # The run in progress when its runner died is interrupted, not run again ...
    assert runs["cell-1"].status == "interrupted" and runs["cell-1"].runner_pid == kill.killed
    # ... and the other replica ran what was left.
    survivor = next(p.pid for p in kill.procs if p.pid != kill.killed)
    assert runs["cell-2"].runner_pid == survivor and runs["cell-2"].verdict != "skipped", \
        (runs["cell-2"].reason, kill.output())
    assert runs["cell-2"].started_utc >= kill.killed_at
    assert all(box.cell(c)["proxy"]["toxic"] is None for c in ("cell-1", "cell-2"))
    assert_exited_cleanly(kill)


def test_a_restart_10_s_into_the_window_resumes_it(
        replicas: tuple[datetime, dict[str, Scenario], Sandbox]) -> None:
    start, scenarios, box = replicas
    restart = scenarios["restart"]
    wid = window_id("restart", start)
    assert restart.killed is not None and restart.started_at is not None, restart.output()
    assert_closed_with_report(restart, wid)
    runs = assert_each_cell_ran_once(restart, wid, ["cell-3", "cell-4"])
    assert runs["cell-3"].status == "interrupted" and runs["cell-3"].runner_pid == restart.killed
    assert runs["cell-4"].runner_pid == restart.procs[-1].pid, restart.output()
    assert runs["cell-4"].verdict != "skipped", (runs["cell-4"].reason, restart.output())
    assert all(box.cell(c)["proxy"]["toxic"] is None for c in ("cell-3", "cell-4"))
    assert_exited_cleanly(restart)


def test_a_start_10_s_into_the_window_runs_it(
        replicas: tuple[datetime, dict[str, Scenario], Sandbox]) -> None:
    start, scenarios, _ = replicas
    late = scenarios["late"]
    wid = window_id("late", start)
    assert late.started_at is not None
    assert late.started_at >= start + timedelta(seconds=RESTART_AFTER_S)
    assert late.closed(), late.output()
    (run,) = assert_each_cell_ran_once(late, wid, ["cell-1"]).values()
    assert run.started_utc >= late.started_at
    assert_exited_cleanly(late)
