"""Analytics across runs, on hand-made run records (figures version 2), with the arithmetic
written out: MTTR over runs with impact only, "k of n" without impact, environments, coverage,
objectives and findings with their next steps."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from gameday.analytics.assessment import NEXT_STEPS, actions, objectives
from gameday.analytics.coverage import ScheduleOutlook, Upcoming, coverage
from gameday.analytics.fleet import (
    HALT_CRITERION,
    KINDS,
    MIN_P90_RUNS,
    MONTH_MINUTES,
    NOT_RECOVERED_CRITERION,
    SCORE_FORMULA,
    DrCompliance,
    Finding,
    Mttr,
    PassRate,
    SummaryCounts,
    budget_by_cell,
    classify,
    decay_weight,
    dr_compliance,
    environments,
    error_budget,
    findings,
    kind_points,
    month_label,
    mttr,
    mttr_by,
    pass_rate,
    pass_rate_by,
    resilience_score,
    rolling_budget,
    select_runs,
    summary_counts,
    trend,
    week_label,
)
from gameday.model import CellObjectives, CriterionResult, RunRecord, Verdict

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # a Monday, 02:00 UTC
HALT_REASON = "halt: error rate above 50% for 5 s"
OBJ = CellObjectives(tier=1, tenants=("acme",), availability_slo=99.95, p95_latency_slo_ms=300.0,
                     rto_s=30.0, rpo_s=60.0)


def run(run_id: str = "r", *, cell: str = "eu-1", kind: str = "pod-kill", verdict: Verdict | None = "passed",
        started: datetime = T0, reason: str | None = None, objectives: CellObjectives | None = OBJ,
        criteria: tuple[CriterionResult, ...] = (), environment: str = "sandbox",
        **figures: Any) -> RunRecord:
    """A run with version-2 figures: a recovery time means impact was seen, unless ``impact``
    says otherwise (pass impact=None for an upgraded v1 run whose impact is unknown)."""
    figures.setdefault("figures_version", 2)
    if "impact" not in figures and figures.get("recovery_s") is not None:
        figures["impact"] = "seen"
    return RunRecord(run_id=run_id, experiment=kind, experiment_path=f"experiments/{kind}.yaml", kind=kind,
                     cell=cell, target="local", started_utc=started,
                     status="running" if verdict is None else "completed", verdict=verdict, reason=reason,
                     figures=dict(figures), criteria=list(criteria), objectives=objectives,
                     environment=environment)


def missed(name: str, expected: str = "x <= 1", actual: str = "2") -> CriterionResult:
    return CriterionResult(name, expected, actual, False)


def met(name: str) -> CriterionResult:
    return CriterionResult(name, "x <= 1", "0.5", True)


# -- classification --------------------------------------------------------------------------


@pytest.mark.parametrize(("verdict", "reason", "expected"), [
    ("passed", "every criterion met", "evidence"),
    ("failed", "missed: recovery (70)", "evidence"),
    ("not_recovered", "the cell did not recover within the recovery timeout", "evidence"),
    ("aborted", HALT_REASON, "evidence"),
    ("aborted", "operator: interrupted", "inconclusive"),
    ("aborted", "window_end", "inconclusive"),
    ("aborted", "worker_died: exit -9", "inconclusive"),
    ("aborted", None, "inconclusive"),
    ("skipped", "freeze window", "skipped"),
    (None, None, "running"),
])
def test_classify(verdict: Verdict | None, reason: str | None, expected: str) -> None:
    assert classify(run(verdict=verdict, reason=reason)) == expected


# -- no runs, only skipped runs --------------------------------------------------------------


def test_no_runs_at_all_gives_empty_results() -> None:
    now = T0
    assert mttr([]) == Mttr(0, 0, None, None, None)
    assert mttr_by([], "cell") == ()
    assert mttr_by([], "week") == ()
    assert pass_rate([]) == PassRate(0, 0, None)
    assert pass_rate_by([]) == {}
    t = trend([], now, timedelta(days=7))
    assert (t.current.mttr.mean_s, t.current.pass_rate.rate, t.mttr_change_s, t.pass_rate_change) \
        == (None, None, None, None)
    assert dr_compliance([]) == ()
    assert error_budget([]) == ()
    score = resilience_score([], now)
    assert (score.fleet, score.cells) == (None, ())
    assert findings([]) == ()
    assert select_runs([]) == ()
    assert summary_counts([]) == SummaryCounts(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def test_only_skipped_runs_are_no_evidence() -> None:
    runs = [run(f"s{i}", verdict="skipped", reason="freeze window", kind=kind, downtime_s=60.0,
                recovery_s=5.0) for i, kind in enumerate(KINDS)]
    assert mttr(runs) == Mttr(0, 0, None, None, None)
    assert mttr_by(runs, "kind") == ()
    assert pass_rate(runs) == PassRate(0, 0, None)
    assert pass_rate_by(runs) == {}
    assert dr_compliance(runs) == ()
    assert error_budget(runs) == ()  # skipped runs never consume budget
    assert findings(runs) == ()
    # the cell is known but nothing in it is proven: every kind scores 0
    score = resilience_score(runs, T0 + timedelta(hours=1))
    assert score.fleet == 0.0
    assert [(c.cell, c.score, [k.runs for k in c.kinds]) for c in score.cells] \
        == [("eu-1", 0.0, [0, 0, 0, 0])]
    assert summary_counts(runs).skipped == 4


# -- MTTR ------------------------------------------------------------------------------------


def test_mttr_averages_only_runs_with_impact_and_counts_the_rest() -> None:
    runs = [
        run("no-impact", impact="none"),  # no breach at all: k of n, never a recovery of 0 s
        run("no-impact-2", impact="none", restore_s=0.9),  # the replica was back after 0.9 s
        run("a", verdict="failed", recovery_s=10.0, restore_s=2.1),
        run("b", recovery_s=20.0, adapted=True),
        run("c", verdict="aborted", reason=HALT_REASON, recovery_s=50),  # halted, recovered after revert
        run("never", verdict="not_recovered", impact="seen", recovery_s=None),
        run("halted", verdict="aborted", reason=HALT_REASON, impact="seen"),  # no recovery_s at all
        run("v1-leftover", recovery_s=None, impact=None, upgraded_from=1),  # impact unknown: left out
        run("not-injected", verdict="failed", reason="no fault was injected", impact=None),
        run("operator", verdict="aborted", reason="operator: interrupted", recovery_s=1000.0),
        run("skipped", verdict="skipped", recovery_s=1000.0),
        run("running", verdict=None, recovery_s=1000.0),
    ]
    result = mttr(runs)
    # averaged: 10, 20, 50 -> mean 80 / 3; median of 3 values 20; p90 needs 10 values: None
    assert (result.runs, result.mean_s, result.median_s, result.p90_s) == (3, 80 / 3, 20.0, None)
    # k of n: 2 of 7 evidence runs whose impact is known had no user-visible impact
    assert (result.no_impact, result.evidence) == (2, 7)
    assert (result.not_recovered, result.impact_unknown, result.adapted) == (2, 2, 1)
    # time to full redundancy: every evidence run that has it, impact or not: (0.9 + 2.1) / 2
    assert (result.restore_runs, result.restore_mean_s, result.restore_max_s) == (2, 1.5, 2.1)


def test_mttr_of_runs_without_impact_has_no_recovery_time() -> None:
    result = mttr([run(impact="none"), run("b", impact="none")])
    assert (result.runs, result.mean_s, result.median_s, result.p90_s) == (0, None, None, None)
    assert (result.no_impact, result.evidence) == (2, 2)


def test_percentiles_need_enough_values() -> None:
    two = mttr([run("a", recovery_s=1.0), run("b", recovery_s=3.0)])
    assert (two.mean_s, two.median_s, two.p90_s) == (2.0, None, None)  # a median of 2 is the mean
    ten = mttr([run(f"r{i}", recovery_s=float(i)) for i in range(10)])
    # 0..9: median 4.5; p90 rank 9 * 0.9 = 8.1 -> 8 + 0.1 * (9 - 8) = 8.1
    assert ten.median_s == 4.5
    assert ten.p90_s == pytest.approx(8.1)
    assert MIN_P90_RUNS == 10


def test_mttr_when_nothing_recovered() -> None:
    assert mttr([run(verdict="not_recovered", impact="seen")]) == Mttr(0, 1, None, None, None, evidence=1)


def test_mttr_by_cell_kind_and_week_sorted_by_label() -> None:
    runs = [
        run("1", cell="us-1", kind="latency", recovery_s=4.0, started=T0),  # 2026-W10
        run("2", cell="eu-1", kind="pod-kill", recovery_s=2.0, started=T0 + timedelta(days=7)),  # W11
        run("3", cell="eu-1", kind="latency", recovery_s=6.0, started=T0 + timedelta(days=8)),  # W11
        run("4", cell="ap-1", verdict="skipped", recovery_s=99.0),  # no evidence: no group
    ]
    (eu, eu_mttr), (us, us_mttr) = mttr_by(runs, "cell")
    # (2 + 6) / 2; two values: too few for a median or a p90
    assert (eu, eu_mttr.runs, eu_mttr.mean_s, eu_mttr.median_s, eu_mttr.p90_s) == ("eu-1", 2, 4.0, None, None)
    assert (us, us_mttr) == ("us-1", Mttr(1, 0, 4.0, None, None, evidence=1))
    assert [(label, m.mean_s) for label, m in mttr_by(runs, "kind")] == [("latency", 5.0), ("pod-kill", 2.0)]
    assert [(label, m.runs) for label, m in mttr_by(runs, "week")] == [("2026-W10", 1), ("2026-W11", 2)]
    with pytest.raises(ValueError, match="unknown grouping"):
        mttr_by(runs, "tenant")  # type: ignore[arg-type]


# -- weeks and months: UTC, ISO years --------------------------------------------------------


def test_weeks_and_months_are_utc_across_a_dst_change() -> None:
    # Europe moves to summer time at 01:00 UTC on 2026-03-29; both runs stay in the same UTC week
    before = datetime(2026, 3, 28, 23, 30, tzinfo=UTC)  # Saturday
    after = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # Sunday, after the change
    assert before.isocalendar()[:2] == after.isocalendar()[:2] == (2026, 13)
    assert week_label(before) == week_label(after) == "2026-W13"
    assert month_label(before) == month_label(after) == "2026-03"
    # 01:30 on 1 April in Berlin (UTC+2) is still March in UTC
    berlin = datetime(2026, 4, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert month_label(berlin) == "2026-03"
    assert week_label(datetime(2026, 3, 30, 1, 0, tzinfo=timezone(timedelta(hours=2)))) == "2026-W13"
    runs = [run("a", started=before, recovery_s=10.0), run("b", started=after, recovery_s=20.0)]
    assert [(label, m.runs) for label, m in mttr_by(runs, "week")] == [("2026-W13", 2)]


def test_iso_year_at_the_turn_of_the_year() -> None:
    assert datetime(2026, 12, 31).isocalendar()[:2] == (2026, 53)
    assert datetime(2027, 1, 1).isocalendar()[:2] == (2026, 53)
    assert week_label(datetime(2026, 12, 31, 12, tzinfo=UTC)) == "2026-W53"
    assert week_label(datetime(2027, 1, 1, 12, tzinfo=UTC)) == "2026-W53"
    assert week_label(datetime(2027, 1, 4, tzinfo=UTC)) == "2027-W01"
    assert week_label(datetime(2026, 1, 5, tzinfo=UTC)) == "2026-W02"  # zero-padded
    assert month_label(datetime(2027, 1, 1, tzinfo=UTC)) == "2027-01"


def test_naive_datetimes_are_taken_as_utc() -> None:
    assert week_label(datetime(2026, 3, 29, 23, 30)) == "2026-W13"
    assert month_label(datetime(2026, 3, 31, 23, 30)) == "2026-03"


# -- pass rate -------------------------------------------------------------------------------


def test_pass_rate_counts_only_evidence() -> None:
    runs = [
        run("p1"), run("p2"),
        run("f", verdict="failed"),
        run("nr", verdict="not_recovered"),  # lowers the rate
        run("h", verdict="aborted", reason=HALT_REASON),
        run("op", verdict="aborted", reason="operator: stop"),
        run("s", verdict="skipped"),
        run("run", verdict=None),
    ]
    assert pass_rate(runs) == PassRate(evidence=5, passed=2, rate=0.4)  # 2 / 5


def test_pass_rate_by_cell_and_kind_for_a_heat_map() -> None:
    runs = [
        run("1", cell="eu-1", kind="pod-kill"),
        run("2", cell="eu-1", kind="pod-kill", verdict="failed"),
        run("3", cell="eu-1", kind="latency", verdict="not_recovered"),
        run("4", cell="us-1", kind="pod-kill"),
        run("5", cell="us-1", kind="latency", verdict="aborted", reason="window_end"),  # inconclusive
    ]
    by_pair = pass_rate_by(runs)
    assert list(by_pair) == [("eu-1", "latency"), ("eu-1", "pod-kill"), ("us-1", "pod-kill")]
    assert by_pair[("eu-1", "pod-kill")] == PassRate(2, 1, 0.5)
    assert by_pair[("eu-1", "latency")] == PassRate(1, 0, 0.0)
    assert by_pair[("us-1", "pod-kill")] == PassRate(1, 1, 1.0)
    by_cell = pass_rate_by(runs, ("cell",))
    assert by_cell == {("eu-1",): PassRate(3, 1, 1 / 3), ("us-1",): PassRate(1, 1, 1.0)}


# -- trend -----------------------------------------------------------------------------------


def test_trend_with_an_empty_previous_period() -> None:
    now = T0 + timedelta(days=14)
    runs = [
        run("edge", started=now - timedelta(days=7), recovery_s=10.0),  # start of current: included
        run("f", started=now - timedelta(hours=1), verdict="failed", recovery_s=20.0),
        run("at-now", started=now, verdict="not_recovered"),  # the period ends before now
    ]
    t = trend(runs, now, timedelta(days=7))
    assert (t.current.start, t.current.end) == (now - timedelta(days=7), now)
    assert (t.previous.start, t.previous.end) == (now - timedelta(days=14), now - timedelta(days=7))
    assert t.current.mttr.mean_s == 15.0  # (10 + 20) / 2
    assert t.current.pass_rate == PassRate(2, 1, 0.5)
    assert t.previous.mttr == Mttr(0, 0, None, None, None)
    assert t.current.mttr.not_recovered == 0  # "at-now" started at now: outside the period
    assert t.previous.pass_rate == PassRate(0, 0, None)
    assert (t.mttr_change_s, t.pass_rate_change) == (None, None)


def test_trend_change_is_current_minus_previous() -> None:
    now = T0 + timedelta(days=14)
    runs = [
        run("p1", started=T0, recovery_s=30.0),  # previous period starts at now - 14 d = T0
        run("p2", started=T0 + timedelta(days=3), recovery_s=40.0),
        run("c1", started=T0 + timedelta(days=8), recovery_s=10.0),
        run("c2", started=T0 + timedelta(days=9), verdict="failed", recovery_s=20.0),
        run("old", started=T0 - timedelta(seconds=1), verdict="not_recovered"),  # before both periods
    ]
    t = trend(runs, now, timedelta(days=7))
    # MTTR: (10 + 20) / 2 - (30 + 40) / 2 = 15 - 35 = -20; pass rate: 1/2 - 2/2 = -0.5
    assert t.mttr_change_s == -20.0
    assert t.pass_rate_change == -0.5
    with pytest.raises(ValueError, match="positive"):
        trend(runs, now, timedelta(0))


# -- DR compliance ---------------------------------------------------------------------------


def test_dr_compliance_judges_each_run_by_its_own_objectives() -> None:
    newer = CellObjectives(tier=1, tenants=("acme",), availability_slo=99.95, p95_latency_slo_ms=300.0,
                           rto_s=25.0, rpo_s=60.0)
    fo = "db-failover"
    runs = [
        run("a", kind=fo, started=T0, rto_s=12.5, rpo_s=0.0, rpo_rows=0),  # RTO ok, RPO ok
        run("b", kind=fo, started=T0 + timedelta(hours=1), verdict="failed",
            rto_s=45.0, rpo_s=2.0, rpo_rows=3),  # RTO 45 > 30 missed, RPO ok
        run("c", kind=fo, started=T0 + timedelta(hours=2), verdict="not_recovered",
            rto_s=None, rpo_s=None, rpo_rows=None),  # never took a write again: neither
        run("d", kind=fo, started=T0 + timedelta(hours=3), verdict="aborted", reason=HALT_REASON,
            objectives=newer, rto_s=20.0, rpo_s=90.0, rpo_rows=7),  # RTO 20 <= 25 ok, RPO 90 > 60 missed
        run("skip", kind=fo, verdict="skipped", rto_s=999.0),
        run("op", kind=fo, verdict="aborted", reason="operator: stop", rto_s=999.0),
        run("no-obj", kind=fo, objectives=None, rto_s=999.0),
        run("pod", kind="pod-kill", rto_s=999.0),
    ]
    assert dr_compliance(runs) == (DrCompliance(
        cell="eu-1", runs=4, rto_compliant=2, rpo_compliant=2, rto_pct=50.0, rpo_pct=50.0,  # 2 of 4
        worst_rto_s=45.0, max_rpo_rows=7, rto_objective_s=25.0, rpo_objective_s=60.0,  # from "d"
        environments=("sandbox",)),)


def test_dr_compliance_with_no_rto_at_all() -> None:
    runs = [run("x", cell="us-1", kind="db-failover", verdict="not_recovered", rpo_s=0.0, rpo_rows=0),
            run("y", cell="eu-1", kind="db-failover", rto_s=5.0, rpo_s=0.5, rpo_rows=1)]
    us, = (c for c in dr_compliance(runs) if c.cell == "us-1")
    assert (us.rto_compliant, us.rto_pct, us.worst_rto_s) == (0, 0.0, None)
    assert (us.rpo_compliant, us.rpo_pct, us.max_rpo_rows) == (1, 100.0, 0)
    assert [c.cell for c in dr_compliance(runs)] == ["eu-1", "us-1"]


# -- error budget ----------------------------------------------------------------------------


def test_error_budget_of_99_95_percent_is_21_9_minutes() -> None:
    assert MONTH_MINUTES == 43830.0  # 365.25 * 24 * 60 / 12
    looser = CellObjectives(tier=2, tenants=(), availability_slo=99.9, p95_latency_slo_ms=300.0,
                            rto_s=900.0, rpo_s=300.0)
    runs = [
        run("a", started=T0, objectives=looser, downtime_s=60.0),
        run("b", started=T0 + timedelta(days=1), verdict="failed", downtime_s=120.0),
        run("c", started=T0 + timedelta(days=2), downtime_s=None),  # counts 0
        run("d", started=T0 + timedelta(days=3)),  # no downtime figure: counts 0
        run("e", started=T0 + timedelta(days=4), verdict="aborted", reason="operator: stop", downtime_s=30.0),
        run("f", started=T0 + timedelta(days=5), verdict="skipped", downtime_s=600.0),  # never counts
        run("lab", cell="lab", objectives=None, downtime_s=600.0),  # no objectives: left out
    ]
    # consumed (60 + 120 + 0 + 0 + 30) / 60 = 3.5 min; the newest run with objectives ("e") has 99.95 %:
    # budget (1 - 0.9995) * 43830 = 21.915 min; pct 100 * 3.5 / 21.915 = 15.9708...
    budget, = error_budget(runs)
    assert (budget.cell, budget.month) == ("eu-1", "2026-03")
    assert budget.consumed_min == 3.5
    assert budget.budget_min == pytest.approx(21.915)
    assert budget.pct == pytest.approx(15.97079626)


def test_error_budget_per_utc_month_across_a_dst_change() -> None:
    runs = [
        run("mar", started=datetime(2026, 3, 31, 23, 30, tzinfo=UTC), downtime_s=60.0),
        # 01:45 on 1 April in Berlin (UTC+2) is 23:45 on 31 March in UTC: still March
        run("mar2", started=datetime(2026, 4, 1, 1, 45, tzinfo=timezone(timedelta(hours=2))),
            downtime_s=60.0),
        run("apr", started=datetime(2026, 4, 1, 0, 0, tzinfo=UTC), downtime_s=6.0),
        run("us", cell="us-1", started=datetime(2026, 3, 29, 1, 30, tzinfo=UTC), downtime_s=0.0),
    ]
    assert [(b.cell, b.month, b.consumed_min) for b in error_budget(runs)] == [
        ("eu-1", "2026-03", 2.0),  # (60 + 60) / 60
        ("eu-1", "2026-04", 0.1),  # 6 / 60
        ("us-1", "2026-03", 0.0),
    ]


def test_error_budget_leaves_out_a_100_percent_slo() -> None:
    perfect = CellObjectives(tier=1, tenants=(), availability_slo=100.0, p95_latency_slo_ms=300.0,
                             rto_s=30.0, rpo_s=0.0)
    runs = [run("a", objectives=perfect, downtime_s=6.0),
            run("b", cell="us-1", downtime_s=6.0)]
    # us-1: 6 s = 0.1 min of 21.915 min; eu-1 has no budget to consume
    budget, = error_budget(runs)
    assert (budget.cell, budget.consumed_min) == ("us-1", 0.1)
    assert budget.pct == pytest.approx(100 * 0.1 / 21.915)


def test_budget_by_cell_keeps_each_cells_worst_and_latest_month_nearest_a_freeze_first() -> None:
    runs = [run("a", started=T0, downtime_s=60.0),  # eu-1, 2026-03: 1 min of 21.915
            run("b", started=T0 + timedelta(days=31), downtime_s=6.0),  # eu-1, 2026-04
            run("c", cell="us-1", started=T0, downtime_s=600.0),  # us-1, 2026-03: 10 min
            run("d", cell="ap-1", started=T0, downtime_s=60.0)]  # ties eu-1's worst: by name
    rows = budget_by_cell(error_budget(runs))
    assert [r.cell for r in rows] == ["us-1", "ap-1", "eu-1"]
    eu = rows[2]
    assert (eu.months, eu.worst_month, eu.latest_month) == (2, "2026-03", "2026-04")
    assert eu.worst_consumed_min == pytest.approx(1.0)
    assert eu.worst_pct == pytest.approx(100 / 21.915)
    assert eu.latest_pct == pytest.approx(100 * 0.1 / 21.915)
    assert eu.budget_min == pytest.approx(21.915)
    assert budget_by_cell([]) == ()


# -- resilience score ------------------------------------------------------------------------


def test_decay_weight_halves_every_30_days() -> None:
    assert decay_weight(0) == 1.0
    assert decay_weight(30) == 0.5
    assert decay_weight(60) == 0.25
    assert decay_weight(15) == pytest.approx(2 ** -0.5)


def test_resilience_score_per_cell_and_fleet() -> None:
    now = T0 + timedelta(days=60)
    tier3 = CellObjectives(tier=3, tenants=(), availability_slo=99.5, p95_latency_slo_ms=500.0,
                           rto_s=900.0, rpo_s=300.0)
    runs = [
        # eu-1, tier 1
        run("pk-new", kind="pod-kill", started=now),  # not before now: left out
        run("pk1", kind="pod-kill", started=now - timedelta(hours=24)),  # weight 1 relative to newest
        run("pk2", kind="pod-kill", started=now - timedelta(hours=24, days=30), verdict="not_recovered"),
        run("lat", kind="latency", started=now - timedelta(days=10), verdict="failed"),
        run("cpu", kind="cpu-stress", started=now - timedelta(days=1), verdict="aborted", reason=HALT_REASON),
        run("cpu-op", kind="cpu-stress", started=now - timedelta(days=1), verdict="aborted",
            reason="operator: stop"),  # inconclusive: does not count
        run("future", kind="db-failover", started=now + timedelta(hours=1)),  # after now: left out
        # us-1, tier 3: every kind passed, once each, long ago
        *[run(f"us-{k}", cell="us-1", kind=k, objectives=tier3, started=now - timedelta(days=400))
          for k in KINDS],
        # ap-1: skipped only, no objectives: tier 2, untested
        run("ap", cell="ap-1", verdict="skipped", objectives=None, started=now - timedelta(days=2)),
    ]
    score = resilience_score(runs, now)
    ap, eu, us = score.cells
    # eu-1: pod-kill, ages 1 and 31 days: weights 0.5 ** (1/30) = 0.97716 and 0.5 ** (31/30) =
    # 0.48858, (0.97716 * 1.0 + 0.48858 * 0.0) / (0.97716 + 0.48858) = 2/3 (the weights sum above 1);
    # latency, 10 days: 0.5 ** (1/3) * 0.5 / max(0.7937, 1) = 0.39685; cpu-stress (halted) 0;
    # db-failover 0 (untested)
    # cell score 100 * (2/3 + 0.39685 + 0 + 0) / 4 = 26.5879
    assert [(k.kind, k.runs) for k in eu.kinds] == [("pod-kill", 2), ("latency", 1), ("cpu-stress", 1),
                                                     ("db-failover", 0)]
    assert [k.score for k in eu.kinds] == pytest.approx([2 / 3, 0.5 ** (1 / 3) * 0.5, 0.0, 0.0])
    assert eu.kinds[0].newest_utc == now - timedelta(hours=24)
    assert eu.kinds[3].newest_utc is None
    assert eu.tier == 1
    assert eu.score == pytest.approx(100 * (2 / 3 + 0.5 ** (1 / 3) * 0.5) / 4)
    # us-1: four passes 400 days old: 0.5 ** (400/30) = 0.0000973 each; stale evidence fades
    assert us.tier == 3 and us.score == pytest.approx(100 * 0.5 ** (400 / 30))
    assert (ap.cell, ap.tier, ap.score) == ("ap-1", 2, 0.0)
    # fleet (3 * eu + 1 * us + 2 * 0) / (3 + 1 + 2)
    assert score.fleet == pytest.approx((3 * eu.score + us.score) / 6)
    assert score.fleet == pytest.approx(13.2956, abs=1e-4)


def test_resilience_score_of_one_cell_only() -> None:
    now = T0 + timedelta(days=1)
    runs = [run("a", kind="pod-kill"), run("b", kind="latency"), run("c", kind="db-failover"),
            run("d", kind="cpu-stress", verdict="not_recovered")]  # scores 0
    score = resilience_score(runs, now)
    # each pass is 1 day old: 0.5 ** (1/30) = 0.97716; 100 * (3 * 0.97716 + 0) / 4 = 73.287;
    # one cell: the fleet is that cell whatever its tier
    assert [c.cell for c in score.cells] == ["eu-1"]
    assert score.cells[0].score == pytest.approx(75 * 0.5 ** (1 / 30))
    assert score.fleet == score.cells[0].score


def test_resilience_score_survives_very_old_runs() -> None:
    # 0.5 ** (100000 / 30) underflows to 0: no division by zero, the evidence has faded to nothing
    now = T0
    runs = [run("a", started=now - timedelta(days=100_000)), run("b", started=now - timedelta(days=100_001))]
    assert resilience_score(runs, now).cells[0].kinds[0].score == 0.0


def test_score_formula_is_plain_text_of_a_few_sentences() -> None:
    assert 2 <= SCORE_FORMULA.count(". ") + 1 <= 4
    assert "30 days" in SCORE_FORMULA and "tier" in SCORE_FORMULA


# -- findings --------------------------------------------------------------------------------


def test_findings_newest_first_with_run_level_findings() -> None:
    runs = [
        run("passed", started=T0 + timedelta(hours=5), criteria=(met("recovery"),)),
        run("op", started=T0 + timedelta(hours=4), verdict="aborted", reason="operator: stop",
            criteria=(missed("recovery"),)),  # inconclusive: no finding
        run("failed", started=T0 + timedelta(hours=3), verdict="failed", reason="missed: A (2)",
            criteria=(met("B"), missed("A", "recovery_s <= 60", "75.2"))),
        run("nr", started=T0 + timedelta(hours=2), verdict="not_recovered",
            reason="the cell did not recover within the recovery timeout", criteria=(missed("C"),)),
        run("halt", kind="latency", started=T0 + timedelta(hours=1), verdict="aborted", reason=HALT_REASON),
    ]
    found = findings(runs)
    assert [(f.run_id, f.criterion) for f in found] == [
        ("failed", "A"), ("nr", NOT_RECOVERED_CRITERION), ("nr", "C"), ("halt", HALT_CRITERION)]
    assert found[0] == Finding(T0 + timedelta(hours=3), "failed", "eu-1", "pod-kill", "failed", "A",
                               "recovery_s <= 60", "75.2")
    assert found[1].actual == "the cell did not recover within the recovery timeout"
    assert (found[3].verdict, found[3].kind, found[3].actual) == ("aborted", "latency", HALT_REASON)
    assert findings(runs, limit=2) == found[:2]
    assert findings(runs, limit=0) == ()


# -- selection and counts --------------------------------------------------------------------


def test_select_runs_by_time_and_cell() -> None:
    runs = [run("a", started=T0), run("b", started=T0 + timedelta(days=1)),
            run("c", cell="us-1", started=T0 + timedelta(days=2))]
    assert select_runs(runs) == tuple(runs)
    assert [r.run_id for r in select_runs(runs, since=T0 + timedelta(days=1))] == ["b", "c"]
    assert [r.run_id for r in select_runs(runs, until=T0 + timedelta(days=1))] == ["a"]  # until exclusive
    assert [r.run_id for r in select_runs(runs, cells={"us-1"})] == ["c"]
    assert select_runs(runs, cells=[]) == ()


def test_summary_counts_by_class_and_verdict() -> None:
    runs = [run("p"), run("f", verdict="failed"), run("n", verdict="not_recovered"),
            run("h", verdict="aborted", reason=HALT_REASON), run("o", verdict="aborted", reason="window_end"),
            run("s", verdict="skipped"), run("r", verdict=None)]
    assert summary_counts(runs) == SummaryCounts(total=7, evidence=4, inconclusive=1, skipped=1, running=1,
                                                 passed=1, failed=1, not_recovered=1, aborted=2, halted=1)


def test_results_are_plain_json_values() -> None:
    runs = [run("a", recovery_s=3, downtime_s=6, kind="db-failover", rto_s=2, rpo_s=0, rpo_rows=0)]
    now = T0 + timedelta(days=1)
    results = (mttr(runs), dr_compliance(runs)[0], error_budget(runs)[0], summary_counts(runs))
    text = json.dumps([asdict(r) for r in results])
    assert '"mean_s": 3.0' in text and '"worst_rto_s": 2.0' in text
    score = resilience_score(runs, now)
    json.dumps(asdict(score), default=str)
    assert type(score.fleet) is float


# -- environments ----------------------------------------------------------------------------


def test_figures_by_environment_never_mix_sandbox_and_production() -> None:
    runs = [run("s1", recovery_s=1.0), run("s2", impact="none"),
            run("p1", environment="production", recovery_s=30.0),
            run("u1", environment="", recovery_s=5.0)]  # a record that cannot say
    assert environments(runs) == ("production", "sandbox", "unknown")
    by_env = dict(mttr_by(runs, "environment"))
    assert (by_env["sandbox"].mean_s, by_env["sandbox"].no_impact, by_env["sandbox"].evidence) == (1.0, 1, 2)
    assert by_env["production"].mean_s == 30.0
    assert [r.run_id for r in select_runs(runs, envs={"production"})] == ["p1"]


# -- coverage --------------------------------------------------------------------------------


def test_coverage_says_last_tested_never_excluded_and_what_blocks_the_next_run() -> None:
    now = T0 + timedelta(days=40)
    runs = [run("pk", kind="pod-kill", started=now - timedelta(days=1)),
            run("pk-old", kind="pod-kill", started=now - timedelta(days=9), verdict="failed"),
            run("lat", kind="latency", started=now - timedelta(days=35)),  # stale: older than 30 days
            run("db", kind="db-failover", started=now - timedelta(days=3))]
    plan = (Upcoming("eu-1", "pod-kill", now + timedelta(days=2), None, "w-1"),
            Upcoming("eu-1", "db-failover", now + timedelta(days=23), "freeze: year-end change freeze",
                     "w-4"),
            Upcoming("us-1", "pod-kill", now + timedelta(days=2), None, "w-1"))
    outlook = ScheduleOutlook("weekly", 28.0, ("eu-1", "us-1"), plan,
                              excluded={"us-1": frozenset({"db-failover"})})
    cover = {(c.cell, c.kind): c for c in coverage(runs, now, ["eu-1", "us-1"], outlook)}
    assert len(cover) == 8
    pk = cover[("eu-1", "pod-kill")]
    assert (pk.state, pk.last_run_id, pk.last_verdict, pk.runs, pk.stale) == (
        "tested", "pk", "passed", 2, False)
    assert (pk.next_utc, pk.next_window_id, pk.blocked_by) == (now + timedelta(days=2), "w-1", None)
    assert cover[("eu-1", "latency")].stale and cover[("eu-1", "latency")].age_days == 35.0
    db = cover[("eu-1", "db-failover")]
    assert (db.next_utc, db.blocked_by, db.blocked_reason) == (
        None, "freeze", "freeze: year-end change freeze")
    assert cover[("eu-1", "cpu-stress")].state == "never" and cover[("eu-1", "cpu-stress")].planned == 0
    assert cover[("us-1", "db-failover")].state == "excluded"
    assert cover[("us-1", "pod-kill")].state == "never"


def test_coverage_without_a_schedule_reads_exclusions_from_skipped_runs() -> None:
    runs = [run("x", kind="db-failover", verdict="skipped", reason="excluded: eu-1 never runs db-failover")]
    entry, = (c for c in coverage(runs, T0 + timedelta(hours=1), ["eu-1"]) if c.kind == "db-failover")
    assert (entry.state, entry.scheduled, entry.excluded_reason) == (
        "excluded", False, "eu-1 never runs db-failover")


def test_coverage_flags_a_cell_the_error_budget_gate_would_hold() -> None:
    now = T0 + timedelta(days=10)
    # 99.95 % over 30 days allows 21.6 min; 20 min of downtime is 92.6 % > 80 %
    runs = [run("pk", started=now - timedelta(days=1), downtime_s=1200.0)]
    budgets = rolling_budget(runs, now, timedelta(days=30))
    assert budgets[0].pct == pytest.approx(100 * 1200 / (0.0005 * 30 * 86400))
    outlook = ScheduleOutlook("weekly", 28.0, ("eu-1",),
                              (Upcoming("eu-1", "pod-kill", now + timedelta(days=1)),))
    entry = coverage(runs, now, ["eu-1"], outlook, budgets)[0]
    assert entry.blocked_by == "error budget" and entry.blocked_reason is not None
    assert entry.blocked_reason.startswith("error_budget: 92.6 % of the 30-day budget consumed (limit 80 %)")


# -- objectives and next steps ---------------------------------------------------------------


def test_objectives_statuses_against_the_seed_targets() -> None:
    ok = CriterionResult("full recovery within 1 minute", "recovery_s <= 60", "1", True)
    runs = [run(f"p{i}", recovery_s=1.0, restore_s=12.0, criteria=(ok,)) for i in range(19)]
    runs.append(run("slow", kind="pod-kill", recovery_s=2.0, restore_s=45.0, criteria=(ok,)))
    by_key = {o.key: o for o in objectives(runs, ["eu-1", "us-1"], ())}
    # 20 of 20 passed: > 95 % with enough runs
    assert (by_key["pass_rate"].status, by_key["pass_rate"].met, by_key["pass_rate"].total) == ("met", 20, 20)
    assert by_key["recovery"].status == "met"
    # one restore took 45 s: above 30 s, within 60 s
    assert (by_key["restore"].status, by_key["restore"].met, by_key["restore"].value) == ("at risk", 19, 45.0)
    assert by_key["rto"].status == by_key["rpo"].status == "unknown"  # no failover at all
    assert by_key["error_budget"].status == "unknown"
    few = {o.key: o for o in objectives(runs[:3], ["eu-1"], ())}
    assert few["pass_rate"].status == "unproven"  # 3 of 3 is above 95 %, but 3 runs show nothing
    missed = {o.key: o for o in objectives([*runs[:3], run("f", verdict="failed")], ["eu-1"], ())}
    assert missed["pass_rate"].status == "missed"


def test_rto_is_unproven_while_a_cell_never_ran_a_failover() -> None:
    runs = [run("db", kind="db-failover", rto_s=0.1, rpo_s=0.0, rpo_rows=0)]
    by_key = {o.key: o for o in objectives(runs, ["eu-1", "us-1"], ())}
    assert (by_key["rto"].status, by_key["rto"].untested) == ("unproven", 1)
    assert {o.key: o for o in objectives(runs, ["eu-1"], ())}["rto"].status == "met"


def test_every_finding_comes_with_its_next_step() -> None:
    now = T0 + timedelta(days=2)
    lost = CriterionResult("no data loss (RPO)", "rpo_rows <= 0", "3", False)
    runs = [run("db", kind="db-failover", verdict="failed", rpo_rows=3, rpo_s=0.4, criteria=(lost,),
                started=now - timedelta(hours=5)),
            run("nr", kind="latency", verdict="not_recovered", impact="seen",
                started=now - timedelta(hours=4)),
            run("hot", cell="us-1", kind="pod-kill", downtime_s=1200.0, started=now - timedelta(hours=3))]
    budgets = rolling_budget(runs, now, timedelta(days=30))
    outlook = ScheduleOutlook("weekly", 28.0, ("eu-1", "us-1"), (),
                              excluded={"us-1": frozenset({"db-failover"})})
    cover = coverage(runs, now, ["eu-1", "us-1"], outlook, budgets)
    found = actions(runs, cover, budgets, {"eu-1": 1, "us-1": 2})
    rules = [(a.rule, a.cell, a.kind) for a in found]
    assert rules[:3] == [("rpo_loss", "eu-1", "db-failover"), ("not_recovered", "eu-1", "latency"),
                         ("budget_freeze", "us-1", None)]
    assert ("excluded", "us-1", "db-failover") in rules
    assert ("never_tested", "eu-1", "cpu-stress") in rules
    assert rules[-1] == ("sandbox_only", None, None)
    by_rule = {a.rule: a for a in found}
    assert by_rule["rpo_loss"].next_step.startswith("make replication synchronous, or accept the loss")
    assert by_rule["rpo_loss"].run_id == "db" and "lost 3 acknowledged writes" in by_rule["rpo_loss"].finding
    assert by_rule["never_tested"].next_step.startswith("schedule it")
    assert "freeze chaos on this cell until its error budget is back under 80 %" \
        in by_rule["budget_freeze"].next_step
    assert all(a.next_step for a in found) and set(by_rule) <= set(NEXT_STEPS)


def test_what_lowered_a_kind_score_adds_up_to_what_it_lost() -> None:
    now = T0 + timedelta(days=60)
    runs = [run("old-pass", started=now - timedelta(days=30)),  # weight 0.5: decay costs half
            run("failed", kind="latency", verdict="failed", started=now - timedelta(seconds=1))]  # 0.5
    cell, = resilience_score(runs, now).cells
    pod, lat, cpu, _ = cell.kinds
    assert kind_points(pod) == pytest.approx((0.0, 12.5))  # 25 * (1 - 0.5) for stale evidence
    assert kind_points(lat) == pytest.approx((12.5, 0.0), abs=1e-4)  # 25 * (1 - 0.5) for the failure
    assert kind_points(cpu) == (0.0, 25.0)  # untested
    assert cell.score == pytest.approx(100 - sum(sum(kind_points(k)) for k in cell.kinds))


# -- what the resilience report reads --------------------------------------------------------


def _fleet_year(count: int = 600) -> list[RunRecord]:
    """Runs of every kind, verdict and environment over a year, with the full version-2
    figures a runner stores (far more than the report reads), newest first as the store gives."""
    verdicts: tuple[Verdict, ...] = ("passed", "passed", "failed", "not_recovered", "aborted", "skipped",
                                     "passed")
    out = []
    for i in range(count):
        kind = KINDS[i % 4]
        verdict = verdicts[i % len(verdicts)]
        seen = i % 3 != 0
        figures: dict[str, Any] = {
            "impact": "seen" if seen else "none", "recovery_s": 0.5 + i % 17 if seen else None,
            "adapted": i % 11 == 0, "restore_s": 1.0 + i % 41, "downtime_s": i % 5 * 1.5,
            "rto_s": 0.2 + i % 19 if kind == "db-failover" else None,
            "rpo_s": 0.01 * (i % 4) if kind == "db-failover" else None,
            "rpo_rows": i % 4 if kind == "db-failover" else None,
            "t_inject": 4.2, "p95_ms_baseline": 11.0, "error_rate": 0.01, "samples": 150,
            "probe_hz": 10.0, "observed_by": "sandbox", "recovered": verdict != "not_recovered"}
        criteria = (CriterionResult("recovery", "recovery_s <= 5", f"{i % 17} s", i % 17 <= 5),
                    CriterionResult("errors", "error_rate <= 0.02", "1 %", True))
        out.append(run(f"r{i:04d}", cell=f"cell-{i % 13:02d}", kind=kind, verdict=verdict,
                       started=T0 - timedelta(hours=14 * i),
                       reason="halt: error rate above 50%" if verdict == "aborted" and i % 2 else None,
                       objectives=OBJ if i % 9 else None, criteria=criteria,
                       environment=("sandbox", "staging", "production")[i % 13 % 3], **figures))
    return out


@pytest.mark.parametrize("envs", [None, ("staging",)])
def test_the_resilience_report_reads_only_its_figures(envs: tuple[str, ...] | None) -> None:
    """Store.report_runs reads only resilience_context.FIGURES for the report: the report is the
    same from runs that hold nothing else."""
    from dataclasses import replace

    from gameday.reporting.resilience_context import FIGURES, build_resilience_report

    runs = _fleet_year()
    trimmed = [replace(r, figures={k: v for k, v in r.figures.items() if k in FIGURES and v is not None})
               for r in runs]
    now = T0 + timedelta(days=1)
    plan = ScheduleOutlook(name="weekly", horizon_days=28, cells=("cell-00", "cell-99"),
                           upcoming=(Upcoming("cell-00", "latency", now + timedelta(days=3)),
                                     Upcoming("cell-99", "pod-kill", now + timedelta(days=4), "freeze: x")))
    for outlook in (None, plan):
        full = build_resilience_report(runs, now, now - timedelta(days=180), now, None, outlook, envs)
        lean = build_resilience_report(trimmed, now, now - timedelta(days=180), now, None, outlook, envs)
        full.pop("generated_at"), lean.pop("generated_at")
        assert lean == full
        assert full["mttr"]["overall"]["runs"] and full["dr_compliance"] and full["actions"]["total"]


# -- the report's one pass over its runs -----------------------------------------------------


def _mixed_fleet(now: datetime, cells: int = 13,
                 envs: tuple[str, ...] = ("sandbox", "staging", "production", "")) -> list[RunRecord]:
    """Runs of every verdict class (halted aborts and other aborts, skipped with and without an
    exclusion, running), impact none, seen and unknown, adapted recoveries, runs that did not
    recover, failovers with and without objectives (RPO losses, slow RTOs), slow restores,
    downtime, several environments and a record that cannot say, runs from two periods back
    (the trend's previous period, coverage's last tested, the rolling budget) and runs after
    the report's end, starts in other zones and naive ones, and two runs at the same instant."""
    verdicts: tuple[Verdict | None, ...] = ("passed", "failed", "passed", "not_recovered", "aborted",
                                            "skipped", "passed", "aborted", None, "failed", "passed")
    out = []
    for i in range(420):
        kind = KINDS[i % 4] if i % 17 else "chaos-monkey"  # a kind outside the four
        verdict = verdicts[i % len(verdicts)]
        impact = ("none", "seen", "seen", None)[i % 4]
        started = now - timedelta(hours=9 * i + 0.5)
        if i % 7 == 0:
            started = started.astimezone(timezone(timedelta(hours=-5)))
        if i % 23 == 0:
            started = started.replace(tzinfo=None) - timedelta(hours=0)  # naive: taken as UTC
        if i == 17:
            started = out[4].started_utc  # the same instant as another run of the cell
        if i % 41 == 0:
            started = now + timedelta(hours=i % 3)  # at or after the end: outside every figure
        figures: dict[str, Any] = {
            "impact": impact, "recovery_s": 0.25 * (i % 29) if impact == "seen" and i % 5 else None,
            "adapted": i % 6 == 0, "restore_s": None if i % 9 == 0 else float(i % 47),
            "downtime_s": (i % 5) * 1.7,
            "rto_s": 0.3 * (i % 13) if kind == "db-failover" and i % 8 else None,
            "rpo_s": 0.02 * (i % 3) if kind == "db-failover" else None,
            "rpo_rows": (i % 4 if i % 3 else 0) if kind == "db-failover" else None}
        bound = 60 if i % 3 == 1 else 5  # the most common bound is 5, that of the newest run 60
        criteria = [CriterionResult("recovery", f"recovery_s <= {bound}", f"{i % 29} s", i % 29 <= bound),
                    CriterionResult("errors", "error_rate <= 0.02", "1 %", i % 13 != 0)]
        if kind == "db-failover":
            criteria.append(CriterionResult("RTO", "rto_s <= 3", f"{0.3 * (i % 13):.1f}", i % 13 < 10))
            criteria.append(CriterionResult("RPO", "rpo_rows <= 0", str(i % 4), i % 4 == 0))
        reason = {"aborted": "halt: error rate above 50%" if i % 3 else "operator: interrupted",
                  "skipped": "excluded: not this kind here" if i % 2 else "freeze window",
                  "not_recovered": "the cell did not recover within the recovery timeout"}.get(verdict or "")
        objectives = None if i % 10 == 0 else CellObjectives(
            tier=1 + i % 4, tenants=(f"tenant-{i % 3}",), availability_slo=(99.95, 99.9, 100.0)[i % 3],
            p95_latency_slo_ms=300.0, rto_s=(2.0, 30.0)[i % 2], rpo_s=(0.0, 60.0)[i % 2])
        out.append(RunRecord(
            run_id=f"r{i:04d}", experiment=kind, experiment_path=f"experiments/{kind}.yaml", kind=kind,
            cell=f"cell-{i % cells:02d}", target="local" if i % 5 else "kubernetes", started_utc=started,
            status="running" if verdict is None else "completed", verdict=verdict, reason=reason,
            figures=figures, criteria=criteria, window_id=f"w-{i // 40}" if i % 4 else None,
            objectives=objectives, environment=envs[i // 3 % len(envs)]))
    return out


def _per_run_report(runs: list[RunRecord], now: datetime, since: datetime, cells: list[str] | None,
                    outlook: ScheduleOutlook | None, envs: tuple[str, ...] | None) -> dict[str, Any]:
    """The report's figures by the per-run definitions, each over the runs it is defined on."""
    from gameday.analytics import assessment, fleet
    from gameday.reporting.context import plain

    chosen = select_runs(runs, since, now, cells, envs)
    known = select_runs(runs, None, now, cells, envs)
    period = now - since
    rolling = rolling_budget(known, now, timedelta(days=outlook.budget_period_days if outlook else 30.0))
    names = sorted({r.cell for r in chosen} | set(cells or ())
                   | (set(outlook.cells) if outlook and not cells else set()))
    cover = coverage(known, now, names, outlook, rolling)
    score = resilience_score(chosen, now, names)
    evidence = fleet.evidence(chosen)
    limit = (outlook.budget_max_pct if outlook else None) or assessment.BUDGET_FREEZE_PCT
    envs_seen = environments(chosen)
    return {
        "mttr": plain(mttr(chosen)),
        **{f"by_{key}": [{key: label, **plain(m)} for label, m in mttr_by(evidence, key)]  # type: ignore[arg-type]
           for key in ("environment", "kind", "cell", "week")},
        "trend": plain(trend(select_runs(runs, since - period, now, cells, envs), now, period)),
        "pass_rate": plain(pass_rate(chosen)),
        "pass_by_cell_kind": {key: plain(rate) for key, rate in pass_rate_by(chosen).items()},
        "dr": plain(dr_compliance(chosen)),
        "error_budget": plain(error_budget(chosen)),
        "rolling": plain(rolling),
        "score": plain(score),
        "coverage": plain(cover),
        "objectives": {env: plain(objectives([r for r in chosen if fleet.environment(r) == env], names,
                                             rolling if len(envs_seen) <= 1 else (), limit))
                       for env in envs_seen},
        "actions": plain(actions(chosen, cover, rolling, {c.cell: c.tier for c in score.cells}, limit,
                                 outlook.budget_period_days if outlook else 30.0)),
        "findings": plain(findings(chosen)),
        "counts": plain(summary_counts(chosen)),
        "environments": list(envs_seen),
        "scorecard": [_card(cell, [r for r in evidence if r.cell == cell]) for cell in names],
        # the MTTR chart's target line: the most common bound on recovery_s of the first runs
        "target": Counter(float(c.expected.split(" <= ")[1]) for r in chosen[:5000] for c in r.criteria
                          if c.expected.startswith("recovery_s <= ")).most_common(1)[0][0],
    }


def _card(cell: str, mine: list[RunRecord]) -> dict[str, Any]:
    """A scorecard row's figures from the cell's evidence runs."""
    from gameday.reporting.context import plain

    newest = max(mine, key=lambda r: r.started_utc.replace(tzinfo=r.started_utc.tzinfo or UTC), default=None)
    m, rate = mttr(mine), pass_rate(mine)
    return {"cell": cell, "runs": len(mine), "pass_rate": rate.rate, "mttr_mean_s": m.mean_s,
            "no_impact": m.no_impact, "impact_known": m.evidence, "restore_mean_s": m.restore_mean_s,
            "environments": list(environments(mine)),
            "tenants": list(newest.objectives.tenants) if newest and newest.objectives else [],
            "last_run_at": plain(newest.started_utc) if newest else None}


def _compare_with_per_run(report: dict[str, Any], want: dict[str, Any]) -> None:
    assert report["mttr"]["overall"] == want["mttr"]
    for key in ("environment", "kind", "cell", "week"):
        assert report["mttr"][f"by_{key}"] == want[f"by_{key}"], key
    assert report["trend"] == want["trend"]
    assert report["pass_rate"]["overall"] == want["pass_rate"]
    assert {(r["cell"], r["kind"]): {k: r[k] for k in ("evidence", "passed", "rate")}
            for r in report["pass_rate"]["by_cell_kind"] if r["mark"] is None} == want["pass_by_cell_kind"]
    assert report["dr_compliance"] == want["dr"]
    assert report["error_budget"] == want["error_budget"]
    assert report["rolling_budget"] == want["rolling"]
    assert {"fleet": report["score"]["fleet"], "cells": report["score"]["cells"]} == want["score"]
    rows = [row for cell in report["coverage"]["cells"] for row in cell["kinds"]]
    assert [(r["cell"], r["kind"], r["state"], r["runs"], r["last_run_id"], r["last_verdict"], r["stale"],
             r["excluded_reason"], r["next_window_id"], r["blocked_by"]) for r in rows] == \
        [(c["cell"], c["kind"], c["state"], c["runs"], c["last_run_id"], c["last_verdict"], c["stale"],
          c["excluded_reason"], c["next_window_id"], c["blocked_by"]) for c in want["coverage"]]
    got = {}
    for row in report["objectives"]:
        got.setdefault(row["environment"], []).append((row["key"], row["status"], row["met"], row["total"],
                                                      row["value"], row["detail"]))
    single = len(want["environments"]) <= 1
    for env, objs in want["objectives"].items():
        assert got[env] == [(o["key"], o["status"], o["met"], o["total"], o["value"], o["detail"])
                            for o in objs if single or o["key"] != "error_budget"], env
    assert report["actions"]["all"] == want["actions"]
    assert report["findings"] == want["findings"]
    assert report["counts"] == want["counts"]
    assert report["evidence"]["environments"] == want["environments"]
    assert report["mttr_trend"]["target"]["value"] == want["target"]
    assert [{k: row[k] for k in want["scorecard"][0]} for row in report["scorecard"]] == want["scorecard"]


@pytest.mark.parametrize("envs", [None, ("staging", "unknown")])
@pytest.mark.parametrize("order", ["newest first", "shuffled"])
def test_the_report_tally_gives_every_figure_as_its_per_run_definition(envs: tuple[str, ...] | None,
                                                                       order: str) -> None:
    """The report reads its runs once (tally_report) and gives each figure exactly as the
    per-run function that defines it, over the runs it is defined on, for runs in any order
    (order-dependent sums, such as the score's weights, are summed in the order given)."""
    import random

    from gameday.reporting.resilience_context import build_resilience_report

    now = T0 + timedelta(days=200)
    runs = _mixed_fleet(now)
    if order == "shuffled":
        random.Random(7).shuffle(runs)
    else:
        runs.sort(key=lambda r: (r.started_utc.replace(tzinfo=r.started_utc.tzinfo or UTC), r.run_id),
                  reverse=True)
    plan = ScheduleOutlook(name="weekly", horizon_days=28, cells=("cell-00", "cell-99"),
                           upcoming=(Upcoming("cell-00", "latency", now + timedelta(days=3)),
                                     Upcoming("cell-01", "db-failover", now + timedelta(days=4), "freeze")),
                           excluded={"cell-02": frozenset({"cpu-stress"})}, budget_max_pct=5.0)
    for since_days in (10, 60, 120):  # within the error-budget gate's 30 days, and beyond
        since = now - timedelta(days=since_days)
        for outlook in (None, plan):
            report = build_resilience_report(runs, now, since, None, None, outlook, envs)
            _compare_with_per_run(report, _per_run_report(runs, now, since, None, outlook, envs))
            if since_days == 60:  # the runs hold every case the figures tell apart
                counts, previous = report["counts"], report["trend"]["previous"]
                assert counts["halted"] and counts["inconclusive"] and counts["running"] and counts["skipped"]
                assert report["dr_compliance"] and report["actions"]["total"] and report["rolling_budget"]
                assert previous["mttr"]["runs"] and report["findings"]
    cells = ["cell-03", "cell-05"]
    report = build_resilience_report(runs, now, now - timedelta(days=90), None, cells, plan, envs)
    _compare_with_per_run(report, _per_run_report(runs, now, now - timedelta(days=90), cells, plan, envs))


def test_the_mttr_trend_shows_a_few_cells_of_one_environment_one_by_one() -> None:
    from gameday.analytics import fleet
    from gameday.reporting.resilience_context import build_resilience_report

    now = T0 + timedelta(days=200)
    runs = _mixed_fleet(now, cells=3, envs=("staging",))
    since = now - timedelta(days=100)
    trend_data = build_resilience_report(runs, now, since)["mttr_trend"]
    chosen = fleet.evidence(select_runs(runs, since, now))
    weeks = trend_data["weeks"]
    assert weeks == sorted({week_label(r.started_utc) for r in select_runs(runs, since, now)})
    series = {s["name"]: s["values"] for s in trend_data["series"]}
    assert list(series) == ["all cells (staging)", "cell-00", "cell-01", "cell-02"]
    for cell in ("cell-00", "cell-01", "cell-02"):
        mine = [r for r in chosen if r.cell == cell]
        assert series[cell] == [mttr(r for r in mine if week_label(r.started_utc) == w).mean_s for w in weeks]
    # more than MAX_SERIES_CELLS cells, or more than one environment: the fleet's lines only
    many = build_resilience_report(_mixed_fleet(now, cells=9, envs=("staging",)), now, since)
    assert [s["name"] for s in many["mttr_trend"]["series"]] == ["all cells (staging)"]


def test_mttr_tallies_merge_to_the_tally_of_all_their_runs() -> None:
    from gameday.analytics.fleet import MttrTally, merged

    now = T0 + timedelta(days=200)
    evidence = [r for r in _mixed_fleet(now) if classify(r) == "evidence"]
    parts = [MttrTally() for _ in range(3)]
    for i, r in enumerate(evidence):
        parts[i % 3].add(r)
    assert merged(parts).mttr() == mttr(evidence)
    assert merged(parts).pass_rate() == pass_rate(evidence)
    assert merged([]).mttr() == Mttr(0, 0, None, None, None)


@pytest.mark.parametrize("envs", [None, ("staging", "unknown")])
def test_report_tallies_of_cells_apart_merge_to_the_report_of_all_their_runs(
        envs: tuple[str, ...] | None) -> None:
    """The report's data from the tallies of parts of the fleet (each its own cells, each cell's
    runs newest first, as the store answers them), merged, is the report's data from one pass
    over them all: the figures, the findings, the trend's series, the sample behind the MTTR
    target."""
    import pickle
    import random

    from gameday.reporting.resilience_context import (
        MTTR_TARGET_SAMPLE,
        build_resilience_report,
        merge_tallies,
        resilience_report_of,
        resilience_tally,
    )

    now = T0 + timedelta(days=200)
    runs = sorted(_mixed_fleet(now), key=lambda r: (r.started_utc.replace(tzinfo=UTC), r.run_id),
                  reverse=True)
    plan = ScheduleOutlook(name="weekly", horizon_days=28, cells=("cell-00", "cell-99"),
                           upcoming=(Upcoming("cell-00", "latency", now + timedelta(days=3)),),
                           excluded={"cell-02": frozenset({"cpu-stress"})}, budget_max_pct=5.0)
    cells = sorted({r.cell for r in runs})
    for since_days in (10, 120):
        since = now - timedelta(days=since_days)
        for outlook in (None, plan):
            whole = build_resilience_report(runs, now, since, None, None, outlook, envs)
            for shares in (2, 3, len(cells)):
                # cell by cell, as a shard reads (each cell's runs newest first)
                parts = [sorted((r for r in runs if r.cell in cells[i::shares]), key=lambda r: r.cell,
                                reverse=True) for i in range(shares)]
                # as the shards send them: pickled, in another process's objects
                tallies = [pickle.loads(pickle.dumps(resilience_tally(part, now, since, None, None,
                                                                      outlook, envs))) for part in parts]
                assert resilience_report_of(merge_tallies(tallies), now, since, None, None, outlook,
                                            envs) == whole, (since_days, shares)
    # a few cells of one environment: the trend's per-cell series survive the merge
    few = sorted(_mixed_fleet(now, cells=3, envs=("staging",)),
                 key=lambda r: (r.started_utc.replace(tzinfo=UTC), r.run_id), reverse=True)
    since = now - timedelta(days=100)
    whole = build_resilience_report(few, now, since)
    tallies = [resilience_tally([r for r in few if r.cell == c], now, since)
               for c in ("cell-00", "cell-01", "cell-02")]
    merged_report = resilience_report_of(merge_tallies(tallies), now, since)
    assert len(merged_report["mttr_trend"]["series"]) == 4 and merged_report == whole
    # more chosen runs than the target's sample: the merged sample is the newest, as one pass's
    many = [run(f"r{i:05d}", cell=f"c{i % 2}", started=T0 + timedelta(minutes=i),
                criteria=(CriterionResult("recovery", "x", "1", True),))
            for i in range(MTTR_TARGET_SAMPLE + 50)]
    many.reverse()
    one = resilience_tally(many, T0 + timedelta(days=30), T0)
    two = merge_tallies([resilience_tally([r for r in many if r.cell == c], T0 + timedelta(days=30), T0)
                         for c in ("c0", "c1")])
    newest = sorted(r.run_id for r in many)[-MTTR_TARGET_SAMPLE:]
    assert sorted(s[1] for s in two.sample) == sorted(s[1] for s in one.sample) == newest
    shuffled = many[:]
    random.Random(3).shuffle(shuffled)  # in any order: the newest
    assert sorted(s[1] for s in resilience_tally(shuffled, T0 + timedelta(days=30), T0).sample) == newest
    with pytest.raises(ValueError, match="share cells"):
        merge_tallies([resilience_tally(runs, now, since),
                       resilience_tally([r for r in runs if r.cell == "cell-00"], now, since)])
