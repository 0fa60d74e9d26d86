"""The resilience report end to end: runs in a real store, `gameday report resilience
--schedule FILE` as a subprocess, and what its first screen (everything before the charts) says:
the evidence's environment, the gaps in coverage (an excluded kind, a never-tested kind), MTTR
over runs with impact only beside "k of n runs had no user-visible impact"."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from gameday.model import CellObjectives, CriterionResult, RunRecord
from gameday.store import Store
from helpers import ROOT, assert_html_shows_report_json, run_cli

pytestmark = pytest.mark.integration

TIER1 = CellObjectives(tier=1, tenants=("acme-bank",), availability_slo=99.95,
                       p95_latency_slo_ms=250.0, rto_s=900.0, rpo_s=60.0)
KINDS = ("pod-kill", "latency", "cpu-stress", "db-failover")


def v2_run(run_id: str, cell: str, kind: str, started: datetime, verdict: str = "passed",
           reason: str = "every criterion met", **figures: Any) -> RunRecord:
    return RunRecord(run_id=run_id, experiment=f"{kind} experiment", experiment_path="x.yaml",
                     kind=kind, cell=cell, target="local", started_utc=started, status="completed",
                     ended_utc=started + timedelta(seconds=30),
                     verdict=verdict,  # type: ignore[arg-type]
                     reason=reason, figures={"figures_version": 2, "downtime_s": 0.0, **figures},
                     criteria=[CriterionResult("full recovery within 1 minute", "recovery_s <= 60",
                                               "no impact seen", True)],
                     objectives=TIER1, environment="sandbox")


def store_with_gaps(url: str, now: datetime) -> None:
    """cell-1 ran every kind; cell-2 never ran cpu-stress and is excluded from db-failover."""
    day = timedelta(days=1)
    runs = [v2_run("c1-pk", "cell-1", "pod-kill", now - 1 * day, impact="none", restore_s=0.87),
            v2_run("c1-lat", "cell-1", "latency", now - 2 * day, impact="seen", recovery_s=0.025,
                   impact_s=10.0),
            v2_run("c1-cpu", "cell-1", "cpu-stress", now - 3 * day, impact="none", scale_out_s=21.0),
            v2_run("c1-db", "cell-1", "db-failover", now - 4 * day, impact="seen", recovery_s=0.12,
                   rto_s=0.1, rpo_rows=0, rpo_s=0.0),
            v2_run("c2-pk", "cell-2", "pod-kill", now - 5 * day, impact="none", restore_s=0.9),
            v2_run("c2-lat", "cell-2", "latency", now - 6 * day, impact="seen", recovery_s=0.03),
            v2_run("c2-db-skip", "cell-2", "db-failover", now - 4 * day, verdict="skipped",
                   reason="excluded: cell-2 never runs db-failover")]
    with Store.open(url) as store:
        for run in runs:
            store.create_run(run)


def write_schedule(path: Path) -> Path:
    doc = {"schema_version": 1, "name": "weekly-chaos", "timezone": "UTC",
           "windows": [{"days": ["saturday"], "start": "02:00", "duration_minutes": 120}],
           "rotation": {"by": "week_of_month", "weeks": dict(enumerate(KINDS, start=1))},
           "experiments": {k: str(ROOT / "experiments" / "local" / f"{k}.yaml") for k in KINDS},
           "cells": {"file": str(ROOT / "schedules" / "cells.yaml"), "order": ["cell-1", "cell-2"],
                     "exclude": {"cell-2": ["db-failover"]}, "min_interval_hours": 24},
           "freezes": [], "gates": {"error_budget": {"max_consumed_pct": 80, "period_days": 30}}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def first_screen(index: Path) -> str:
    """The report's text before its charts, tags stripped."""
    page = index.read_text(encoding="utf-8")
    head = page.split("<h2>Charts</h2>", 1)[0]
    head = re.sub(r"<style>.*?</style>", " ", head, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", head)).split())


def test_the_first_screen_says_excluded_never_tested_and_where_the_evidence_came_from(
        tmp_path: Path) -> None:
    now = datetime.now(UTC)
    url = f"sqlite:///{tmp_path / 'gameday.db'}"
    store_with_gaps(url, now)
    out = tmp_path / "res"
    result = run_cli("report", "resilience", "--store", url, "--out", str(out),
                     "--schedule", str(write_schedule(tmp_path / "schedule.yaml")))
    assert result.returncode == 0, result.stderr
    data = assert_html_shows_report_json(out)
    screen = first_screen(out / "index.html")
    # the evidence's environment, in the header and beside the fleet figures
    assert "Evidence: a local sandbox" in screen and "not how production does" in screen
    assert "Mean time to recover sandbox" in screen
    # both gaps, by name
    assert re.search(r"cell-2 cpu-stress never tested", screen), screen
    assert re.search(r"cell-2 db-failover excluded .*never: excluded by the schedule", screen), screen
    assert "1 never tested" in screen and "1 excluded" in screen
    # no claim about experiments that never ran
    assert "every experiment" not in screen
    assert "recovered within objectives" not in screen
    # MTTR over the 3 runs with impact, beside k of n; never "0.00 s" for no impact
    overall = data["mttr"]["overall"]
    assert (overall["runs"], overall["no_impact"], overall["evidence"]) == (3, 3, 6)
    assert overall["mean_s"] == pytest.approx((0.025 + 0.12 + 0.03) / 3)
    assert "3 of 6 runs had no user-visible impact" in screen
    assert "not incident MTTR" in screen
    assert "0.00 s" not in screen
    # the schedule's next run is shown for a tested pair
    pk = next(k for row in data["coverage"]["cells"] if row["cell"] == "cell-1"
              for k in row["kinds"] if k["kind"] == "pod-kill")
    assert pk["outlook"].startswith("next ") or pk["outlook"].startswith("blocked")
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "every experiment" not in markdown and "3 of 6 runs had no user-visible impact" in markdown


def test_a_bad_schedule_is_exit_2_and_nothing_is_written(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gameday.db'}"
    store_with_gaps(url, datetime.now(UTC))
    bad = tmp_path / "schedule.yaml"
    bad.write_text("schema_version: 1\nname: Not Valid\n", encoding="utf-8")
    out = tmp_path / "res"
    for schedule in (bad, tmp_path / "missing.yaml"):
        result = run_cli("report", "resilience", "--store", url, "--out", str(out),
                         "--schedule", str(schedule))
        assert result.returncode == 2, result.stderr
        assert "expected" in result.stderr and "fix:" in result.stderr
        assert not out.exists()
