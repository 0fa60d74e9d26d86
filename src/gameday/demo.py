"""The main job on the embedded default: a sandbox of two cells and the scheduler's four-week
rotation compressed into minutes: each "week" a short chaos window (one cell at a time, every
gate evaluated before every run), each run measured from outside and checked against the
sandbox's own ground truth; then the sandbox taken down and the window reports and the
resilience report rendered."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from gameday.config.schedule import Schedule, load_schedule
from gameday.engine.runner import ProgressSink
from gameday.model import RunRecord
from gameday.reporting.links import store_builder
from gameday.reporting.render import write_report
from gameday.reporting.reports import default_folder, resilience_report
from gameday.sandbox import manager
from gameday.scheduler.notify import Notifier
from gameday.scheduler.outlook import schedule_outlook
from gameday.scheduler.plan import PlannedWindow
from gameday.scheduler.window import WindowRunner
from gameday.store import Store, resolve_store_url

ROTATION = ("pod-kill", "latency", "cpu-stress", "db-failover")
CELLS = ("cell-1", "cell-2")
# A compressed week's window: room for two cells' runs (about 30 s each), with a margin.
WINDOW = timedelta(minutes=4)


@dataclass(frozen=True)
class DemoRun:
    week: int
    record: RunRecord


@dataclass(frozen=True)
class DemoResult:
    runs: list[DemoRun]
    window_ids: list[str]
    reports: list[Path] = field(default_factory=list)  # index.html of each rendered report


def write_demo_cells(state_dir: Path) -> Path:
    """A cells file for the demo's own sandbox, with the seeds' objectives."""
    path = state_dir / "cells.yaml"
    cells = [{"name": name, "target": "local", "environment": "sandbox", "tier": tier,
              "tenants": tenants,
              "local": {"state_dir": str(state_dir.resolve()), "sandbox_cell": name},
              "slo": {"availability": 99.95, "p95_latency_ms": 250},
              "dr": {"rto_s": 900, "rpo_s": 60 if tier == 1 else 300}}
             for name, tier, tenants in (("cell-1", 1, ["acme-bank", "globex-payments"]),
                                         ("cell-2", 2, ["initech-bank"]))][:len(CELLS)]
    path.write_text(yaml.safe_dump({"schema_version": 1, "cells": cells}), encoding="utf-8")
    return path


def write_demo_schedule(state_dir: Path, experiments: Path, cells_file: Path) -> Path:
    """The weekly schedule of the seeds, for the demo's cells; cell-2 (tier 2, no standby
    worth failing over in the story) is excluded from database failover, which shows a skip."""
    path = state_dir / "schedule.yaml"
    doc = {
        "schema_version": 1, "name": "demo-rotation", "timezone": "UTC",
        "windows": [{"days": ["saturday"], "start": "02:00", "duration_minutes": 120}],
        "rotation": {"by": "week_of_month", "weeks": dict(enumerate(ROTATION, start=1))},
        "experiments": {kind: str((experiments / f"{kind}.yaml").resolve()) for kind in ROTATION},
        "cells": {"file": str(cells_file.resolve()), "order": list(CELLS),
                  "exclude": {"cell-2": ["db-failover"]}, "min_interval_hours": 0},
        "freezes": [],
        "gates": {"error_budget": {"max_consumed_pct": 80, "period_days": 30}},
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def compressed_week(name: str, week: int, experiment: str | None, now: datetime) -> PlannedWindow:
    return PlannedWindow(window_id=f"{name}-week{week}-{now:%Y%m%dT%H%M%SZ}", start_utc=now,
                         end_utc=now + WINDOW, start_local=now, timezone="UTC",
                         week_of_month=week, experiment=experiment)


def run_demo(state_dir: Path, experiments: Path, store_url: str | None,
             say: Callable[[str], None], progress: ProgressSink,
             stop: threading.Event, reports_dir: Path | None = None) -> DemoResult:
    manager.sandbox_up(state_dir, cells=len(CELLS), replicas=3, progress=say)
    url = resolve_store_url(store_url)
    runs: list[DemoRun] = []
    window_ids: list[str] = []
    reports: list[Path] = []
    try:
        schedule = load_schedule(write_demo_schedule(state_dir, experiments,
                                                     write_demo_cells(state_dir)))
        runner = WindowRunner(schedule, url, stop, Notifier(None), say, progress, reports_dir)
        for week in range(1, len(ROTATION) + 1):
            if stop.is_set():
                break
            planned = compressed_week(schedule.name, week, schedule.rotation.weeks.get(week),
                                      datetime.now(UTC))
            say(f"week {week}: {planned.experiment}, one cell at a time")
            outcome = runner.run(planned)
            if outcome is None:
                continue
            window_ids.append(planned.window_id)
            if outcome.report is not None:
                reports.append(outcome.report)
            for record in outcome.runs:
                runs.append(DemoRun(week, record))
                say(f"{record.kind} on {record.cell}: {record.verdict} ({record.reason})")
    finally:
        manager.sandbox_down(state_dir)
    reports.append(render_resilience(url, reports_dir, schedule))
    return DemoResult(runs, window_ids, reports)


def render_resilience(store_url: str, reports_dir: Path | None,
                      schedule: Schedule | None = None) -> Path:
    """The resilience report over the last 90 days, its coverage from ``schedule``'s plan."""
    now = datetime.now(UTC)
    folder = default_folder("resilience", f"{now:%Y-%m-%d}", reports_dir)
    outlook = None if schedule is None else schedule_outlook(schedule, now)
    with Store.open(store_url) as store:
        context = resilience_report(store, now, now - timedelta(days=90), outlook=outlook)
        return write_report(context, folder, related=store_builder(store, now)).html
