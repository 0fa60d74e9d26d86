"""The window report's data (pure): every run of one chaos window and every skipped cell."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gameday.analytics import fleet
from gameday.model import RunRecord, WindowRecord
from gameday.reporting.context import REPORT_SCHEMA_VERSION, _report


def _run_row(run: RunRecord) -> dict[str, Any]:
    f = run.figures
    return {"run_id": run.run_id, "cell": run.cell, "kind": run.kind,
            "experiment": run.experiment, "started_at": run.started_utc,
            "verdict": run.verdict or run.status, "reason": run.reason,
            "class": fleet.classify(run),
            "time_to_impact_s": f.get("time_to_impact_s"), "recovery_s": f.get("recovery_s"),
            "rto_s": f.get("rto_s"), "rpo_rows": f.get("rpo_rows"),
            "downtime_s": f.get("downtime_s")}


def build_window_report(window: WindowRecord, runs: Sequence[RunRecord],
                        now: datetime) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda r: (r.started_utc, r.run_id))
    executed = [r for r in ordered if r.verdict != "skipped"]
    skipped = [r for r in ordered if r.verdict == "skipped"]
    downtime = sum(float(r.figures.get("downtime_s") or 0.0) for r in executed)
    return _report({
        "schema_version": REPORT_SCHEMA_VERSION, "report": "window", "generated_at": now,
        "title": f"Chaos window {window.name}",
        "window": {"window_id": window.window_id, "name": window.name,
                   "started_at": window.started_utc, "planned_end_at": window.planned_end_utc,
                   "ended_at": window.ended_utc, "status": window.status,
                   "timezone": window.timezone, "detail": window.detail},
        "runs": [_run_row(r) for r in executed],
        "skipped": [{"cell": r.cell, "kind": r.kind, "started_at": r.started_utc,
                     "reason": r.reason, "run_id": r.run_id} for r in skipped],
        "figures": {"counts": fleet.summary_counts(ordered), "mttr": fleet.mttr(ordered),
                    "pass_rate": fleet.pass_rate(ordered), "downtime_s": downtime,
                    "cells": sorted({r.cell for r in ordered})},
        "findings": fleet.findings(ordered),
    })
