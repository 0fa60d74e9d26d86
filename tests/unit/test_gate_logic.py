"""The scheduler's gates and notification bodies as pure functions, with the arithmetic written out."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gameday.model import CellObjectives, RunRecord, Verdict
from gameday.scheduler.gates import (
    GateResult,
    budget_consumed_pct,
    display_url,
    error_budget_gate,
    firing_alerts,
    incident_gate,
    min_interval_gate,
    passed,
)
from gameday.scheduler.notify import EVENTS, STANDARD_FIELDS, notification_body

NOW = datetime(2026, 3, 7, 2, 0, tzinfo=UTC)  # a Saturday, 02:00 UTC
DAYS_30 = timedelta(days=30)
OBJ = CellObjectives(tier=1, tenants=("acme",), availability_slo=99.95, p95_latency_slo_ms=300.0,
                     rto_s=900.0, rpo_s=300.0)


def run(run_id: str = "r", *, cell: str = "cell-1", verdict: Verdict | None = "passed",
        started: datetime = NOW - timedelta(days=1), downtime_s: Any = None) -> RunRecord:
    figures = {} if downtime_s is None else {"downtime_s": downtime_s}
    return RunRecord(run_id=run_id, experiment="pod kill", experiment_path="experiments/pod-kill.yaml",
                     kind="pod-kill", cell=cell, target="local", started_utc=started,
                     status="running" if verdict is None else "completed", verdict=verdict,
                     figures=figures, objectives=OBJ)


# -- error budget: the figure --------------------------------------------------------------------


def test_budget_99_95_over_30_days_is_21_6_minutes_and_18_minutes_down_is_83_3_pct() -> None:
    # budget = (1 - 0.9995) * 30 * 86,400 s = 1,296 s = 21.6 min; 18 min = 1,080 s; 1,080 / 1,296 = 83.33 %
    runs = [run("a", downtime_s=600.0), run("b", started=NOW - timedelta(days=20), downtime_s=480.0)]
    pct = budget_consumed_pct("cell-1", runs, NOW, DAYS_30, 99.95)
    assert pct == pytest.approx(100 * 1080 / 1296)
    assert pct == pytest.approx(83.333, abs=1e-3)
    gate = error_budget_gate("cell-1", pct, 80.0, 30, "store")
    assert gate.blocked
    assert gate.reason == "error_budget: 83.3 % of the 30-day budget consumed (limit 80 %)"
    assert gate.detail["consumed_pct"] == pytest.approx(83.333, abs=1e-3)
    assert gate.detail["source"] == "store"


def test_only_the_cells_counted_runs_inside_the_half_open_period_count() -> None:
    runs = [
        run("inside", downtime_s=129.6),  # 10 % of 1,296 s
        run("at-period-start", started=NOW - DAYS_30, downtime_s=129.6),  # included: [now - period, now)
        run("at-now", started=NOW, downtime_s=999.0),  # excluded: the period ends before now
        run("too-old", started=NOW - DAYS_30 - timedelta(seconds=1), downtime_s=999.0),
        run("skipped", verdict="skipped", downtime_s=999.0),
        run("other-cell", cell="cell-2", downtime_s=999.0),
        run("no-figure"),
        run("nan-figure", downtime_s=math.nan),
        run("running", verdict=None, downtime_s=129.6),  # a run in progress has already cost its downtime
    ]
    assert budget_consumed_pct("cell-1", runs, NOW, DAYS_30, 99.95) == pytest.approx(30.0)


def test_rolling_period_does_not_reset_on_the_first_of_the_month() -> None:
    # the report's calendar month would start afresh on 1 April; the gate still sees March 31st
    burnt = run("burnt", started=datetime(2026, 3, 31, 22, 0, tzinfo=UTC), downtime_s=1296.0)
    now = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)
    assert budget_consumed_pct("cell-1", [burnt], now, DAYS_30, 99.95) == pytest.approx(100.0)


def test_naive_datetimes_are_utc() -> None:
    naive = run(started=datetime(2026, 3, 6, 2, 0), downtime_s=129.6)
    assert budget_consumed_pct("cell-1", [naive], NOW.replace(tzinfo=None), DAYS_30, 99.95) \
        == pytest.approx(10.0)


def test_a_100_pct_slo_has_no_budget() -> None:
    assert budget_consumed_pct("cell-1", [run(downtime_s=0.5)], NOW, DAYS_30, 100.0) == math.inf
    assert budget_consumed_pct("cell-1", [run(downtime_s=0.0)], NOW, DAYS_30, 100.0) == 0.0
    assert budget_consumed_pct("cell-1", [], NOW, DAYS_30, 100.0) == 0.0
    gate = error_budget_gate("cell-1", math.inf, 80.0, 30, "store")
    assert gate.blocked
    assert gate.reason == ("error_budget: the 30-day budget is exhausted (it allows no downtime; "
                           "limit 80 %)")


@pytest.mark.parametrize(("period", "slo"), [(timedelta(0), 99.9), (-DAYS_30, 99.9), (DAYS_30, 100.5),
                                             (DAYS_30, -1.0)])
def test_budget_rejects_a_bad_period_or_slo(period: timedelta, slo: float) -> None:
    with pytest.raises(ValueError, match="budget_consumed_pct"):
        budget_consumed_pct("cell-1", [], NOW, period, slo)


# -- error budget: the gate ----------------------------------------------------------------------


def test_budget_at_the_limit_passes_above_blocks() -> None:
    at_limit = error_budget_gate("cell-1", 80.0, 80.0, 30, "prometheus")
    assert not at_limit.blocked and at_limit.reason is None
    assert at_limit.detail["source"] == "prometheus"
    above = error_budget_gate("cell-1", 85.24, 80.0, 7.5, "prometheus")
    assert above.reason == "error_budget: 85.2 % of the 7.5-day budget consumed (limit 80 %)"


def test_budget_fails_closed_when_the_source_cannot_answer() -> None:
    gate = error_budget_gate("cell-1", None, 80.0, 30, "prometheus",
                             error="Prometheus at http://prom:9090: HTTP 503 Service Unavailable")
    assert gate.blocked
    assert gate.reason == ("error_budget: could not read the budget "
                           "(Prometheus at http://prom:9090: HTTP 503 Service Unavailable)")
    assert error_budget_gate("cell-1", None, 80.0, 30, "store").reason == \
        "error_budget: could not read the budget (no figure)"
    assert error_budget_gate("cell-1", math.nan, 80.0, 30, "store").blocked


def test_budget_source_must_be_known() -> None:
    with pytest.raises(ValueError, match="source"):
        error_budget_gate("cell-1", 1.0, 80.0, 30, "grafana")


# -- min interval --------------------------------------------------------------------------------


def test_last_ran_3_hours_ago_with_a_24_hour_minimum_blocks() -> None:
    runs = [run("old", started=NOW - timedelta(days=3)), run("new", started=NOW - timedelta(hours=3))]
    gate = min_interval_gate("cell-1", runs, NOW, timedelta(hours=24))
    assert gate.blocked
    assert gate.reason == "min_interval: cell-1 last ran 3.0 h ago (minimum 24 h)"
    assert gate.detail["last_run_id"] == "new"
    assert gate.detail["age_s"] == 3 * 3600


def test_skipped_running_and_other_cells_runs_do_not_count() -> None:
    runs = [
        run("ran", started=NOW - timedelta(hours=30)),
        run("skipped", verdict="skipped", started=NOW - timedelta(hours=1)),
        run("running", verdict=None, started=NOW - timedelta(hours=1)),
        run("other", cell="cell-2", started=NOW - timedelta(hours=1)),
    ]
    gate = min_interval_gate("cell-1", runs, NOW, timedelta(hours=24))
    assert not gate.blocked
    assert gate.detail["last_run_id"] == "ran"


@pytest.mark.parametrize("verdict", ["failed", "aborted", "not_recovered"])
def test_every_run_that_ran_counts_whatever_its_verdict(verdict: Verdict) -> None:
    gate = min_interval_gate("cell-1", [run(verdict=verdict, started=NOW - timedelta(minutes=30))], NOW,
                             timedelta(hours=1))
    assert gate.reason == "min_interval: cell-1 last ran 0.5 h ago (minimum 1 h)"


def test_min_interval_boundaries() -> None:
    exactly = [run(started=NOW - timedelta(hours=24))]
    assert not min_interval_gate("cell-1", exactly, NOW, timedelta(hours=24)).blocked
    assert min_interval_gate("cell-1", [], NOW, timedelta(hours=24)) == passed("min_interval")
    just_now = [run(started=NOW)]
    assert min_interval_gate("cell-1", just_now, NOW, timedelta(0)) == passed("min_interval")
    # a run dated after now (clock skew) is as recent as it gets
    future = [run(started=NOW + timedelta(minutes=5))]
    assert min_interval_gate("cell-1", future, NOW, timedelta(hours=24)).reason == \
        "min_interval: cell-1 last ran 0.0 h ago (minimum 24 h)"


# -- incidents -----------------------------------------------------------------------------------


def alert(name: str | None, state: str | None = "active", **labels: str) -> dict[str, Any]:
    body: dict[str, Any] = {"labels": ({"alertname": name} if name else {}) | labels,
                            "startsAt": "2026-03-07T01:50:00Z", "endsAt": "2026-03-07T02:10:00Z"}
    if state is not None:
        body["status"] = {"state": state, "silencedBy": [], "inhibitedBy": []}
    return body


MATCHERS = {"cell": "$cell", "severity": "critical"}


def test_firing_alerts_match_every_label_with_cell_substituted() -> None:
    alerts = [
        alert("HighErrorRate", cell="cell-1", severity="critical", team="payments"),
        alert("HighErrorRate", cell="cell-1", severity="critical", instance="b"),  # same name: listed once
        alert("DatabaseDown", cell="cell-2", severity="critical"),  # another cell
        alert("DiskFilling", cell="cell-1", severity="warning"),  # another severity
        alert("NoCellLabel", severity="critical"),  # a missing label does not match
        alert(None, cell="cell-1", severity="critical"),
        alert("Silenced", state="suppressed", cell="cell-1", severity="critical"),
        alert("NotYetRouted", state="unprocessed", cell="cell-1", severity="critical"),
        alert("HandWritten", state=None, cell="cell-1", severity="critical"),  # no status: counts
    ]
    assert firing_alerts(alerts, MATCHERS, "cell-1") == ["HandWritten", "HighErrorRate", "unnamed"]
    assert firing_alerts(alerts, MATCHERS, "cell-2") == ["DatabaseDown"]
    assert firing_alerts(alerts, MATCHERS, "cell-3") == []


def test_no_matchers_match_every_active_alert_and_cell_can_sit_inside_a_value() -> None:
    alerts = [alert("A"), alert("B", state="suppressed"), alert("C", service="payments-cell-1")]
    assert firing_alerts(alerts, {}, "cell-1") == ["A", "C"]
    assert firing_alerts(alerts, {"service": "payments-$cell"}, "cell-1") == ["C"]


def test_incident_gate_blocks_on_a_firing_alert() -> None:
    gate = incident_gate("cell-1", [alert("HighErrorRate", cell="cell-1", severity="critical")], MATCHERS)
    assert gate.blocked
    assert gate.reason == "incidents: HighErrorRate firing"
    assert gate.detail["firing"] == ["HighErrorRate"]
    two = incident_gate("cell-1", [alert("B", cell="cell-1"), alert("A", cell="cell-1")], {"cell": "$cell"})
    assert two.reason == "incidents: A, B firing"


def test_incident_gate_passes_when_nothing_matching_fires() -> None:
    assert not incident_gate("cell-1", [], MATCHERS).blocked
    silenced = [alert("HighErrorRate", state="suppressed", cell="cell-1", severity="critical")]
    assert not incident_gate("cell-1", silenced, MATCHERS).blocked


def test_incident_gate_fails_closed_when_alerts_could_not_be_read() -> None:
    gate = incident_gate("cell-1", None, MATCHERS,
                         error="Alertmanager at http://am:9093: no answer within 2 s")
    assert gate.blocked
    assert gate.reason == ("incidents: could not check alerts (Alertmanager at http://am:9093: no answer "
                           "within 2 s) - no chaos while blind")
    assert incident_gate("cell-1", None, MATCHERS).blocked


# -- GateResult ----------------------------------------------------------------------------------


def test_gate_result_keeps_its_shape() -> None:
    assert passed("freeze") == GateResult("freeze", False, None, {})
    assert GateResult("freeze", True, "freeze: change freeze until 2026-03-09").blocked
    with pytest.raises(ValueError, match="start with"):
        GateResult("freeze", True, "change freeze")
    with pytest.raises(ValueError, match="exactly when"):
        GateResult("freeze", True, None)
    with pytest.raises(ValueError, match="exactly when"):
        GateResult("freeze", False, "freeze: x")
    with pytest.raises(ValueError, match="unknown gate"):
        passed("lunar_phase")


def test_display_url_hides_passwords_and_queries() -> None:
    assert display_url("http://am:s3cret@alertmanager:9093/am?token=abc") == \
        "http://am:***@alertmanager:9093/am"
    assert display_url("https://prom.example/") == "https://prom.example/"


# -- notification bodies -------------------------------------------------------------------------

AT = datetime(2026, 3, 7, 2, 14, 3, tzinfo=UTC)
RUN_FIELDS = {"schedule": "weekly-chaos", "window_id": "win-1", "cell": "cell-1", "experiment": "pod-kill",
              "run_id": "run-20260307-021403-ab12"}


@pytest.mark.parametrize(("event", "fields", "text"), [
    ("window_start", {"schedule": "weekly-chaos", "window_id": "win-1"},
     ":arrow_forward: gameday: window started - weekly-chaos win-1"),
    ("window_end", {"schedule": "weekly-chaos", "window_id": "win-1", "runs": 4, "passed": 3},
     ":checkered_flag: gameday: window ended - weekly-chaos win-1"),
    ("run_failed", RUN_FIELDS | {"verdict": "failed", "reason": "missed: error rate < 1 % during recovery"},
     ":red_circle: gameday: run failed - pod-kill on cell-1 (missed: error rate &lt; 1 % during recovery) "
     "run-20260307-021403-ab12"),
    ("run_aborted", RUN_FIELDS | {"verdict": "aborted", "reason": "halt: error rate above 50% for 5 s"},
     ":octagonal_sign: gameday: run aborted - pod-kill on cell-1 (halt: error rate above 50% for 5 s) "
     "run-20260307-021403-ab12"),
    ("run_skipped", RUN_FIELDS | {"verdict": "skipped", "reason": "incidents: HighErrorRate firing"},
     ":fast_forward: gameday: run skipped - pod-kill on cell-1 (incidents: HighErrorRate firing) "
     "run-20260307-021403-ab12"),
])
def test_notification_body_for_each_event(event: str, fields: dict[str, Any], text: str) -> None:
    body = notification_body(event, fields, AT)
    assert set(body) == {"text", "gameday"}
    assert body["text"] == text
    structured = body["gameday"]
    assert structured["event"] == event
    assert structured["at"] == "2026-03-07T02:14:03+00:00"
    assert set(STANDARD_FIELDS) <= set(structured)
    for name in STANDARD_FIELDS:
        assert structured[name] == fields.get(name)  # the raw value, or None
    for name, value in fields.items():
        assert structured[name] == value
    assert event in EVENTS


def test_notification_body_is_one_line_utc_and_redacted() -> None:
    body = notification_body("run_aborted", {
        "cell": "cell-1", "experiment": "db-failover",
        "reason": "halt: lost the database\npostgresql://gd:pa55word@db:5432/pay unreachable",
        "started_utc": datetime(2026, 3, 7, 3, 0),  # naive: UTC
        "passed": 3,  # a count, not a password
    }, datetime(2026, 3, 7, 4, 0, tzinfo=UTC).astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris")))
    assert "\n" not in body["text"]
    assert "pa55word" not in str(body)
    assert body["gameday"]["passed"] == 3
    assert body["gameday"]["reason"].endswith("postgresql://gd:***@db:5432/pay unreachable")
    assert body["gameday"]["at"] == "2026-03-07T04:00:00+00:00"
    assert body["gameday"]["started_utc"] == "2026-03-07T03:00:00+00:00"
    assert body["text"].startswith(":octagonal_sign: gameday: run aborted - db-failover on cell-1 (halt: ")


def test_notification_body_rejects_unknown_events_and_reserved_fields() -> None:
    with pytest.raises(ValueError, match="unknown notification event"):
        notification_body("run_passed", {}, AT)
    with pytest.raises(ValueError, match="may not set"):
        notification_body("run_failed", {"at": "yesterday"}, AT)
