"""Reports end to end: runs in a real store, `gameday report` as a subprocess, the files it
writes parsed back, and a real browser rendering the HTML."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gameday.analytics import fleet
from gameday.model import CellObjectives, CriterionResult, RunEvent, RunRecord, Sample, WindowRecord
from gameday.reporting import links
from gameday.reporting.numbers import fmt
from gameday.reporting.render import render_json
from gameday.reporting.reports import run_report
from gameday.store import Store
from helpers import ROOT, assert_html_shows_report_json, run_cli

pytestmark = pytest.mark.integration

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
HOSTILE = (SCRIPT, IMG)
TIER1 = CellObjectives(tier=1, tenants=("acme-bank",), availability_slo=99.95,
                       p95_latency_slo_ms=250.0, rto_s=900.0, rpo_s=60.0)
TIER2 = CellObjectives(tier=2, tenants=("initech",), availability_slo=99.9,
                       p95_latency_slo_ms=250.0, rto_s=900.0, rpo_s=300.0)


def make_run(run_id: str, started: datetime, cell: str = "cell-a", kind: str = "pod-kill",
             verdict: str = "passed", reason: str = "every criterion met",
             objectives: CellObjectives | None = TIER1, window_id: str | None = None,
             criteria: list[CriterionResult] | None = None, **figures: Any) -> RunRecord:
    base = {"time_to_impact_s": 0.4, "recovery_s": 3.2, "peak_error_rate": 0.1,
            "error_rate_during_recovery": 0.004, "p95_ms_baseline": 5.0, "p95_ms_during": 9.0,
            "downtime_s": 0.6, "samples": 140, "t_inject": 3.0, "t_fault_end": 3.0}
    base.update(figures)
    return RunRecord(run_id=run_id, experiment=f"{kind} experiment", experiment_path="x.yaml",
                     kind=kind, cell=cell, target="local", started_utc=started,
                     status="completed", ended_utc=started + timedelta(seconds=30),
                     verdict=verdict,  # type: ignore[arg-type]
                     reason=reason, figures=base,
                     criteria=criteria or [CriterionResult("recovered within 1 minute",
                                                           "recovery_s <= 60", "3.2",
                                                           verdict == "passed")],
                     window_id=window_id, objectives=objectives)


def fleet_runs(now: datetime) -> list[RunRecord]:
    """Three cells, four kinds, a dozen weeks, every kind of verdict, and the previous period."""
    day = timedelta(days=1)
    runs = []
    for week in range(12):
        t = now - week * 7 * day - timedelta(hours=3)
        runs.append(make_run(f"a-pk-{week}", t, kind="pod-kill", recovery_s=2.0 + week))
        runs.append(make_run(f"b-lat-{week}", t + timedelta(minutes=20), cell="cell-b",
                             kind="latency", objectives=TIER2, recovery_s=11.0 + week / 2,
                             verdict="failed" if week % 3 == 0 else "passed"))
    runs += [
        make_run("a-db-lost", now - 2 * day, kind="db-failover", verdict="failed",
                 reason="missed: no data loss (RPO) (2)", rto_s=0.4, rpo_rows=2, rpo_s=0.3,
                 criteria=[CriterionResult("no data loss (RPO)", "rpo_rows <= 0", "2", False)]),
        make_run("a-db-slow", now - 20 * day, kind="db-failover", rto_s=1200.0, rpo_rows=0,
                 rpo_s=0.0),
        make_run("c-cpu-nr", now - 5 * day, cell="cell-c", kind="cpu-stress", objectives=TIER2,
                 verdict="not_recovered", reason="the cell did not recover within the recovery "
                 "timeout", recovery_s=None, downtime_s=45.0),
        make_run("c-halt", now - 6 * day, cell="cell-c", kind="latency", objectives=TIER2,
                 verdict="aborted", reason="halt: error rate above 50% for 5 s", recovery_s=None),
        make_run("c-operator", now - 6 * day, cell="cell-c", kind="pod-kill", objectives=TIER2,
                 verdict="aborted", reason="operator: interrupted"),
        make_run("c-skip", now - 7 * day, cell="cell-c", kind="db-failover", objectives=TIER2,
                 verdict="skipped", reason="freeze: market hours", recovery_s=None),
        # the previous period (the trend compares with it) and beyond
        make_run("old-1", now - 100 * day, kind="pod-kill", recovery_s=30.0),
        make_run("old-2", now - 170 * day, kind="pod-kill", verdict="failed", recovery_s=50.0),
        make_run("ancient", now - 400 * day, kind="pod-kill", recovery_s=99.0),
    ]
    return runs


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gameday.db'}"
    return str(request.getfixturevalue("postgres_server").new_database_url())


def report(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("report", *args, timeout=120)


def approx(value: Any) -> Any:
    return None if value is None else pytest.approx(value)


def test_resilience_numbers_equal_the_analytics(store_url: str, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    with Store.open(store_url) as store:
        for run in fleet_runs(now):
            store.create_run(run)
    out = tmp_path / "res"
    # Without the project's schedule: its cells would join the fleet (untested, scored 0).
    result = report("resilience", "--since", "90d", "--store", store_url, "--out", str(out),
                    "--no-schedule")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(out / n) for n in ("index.html", "report.md",
                                                            "report.json")]
    data = assert_html_shows_report_json(out)
    assert data["schema_version"] == 1 and data["report"] == "resilience"

    # The same numbers straight from the analytics functions, over the same stored runs.
    with Store.open(store_url) as store:
        stored = store.list_runs(limit=None, with_journal=False)
    until = datetime.fromisoformat(data["period"]["until"])
    since = datetime.fromisoformat(data["period"]["since"])
    chosen = fleet.select_runs(stored, since, until)
    assert {r.run_id for r in chosen} == {r.run_id for r in fleet_runs(now)} - {
        "old-1", "old-2", "ancient"}
    score = fleet.resilience_score(chosen, until)
    assert data["score"]["fleet"] == approx(score.fleet)
    assert [(c["cell"], c["score"]) for c in data["scorecard"]] == [
        (c.cell, approx(c.score)) for c in score.cells]
    overall = fleet.mttr(chosen)
    assert data["mttr"]["overall"] == {k: approx(v) if isinstance(v, float) else v
                                       for k, v in asdict(overall).items()}
    assert [(k["kind"], k["mean_s"]) for k in data["mttr"]["by_kind"]] == [
        (kind, approx(m.mean_s)) for kind, m in fleet.mttr_by(chosen, "kind")]
    rates = fleet.pass_rate_by(chosen, ("cell", "kind"))
    # (untested and excluded pairs are rows of their own, marked, for the heat map)
    assert {(r["cell"], r["kind"]): r["rate"] for r in data["pass_rate"]["by_cell_kind"]
            if not r.get("mark")} == {key: approx(rate.rate) for key, rate in rates.items()}
    assert [(d["cell"], d["rto_pct"], d["rpo_pct"]) for d in data["dr_compliance"]] == [
        (d.cell, approx(d.rto_pct), approx(d.rpo_pct)) for d in fleet.dr_compliance(chosen)]
    assert [(b["cell"], b["month"], b["pct"]) for b in data["error_budget"]] == [
        (b.cell, b.month, approx(b.pct)) for b in fleet.error_budget(chosen)]
    trend = fleet.trend(fleet.select_runs(stored, since - (until - since), until),
                        until, until - since)
    assert data["trend"]["mttr_change_s"] == approx(trend.mttr_change_s)
    assert [f["run_id"] for f in data["findings"]] == [f.run_id for f in fleet.findings(chosen)]
    # The plain-language summary names what leadership must see.
    summary = " ".join(data["summary"])
    assert "1 of 3 cells" not in summary  # cell-b failed some latency runs, cell-c did worse
    assert "0 of 3 cells passed all the runs they ran, on sandbox evidence" in summary
    assert "7 cell and kind pairs never tested" in summary  # never "every experiment"
    assert "every experiment" not in summary
    assert "The database failover in cell-a" in summary and "lost 2 acknowledged writes" in summary
    assert "did not recover within its timeout" in summary
    # ... and the same figures in the Markdown.
    markdown = (out / "report.md").read_text()
    for row in data["scorecard"]:
        assert f"| {row['cell']} | {row['tier']} | {fmt(row['score'], 'score')} |" in markdown


def test_run_and_window_reports_show_the_stored_figures(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gameday.db'}"
    now = datetime.now(UTC)
    with Store.open(url) as store:
        store.create_window(WindowRecord("win-1", "saturday", now - timedelta(hours=1),
                                         now + timedelta(hours=1)))
        runs = [make_run("w-1", now - timedelta(minutes=50), window_id="win-1"),
                make_run("w-2", now - timedelta(minutes=30), cell="cell-b", kind="db-failover",
                         window_id="win-1", rto_s=0.3, rpo_rows=0, rpo_s=0.0),
                make_run("w-3", now - timedelta(minutes=10), cell="cell-c", window_id="win-1",
                         verdict="skipped", reason="error budget: 85 % consumed")]
        for r in runs:
            store.create_run(r)
        store.add_samples("w-2", [Sample(t=i / 10, utc=now, ok=not 30 <= i < 33,
                                         latency_ms=5.0 + i % 3, status=201, write_seq=i)
                                  for i in range(100)])
    out = tmp_path / "run"
    assert report("run", "w-2", "--store", url, "--out", str(out)).returncode == 0
    data = assert_html_shows_report_json(out)
    assert data["figures"]["rto_s"] == 0.3 and data["figures"]["recovery_s"] == 3.2
    assert [b["samples"] for b in data["timeline"]["buckets"]][:4] == [10, 10, 10, 10]
    assert data["timeline"]["buckets"][3]["success_ratio"] == pytest.approx(0.7)
    assert [m["label"] for m in data["timeline"]["markers"]] == ["inject", "first impact",
                                                                 "recovered"]
    out = tmp_path / "window"
    assert report("window", "win-1", "--store", url, "--out", str(out)).returncode == 0
    data = assert_html_shows_report_json(out)
    assert [r["run_id"] for r in data["runs"]] == ["w-1", "w-2"]
    assert data["skipped"] == [{"cell": "cell-c", "kind": "pod-kill",
                                "started_at": runs[2].started_utc.isoformat(),
                                "reason": "error budget: 85 % consumed", "run_id": "w-3"}]
    assert data["figures"]["mttr"]["mean_s"] == pytest.approx(fleet.mttr(runs).mean_s)
    assert data["figures"]["pass_rate"] == asdict(fleet.pass_rate(runs))


def test_many_run_reports_at_once_are_each_the_report_of_its_run(store_url: str,
                                                                 tmp_path: Path) -> None:
    # Ten runs: enough for the command to fork a renderer per CPU; each run's report must hold
    # its own run's data (no run's timeline in another's), as its report alone would.
    now = datetime.now(UTC)
    kinds = ("pod-kill", "latency", "cpu-stress", "db-failover")
    runs = [make_run(f"m-{i:02d}", now - timedelta(minutes=60 - i), cell=f"cell-{i % 3}",
                     kind=kinds[i % 4], recovery_s=1.0 + i, downtime_s=0.1 * i)
            for i in range(10)]
    with Store.open(store_url) as store:
        for i, run in enumerate(runs):
            store.create_run(run)
            store.add_samples(run.run_id, [Sample(t=j / 10, utc=now, ok=j % (i + 3) != 0,
                                                  latency_ms=5.0 + i, status=200)
                                           for j in range(40 + i)])
            store.add_events(run.run_id, [RunEvent(t=1.0, utc=now, source="sandbox",
                                                   name="replica_exit", detail={"replica": i})])
    ids = [r.run_id for r in runs]
    root = tmp_path / "reports"
    result = report("run", *ids, ids[3], "--store", store_url, "--out", str(root), "--json")
    assert result.returncode == 0, result.stderr
    written = json.loads(result.stdout)
    assert [Path(f["html"]).parent.name for f in written] == [f"run-{i}" for i in ids]
    with Store.open(store_url) as store:
        for run_id, files in zip(ids, written, strict=True):
            data = assert_html_shows_report_json(Path(files["html"]).parent)
            alone = json.loads(render_json(run_report(store, run_id, now)))
            assert data.pop("links")["index"] == "../index.html"
            data.pop("generated_at")
            alone.pop("generated_at")
            assert data == alone, run_id
    index = (root / "index.html").read_text()
    assert all(f"run-{run_id}/index.html" in index for run_id in ids)
    assert len(links.scan_reports(root).entries) == len(ids)


def test_hostile_strings_are_escaped_everywhere(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gameday.db'}"
    now = datetime.now(UTC)
    journal = {"run": [{"activity": {"name": SCRIPT, "type": "action"}, "status": "succeeded",
                        "output": {"pod": IMG}, "start": now.isoformat(), "duration": 0.1}],
               "rollbacks": [], "steady_states": {"before": {"steady_state_met": True, "probes": [
                   {"activity": {"name": IMG}, "output": SCRIPT, "tolerance_met": True}]}}}
    with Store.open(url) as store:
        store.create_window(WindowRecord("win-x", SCRIPT, now - timedelta(hours=1)))
        run = make_run("x-1", now - timedelta(minutes=5), cell=SCRIPT, window_id="win-x",
                       verdict="failed", reason=f"missed: {IMG}",
                       criteria=[CriterionResult(SCRIPT, IMG, SCRIPT, False)])
        store.create_run(RunRecord(**{**asdict(run), "experiment": IMG, "objectives": TIER1,
                                      "criteria": run.criteria, "journal": journal}))
        store.add_events("x-1", [RunEvent(t=1.0, utc=now, source="sandbox", name=SCRIPT,
                                          detail={"pod": IMG, "error": SCRIPT})])
        store.add_samples("x-1", [Sample(t=0.1, utc=now, ok=False, latency_ms=3.0, status=0,
                                         error=SCRIPT)])
    for kind, ident in (("run", "x-1"), ("window", "win-x"), ("resilience", None)):
        out = tmp_path / kind
        result = report(kind, *([ident] if ident else []), "--store", url, "--out", str(out))
        assert result.returncode == 0, result.stderr
        html = (out / "index.html").read_text()
        markdown = (out / "report.md").read_text()
        for text in (html, markdown):
            for hostile in HOSTILE:
                assert hostile not in text, (kind, hostile)
            assert "<script" not in text and "<img" not in text, kind
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, kind
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markdown, kind
        json.loads((out / "report.json").read_text())  # still valid JSON, strings kept as data


def test_bad_report_input_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gameday.db'}"
    with Store.open(url) as store:
        store.create_run(make_run("r-1", datetime.now(UTC) - timedelta(hours=1)))
    out = tmp_path / "out"
    cases = [(["run", "no-such-run"], "RUN_ID"), (["run", "r-1", "no-such-run"], "RUN_ID"),
             (["window", "no-such-window"], "WINDOW_ID"),
             (["resilience", "--since", "soon"], "--since"),
             (["resilience", "--since", "-5d"], "--since"),
             (["resilience", "--cells", "cell-a,cell-nope"], "--cells")]
    for args, where in cases:
        result = report(*args, "--store", url, "--out", str(out))
        assert result.returncode == 2, (args, result.stderr)
        assert where in result.stderr and "expected" in result.stderr and "fix:" in result.stderr
        assert not out.exists()


def browser() -> str | None:
    return shutil.which("chromium-headless-shell") or shutil.which("chromium")


def test_a_real_browser_renders_the_report(tmp_path: Path) -> None:
    exe = browser()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("no chromium: `make browser` installs Debian's chromium-headless-shell")
        pytest.skip("no chromium here: run `make browser` as root")
    url = f"sqlite:///{tmp_path / 'gameday.db'}"
    now = datetime.now(UTC)
    with Store.open(url) as store:
        for run in fleet_runs(now):
            store.create_run(run)
    out = tmp_path / "res"
    assert report("resilience", "--store", url, "--out", str(out)).returncode == 0
    shot = tmp_path / "shot.png"
    result = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu",
                             "--hide-scrollbars", f"--screenshot={shot}",
                             "--window-size=1200,2400", (out / "index.html").as_uri()],
                            capture_output=True, text=True, timeout=120)
    assert shot.exists(), result.stderr
    from PIL import Image

    with Image.open(shot) as image:
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20) or []
        pixels = rgb.width * rgb.height
        white = sum(count for count, colour in colours if colour == (255, 255, 255))
    assert len(colours) > 50, "the page rendered as a flat image"
    assert white / pixels < 0.97, "the page rendered (almost) blank"


def test_a_game_day_window_opened_by_hand_collects_its_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gameday.db'}"
    cells = tmp_path / "cells.yaml"  # a cell whose sandbox is not up: the run is skipped
    cells.write_text("schema_version: 1\ncells:\n  - {name: cell-1, target: local, local: "
                     f"{{state_dir: '{tmp_path / 'none'}'}}}}\n")
    opened = run_cli("window", "open", "game day 12", "--duration", "120", "--store", url, "--json")
    assert opened.returncode == 0, opened.stderr
    window_id = json.loads(opened.stdout)["window_id"]
    latency = str(ROOT / "experiments" / "local" / "latency.yaml")
    bad = run_cli("run", latency, "--cell", "cell-1", "--cells-file", str(cells), "--store", url,
                  "--window", "win-nope")
    assert bad.returncode == 2 and "--window" in bad.stderr and "fix:" in bad.stderr
    ran = run_cli("run", latency, "--cell", "cell-1", "--cells-file", str(cells), "--store", url,
                  "--window", window_id, "--json")
    assert ran.returncode == 1, ran.stderr
    assert json.loads(ran.stdout)["verdict"] == "skipped"
    closed = run_cli("window", "close", window_id, "--store", url, "--json")
    assert json.loads(closed.stdout)["status"] == "closed"
    listed = json.loads(run_cli("window", "list", "--store", url, "--json").stdout)
    assert [(w["window_id"], w["name"]) for w in listed] == [(window_id, "game day 12")]
    out = tmp_path / "window"
    assert report("window", window_id, "--store", url, "--out", str(out)).returncode == 0
    data = assert_html_shows_report_json(out)
    assert data["runs"] == [] and len(data["skipped"]) == 1
    assert data["skipped"][0]["reason"].startswith("preflight:")
    # A closed window takes no more runs.
    late = run_cli("run", latency, "--cell", "cell-1", "--cells-file", str(cells), "--store", url,
                   "--window", window_id)
    assert late.returncode == 2 and "closed" in late.stderr
