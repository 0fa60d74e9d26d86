"""The sandbox through its CLI: real processes, a real PostgreSQL pair, real HTTP."""

from __future__ import annotations

import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from gameday.sandbox.postgres import PgCredentials
from gameday.sandbox.procs import keep_priority_in_own_session, start_ticks
from gameday.sandbox.state import read_json
from gameday.sandbox.workload import WriteLedger, first_ack_after, missing_acknowledged
from helpers import ROOT, Sandbox, alive, wait_for

pytestmark = pytest.mark.integration


def post_payment(url: str, seq: int = 0) -> tuple[int, float]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    started = time.perf_counter()
    try:
        conn.request("POST", "/payments", json.dumps({"amount_cents": 500, "seq": seq}),
                     {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    except OSError:
        return 0, time.perf_counter() - started
    finally:
        conn.close()


def test_up_then_down_leaves_no_process_and_second_up_changes_nothing(sandbox_factory):
    box = sandbox_factory(cells=2, replicas=2)
    status = box.status()
    assert status["running"] and [c["name"] for c in status["cells"]] == ["cell-1", "cell-2"]
    for cell in status["cells"]:
        assert cell["status"] == "ready" and cell["url"].startswith("http://127.0.0.1:")
        assert [r["ready"] for r in cell["replicas"]] == [True, True]
        assert sorted(n["role"] for n in cell["database"]) == ["primary", "standby"]
        assert cell["admin_url"] and cell["proxy"]["port"]
        assert post_payment(cell["url"])[0] == 201
    pids = status["pids"]
    # 2 controllers + per cell 2 replicas and 2 PostgreSQL nodes
    assert len(pids) >= 10 and all(alive(p) for p in pids)

    again = box.cli("sandbox", "up", "--cells", "3")
    assert again.returncode == 0 and "already running" in again.stderr
    assert box.status()["pids"] == pids

    down = box.cli("sandbox", "down", check=True)
    assert "none left running" in down.stderr
    assert [p for p in pids if alive(p)] == []
    assert not box.status()["running"]


def test_kill_replica_is_taken_out_fast_and_comes_back(shared_sandbox):
    box = shared_sandbox
    cell = box.cell()
    url = cell["url"]
    fault = box.fault("cell-1", "kill-replica", "--count", "1")
    victim = fault["targets"][0]
    # The client keeps calling through the load balancer while the replica is away.
    outcomes: list[tuple[float, int]] = []
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:
        status, _ = post_payment(url)
        outcomes.append((time.monotonic(), status))
        time.sleep(0.01)
    events = box.events()
    injected = next(e for e in events if e.get("fault_id") == fault["fault_id"]
                    and e["event"] == "fault_injected")
    removed = next(e for e in events if e["event"] == "lb_endpoint_removed"
                   and e["pid"] == victim["pid"])
    assert removed["monotonic"] - injected["monotonic"] < 0.5
    back = wait_for(lambda: [e for e in box.events() if e["event"] == "replica_ready"
                             and e["replica"] == victim["replica"]
                             and e["monotonic"] > injected["monotonic"]], 15, "the replica back")
    assert back[0]["pid"] != victim["pid"]
    # No errors once the load balancer took the replica out (a small margin for in-flight calls).
    late_errors = [s for t, s in outcomes if t > removed["monotonic"] + 0.05 and s != 201]
    assert late_errors == []
    assert len(outcomes) > 50
    assert all(r["ready"] for r in wait_for(
        lambda: [c for c in [box.cell()] if all(r["ready"] for r in c["replicas"])], 10,
        "all replicas ready")[0]["replicas"])


def test_latency_adds_200ms_at_p50_and_ends_at_its_deadline(shared_sandbox):
    box = shared_sandbox
    url = box.cell()["url"]

    def p50(n: int = 15) -> float:
        samples = []
        for i in range(n):
            status, took = post_payment(url, i)
            assert status == 201
            samples.append(took)
        return statistics.median(samples) * 1000

    baseline = p50()
    fault = box.fault("cell-1", "latency", "--ms", "200", "--duration", "5")
    during = p50()
    assert 180 <= during - baseline <= 220, (baseline, during)
    expiry = fault["expires_utc"]
    removed = wait_for(lambda: [e for e in box.events() if e["event"] == "toxic_removed"
                                and e["fault_id"] == fault["fault_id"]], 10, "toxic removal")
    assert removed[0]["reason"] == "expired"
    assert removed[0]["utc"] >= expiry[:19]
    after = p50()
    assert after - baseline < 20, (baseline, after)


def test_kill_primary_loses_no_acknowledged_write(shared_sandbox):
    box = shared_sandbox
    cell = wait_for(lambda: (c := box.cell())["failover"]["ready"] and c, 30, "a standby")
    old_primary = next(n for n in cell["database"] if n["role"] == "primary")
    with WriteLedger(cell["url"], interval_s=0.005) as ledger:
        time.sleep(1.0)
        fault = box.fault("cell-1", "kill-primary")
        killed_at = time.monotonic()
        time.sleep(3.0)
    assert fault["targets"][0]["pid"] == old_primary["pid"]
    first = first_ack_after(ledger.attempts, killed_at)
    assert first is not None
    assert first.done_monotonic - killed_at < 2.0
    acked = [a.seq for a in ledger.acknowledged]
    assert len(acked) > 100
    # Back to primary + standby, and every acknowledged write is on the new primary.
    cell = wait_for(lambda: (c := box.cell())["failover"]["ready"] and c, 30, "the rebuilt standby")
    roles = sorted((n["role"], n["alive"]) for n in cell["database"])
    assert roles == [("primary", True), ("standby", True)]
    new_primary = next(n for n in cell["database"] if n["role"] == "primary")
    assert new_primary["pid"] != old_primary["pid"]
    creds = PgCredentials(**read_json(box.state_dir / "secrets.json")["database"])
    assert missing_acknowledged(new_primary["port"], creds, ledger.tag, acked) == []
    names = [e["event"] for e in box.events()]
    for expected in ("primary_lost", "standby_promoted", "proxy_repointed", "standby_rebuilt"):
        assert expected in names


BAD_INPUT = [
    (["cell-9", "kill-replica"], "CELL", "'cell-9'"),
    (["cell-1", "latency", "--ms", "-5", "--duration", "5"], "--ms", "-5"),
    (["cell-1", "latency", "--ms", "100", "--duration", "0"], "--duration", "0"),
    (["cell-1", "latency", "--ms", "100", "--duration", "-2"], "--duration", "-2"),
    (["cell-1", "cpu", "--workers", "1", "--load", "0", "--duration", "5"], "--load", "0"),
    (["cell-1", "cpu", "--workers", "1", "--load", "150", "--duration", "5"], "--load", "150"),
    (["cell-1", "kill-replica", "--count", "4"], "--count", "4"),
    (["cell-1", "kill-replica", "--ms", "4"], "--ms", "--ms"),
]


@pytest.mark.parametrize(("args", "field", "found"), BAD_INPUT)
def test_bad_fault_input_exits_2_and_touches_nothing(shared_sandbox, args, field, found):
    box = shared_sandbox
    since = time.monotonic()
    result = box.cli("sandbox", "fault", *args)
    assert result.returncode == 2, result.stderr
    assert field in result.stderr and "expected" in result.stderr and found in result.stderr
    assert "fix:" in result.stderr
    assert box.touched_since(since) == []


def test_state_dir_that_is_not_ours_is_refused(tmp_path, gameday_cli):
    (tmp_path / "precious.txt").write_text("do not touch")
    result = gameday_cli("sandbox", "up", "--state-dir", str(tmp_path))
    assert result.returncode == 2
    assert "--state-dir" in result.stderr and "expected" in result.stderr and "fix:" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["precious.txt"]


@pytest.mark.parametrize(("args", "field"), [(["--cells", "0"], "--cells"),
                                              (["--replicas", "0"], "--replicas")])
def test_bad_up_flags_exit_2(tmp_path, args, field, gameday_cli):
    result = gameday_cli("sandbox", "up", "--state-dir", str(tmp_path / "box"), *args)
    assert result.returncode == 2 and field in result.stderr
    assert not (tmp_path / "box").exists()


def test_cpu_burners_pinned_loaded_and_exit_at_deadline_after_parent_sigkill(sandbox_factory):
    box = sandbox_factory(cells=1, replicas=1)
    cell = box.cell()
    fault = box.fault("cell-1", "cpu", "--workers", "1", "--load", "50", "--duration", "4")
    pid = fault["targets"][0]["pid"]

    def allowed() -> str:
        return Path(f"/proc/{pid}/status").read_text().split("Cpus_allowed_list:")[1].split()[0]

    # The burner pins itself right after it starts (after installing its signal handlers).
    wait_for(lambda: allowed() == ",".join(map(str, cell["cpus"])), 5.0, "the burner pinned")

    def cpu_ticks() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    t0, c0 = time.monotonic(), cpu_ticks()
    time.sleep(1.5)
    t1, c1 = time.monotonic(), cpu_ticks()
    load = (c1 - c0) / os.sysconf("SC_CLK_TCK") / (t1 - t0) * 100
    assert 35 <= load <= 65, load

    controller = cell["controller"]["pid"]
    ticks = start_ticks(pid)
    os.kill(controller, signal.SIGKILL)
    time.sleep(0.3)
    assert alive(pid) and start_ticks(pid) == ticks, "the burner died with its parent"
    expiry = datetime.fromisoformat(fault["expires_utc"]).timestamp()
    wait_for(lambda: not alive(pid), expiry - time.time() + 1.0, "the burner's exit")
    assert abs(time.time() - expiry) < 0.5

    # With its controller gone, `down` still finds and stops every process of the cell.
    pids = box.status()["pids"]
    assert box.cli("sandbox", "down").returncode == 0
    assert [p for p in pids if alive(p)] == []


def _autogroup_nice(pid: int) -> int:
    return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])  # "/autogroup-N nice K"


def test_a_niced_sandbox_keeps_its_priority_in_the_sessions_it_starts(tmp_path):
    # Each sandbox process leads its own session; on a kernel that weighs sessions equally
    # (sched_autogroup), its nice value would order it only against itself.
    if not Path("/proc/self/autogroup").exists():
        assert not keep_priority_in_own_session(), "no autogroups here, nothing to set"
        return
    box = Sandbox(tmp_path / "box")
    expected = min(19, os.getpriority(os.PRIO_PROCESS, 0) + 3)
    up = subprocess.run(["nice", "-n", "3", sys.executable, "-m", "gameday", "sandbox", "up",
                         "--replicas", "1", "--quiet", "--state-dir", str(box.state_dir)],
                        capture_output=True, text=True, timeout=180, cwd=ROOT)
    try:
        assert up.returncode == 0, up.stderr
        cell = box.cell()
        session_leaders = [cell["controller"]["pid"], *(r["pid"] for r in cell["replicas"])]
        assert {pid: _autogroup_nice(pid) for pid in session_leaders} == \
            dict.fromkeys(session_leaders, expected)
        fault = box.fault("cell-1", "cpu", "--workers", "1", "--load", "10", "--duration", "3")
        burner = fault["targets"][0]["pid"]
        # The burner is a noisy neighbour 10 nice levels below the cell it stresses.
        wait_for(lambda: _autogroup_nice(burner) == min(19, expected + 10), 5.0,
                 "the burner's session at its own priority")
    finally:
        box.cli("sandbox", "down")


def test_revert_is_idempotent_and_removes_the_toxic_at_once(shared_sandbox):
    box = shared_sandbox
    fault = box.fault("cell-1", "latency", "--ms", "300", "--duration", "60")
    assert box.cell()["proxy"]["toxic"]["fault_id"] == fault["fault_id"]
    first = box.cli("sandbox", "revert", "cell-1", fault["fault_id"], check=True)
    assert json.loads(first.stdout)["reason"] == "reverted"
    assert box.cell()["proxy"]["toxic"] is None
    second = box.cli("sandbox", "revert", "cell-1", fault["fault_id"], check=True)
    assert json.loads(second.stdout)["reverted_utc"] == json.loads(first.stdout)["reverted_utc"]
    removed = [e for e in box.events() if e["event"] == "toxic_removed"
               and e["fault_id"] == fault["fault_id"]]
    assert [e["reason"] for e in removed] == ["reverted"]
    unknown = box.cli("sandbox", "revert", "cell-1", "latency-nosuch")
    assert unknown.returncode == 2 and "FAULT_ID" in unknown.stderr
