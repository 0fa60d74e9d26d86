"""The main job on the embedded default: a sandbox cell, the four experiments of the weekly
rotation run through the engine in one chaos window, each measured from outside and checked
against the sandbox's own ground truth, the sandbox taken down, then the window report and the
resilience report rendered."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from gameday.engine.runner import ProgressSink, RunRequest, run_experiment
from gameday.engine.windows import close_window, open_window
from gameday.model import RunRecord
from gameday.reporting.render import write_report
from gameday.reporting.reports import default_folder, resilience_report, window_report
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


@dataclass(frozen=True)
class DemoResult:
    runs: list[DemoRun]
    window_id: str
    reports: list[Path] = field(default_factory=list)  # index.html of each rendered report


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
             stop: threading.Event, reports_dir: Path | None = None) -> DemoResult:
    manager.sandbox_up(state_dir, cells=1, replicas=3, progress=say)
    cells_file = write_demo_cells(state_dir)
    layout = SandboxLayout(state_dir.resolve())
    url = resolve_store_url(store_url)
    with Store.open(url) as store:
        window = open_window(store, "demo rotation", datetime.now(UTC), timedelta(minutes=30),
                             detail={"cells": ["cell-1"], "experiments": list(ROTATION)})
    runs: list[DemoRun] = []
    try:
        for kind in ROTATION:
            if stop.is_set():
                break
            say(f"running {kind} against cell-1")
            record = run_experiment(RunRequest(experiments / f"{kind}.yaml", cell="cell-1",
                                               cells_file=cells_file, store_url=url,
                                               window_id=window.window_id),
                                    progress, stop)
            with Store.open(url) as store:
                faults = store.ledger_for_run(record.run_id)
            truth = service_restored_s(read_events(layout.events_file, "cell-1"),
                                       faults[0].fault_id) if faults else None
            runs.append(DemoRun(record, truth))
            say(f"{kind}: {record.verdict} ({record.reason})")
    finally:
        manager.sandbox_down(state_dir)
        with Store.open(url) as store:
            close_window(store, window.window_id, datetime.now(UTC))
    return DemoResult(runs, window.window_id, render_demo_reports(url, window.window_id,
                                                                  reports_dir))


def render_demo_reports(store_url: str, window_id: str, reports_dir: Path | None) -> list[Path]:
    """The window's report and the resilience report over the last 90 days."""
    now = datetime.now(UTC)
    with Store.open(store_url) as store:
        contexts = [(window_report(store, window_id, now), default_folder("window", window_id)),
                    (resilience_report(store, now, now - timedelta(days=90)),
                     default_folder("resilience", f"{now:%Y-%m-%d}"))]
    paths = []
    for context, folder in contexts:
        target = folder if reports_dir is None else reports_dir / folder.name
        paths.append(write_report(context, target).html)
    return paths
