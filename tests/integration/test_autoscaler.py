"""The sandbox's autoscaler on a real cell: a CPU stress scales it out within a minute, the new
replica serves behind the balancer, and the cell scales back in after the stabilization window.

Timing-sensitive (it measures CPU): listed in conftest.TIMING_MODULES, so it runs in the
timing worker at normal priority.
"""

from __future__ import annotations

import http.client
import itertools
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from gameday.sandbox import manager
from gameday.sandbox.autoscaler import autoscaler_config
from helpers import alive, run_cli, wait_for

pytestmark = pytest.mark.integration

WINDOW_S = 3.0
STRESS_S = 8.0


@pytest.fixture
def cell(tmp_path: Path) -> Iterator[Path]:
    """One cell of one replica (max 2), a 0.5 s sync period and a 3 s scale-down window."""
    state_dir = tmp_path / "box"
    scaling = autoscaler_config(1, sync_period_s=0.5, scale_down_window_s=WINDOW_S)
    # The cell runs on the CPUs `up` may use; every other sandbox's cell-1 takes the first
    # CPU, so this one takes the last (the controller inherits the affinity).
    allowed = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {max(allowed)})
        try:
            manager.sandbox_up(state_dir, cells=1, replicas=1, autoscaler=scaling)
        finally:
            os.sched_setaffinity(0, allowed)
        yield state_dir
    finally:
        manager.sandbox_down(state_dir)


def events(state_dir: Path, name: str | None = None) -> list[dict[str, Any]]:
    found = manager.sandbox_events(state_dir, "cell-1")
    return [e for e in found if name is None or e["event"] == name]


def status(state_dir: Path) -> dict[str, Any]:
    cells: list[dict[str, Any]] = manager.sandbox_status(state_dir)["cells"]
    return cells[0]


class Client(threading.Thread):
    """GET /healthz through the balancer at about 50 Hz: which replica answered, what failed."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port
        self.stop = threading.Event()
        self.answered: list[tuple[float, str]] = []  # (monotonic, replica index)
        self.failed: list[tuple[float, str]] = []

    def run(self) -> None:
        while not self.stop.wait(0.02):
            conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
            try:
                conn.request("GET", "/healthz")
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    self.answered.append((time.monotonic(),
                                          response.getheader("X-Gameday-Replica", "?")))
                else:
                    self.failed.append((time.monotonic(), f"HTTP {response.status}"))
            except (OSError, http.client.HTTPException) as exc:
                self.failed.append((time.monotonic(), type(exc).__name__))
            finally:
                conn.close()


class Burner:
    """The CPU share a burner got while it ran, from its /proc/PID/stat."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.first: tuple[float, int] | None = None
        self.last: tuple[float, int] | None = None
        self.read()

    def read(self) -> None:
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return
        fields = stat[stat.rfind(")") + 2 :].split()
        sample = (time.monotonic(), int(fields[11]) + int(fields[12]))
        self.first = self.first or sample
        self.last = sample

    def share_pct(self) -> float:
        if self.first is None or self.last is None or self.last[0] <= self.first[0]:
            return 0.0
        ticks = self.last[1] - self.first[1]
        return ticks / os.sysconf("SC_CLK_TCK") / (self.last[0] - self.first[0]) * 100


def test_cpu_stress_scales_out_within_a_minute_and_back_in_after_the_window(cell: Path) -> None:
    state = status(cell)
    assert (state["desired_replicas"], state["current_replicas"], state["ready_replicas"]) \
        == (1, 1, 1)
    assert state["autoscaler"]["enabled"] is True
    assert state["autoscaler"]["max_replicas"] == 2
    client = Client(state["url"])
    client.start()
    try:
        fault = manager.inject_fault(cell, "cell-1", "cpu",
                                     {"workers": 1, "load": 100, "duration": STRESS_S})
        stress = wait_for(lambda: events(cell, "stress_started"), 5, "stress_started")[0]
        burner = Burner(fault["targets"][0]["pid"])

        def scaled_out() -> list[dict[str, Any]]:
            burner.read()
            return [e for e in events(cell, "autoscaler_scaled")
                    if e["to_replicas"] > e["from_replicas"]]

        try:
            out = wait_for(scaled_out, 60, "a scale-out", interval=0.1)[0]
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; the burner got {burner.share_pct():.0f} % of a CPU while it ran: on a "
                "busy host the niced burner gets little CPU, the pods' CPU use stays low and "
                "no scale-out is due (this test wants an unloaded CPU: "
                "conftest.TIMING_MODULES)") from exc
        took = out["monotonic"] - stress["monotonic"]
        print(f"scale-out {took:.2f} s after stress_started: {out['reason']}")
        assert (out["from_replicas"], out["to_replicas"]) == (1, 2)
        assert out["cpu_pct"] > 55 and "above target 50%" in out["reason"]
        assert took < 60

        # The new replica: started, ready, in the balancer, and answering through it.
        started = wait_for(lambda: [e for e in events(cell, "replica_started")
                                    if e["replica"] == 2], 5, "replica 2 started")[0]
        assert started["monotonic"] >= out["monotonic"]
        ready = wait_for(lambda: [e for e in events(cell, "replica_ready")
                                  if e["replica"] == 2 and e["pid"] == started["pid"]],
                         30, "replica 2 ready")[0]
        assert [e for e in events(cell, "lb_endpoint_added") if e["pid"] == started["pid"]]
        print(f"replica 2 ready {ready['monotonic'] - out['monotonic']:.2f} s after the decision")
        wait_for(lambda: [a for a in client.answered if a[1] == "2"], 10,
                 "an answer from replica 2 through the balancer")
        state = wait_for(lambda: [s for s in [status(cell)] if s["ready_replicas"] == 2], 5,
                         "2 replicas ready in the status")[0]
        assert (state["desired_replicas"], state["current_replicas"]) == (2, 2)
        assert [r["index"] for r in state["replicas"]] == [1, 2]

        # The stress ends; after the stabilization window the cell scales back in.
        stopped = wait_for(lambda: events(cell, "stress_stopped"), STRESS_S + 5,
                           "stress_stopped")[0]
        wait_for(lambda: [s for s in [status(cell)] if s["desired_replicas"] == 1
                          and s["current_replicas"] == 1], WINDOW_S + 10, "back at 1 replica",
                 interval=0.1)
        decisions = events(cell, "autoscaler_scaled")
        back = decisions[-1]
        after = back["monotonic"] - stopped["monotonic"]
        print(f"scale-in {after:.2f} s after stress_stopped: {back['reason']}")
        assert (back["from_replicas"], back["to_replicas"]) == (2, 1)
        assert after <= WINDOW_S + 5.0
        # Out and in by turns; each scale-in waited out the window after the scale-out, and
        # 2 -> 1 at a 50 % target means at most 25 % of the requests were used.
        assert [(e["from_replicas"], e["to_replicas"]) for e in decisions] \
            == [(1, 2), (2, 1)] * (len(decisions) // 2)
        for up, down in itertools.pairwise(decisions):
            if down["to_replicas"] < down["from_replicas"]:
                assert down["monotonic"] - up["monotonic"] >= WINDOW_S
                assert down["cpu_pct"] <= 25.0
                assert f"stabilized over {WINDOW_S:g} s" in down["reason"]
        if len(decisions) == 2:
            # The usual case: the stress held the cell's CPU to its end, and the scale-in
            # waited out the window after it (after the last high recommendation, which is one
            # sync period at most before the stress ended). On a CPU shared with busy
            # processes the niced burner can be starved, so the pods' use falls and the cell
            # may scale in (and out again) while the fault is still on.
            assert after >= WINDOW_S - 1.0
        gone = wait_for(lambda: [e for e in events(cell, "replica_stopped")
                                 if e["pid"] == started["pid"]], 10, "replica 2 stopped")[0]
        removed = [e for e in events(cell, "lb_endpoint_removed") if e["pid"] == started["pid"]]
        assert [e["reason"] for e in removed] == ["scale-in"]
        assert removed[0]["monotonic"] <= gone["monotonic"]  # out of the balancer first
        assert gone["reason"] == "scale-in" and gone["returncode"] == 0
        assert not [e for e in events(cell, "replica_exit")]  # a scale-in is no crash
        state = wait_for(lambda: [s for s in [status(cell)] if s["current_replicas"] == 1], 5,
                         "1 replica running in the status")[0]
        assert (state["desired_replicas"], state["ready_replicas"]) == (1, 1)
        assert not alive(started["pid"])
        time.sleep(0.5)
    finally:
        client.stop.set()
        client.join(10)
    # Graceful both ways: nothing the client sent failed, before, during or after.
    assert client.failed == []
    assert {r for _, r in client.answered} == {"1", "2"}

    shown = run_cli("sandbox", "status", "--state-dir", str(cell), check=True).stdout
    assert "replicas: desired 1, current 1, ready 1" in shown
    assert "target 50%, replicas 1..2, sync 0.5 s" in shown
    assert f"scale-down window {WINDOW_S:g} s" in shown


@pytest.mark.parametrize(("args", "where", "found"), [
    (["--replicas", "3", "--max-replicas", "2"], "--max-replicas", "2"),
    (["--max-replicas", "21"], "--max-replicas", "21"),
    (["--cpu-percent", "nan"], "--cpu-percent", "nan"),
    (["--cpu-percent", "0"], "--cpu-percent", "0"),
    (["--sync-period", "inf"], "--sync-period", "inf"),
    (["--scale-down-window", "-1"], "--scale-down-window", "-1"),
    (["--scale-up-pods", "0"], "--scale-up-pods", "0"),
    (["--scale-up-percent", "1e400"], "--scale-up-percent", "1e400"),
    (["--scale-up-period", "0.5"], "--scale-up-period", "0.5"),
])
def test_bad_autoscaler_flags_exit_2_and_start_nothing(tmp_path, args, where, found):
    state_dir = tmp_path / "box"
    result = run_cli("sandbox", "up", "--state-dir", str(state_dir), *args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert where in result.stderr and "expected" in result.stderr and found in result.stderr
    assert "fix:" in result.stderr
    assert not state_dir.exists()
