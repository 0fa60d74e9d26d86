"""SIGTERM is honoured within a second in every phase of a run: nothing stays injected, the run
is still recorded, and the process does not linger.

(The injecting phase of a sustained fault is covered in test_engine.py: the toxic is gone
within a second of the signal.)
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from gameday.store import Store
from helpers import ROOT, Sandbox, wait_for

pytestmark = pytest.mark.integration

EXPERIMENTS = ROOT / "experiments" / "local"


def _lines(stream: IO[str], out: queue.Queue[str]) -> None:
    for line in stream:
        out.put(line)


def _cells(path: Path, box: Sandbox) -> Path:
    path.write_text(yaml.safe_dump({"schema_version": 1, "cells": [{
        "name": "cell-1", "target": "local",
        "local": {"state_dir": str(box.state_dir), "sandbox_cell": "cell-1"}}]}))
    return path


# phase -> (the progress line to wait for, then how long to wait, extra flags). The first
# baseline line comes about 1 s into the baseline: 0.6 s later a 1.5 s baseline has ended and
# the worker is starting (importing chaoslib takes it about a second).
PHASES: dict[str, tuple[str, float, tuple[str, ...]]] = {
    "baseline": ("baseline", 0.0, ("--baseline", "30")),
    "worker-starting": ("baseline", 0.6, ("--baseline", "1.5")),
    "recovering": ("recovering", 0.0, ("--baseline", "0.5", "--stability-window", "30")),
}


@pytest.mark.parametrize("phase", sorted(PHASES))
def test_sigterm_in_each_phase_stops_within_a_second(shared_sandbox: Sandbox, tmp_path: Path,
                                                     phase: str) -> None:
    marker, delay, flags = PHASES[phase]
    store_url = f"sqlite:///{tmp_path / 'gameday.db'}"
    wait_for(lambda: all(r["ready"] for r in shared_sandbox.cell()["replicas"]), 60,
             "every replica ready")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gameday", "run", str(EXPERIMENTS / "pod-kill.yaml"), "--cell",
         "cell-1", "--cells-file", str(_cells(tmp_path / "cells.yaml", shared_sandbox)),
         "--store", store_url, "--json", *flags],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stderr, lines), daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while not any(line.startswith(marker) for line in seen):
        assert time.monotonic() < deadline, f"never reached {marker}: {seen}"
        try:
            seen.append(lines.get(timeout=1))
        except queue.Empty:
            assert proc.poll() is None, f"exited before {marker}: {seen}"
    time.sleep(delay)
    signalled, signalled_utc = time.monotonic(), datetime.now(UTC)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    took = time.monotonic() - signalled
    assert proc.stdout is not None
    stdout = proc.stdout.read()
    assert proc.returncode == 1, stdout
    out: dict[str, Any] = json.loads(stdout)
    assert out["verdict"] == "aborted" and out["reason"] == "operator: interrupted", out
    # Halted and reverted within a second; the process, with the worker's chaoslib rollback
    # and the run stored, gone within three.
    assert took < 3.0, f"the run took {took:.2f} s to stop"
    with Store.open(store_url) as store:
        faults = store.ledger_for_run(out["run_id"])
        record = store.get_run(out["run_id"])
        assert record is not None and record.status == "completed"
        assert record.ended_utc is not None and record.ended_utc >= record.started_utc
        for fault in faults:
            assert fault.state == "reverted" and fault.reverted_utc is not None
            assert (fault.reverted_utc - signalled_utc).total_seconds() < 1.0
    if phase == "recovering":
        assert faults, "the kill was in the ledger"
