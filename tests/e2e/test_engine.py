"""`gameday run` end to end: a real sandbox cell, the worker process, real stores."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from gameday.engine.reconcile import reconcile
from gameday.store import Store
from helpers import ROOT, Sandbox, alive, assert_html_shows_report_json, run_cli, wait_for

pytestmark = pytest.mark.integration

EXPERIMENTS = ROOT / "experiments" / "local"


def write_cells(path: Path, sandbox_dir: Path, **extra: Any) -> Path:
    cell = {"name": "cell-1", "target": "local", "tier": 1, "tenants": ["acme-bank"],
            "local": {"state_dir": str(sandbox_dir), "sandbox_cell": "cell-1"}, **extra}
    path.write_text(yaml.safe_dump({"schema_version": 1, "cells": [cell]}))
    return path


class Runs:
    """`gameday run` against one sandbox cell, with its own cells file and store."""

    def __init__(self, box: Sandbox, work: Path, store_url: str, **cell_extra: Any) -> None:
        self.box = box
        self.cells = write_cells(work / "cells.yaml", box.state_dir, **cell_extra)
        self.store_url = store_url

    def args(self, experiment: Path | str, *extra: str) -> list[str]:
        # A short error-rate span keeps runs short; tests about the span pass their own.
        span = () if "--error-span" in extra or "--own-settings" in extra else (
            "--error-span", "3")
        extra = tuple(e for e in extra if e != "--own-settings")
        return ["run", str(experiment), "--cell", "cell-1", "--cells-file", str(self.cells),
                "--store", self.store_url, "--json", *span, *extra]

    def run(self, experiment: Path | str, *extra: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*self.args(experiment, *extra), timeout=240)

    def store(self) -> Store:
        return Store.open(self.store_url)


@pytest.fixture(scope="module")
def cell(tmp_path_factory: pytest.TempPathFactory) -> Any:
    box = Sandbox(tmp_path_factory.mktemp("engine-sandbox"))
    box.cli("sandbox", "up", "--quiet", check=True)
    yield box
    box.cli("sandbox", "down")


@pytest.fixture
def runs(cell: Sandbox, tmp_path: Path, postgres_server: Any) -> Runs:
    return Runs(cell, tmp_path, postgres_server.new_database_url())


def first(events: list[dict[str, Any]], name: str, **match: Any) -> dict[str, Any]:
    return next(e for e in events if e["event"] == name
                and all(e.get(k) == v for k, v in match.items()))


# The failover's figures against the sandbox's own events, read here from its event file (not
# through the target), with the experiment's own settings, on a PostgreSQL store; the demo's
# test checks all four kinds the same way, on two cells on SQLite.
def test_experiment_passes_and_agrees_with_ground_truth(runs: Runs) -> None:
    wait_for(lambda: (c := runs.box.cell())["failover"]["ready"]
             and all(r["ready"] for r in c["replicas"]), 60, "a whole cell")
    result = runs.run(EXPERIMENTS / "db-failover.yaml", "--own-settings")
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout)
    assert out["verdict"] == "passed" and out["kind"] == "db-failover" and out["cell"] == "cell-1"
    assert out["environment"] == "sandbox" and out["samples"] > 50
    assert all(c["ok"] for c in out["criteria"]), out["criteria"]
    with runs.store() as store:
        faults = store.ledger_for_run(out["run_id"])
        stored = store.get_run(out["run_id"])
        samples = store.samples(out["run_id"])
        target_events = [e for e in store.events(out["run_id"]) if e.source == "sandbox"]
    assert len(faults) == 1 and faults[0].reverted_utc is not None
    assert stored is not None and stored.journal is not None and stored.status == "completed"
    assert len(samples) == out["samples"] and target_events  # drawn on the run's timeline
    f = stored.figures
    assert f["figures_version"] == 2 and f["observed_by"] == "sandbox"
    events = runs.box.events()
    injected = first(events, "fault_injected", fault_id=faults[0].fault_id)
    lost, promoted = first(events, "primary_lost"), first(events, "standby_promoted")
    assert lost["monotonic"] >= injected["monotonic"] - 0.5
    assert abs(f["failover_s"] - (promoted["monotonic"] - lost["monotonic"])) <= 0.2, f
    assert out["rpo_rows"] == 0 and out["rpo_s"] == 0
    assert out["rto_s"] is not None and out["rto_s"] < 5
    assert f["error_span_s"] == 15.0  # the experiment's own span
    assert f["restore_s"] is not None  # the standby was rebuilt before the run ended


def test_a_cell_that_cannot_recover_is_not_recovered_and_still_stored(sandbox_factory,
                                                                      tmp_path: Path) -> None:
    box = sandbox_factory(cells=1, replicas=1)
    # No halt here: the point is the recovery timeout.
    runs = Runs(box, tmp_path, f"sqlite:///{tmp_path / 'gameday.db'}",
                halt={"error_rate_above": 1.0, "for_s": 600})
    stop = threading.Event()

    def keep_crashing() -> None:  # every new replica dies at once, like a crash loop
        def injected() -> bool:
            with runs.store() as store:
                return any(f.state == "applied" for f in store.ledger_all())

        while not stop.is_set() and not injected():  # the run's own kill comes first
            time.sleep(0.1)
        while not stop.is_set():
            for replica in box.cell()["replicas"]:
                if replica["pid"] and alive(replica["pid"]):
                    os.kill(replica["pid"], signal.SIGKILL)
            time.sleep(0.1)

    killer = threading.Thread(target=keep_crashing, daemon=True)
    killer.start()
    try:
        result = runs.run(EXPERIMENTS / "pod-kill.yaml", "--baseline", "1",
                          "--stability-window", "2", "--recovery-timeout", "4")
    finally:
        stop.set()
        killer.join()
    assert result.returncode == 1, result.stderr
    out = json.loads(result.stdout)
    assert out["verdict"] == "not_recovered" and out["recovery_s"] is None
    with runs.store() as store:
        stored = store.get_run(out["run_id"])
        assert stored is not None and stored.status == "completed"
        assert stored.figures["samples"] == out["samples"] > 20
        assert len(store.samples(out["run_id"])) == out["samples"]
        assert all(f.reverted_utc is not None for f in store.ledger_for_run(out["run_id"]))


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


def kill_trial(cell: Sandbox, runs: Runs, victim: str, kind: str, delay_s: float,
               recover_with_cli: bool) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gameday",
         *runs.args(EXPERIMENTS / f"{kind}.yaml", "--baseline", "0.5", "--stability-window", "1",
                   "--error-span", "1", "--recovery-timeout", "5")],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with runs.store() as store:
        applied = wait_for(lambda: [f for f in store.ledger_all()
                                    if f.state == "applied" and f.reverted_utc is None],
                           60, "a fault applied")
    fault = applied[0]
    time.sleep(delay_s)
    workers = children(proc.pid)
    assert workers, "the runner has no worker process"
    worker = workers[0]
    os.kill(worker if victim == "worker" else proc.pid, signal.SIGKILL)
    if victim == "worker":
        # The parent reverts at once and still records the run; it then watches the cell for
        # at most the recovery timeout (a loaded CI host can keep cpu-stress latency high).
        proc.wait(timeout=60)
    else:
        proc.wait(timeout=10)
        wait_for(lambda: not alive(worker), 20, "the orphaned worker's rollbacks")
    if recover_with_cli:
        recover = run_cli("recover", "--store", runs.store_url, "--json")
        assert recover.returncode == 0, recover.stderr
    else:  # what every gameday command does first, called directly to keep the test short
        with runs.store() as store:
            reconcile(store)
    assert cell.cell()["proxy"]["toxic"] is None, (victim, kind)
    burners = [t["pid"] for t in (fault.spec.get("applied") or {}).get("targets", [])
               if "cpu" in t]
    wait_for(lambda: not any(alive(p) for p in burners), 3, "burners gone")
    with runs.store() as store:
        assert [f.fault_id for f in store.ledger_unreverted()] == []
        run = store.get_run(fault.run_id or "")
        assert run is not None and run.status in ("completed", "interrupted")
        if victim == "worker":
            assert run.verdict == "aborted" and "worker_died" in (run.reason or "")


def test_kill_9_of_worker_or_parent_never_leaves_a_fault(cell: Sandbox, tmp_path: Path) -> None:
    runs = Runs(cell, tmp_path, f"sqlite:///{tmp_path / 'gameday.db'}")
    rng = random.Random(20261122)
    # 8 trials: each victim with each kind twice, at random points after the fault landed
    # (20 trials took 4-5 minutes of a loaded CI worker).
    for i in range(8):
        victim = "worker" if i % 2 == 0 else "parent"
        kind = "latency" if i % 4 < 2 else "cpu-stress"
        kill_trial(cell, runs, victim, kind, rng.uniform(0.0, 1.0), recover_with_cli=i % 5 == 0)


def bad(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def variant(tmp_path: Path, name: str, change: Any, kind: str = "latency") -> Path:
    doc = yaml.safe_load((EXPERIMENTS / f"{kind}.yaml").read_text())
    change(doc)
    return bad(tmp_path, name, yaml.safe_dump(doc))


def _set_args(doc: dict[str, Any], **args: Any) -> None:
    doc["method"][0]["provider"]["arguments"].update(args)


BAD_CASES = {
    "malformed-yaml": lambda p: bad(p, "x.yaml", "title: [unclosed\nmethod: {"),
    "malformed-json": lambda p: bad(p, "x.json", '{"title": "t", "method": [}'),
    "unknown-module": lambda p: variant(p, "m.yaml", lambda d: d["method"][0]["provider"].update(
        module="gameday.chaos.nosuchmodule")),
    "unknown-function": lambda p: variant(p, "f.yaml", lambda d: d["method"][0]["provider"].update(
        func="add_lag")),
    "two-cells": lambda p: variant(p, "c.yaml", lambda d: d["configuration"].update(
        gameday_cell=["cell-1", "cell-2"])),
    "empty-selector": lambda p: variant(p, "s.yaml", lambda d: d["method"].insert(0, {
        "type": "action", "name": "kill", "provider": {
            "type": "python", "module": "gameday.chaos.actions", "func": "kill_pods",
            "arguments": {"count": 1, "label_selector": ""}}})),
    "negative-duration": lambda p: variant(p, "n.yaml", lambda d: _set_args(d, duration_s=-5)),
}
EXPECTED_WHERE = {
    "malformed-yaml": "x.yaml:", "malformed-json": "x.json:", "unknown-module": "m.yaml",
    "unknown-function": "f.yaml", "two-cells": "configuration.gameday_cell",
    "empty-selector": "label_selector", "negative-duration": "duration_s",
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_experiment_exits_2_and_touches_nothing(cell: Sandbox, tmp_path: Path,
                                                   case: str) -> None:
    runs = Runs(cell, tmp_path, f"sqlite:///{tmp_path / 'gameday.db'}")
    since = time.monotonic()
    result = runs.run(BAD_CASES[case](tmp_path))
    assert result.returncode == 2, result.stdout + result.stderr
    message = result.stderr
    assert EXPECTED_WHERE[case] in message and "expected" in message and "found" in message
    assert "fix:" in message
    assert cell.touched_since(since) == []  # the sandbox saw nothing
    db = tmp_path / "gameday.db"
    if db.exists():
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM faults").fetchone() == (0,)


def test_missing_cell_exits_2(cell: Sandbox, tmp_path: Path) -> None:
    runs = Runs(cell, tmp_path, f"sqlite:///{tmp_path / 'gameday.db'}")
    result = run_cli("run", str(EXPERIMENTS / "latency.yaml"), "--cell", "cell-9",
                     "--cells-file", str(runs.cells), "--store", runs.store_url)
    assert result.returncode == 2
    assert "--cell" in result.stderr and "cell-9" in result.stderr and "fix:" in result.stderr


def test_secrets_never_reach_store_logs_or_stdout(cell: Sandbox, tmp_path: Path) -> None:
    experiment_secret, cell_secret = "exp-S3cr3t-9f2c", "cell-S3cr3t-77aa"
    doc = yaml.safe_load((EXPERIMENTS / "pod-kill.yaml").read_text())
    doc["secrets"] = {"gameday": {"api_token": experiment_secret}}
    doc["configuration"]["note"] = f"token is {cell_secret}"
    path = tmp_path / "secretive.yaml"
    path.write_text(yaml.safe_dump(doc))
    runs = Runs(cell, tmp_path, f"sqlite:///{tmp_path / 'gameday.db'}",
                secrets={"db_password": cell_secret})
    result = runs.run(path, "--baseline", "1", "--stability-window", "2")
    assert result.returncode in (0, 1), result.stderr  # the verdict does not matter here
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("gameday.db*"))
    logs = b"".join(p.read_bytes() for p in (ROOT / ".gameday" / "logs").glob("*.log"))
    for secret in (experiment_secret, cell_secret):
        assert secret not in result.stdout and secret not in result.stderr
        assert secret.encode() not in stored
        assert secret.encode() not in logs
    run_id = json.loads(result.stdout)["run_id"]
    with runs.store() as store:
        journal = store.get_run(run_id).journal  # type: ignore[union-attr]
    assert journal is not None and "***" in json.dumps(journal)
    out = tmp_path / "report"
    rendered = run_cli("report", "run", run_id, "--store", runs.store_url, "--out", str(out))
    assert rendered.returncode == 0, rendered.stderr
    written = b"".join(p.read_bytes() for p in out.iterdir())
    assert b"revert-every-fault" in written  # the journal is in the report, its secrets are not
    for secret in (experiment_secret, cell_secret):
        assert secret.encode() not in written


@pytest.mark.parametrize("name", ["pod-kill", "latency", "cpu-stress", "db-failover"])
def test_chaos_toolkit_cli_accepts_each_experiment(name: str) -> None:
    chaos = Path(sys.executable).parent / "chaos"
    result = subprocess.run([str(chaos), "--no-log-file", "validate",
                             str(EXPERIMENTS / f"{name}.yaml")],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "look valid" in result.stdout + result.stderr


def test_plain_chaos_run_injects_through_the_ledger_and_rolls_back(cell: Sandbox,
                                                                   tmp_path: Path) -> None:
    # The same experiment file under the Chaos Toolkit CLI: its fault still goes through our
    # one injection path (ledger first), into the store and cells file given as --var.
    cells = write_cells(tmp_path / "cells.yaml", cell.state_dir)
    store = f"sqlite:///{tmp_path / 'chaos.db'}"
    chaos = Path(sys.executable).parent / "chaos"
    result = subprocess.run([str(chaos), "--no-log-file", "run", "--journal-path",
                             str(tmp_path / "journal.json"), "--var",
                             f"gameday_cells_file={cells}", "--var", f"gameday_store={store}",
                             str(EXPERIMENTS / "pod-kill.yaml")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["status"] == "completed"
    fault_id = journal["run"][0]["output"]["fault_id"]
    with Store.open(store) as opened:
        (fault,) = opened.ledger_all()
    assert fault.fault_id == fault_id and fault.kind == "pod-kill"
    assert fault.reverted_utc is not None and fault.revert_reason == "rollback"
    assert any(e["event"] == "fault_injected" and e.get("fault_id") == fault_id
               for e in cell.events())


def quick_experiments(folder: Path) -> Path:
    """The shipped experiments with a 3 s stability window (10 s shipped): the demo's seven
    runs, each judged the same way, in a minute less of the suite."""
    folder.mkdir()
    for path in EXPERIMENTS.glob("*.yaml"):
        text = path.read_text()
        assert "stability_window_s: 10\n" in text, path
        (folder / path.name).write_text(text.replace("stability_window_s: 10\n",
                                                     "stability_window_s: 3\n"))
    return folder


def test_demo_runs_the_rotation_and_agrees_with_ground_truth(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'gameday.db'}"
    reports = tmp_path / "reports"
    result = run_cli("demo", "--state-dir", str(tmp_path / "demo"), "--store", store,
                     "--experiments", str(quick_experiments(tmp_path / "experiments")),
                     "--reports-dir", str(reports), timeout=600)
    # Four compressed weeks, two cells one at a time; cell-2 is excluded from failover. Every
    # run passes, but CPU stress may measure its cell's p95 above 2x normal when the suite's
    # other workers load the machine (2.44x seen on CI): a finding, not a fault of the demo.
    # Then that is its only missed criterion, and the demo says so and exits 1.
    loaded = [line for line in result.stderr.splitlines()
              if re.match(r"cpu-stress on cell-\d: failed \(missed: latency impact < 2x normal "
                          r"\([\d.]+\)\)$", line)]
    assert result.returncode == (1 if loaded else 0), result.stdout + result.stderr
    ran = [(cell, kind) for cell in ("cell-1", "cell-2")
           for kind in ("pod-kill", "latency", "cpu-stress", "db-failover")
           if (cell, kind) != ("cell-2", "db-failover")]
    for cell, kind in ran:
        loaded_here = any(line.startswith(f"{kind} on {cell}:") for line in loaded)
        assert f"{kind} on {cell}: passed" in result.stderr or loaded_here, result.stderr
    assert "db-failover on cell-2: skipped (excluded: cell-2 never runs db-failover)" \
        in result.stderr
    marker = json.loads((tmp_path / "demo" / "sandbox.json").read_text())
    assert marker["status"] == "down"
    # It ends with a report per window and the resilience report, their paths printed.
    printed = [Path(line.split("report: ", 1)[1].strip()) for line in result.stderr.splitlines()
               if line.startswith("report: ")]
    assert [p.parent.name.split("-")[0] for p in printed] == ["window"] * 4 + ["resilience"]
    windows = [assert_html_shows_report_json(p.parent) for p in printed[:4]]
    assert [sorted(r["cell"] for r in w["runs"]) for w in windows] == [
        ["cell-1", "cell-2"]] * 3 + [["cell-1"]]
    assert windows[3]["skipped"][0]["reason"] == "excluded: cell-2 never runs db-failover"
    resilience = assert_html_shows_report_json(printed[4].parent)
    assert resilience["pass_rate"]["overall"] == {
        "evidence": 7, "passed": 7 - len(loaded), "rate": pytest.approx((7 - len(loaded)) / 7)}
    events = [json.loads(line) for line in
              (tmp_path / "demo" / "events.jsonl").read_text().splitlines() if line]
    with Store.open(store) as opened:
        records = [r for r in opened.list_runs() if r.verdict != "skipped"]
        assert sorted(r.kind for r in records) == sorted(
            ["cpu-stress", "latency", "pod-kill"] * 2 + ["db-failover"])
        for record in records:
            fault = opened.ledger_for_run(record.run_id)[0]
            f = record.figures
            mine = [e for e in events if e.get("cell") in (None, record.cell)]
            injected = first(mine, "fault_injected", fault_id=fault.fault_id)
            assert record.environment == "sandbox" and f["impact"] in ("none", "seen")
            if f["impact"] == "none":  # never a recovery of 0 s
                assert f["recovery_s"] is None and f["impact_s"] is None
            else:
                assert f["recovery_s"] is not None and f["recovery_s"] <= 60, record
            t0 = injected["monotonic"]
            if record.kind == "pod-kill":  # restarted: the killed slot's new process is ready
                victim = injected["targets"][0]
                ready = next(e for e in mine if e["event"] == "replica_ready"
                             and e["monotonic"] > t0 and e["replica"] == victim["replica"]
                             and e["pid"] != victim["pid"])
                assert abs(f["restore_s"] - (ready["monotonic"] - t0)) <= 0.2, record
                assert f["affected_share"] == pytest.approx(1 / 3)
            if record.kind == "latency":
                removed = first(mine, "toxic_removed", fault_id=fault.fault_id)
                # the cause's end is the sandbox's own removal: the recovery is measured from it
                assert abs(f["t_cause_end"] - f["t_inject"]
                           - (removed["monotonic"] - t0)) <= 0.2, record
                # users were affected for about the fault's 10 s, and no longer than it took
                # the cell to come back once the latency was removed (well under 1 s on an
                # idle machine; the experiment's bound is 5 s)
                assert f["impact"] == "seen" and not f["adapted"]
                assert f["recovery_s"] < 5.0, record
                assert 9.0 < f["impact_s"] <= 10.5 + f["recovery_s"], record
            if record.kind == "cpu-stress":
                scaled = next(e for e in mine if e["event"] == "autoscaler_scaled"
                              and e["monotonic"] > t0 and e["to_replicas"] > e["from_replicas"])
                assert abs(f["scale_out_s"] - (scaled["monotonic"] - t0)) <= 0.2, record
                assert f["replica_crashes"] == 0
            if record.kind == "db-failover":
                lost, promoted = first(mine, "primary_lost"), first(mine, "standby_promoted")
                assert abs(f["failover_s"] - (promoted["monotonic"] - lost["monotonic"])) <= 0.2
            assert len(opened.samples(record.run_id)) == record.figures["samples"]


def slow_latency(tmp_path: Path, latency_ms: int) -> Path:
    return variant(tmp_path, "slow.yaml", lambda d: _set_args(d, latency_ms=latency_ms,
                                                              duration_s=60))


def test_halt_condition_reverts_within_a_second(cell: Sandbox, tmp_path: Path) -> None:
    # 3 s of latency against a 1 s probe timeout: every probe fails, the halt must trip.
    runs = Runs(cell, tmp_path, f"sqlite:///{tmp_path / 'gameday.db'}",
                probe={"timeout_s": 1.0}, halt={"error_rate_above": 0.5, "for_s": 1.0})
    result = runs.run(slow_latency(tmp_path, 3000), "--baseline", "1", "--stability-window", "1")
    assert result.returncode == 1, result.stderr
    out = json.loads(result.stdout)
    assert out["verdict"] == "aborted" and out["reason"].startswith("halt: error rate above")
    with runs.store() as store:
        events = store.events(out["run_id"])
        fault = store.ledger_for_run(out["run_id"])[0]
    halted = next(e for e in events if e.name == "halted")
    removed = next(e for e in events if e.source == "sandbox" and e.name == "toxic_removed")
    assert removed.detail["fault_id"] == fault.fault_id
    assert (removed.utc - halted.utc).total_seconds() < 1.0
    assert fault.reverted_utc is not None and cell.cell()["proxy"]["toxic"] is None


def test_sigterm_halts_reverts_and_still_records_the_run(cell: Sandbox, tmp_path: Path) -> None:
    runs = Runs(cell, tmp_path, f"sqlite:///{tmp_path / 'gameday.db'}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gameday", *runs.args(slow_latency(tmp_path, 300), "--baseline",
                                                      "1", "--stability-window", "1")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: cell.cell()["proxy"]["toxic"] is not None, 30, "the toxic")
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    wait_for(lambda: cell.cell()["proxy"]["toxic"] is None, 5, "the toxic's removal")
    assert time.monotonic() - signalled < 2.0  # observed, reverted, and seen through the CLI
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    out = json.loads(stdout)
    assert out["verdict"] == "aborted" and "operator" in out["reason"]
    with runs.store() as store:
        assert all(f.reverted_utc is not None for f in store.ledger_for_run(out["run_id"]))
