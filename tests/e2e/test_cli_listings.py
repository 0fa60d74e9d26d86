"""`gameday runs` and `show` as an operator reads them: whole ids at 80 columns, filters that
refuse what does not exist, the same units as the HTML, and JSON where a script wants it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gameday.model import RunRecord
from gameday.store import Store
from helpers import ROOT

NOW = datetime.now(UTC)


def gameday(cwd: Path, *args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GAMEDAY_")},
           "COLUMNS": str(columns)}
    return subprocess.run([sys.executable, "-m", "gameday", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def record(run_id: str, kind: str, verdict: str, cell: str, minutes_ago: int,
           environment: str = "sandbox") -> RunRecord:
    started = NOW - timedelta(minutes=minutes_ago)
    return RunRecord(run_id=run_id, experiment=f"{kind} experiment", experiment_path="x.yaml",
                     kind=kind, cell=cell, target="local", started_utc=started,
                     status="completed", ended_utc=started + timedelta(seconds=40),
                     verdict=verdict,  # type: ignore[arg-type]
                     reason="missed: error rate < 1 % during recovery (0.0345) and a long tail",
                     window_id="win-20261201T020000Z-abc123", environment=environment,
                     figures={"peak_error_rate": 0.125, "recovery_s": 1.5, "impact": "seen",
                              "impact_s": 1.2, "time_to_impact_s": 0.3,
                              "detection_floor_ms": 20.0})


def test_runs_filters_and_whole_ids(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gameday.db'}"
    ids = [f"run-20261201T0738{i:02d}-4f2a9c" for i in range(3)]
    with Store.open(url) as store:
        store.create_run(record(ids[0], "pod-kill", "passed", "cell-1", 30))
        store.create_run(record(ids[1], "latency", "failed", "cell-2", 20, "staging"))
        store.create_run(record(ids[2], "db-failover", "not_recovered", "cell-1", 10))
    listing = gameday(tmp_path, "runs", "--store", url)
    assert listing.returncode == 0, listing.stderr
    assert all(i in listing.stdout for i in ids), listing.stdout
    assert max(len(line) for line in listing.stdout.splitlines()) <= 80

    def ids_of(*filters: str) -> list[str]:
        out = gameday(tmp_path, "runs", "--store", url, "--json", *filters)
        assert out.returncode == 0, out.stderr
        return [r["run_id"] for r in json.loads(out.stdout)]

    assert ids_of("--kind", "latency") == [ids[1]]
    assert ids_of("--verdict", "not_recovered") == [ids[2]]
    assert ids_of("--cell", "cell-1") == [ids[2], ids[0]]
    assert ids_of("--since", "1h") == [ids[2], ids[1], ids[0]]
    assert ids_of("--window", "win-nope") == []
    assert ids_of("--environment", "staging") == [ids[1]]
    assert ids_of("--environment", "production") == []
    for flag, value in (("--cell", "cell-9"), ("--kind", "meteor"), ("--verdict", "ok"),
                        ("--since", "soon"), ("--environment", "prod")):
        refused = gameday(tmp_path, "runs", "--store", url, flag, value)
        assert refused.returncode == 2, (flag, refused.stdout, refused.stderr)
        assert f"error: {flag}: expected" in refused.stderr and "fix:" in refused.stderr
    shown = gameday(tmp_path, "show", ids[1], "--store", url)
    assert shown.returncode == 0, shown.stderr
    assert "in window win-20261201T020000Z-abc123" in shown.stdout
    assert f"started {NOW - timedelta(minutes=20):%Y-%m-%d %H:%M:%S} UTC" in shown.stdout
    assert "12.5 %" in shown.stdout  # peak errors in the HTML's unit
    assert "evidence: staging" in shown.stdout
    assert "users affected for 1.200 s" in shown.stdout


def test_validate_and_report_speak_json(tmp_path: Path) -> None:
    experiment = ROOT / "experiments" / "local" / "latency.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: [unclosed\n")
    result = gameday(tmp_path, "validate", "--json", str(experiment), str(bad))
    assert result.returncode == 2
    out = json.loads(result.stdout)
    assert [r["valid"] for r in out] == [True, False]
    assert out[0]["kind"] == "latency"
    assert out[1]["error"]["where"].startswith(f"{bad}:")
    url = f"sqlite:///{tmp_path / 'gameday.db'}"
    with Store.open(url) as store:
        store.create_run(record("run-1", "pod-kill", "passed", "cell-1", 5))
    report = gameday(tmp_path, "report", "run", "run-1", "--store", url, "--out",
                     str(tmp_path / "out"), "--json")
    assert report.returncode == 0, report.stderr
    files = json.loads(report.stdout)
    assert all(Path(files[k]).is_file() for k in ("html", "markdown", "json"))
    assert files["pdf"] is None
