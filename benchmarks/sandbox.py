"""Sandbox benchmark: medians over 5 trials (a script that prints figures, not a timed test).

    sandbox up                  `gameday sandbox up` for one cell, until every part is ready
    replica kill -> ready       SIGKILL of a replica -> its successor is back in rotation
    primary kill -> write       SIGKILL of the primary -> first acknowledged write sent after it
    acknowledged rows lost      after the failover, with a client writing every 5 ms

Peer, measured in the same run: the same PostgreSQL killed and restarted in place (crash
recovery, no standby): what a cell without failover would give.

    .venv/bin/python benchmarks/sandbox.py [--trials 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from gameday.sandbox import manager, postgres
from gameday.sandbox.events import read_events
from gameday.sandbox.ground_truth import FaultRecovery, injections, recovery_of
from gameday.sandbox.replicas import free_port
from gameday.sandbox.state import SandboxLayout, read_json
from gameday.sandbox.workload import WriteLedger, first_ack_after, missing_acknowledged


def wait_recovered(layout: SandboxLayout, cell: str, fault_id: str,
                   timeout_s: float = 60.0) -> FaultRecovery:
    """Poll the ground-truth events until the fault's recovery is complete."""
    deadline = time.monotonic() + timeout_s
    while True:
        events = read_events(layout.events_file, cell)
        injected = next(e for e in injections(events) if e["fault_id"] == fault_id)
        recovery = recovery_of(injected, events)
        if recovery.complete:
            return recovery
        if time.monotonic() > deadline:
            raise SystemExit(f"{fault_id} did not recover within {timeout_s:.0f} s")
        time.sleep(0.1)


def one_trial(work: Path) -> dict[str, float]:
    state_dir = work / "sandbox"
    started = time.monotonic()
    manager.sandbox_up(state_dir, cells=1, replicas=3)
    up_s = time.monotonic() - started
    layout = SandboxLayout(state_dir.resolve())
    try:
        cell = layout.read_cell_state("cell-1")
        assert cell is not None
        kill = manager.inject_fault(state_dir, "cell-1", "kill-replica", {"count": 1})
        replica_s = wait_recovered(layout, "cell-1", kill["id"]).recovered_s
        with WriteLedger(cell["url"], interval_s=0.005) as ledger:
            time.sleep(1.0)
            fault = manager.inject_fault(state_dir, "cell-1", "kill-primary", {})
            recovery = wait_recovered(layout, "cell-1", fault["id"])
            time.sleep(1.0)
        first = first_ack_after(ledger.attempts, recovery.injected_monotonic)
        assert first is not None, "no write was accepted after the failover"
        creds = postgres.PgCredentials(**read_json(layout.secrets_file)["database"])
        primary = next(n for n in manager.sandbox_status(state_dir)["cells"][0]["database"]
                       if n["role"] == "primary")
        lost = missing_acknowledged(primary["port"], creds, ledger.tag,
                                    [a.seq for a in ledger.acknowledged])
    finally:
        manager.sandbox_down(state_dir)
    return {"up_s": up_s, "replica_kill_to_ready_s": float(replica_s or 0.0),
            "primary_kill_to_write_s": first.done_monotonic - recovery.injected_monotonic,
            "acked_rows_lost": float(len(lost))}


def peer_restart_in_place(work: Path) -> float:
    """SIGKILL a lone primary and restart it: seconds from the kill to the first write."""
    bins, run_as = postgres.find_pg_binaries(), postgres.pg_run_as()
    root = postgres.pg_data_root(work, run_as)
    creds = postgres.new_credentials()
    port = free_port()
    data = root / "peer"
    postgres.init_primary(bins, data, port, creds, run_as)
    proc = postgres.start_node(bins, data, work / "peer.log", run_as)
    try:
        postgres.wait_ready(port, creds, 30, dbname="postgres")
        # The peer has no standby: commits must not wait for one.
        postgres.set_synchronous_standbys(port, creds, "")
        postgres.bootstrap_schema(port, creds)
        postgres.kill_node_processes(proc.pid)  # the whole node, as kill-primary does
        killed = time.monotonic()
        proc.wait()
        proc = postgres.start_node(bins, data, work / "peer.log", run_as)
        while True:
            try:
                with psycopg.connect(creds.dsn(port, dbname=creds.database), autocommit=True,
                                     connect_timeout=1) as conn:
                    conn.execute("INSERT INTO payments (amount_cents) VALUES (1)")
                return time.monotonic() - killed
            except psycopg.OperationalError:
                time.sleep(0.005)
    finally:
        postgres.stop_node(proc)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    trials, peers = [], []
    for i in range(args.trials):
        with tempfile.TemporaryDirectory(prefix="gameday-bench-") as tmp:
            trials.append(one_trial(Path(tmp)))
            peers.append(peer_restart_in_place(Path(tmp)))
        print(f"trial {i + 1}: {json.dumps({k: round(v, 3) for k, v in trials[-1].items()})} "
              f"peer_restart_to_write_s={peers[-1]:.3f}", file=sys.stderr)
    medians = {k: statistics.median(t[k] for t in trials) for k in trials[0]}
    peer = statistics.median(peers)
    print(f"medians over {args.trials} trials")
    print(f"  sandbox up (1 cell, 3 replicas)     {medians['up_s']:.2f} s")
    print(f"  replica kill -> back in rotation    {medians['replica_kill_to_ready_s']:.3f} s")
    print(f"  primary kill -> first write         {medians['primary_kill_to_write_s']:.3f} s")
    print(f"  acknowledged rows lost              {medians['acked_rows_lost']:.0f} "
          f"(max {max(t['acked_rows_lost'] for t in trials):.0f})")
    print(f"  peer: restart primary in place      {peer:.3f} s "
          f"(failover / restart = {medians['primary_kill_to_write_s'] / peer:.2f})")


if __name__ == "__main__":
    main()
