"""The main job on the embedded default: a sandbox cell, the four experiments of the weekly
rotation run through the engine, each measured from outside and checked against the sandbox's
own ground truth, then the sandbox taken down."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from gameday.engine.runner import ProgressSink, RunRequest, run_experiment
from gameday.model import RunRecord
from gameday.sandbox import manager
from gameday.sandbox.events import read_events
from gameday.sandbox.ground_truth import service_restored_s
from gameday.sandbox.state import SandboxLayout
from gameday.store import Store, resolve_store_url

ROTATION = ("pod-kill", "latency", "cpu-stress", "db-failover")


@dataclass(frozen=True)
class DemoRun:
    record: RunRecord
    ground_truth_s: float | None  # when the sandbox says the cause of impact was gone


def write_demo_cells(state_dir: Path) -> Path:
    """A cells file for the demo's own sandbox, with the seeds' objectives."""
    path = state_dir / "cells.yaml"
    cell = {"name": "cell-1", "target": "local", "tier": 1,
            "tenants": ["acme-bank", "globex-payments"],
            "local": {"state_dir": str(state_dir.resolve()), "sandbox_cell": "cell-1"},
            "slo": {"availability": 99.95, "p95_latency_ms": 250},
            "dr": {"rto_s": 900, "rpo_s": 60}}
    path.write_text(yaml.safe_dump({"schema_version": 1, "cells": [cell]}), encoding="utf-8")
    return path


def run_demo(state_dir: Path, experiments: Path, store_url: str | None,
             say: Callable[[str], None], progress: ProgressSink,
             stop: threading.Event) -> list[DemoRun]:
    manager.sandbox_up(state_dir, cells=1, replicas=3, progress=say)
    cells_file = write_demo_cells(state_dir)
    layout = SandboxLayout(state_dir.resolve())
    url = resolve_store_url(store_url)
    runs: list[DemoRun] = []
    try:
        for kind in ROTATION:
            if stop.is_set():
                break
            say(f"running {kind} against cell-1")
            record = run_experiment(RunRequest(experiments / f"{kind}.yaml", cell="cell-1",
                                               cells_file=cells_file, store_url=url),
                                    progress, stop)
            with Store.open(url) as store:
                faults = store.ledger_for_run(record.run_id)
            truth = service_restored_s(read_events(layout.events_file, "cell-1"),
                                       faults[0].fault_id) if faults else None
            runs.append(DemoRun(record, truth))
            say(f"{kind}: {record.verdict} ({record.reason})")
    finally:
        manager.sandbox_down(state_dir)
    return runs
