"""A process is the sandbox's only when its environment carries the sandbox's id."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from gameday.sandbox.procs import SANDBOX_ID_ENV, ProcessId, carries_id, identify, processes_with_id

SANDBOX_ID = "cd" * 16


def sleeper(env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Reads stdin until it closes: the process is surely exec'd (its environ final) once it runs.
    return subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE, env=env)


@pytest.fixture
def two() -> Iterator[tuple[ProcessId, ProcessId]]:
    ours = sleeper({**os.environ, SANDBOX_ID_ENV: SANDBOX_ID})
    other = sleeper({**os.environ, SANDBOX_ID_ENV: "ef" * 16})
    ids = (identify(ours.pid), identify(other.pid))
    assert ids[0] is not None and ids[1] is not None
    yield ids[0], ids[1]
    for proc in (ours, other):
        proc.kill()
        proc.wait()


def test_only_the_process_with_the_id_is_ours(two):
    ours, other = two
    assert carries_id(ours, SANDBOX_ID)
    assert not carries_id(other, SANDBOX_ID)
    assert not carries_id(ProcessId(ours.pid, ours.start_ticks + 1), SANDBOX_ID)  # pid reused
    assert ours in processes_with_id(SANDBOX_ID) and other not in processes_with_id(SANDBOX_ID)


def test_this_process_is_never_listed(monkeypatch):
    monkeypatch.setenv(SANDBOX_ID_ENV, SANDBOX_ID)  # our own /proc environ does not change
    me = identify(os.getpid())
    assert me is not None and me not in processes_with_id(SANDBOX_ID)


@pytest.mark.parametrize("data", [{"pid": 1, "start_ticks": 5}, {"pid": "12", "start_ticks": 5},
                                  {"pid": True, "start_ticks": 5}, {"pid": 12},
                                  {"pid": 12, "start_ticks": -1}, {"pid": 2**22, "start_ticks": 1},
                                  [12, 5], {"pid": 12, "start_ticks": 5, "x": 1}])
def test_recorded_identities_are_whole_numbers_a_kernel_hands_out(data):
    assert not ProcessId.valid_json(data)


def test_a_recorded_identity_round_trips():
    assert ProcessId.valid_json({"pid": 12, "start_ticks": 5})
    assert ProcessId.from_json(ProcessId(12, 5).to_json()) == ProcessId(12, 5)
