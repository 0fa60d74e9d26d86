"""Report data built from records (pure): the leadership summary stays short."""

from datetime import UTC, datetime, timedelta

from gameday.model import CellObjectives, RunRecord
from gameday.reporting.resilience_context import build_resilience_report

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TIER1 = CellObjectives(1, ("acme",), 99.95, 250.0, 900.0, 60.0)


def failover(i: int, rows: int, verdict: str = "failed") -> RunRecord:
    started = NOW - timedelta(days=i + 1)
    return RunRecord(run_id=f"r{i}", experiment="failover", experiment_path="x.yaml",
                     kind="db-failover", cell=f"cell-{i % 7}", target="local",
                     started_utc=started, status="completed", verdict=verdict,  # type: ignore[arg-type]
                     reason="missed", figures={"recovery_s": None if verdict == "not_recovered"
                                               else 1.0, "rto_s": 0.5, "rpo_rows": rows,
                                               "rpo_s": 0.2},
                     objectives=TIER1)


def summary(runs: list[RunRecord]) -> list[str]:
    return build_resilience_report(runs, NOW, NOW - timedelta(days=90))["summary"]


def test_one_lossy_failover_is_named_in_a_sentence() -> None:
    lines = summary([failover(0, 2), failover(1, 0, "passed")])
    assert "The database failover in cell-0 on 2026-11-22 lost 2 acknowledged writes." in lines


def test_many_lossy_failovers_make_one_line_naming_the_newest_three() -> None:
    runs = [failover(i, 1 + i % 3) for i in range(40)] + \
        [failover(40 + i, 0, "not_recovered") for i in range(12)]
    lines = summary(runs)
    assert len(lines) <= 6
    lossy = next(line for line in lines if "database failovers lost" in line)
    assert lossy.startswith("40 database failovers lost acknowledged writes (newest: cell-0 on "
                            "2026-11-22, 1 acknowledged write; cell-1 on 2026-11-21, 2 "
                            "acknowledged writes; cell-2 on 2026-11-20, 3 acknowledged writes")
    assert lossy.endswith("; and 37 more).")
    assert any(line.startswith("12 experiments did not recover within their timeout (newest: "
                               "the database failover in cell-5") for line in lines)
