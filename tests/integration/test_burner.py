"""CPU burners as real processes: pinning, duty cycle, deadline after a parent's SIGKILL, SIGTERM."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gameday.errors import InputError
from gameday.sandbox.burner import spawn_burners
from gameday.sandbox.events import read_events
from gameday.sandbox.procs import ProcessId, identify, is_alive, terminate

pytestmark = pytest.mark.integration

CLK_TCK = os.sysconf("SC_CLK_TCK")

# Spawns burners the way the controller does, prints their pids, then waits to be SIGKILLed.
PARENT = """
import json, sys, time
from pathlib import Path
from gameday.sandbox.burner import spawn_burners
procs = spawn_burners("f-orphan", [0, 1], 2, 30, float(sys.argv[1]), Path(sys.argv[2]), "cell-a")
print(json.dumps([p.pid for p in procs]), flush=True)
time.sleep(60)
"""


@pytest.fixture
def burners() -> Iterator[list[ProcessId]]:
    """Burners a test started; whatever still runs at the end is killed."""
    started: list[ProcessId] = []
    yield started
    assert terminate(started, grace_s=1.0) == []


def _track(started: list[ProcessId], procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        ident = identify(proc.pid)
        assert ident is not None
        started.append(ident)


def _cpus_allowed(pid: int) -> str:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("Cpus_allowed_list:"):
                return line.split()[1]
    raise AssertionError("no Cpus_allowed_list")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        stat = fh.read()
    fields = stat[stat.rfind(")") + 2 :].split()  # fields[0] is field 3 (state)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def _wait_for(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def _wait_pinned(pid: int, cpu: int) -> None:
    # The burner installs its signal handlers, then pins itself, then burns.
    _wait_for(lambda: _cpus_allowed(pid) == str(cpu), 5.0)


def test_burner_is_pinned_and_keeps_its_duty_cycle(burners: list[ProcessId]) -> None:
    deadline = time.monotonic() + 6
    procs = spawn_burners("f-load", [0], 1, 50, deadline, None, None)
    procs += spawn_burners("f-load", [1], 1, 20, deadline, None, None)
    _track(burners, procs)
    for proc, cpu in zip(procs, (0, 1), strict=True):
        _wait_pinned(proc.pid, cpu)
    time.sleep(0.2)  # past the interpreter's start-up work
    before = [_cpu_seconds(p.pid) for p in procs]
    started = time.monotonic()
    time.sleep(1.5)
    elapsed = time.monotonic() - started
    loads = [(_cpu_seconds(p.pid) - b) / elapsed * 100 for p, b in zip(procs, before, strict=True)]
    print(f"measured load: {loads[0]:.1f} % (asked 50), {loads[1]:.1f} % (asked 20)")
    assert 35 <= loads[0] <= 65
    assert 5 <= loads[1] <= 35
    for proc in procs:
        proc.terminate()
        proc.wait(2)


def test_burners_stop_at_their_deadline_after_the_parent_is_killed(
        burners: list[ProcessId], tmp_path: Path) -> None:
    events_file = tmp_path / "events.jsonl"
    deadline = time.monotonic() + 2.0
    parent = subprocess.Popen([sys.executable, "-c", PARENT, repr(deadline), str(events_file)],
                              stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert parent.stdout is not None
        pids = json.loads(parent.stdout.readline())
    finally:
        parent.kill()  # SIGKILL: the parent gets no chance to clean up
        parent.wait()
    ids = [identify(pid) for pid in pids]
    burners.extend(i for i in ids if i is not None)
    assert len(burners) == 2
    for pid, cpu in zip(pids, (0, 1), strict=True):
        _wait_pinned(pid, cpu)
    assert all(is_alive(b) for b in burners), "burners died with their parent"

    _wait_for(lambda: not any(is_alive(b) for b in burners), deadline + 0.5 - time.monotonic())
    gone_at = time.monotonic()
    print(f"burners gone {(gone_at - deadline) * 1000:.0f} ms after their deadline")
    assert gone_at >= deadline - 0.05  # and not before it
    stopped = read_events(events_file, "cell-a")
    assert sorted(e["pid"] for e in stopped) == sorted(pids)
    assert all(e["event"] == "stress_stopped" and e["reason"] == "deadline"
               and e["fault_id"] == "f-orphan" for e in stopped)
    assert all(deadline <= e["monotonic"] <= deadline + 0.1 for e in stopped)


def test_sigterm_stops_burners_at_once_and_they_report_it(
        burners: list[ProcessId], tmp_path: Path) -> None:
    events_file = tmp_path / "events.jsonl"
    deadline = time.monotonic() + 30
    # A busy one and a mostly sleeping one: both must notice the signal.
    procs = spawn_burners("f-term", [0], 1, 100, deadline, events_file, "cell-b")
    procs += spawn_burners("f-term", [1], 1, 10, deadline, events_file, "cell-b")
    _track(burners, procs)
    for proc, cpu in zip(procs, (0, 1), strict=True):
        _wait_pinned(proc.pid, cpu)
    signalled = []
    for proc in procs:
        pidfd = os.pidfd_open(proc.pid)  # readable at the very moment the process exits
        try:
            signalled.append(time.monotonic())
            proc.send_signal(signal.SIGTERM)
            assert select.select([pidfd], [], [], 1.0)[0], "burner ignored SIGTERM"
            took = time.monotonic() - signalled[-1]
        finally:
            os.close(pidfd)
        assert proc.wait(1) == 0
        print(f"burner exited {took * 1000:.1f} ms after SIGTERM")
        assert took < 0.3
    stopped = read_events(events_file, "cell-b")
    assert [(e["event"], e["pid"], e["reason"]) for e in stopped] == [
        ("stress_stopped", p.pid, "signal") for p in procs]
    lags = [e["monotonic"] - t for e, t in zip(stopped, signalled, strict=True)]
    print("stress_stopped written " + ", ".join(f"{lag * 1000:.1f}" for lag in lags)
          + " ms after SIGTERM")
    assert all(0 <= lag < 0.1 for lag in lags)


def test_a_deadline_already_past_stops_the_burner_at_once(
        burners: list[ProcessId], tmp_path: Path) -> None:
    events_file = tmp_path / "events.jsonl"
    procs = spawn_burners("f-late", [0], 1, 50, time.monotonic() - 1, events_file, "cell-c")
    assert procs[0].wait(5) == 0
    assert [e["reason"] for e in read_events(events_file)] == ["deadline"]


def test_spawn_burners_rejects_bad_input_before_starting_anything() -> None:
    allowed = os.sched_getaffinity(0)
    later = time.monotonic() + 10
    with pytest.raises(InputError, match="cpus"):
        spawn_burners("f", [max(allowed) + 1], 1, 50, later, None, None)
    with pytest.raises(InputError, match="cpus"):
        spawn_burners("f", [], 1, 50, later, None, None)
    with pytest.raises(InputError, match="load_pct"):
        spawn_burners("f", [0], 1, 0, later, None, None)
    with pytest.raises(InputError, match="workers"):
        spawn_burners("f", [0], 0, 50, later, None, None)
    with pytest.raises(InputError, match="events_file"):
        spawn_burners("f", [0], 1, 50, later, Path("/tmp/x"), None)
