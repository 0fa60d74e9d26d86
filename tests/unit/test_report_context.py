"""Report data built from records (pure): the leadership summary stays short."""

from datetime import UTC, datetime, timedelta

import pytest

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


# -- the first screen: evidence, coverage, MTTR with "k of n" ------------------------------

from gameday.analytics.coverage import ScheduleOutlook, Upcoming  # noqa: E402
from gameday.model import CriterionResult  # noqa: E402


def v2(run_id: str, cell: str, kind: str, days: float, verdict: str = "passed",
       **figures: object) -> RunRecord:
    return RunRecord(run_id=run_id, experiment=kind, experiment_path="x.yaml", kind=kind, cell=cell,
                     target="local", started_utc=NOW - timedelta(days=days), status="completed",
                     verdict=verdict,  # type: ignore[arg-type]
                     reason="every criterion met",
                     figures={"figures_version": 2, **figures}, objectives=TIER1,
                     criteria=[CriterionResult("full recovery within 1 minute", "recovery_s <= 60",
                                               "no impact seen", True)],
                     environment="sandbox")


def fleet_of_two() -> list[RunRecord]:
    return [v2("pk-1", "cell-1", "pod-kill", 1, impact="none", restore_s=0.9),
            v2("lat-1", "cell-1", "latency", 2, impact="seen", recovery_s=0.025, impact_s=10.0),
            v2("cpu-1", "cell-1", "cpu-stress", 3, impact="none"),
            v2("db-1", "cell-1", "db-failover", 4, impact="none", rto_s=0.1, rpo_rows=0, rpo_s=0.0),
            v2("pk-2", "cell-2", "pod-kill", 5, impact="seen", recovery_s=0.4, restore_s=1.1),
            v2("lat-2", "cell-2", "latency", 6, impact="seen", recovery_s=0.03)]
    # cell-2: cpu-stress never tested; db-failover excluded by the schedule


def outlook() -> ScheduleOutlook:
    return ScheduleOutlook(
        "weekly-chaos", 28.0, ("cell-1", "cell-2"),
        (Upcoming("cell-1", "pod-kill", NOW + timedelta(days=5), None, "weekly-chaos-a"),
         Upcoming("cell-1", "db-failover", NOW + timedelta(days=26), "freeze: year-end change freeze",
                  "weekly-chaos-d")),
        excluded={"cell-2": frozenset({"db-failover"})}, source="schedules/weekly.yaml")


def first_screen(report: dict[str, object]) -> str:
    """Everything the report shows before its charts, as one text."""
    parts: list[object] = [report["answer"], report["evidence"], report["summary"], report["next_steps"],
                           report["objectives"], report["coverage"]["gaps"],  # type: ignore[index]
                           report["mttr"]["sentence"]]  # type: ignore[index]
    return repr(parts)


def test_the_first_screen_names_the_gaps_and_the_evidence() -> None:
    report = build_resilience_report(fleet_of_two(), NOW, NOW - timedelta(days=90), outlook=outlook())
    text = first_screen(report)
    assert "every experiment" not in text
    assert "recovered within objectives" not in text
    assert report["evidence"]["environments"] == ["sandbox"]
    assert "a local sandbox" in report["evidence"]["statement"]
    assert "not how production does" in report["evidence"]["statement"]
    gaps = {(g["cell"], g["kind"]): g for g in report["coverage"]["gaps"]}
    assert gaps[("cell-2", "cpu-stress")]["last"] == "never tested"
    assert gaps[("cell-2", "db-failover")]["state"] == "excluded"
    assert gaps[("cell-1", "db-failover")]["outlook"].startswith("blocked: freeze: year-end change freeze")
    assert "1 cell and kind pair never tested; 1 excluded by the schedule" in report["summary"][0]
    # the score says what lowered it
    cell2 = next(r for r in report["scorecard"] if r["cell"] == "cell-2")
    assert "CPU stress: never tested" in cell2["lowered_by"]
    assert "database failover: excluded by the schedule" in cell2["lowered_by"]
    # the heat map marks the pairs without evidence
    marks = {(r["cell"], r["kind"]): r["mark"] for r in report["pass_rate"]["by_cell_kind"]}
    assert marks[("cell-2", "cpu-stress")] == "untested" and marks[("cell-2", "db-failover")] == "excluded"


def test_mttr_excludes_runs_without_impact_and_says_k_of_n() -> None:
    report = build_resilience_report(fleet_of_two(), NOW, NOW - timedelta(days=90), outlook=outlook())
    overall = report["mttr"]["overall"]
    # three runs with impact: (0.025 + 0.4 + 0.03) / 3; the 10 s of latency is the fault's own length
    assert overall["runs"] == 3 and overall["mean_s"] == pytest.approx(0.455 / 3)
    assert (overall["no_impact"], overall["evidence"]) == (3, 6)
    assert overall["p90_s"] is None  # 3 values: too few for a p90
    sentence = report["mttr"]["sentence"]
    assert "3 of 6 runs had no user-visible impact" in sentence
    assert "p90: too few runs" in sentence and "mean time to full redundancy 1.00 s" in sentence
    assert "not incident MTTR" in report["mttr"]["note"]
    assert " 0.00 s" not in repr(report)


def test_without_a_schedule_coverage_says_so() -> None:
    report = build_resilience_report(fleet_of_two(), NOW, NOW - timedelta(days=90))
    assert report["coverage"]["schedule"] is None
    assert {g["outlook"] for g in report["coverage"]["gaps"]} == {"no schedule given"}


# -- the run report -----------------------------------------------------------------------------

def test_the_run_report_reads_the_targets_figures_from_the_record_not_from_the_sandbox() -> None:
    import ast
    from pathlib import Path

    import gameday.reporting.context as context

    tree = ast.parse(Path(context.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
        for alias in node.names}
    assert not any(str(name).startswith("gameday.sandbox") for name in imported), imported


def _failover_run(**figures: object) -> RunRecord:
    base = {"figures_version": 2, "impact": "seen", "t_inject": 3.0, "t_cause_end": 3.0,
            "t_first_breach": 3.05, "t_recovered": 3.2, "time_to_impact_s": 0.05,
            "impact_s": 0.15, "recovery_s": 0.2, "adapted": False, "recovered": True,
            "rto_s": 0.12, "rpo_rows": 0, "rpo_s": 0.0, "failover_s": 0.03, "restore_s": 2.4,
            "target_restored_s": 0.08, "observed_by": "sandbox", "downtime_s": 0.1}
    base.update(figures)
    return RunRecord(run_id="r-fo", experiment="failover", experiment_path="x.yaml",
                     kind="db-failover", cell="cell-1", target="local", started_utc=NOW,
                     status="completed", verdict="passed", reason="every criterion met",
                     figures=base, objectives=TIER1)


def test_a_failover_run_report_has_rto_rpo_and_the_targets_failover_as_tiles() -> None:
    from gameday.reporting.context import build_run_report

    report = build_run_report(_failover_run(), [], [], [], NOW)
    tiles = {t["key"]: t["text"] for t in report["tiles"]}
    assert tiles["rto_s"] == "0.12 s" and tiles["rpo_rows"] == "0" and tiles["rpo_s"] == "0.00 s"
    assert tiles["failover_s"] == "0.03 s" and tiles["restore_s"] == "2.40 s"
    assert "scale_out_s" not in tiles  # a CPU-stress figure, not measured on a failover
    # The runner's user-visible recovery (3.2 - 3.0) beside the target's own 0.08 s.
    row = report["target_view"]["rows"][0]
    assert row["runner_text"] == "0.20 s" and row["target_text"] == "0.08 s"
    assert row["difference_text"] == "+0.12 s"
    assert [o["what"] for o in report["target_view"]["own"]] == [
        "time to full redundancy", "failover", "replica crashes"]


def test_the_ledgers_times_are_placed_on_the_runs_axis_by_the_runners_own_events() -> None:
    from gameday.model import LedgerFault, RunEvent
    from gameday.reporting.context import build_run_report

    # The runner's clock started 0.5 s after started_utc: its events carry both clocks.
    events = [RunEvent(t=2.5, utc=NOW + timedelta(seconds=3.0), source="engine",
                       name="worker_started")]
    fault = LedgerFault("db-failover-1", "r-fo", "cell-1", "local", "db-failover", {}, {},
                        NOW + timedelta(minutes=1), state="reverted",
                        applied_utc=NOW + timedelta(seconds=3.5),
                        reverted_utc=NOW + timedelta(seconds=9.5), revert_reason="run_end")
    report = build_run_report(_failover_run(), [], events, [fault], NOW)
    row = report["reverts"]["faults"][0]
    assert (row["applied_t"], row["closed_t"]) == (3.0, 9.0)
    assert "The ledger closed the fault 6.00 s after injection at run end (nothing left to " \
           "revert" in report["reverts"]["stories"][0]["words"]
