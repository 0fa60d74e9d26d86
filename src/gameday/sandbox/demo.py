"""The sandbox demo: bring a cell up, break it once with each fault kind, measure, tear down."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gameday.errors import SandboxError
from gameday.sandbox import manager
from gameday.sandbox.events import read_events
from gameday.sandbox.ground_truth import FaultRecovery, injections, recovery_of
from gameday.sandbox.postgres import PgCredentials
from gameday.sandbox.state import SandboxLayout, read_json
from gameday.sandbox.workload import WriteLedger, first_ack_after, missing_acknowledged

# (kind, params): the seed's weekly rotation, each fault kind once.
DEMO_FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("kill-replica", {"count": 1}),
    ("latency", {"ms": 200, "duration": 4}),
    ("cpu", {"workers": 1, "load": 80, "duration": 4}),
    ("kill-primary", {}),
]
RECOVERY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class FaultOutcome:
    recovery: FaultRecovery
    writes: int
    errors: int
    writes_back_s: float | None  # injection -> first acknowledged write sent after it


@dataclass(frozen=True)
class DemoResult:
    outcomes: list[FaultOutcome]
    acknowledged: int
    lost: list[int]


def wait_recovered(layout: SandboxLayout, cell: str, fault_id: str,
                   timeout_s: float = RECOVERY_TIMEOUT_S) -> FaultRecovery:
    deadline = time.monotonic() + timeout_s
    while True:
        events = read_events(layout.events_file, cell)
        injected = next(e for e in injections(events) if e["fault_id"] == fault_id)
        recovery = recovery_of(injected, events)
        if recovery.complete:
            return recovery
        if time.monotonic() > deadline:
            raise SandboxError(f"{fault_id} did not recover within {timeout_s:.0f} s: "
                               f"{recovery.detail}")
        time.sleep(0.1)


def run_demo(state_dir: Path, progress: manager.Progress) -> DemoResult:
    layout = SandboxLayout(state_dir.resolve())
    manager.sandbox_up(state_dir, cells=1, replicas=3, progress=progress)
    try:
        cell = "cell-1"
        state = layout.read_cell_state(cell)
        assert state is not None
        outcomes: list[FaultOutcome] = []
        with WriteLedger(state["url"]) as ledger:
            time.sleep(1.0)
            for kind, params in DEMO_FAULTS:
                before = len(ledger.attempts)
                record = manager.inject_fault(state_dir, cell, kind, params)
                progress(f"{cell}: injected {kind} {json.dumps(params)} as {record['id']}")
                recovery = wait_recovered(layout, cell, record["id"])
                time.sleep(1.0)
                window = ledger.attempts[before:]
                first = first_ack_after(window, recovery.injected_monotonic)
                outcomes.append(FaultOutcome(
                    recovery, len(window), sum(1 for a in window if a.status != 201),
                    None if first is None
                    else round(first.done_monotonic - recovery.injected_monotonic, 3)))
                progress(f"{cell}: {kind} recovered after {recovery.recovered_s} s")
        creds = PgCredentials(**read_json(layout.secrets_file)["database"])
        primary = next(n for n in manager.sandbox_status(state_dir)["cells"][0]["database"]
                       if n["role"] == "primary")
        acked = [a.seq for a in ledger.acknowledged]
        lost = missing_acknowledged(primary["port"], creds, ledger.tag, acked)
        return DemoResult(outcomes, len(acked), lost)
    finally:
        manager.sandbox_down(state_dir)
