"""The run report on version-2 figures (issue 10, deliverable 8), over constructed records:
built by the pure context builder, rendered as HTML and Markdown."""

from __future__ import annotations

import html as html_text
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from gameday.model import CellObjectives, CriterionResult, LedgerFault, RunEvent, RunRecord, Sample
from gameday.reporting.context import build_run_report
from gameday.reporting.numbers import fmt
from gameday.reporting.render import render_html, render_markdown
from helpers import at, html_numbers

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)
TIER1 = CellObjectives(1, ("acme-bank",), 99.95, 250.0, 900.0, 60.0)
T_INJECT = 3.0
KILL = {"replica": 2, "pid": 4242}


def figures(**kw: Any) -> dict[str, Any]:
    """Version-2 figures of a pod kill the probes did not see (override what a case needs)."""
    base: dict[str, Any] = {
        "figures_version": 2, "impact": "none", "t_inject": T_INJECT, "t_cause_end": T_INJECT,
        "t_first_breach": None, "t_recovered": None, "time_to_impact_s": None, "impact_s": None,
        "recovery_s": None, "adapted": False, "recovered": True, "error_rate": 0.0,
        "error_span_s": 30.0, "error_rate_during_recovery": 0.0, "peak_error_rate": 0.0,
        "p95_ms_baseline": 5.2, "p95_ms_during": 6.1, "p95_ratio_during": 1.17,
        "latency_tolerance_ms": 55.2, "samples": 150, "downtime_s": 0.0, "probe_hz": 10.0,
        "burst_hz": 50.0, "detection_floor_ms": 20.0, "detection_floor_base_ms": 100.0,
        "probes_skipped": 0, "probe_timeouts": 0, "rto_s": None, "rpo_rows": None, "rpo_s": None,
        "restore_s": 0.9, "failover_s": None, "scale_out_s": None, "replica_crashes": 0,
        "target_restored_s": 0.05, "observed_by": "sandbox"}
    base.update(kw)
    return base


def record(kind: str = "pod-kill", verdict: str = "passed", reason: str = "every criterion met",
           criteria: list[CriterionResult] | None = None, journal: dict[str, Any] | None = None,
           **figs: Any) -> RunRecord:
    return RunRecord(
        run_id="run-20261201T090000-abc123", experiment=f"{kind} experiment",
        experiment_path=f"experiments/local/{kind}.yaml", kind=kind, cell="cell-1",
        target="local", started_utc=T0, status="completed", ended_utc=T0 + timedelta(seconds=20),
        verdict=verdict, reason=reason, figures=figures(**figs),  # type: ignore[arg-type]
        criteria=criteria if criteria is not None else [
            CriterionResult("full recovery within 1 minute", "recovery_s <= 60",
                            "no impact seen", True)],
        journal=journal, window_id="win-20261201", objectives=TIER1)


def samples(bad: tuple[float, float] | None = None, slow: tuple[float, float] | None = None,
            end: float = 20.0) -> list[Sample]:
    out = []
    for i in range(int(end * 10)):
        t = i / 10
        failed = bad is not None and bad[0] <= t < bad[1]
        latency = 210.0 if slow is not None and slow[0] <= t < slow[1] else 5.0 + i % 3
        out.append(Sample(t=t, utc=T0 + timedelta(seconds=t), ok=not failed, latency_ms=latency,
                          status=0 if failed else 200))
    return out


def ev(t: float, what: str, source: str = "sandbox", **detail: Any) -> RunEvent:
    return RunEvent(t=t, utc=T0 + timedelta(seconds=t), source=source, name=what, detail=detail)


def pod_kill_events() -> list[RunEvent]:
    return [
        ev(2.1, "worker_started", "engine", pid=100), ev(2.3, "worker_started", "worker", pid=100),
        ev(2.31, "activity_started", "worker", name="payments-succeed", type="probe"),
        ev(2.4, "activity_completed", "worker", name="payments-succeed", status="succeeded"),
        ev(2.41, "activity_started", "worker", name="kill-one-replica", type="action"),
        ev(T_INJECT, "fault_applied", "worker", fault_id="pod-kill-1", kind="pod-kill",
           duration_s=0.0),
        ev(3.01, "fault_injected", fault_id="pod-kill-1", kind="kill-replica", targets=[KILL]),
        ev(3.02, "replica_exit", replica=2, pid=4242, returncode=-9),
        ev(3.04, "lb_endpoint_removed", replica=2, pid=4242),
        ev(3.12, "fault_reverted", fault_id="pod-kill-1", kind="kill-replica",
           reason="restored_by_cell"),
        ev(3.5, "replica_started", replica=2, pid=4300, restarts=1),
        ev(3.9, "lb_endpoint_added", replica=2, pid=4300),
        ev(3.9, "replica_ready", replica=2, pid=4300),
        ev(3.05, "activity_completed", "worker", name="kill-one-replica", status="succeeded"),
        ev(8.1, "activity_started", "worker", name="payments-succeed", type="probe"),
        ev(8.2, "activity_completed", "worker", name="payments-succeed", status="succeeded"),
        ev(8.3, "rollbacks_started", "worker"),
        ev(8.31, "activity_started", "worker", name="revert-every-fault", type="action"),
        ev(8.4, "activity_completed", "worker", name="revert-every-fault", status="succeeded"),
        ev(8.5, "journal_stored", "worker", status="completed"),
        ev(9.0, "worker_exited", "engine", returncode=0),
    ]


def pod_kill_fault(reason: str = "rollback") -> LedgerFault:
    return LedgerFault(
        fault_id="pod-kill-1", run_id="run-20261201T090000-abc123", cell="cell-1",
        target="local", kind="pod-kill",
        spec={"count": 1, "applied": {"targets": [KILL], "sandbox_revert": {"action": "none"}}},
        revert={"target": "local"}, expires_utc=T0 + timedelta(seconds=63), state="reverted",
        created_utc=T0 + timedelta(seconds=2.9), applied_utc=T0 + timedelta(seconds=T_INJECT),
        reverted_utc=T0 + timedelta(seconds=8.4), revert_reason=reason)


def journal() -> dict[str, Any]:
    probe = {"activity": {"type": "probe", "name": "payments-succeed", "provider": {
        "type": "python", "module": "gameday.chaos.probes", "func": "cell_serves",
        "arguments": {"probes": 10}}}, "output": 1.0, "status": "succeeded",
        "tolerance_met": True, "duration": 0.04}
    kill = {"activity": {"type": "action", "name": "kill-one-replica", "provider": {
        "type": "python", "module": "gameday.chaos.actions", "func": "kill_pods",
        "arguments": {"count": 1}}}, "status": "succeeded", "duration": 0.03,
        "start": (T0 + timedelta(seconds=2.9)).isoformat(),
        "output": {"fault_id": "pod-kill-1", "kind": "pod-kill", "cell": "cell-1",
                   "applied": {"targets": [KILL], "started_monotonic": 1.0}}}
    revert = {"activity": {"type": "action", "name": "revert-every-fault", "provider": {
        "type": "python", "module": "gameday.chaos.actions", "func": "revert_faults"}},
        "status": "succeeded", "duration": 0.07, "output": ["pod-kill-1"]}
    return {"run": [kill], "rollbacks": [revert],
            "steady_states": {"before": {"steady_state_met": True, "probes": [probe]},
                              "after": {"steady_state_met": True, "probes": [probe]}}}


def build(rec: RunRecord, events: list[RunEvent] | None = None,
          faults: list[LedgerFault] | None = None, timeline: list[Sample] | None = None
          ) -> tuple[dict[str, Any], str, str]:
    context = build_run_report(rec, timeline if timeline is not None else samples(),
                               pod_kill_events() if events is None else events,
                               [pod_kill_fault()] if faults is None else faults, NOW)
    html = render_html(context)
    for number in html_numbers(html):  # every figure shown is the one in the data, one way
        assert number["value"] == at(context, number["key"]), number
        assert number["text"] == fmt(number["value"], number["unit"]), number
    return context, html, render_markdown(context)


def page_text(html: str) -> str:
    """The page as a reader reads it: the chart (its axis says "0 s") and the tags left out."""
    html = re.sub(r"<svg.*?</svg>", "", html, flags=re.S)
    return html_text.unescape(re.sub(r"<[^>]+>", "", html))


def tile(context: dict[str, Any], key: str) -> dict[str, Any]:
    return next(t for t in context["tiles"] + context["latency_tiles"] if t["key"] == key)


def test_no_impact_is_said_in_words_never_as_zero_seconds() -> None:
    context, html, markdown = build(record(journal=journal()))
    html = page_text(html)
    for key in ("time_to_impact_s", "impact_s", "recovery_s", "downtime_s", "impact"):
        assert tile(context, key)["text"] == "no impact seen", key
        assert tile(context, key)["value"] is None, key
    assert context["impact"]["words"] == ("No user-visible impact seen by the probes (an impact "
                                          "shorter than 20.0 ms could go unseen).")
    for text in (html, markdown):
        assert "no impact seen" in text
        assert "an impact shorter than 20.0 ms could go unseen" in text
        assert "0.00 s" not in text and not re.search(r"(?<![\d.])0 s\b", text)
    # The criterion on a recovery figure is met, with those words.
    assert "| full recovery within 1 minute | recovery_s <= 60 | no impact seen | met: no impact " \
           "seen |" in markdown
    assert "✔ yes (no impact seen)" in html


def test_a_version_1_record_that_wrote_no_impact_as_0_s_reads_no_impact_seen() -> None:
    v1 = {"t_inject": T_INJECT, "t_fault_end": T_INJECT, "time_to_impact_s": None,
          "recovery_s": 0.0, "recovered": True, "downtime_s": 0.0, "samples": 150}
    rec = record(criteria=[CriterionResult("full recovery within 1 minute", "recovery_s <= 60",
                                           "0", True)])
    rec = RunRecord(**{**rec.__dict__, "figures": v1})
    context, html, markdown = build(rec, events=[], faults=[])
    html = page_text(html)
    assert context["figures"]["impact"] == "none" and context["figures"]["recovery_s"] is None
    assert context["criteria"][0]["actual"] == "no impact seen"
    for text in (html, markdown):
        assert "0.00 s" not in text and "upgraded" in text


def test_impact_after_a_sustained_fault_is_recovered_from_the_fault_end() -> None:
    rec = record(kind="latency", impact="seen", t_cause_end=13.0, t_first_breach=3.05,
                 t_recovered=13.1, time_to_impact_s=0.05, impact_s=10.05, recovery_s=0.1,
                 downtime_s=0.0, restore_s=None, target_restored_s=10.0)
    context, html, markdown = build(rec, events=[], faults=[],
                                    timeline=samples(slow=(3.05, 13.1)))
    words = "Users were affected for 10.1 s; the cell recovered 0.10 s after the latency was removed."
    assert context["impact"]["words"] == words
    assert tile(context, "recovery_s")["note"] == "after the latency was removed"
    assert [(m["label"], m["t"]) for m in context["timeline"]["markers"]] == [
        ("inject", 3.0), ("first impact", 3.05), ("fault end", 13.0), ("recovered", 13.1)]
    assert words in html and words in markdown
    # User-visible recovery 10.1 s after injection beside the target's 10.0 s.
    row = context["target_view"]["rows"][0]
    assert row["runner_s"] == 10.1 and row["target_s"] == 10.0
    assert abs(row["difference_s"] - 0.1) < 1e-9


def test_a_cell_that_adapted_while_the_fault_was_on() -> None:
    rec = record(kind="cpu-stress", impact="seen", t_cause_end=33.0, t_first_breach=4.0,
                 t_recovered=8.0, time_to_impact_s=1.0, impact_s=4.0, recovery_s=4.0,
                 adapted=True, scale_out_s=2.5, restore_s=None, target_restored_s=None)
    context, html, markdown = build(rec, events=[
        ev(5.5, "autoscaler_scaled", from_replicas=3, to_replicas=4, cpu_pct=91, reason="cpu")],
        faults=[])
    assert "the cell adapted while the fault was on" in context["impact"]["words"]
    assert tile(context, "recovery_s")["note"].startswith("adapted")
    assert tile(context, "scale_out_s")["text"] == "2.50 s"
    assert {"t": 5.5, "label": "scaled to 4"} in context["timeline"]["events"]
    for text in (html, markdown):
        assert "adapted while the fault was on" in text
        assert "the autoscaler scaled from 3 to 4 replicas" in text


def test_a_cell_that_did_not_recover() -> None:
    rec = record(verdict="not_recovered", reason="the cell did not recover", impact="seen",
                 t_first_breach=3.1, time_to_impact_s=0.1, recovered=False, downtime_s=12.0,
                 criteria=[CriterionResult("full recovery within 1 minute", "recovery_s <= 60",
                                           "not recovered", False)])
    context, html, markdown = build(rec, timeline=samples(bad=(3.1, 20.0)))
    assert tile(context, "recovery_s")["text"] == "not recovered"
    assert tile(context, "impact_s")["text"] == "not recovered"
    assert "had not recovered when the run ended" in context["impact"]["words"]
    assert context["target_view"]["rows"][0]["runner_text"] == "not recovered"
    for text in (html, markdown):
        assert "not recovered" in text and "no impact seen" not in text


def test_a_skipped_run_gets_a_short_page_that_says_why() -> None:
    rec = RunRecord(run_id="run-skip", experiment="pod-kill experiment",
                    experiment_path="experiments/local/pod-kill.yaml", kind="pod-kill",
                    cell="cell-2", target="local", started_utc=T0, status="completed",
                    ended_utc=T0, verdict="skipped", reason="freeze: market hours",
                    window_id="win-7", objectives=TIER1)
    context, html, markdown = build(rec, events=[], faults=[], timeline=[])
    assert context["skip"]["gate"] == "freeze"
    for text in (html, markdown):
        for shown in ("Why this run was skipped", "freeze: market hours", "cell-2", "pod kill",
                      "win-7", "2026-12-01 09:00:00 UTC", "A change freeze covered the window",
                      "Evidence: sandbox (local target)"):
            assert shown in text, shown
        for absent in ("Impact and recovery", "not measured", "Timeline", "Activities"):
            assert absent not in text, absent
    assert 'class="gd-fact"' not in html
    assert "\\" not in markdown and "`" not in markdown


def test_the_runner_and_the_target_are_side_by_side_and_a_disagreement_shows() -> None:
    rec = record(impact="seen", t_first_breach=3.05, t_recovered=3.5, time_to_impact_s=0.05,
                 impact_s=0.45, recovery_s=0.5, downtime_s=0.1, target_restored_s=0.05,
                 restore_s=0.9)
    context, html, markdown = build(rec, timeline=samples(bad=(3.05, 3.15)))
    row = context["target_view"]["rows"][0]
    assert (row["runner_s"], row["target_s"]) == (0.5, 0.05)
    assert abs(row["difference_s"] - 0.45) < 1e-9
    assert "| cause of user impact gone | 0.50 s | 0.05 s | +0.45 s |" in markdown
    for key in ("runner_s", "target_s", "difference_s"):
        assert f'data-key="target_view.rows.0.{key}"' in html
    assert "time to full redundancy" in html and "0.90 s" in html and "0.90 s" in markdown
    # The target says the cause lasted longer than users saw: shown, not forced to agree.
    later = record(impact="seen", t_first_breach=3.05, t_recovered=3.2, time_to_impact_s=0.05,
                   impact_s=0.15, recovery_s=0.2, target_restored_s=0.9)
    context, html, markdown = build(later)
    assert context["target_view"]["rows"][0]["difference_s"] < 0
    assert "| cause of user impact gone | 0.20 s | 0.90 s | \u22120.70 s |" in markdown
    assert "before the target says" in html and "before the target says" in markdown
    # No impact seen while the target saw a cause: both stated, no difference invented.
    context, html, markdown = build(record(target_restored_s=0.05))
    assert "| cause of user impact gone | no impact seen | 0.05 s | \u2013 |" in markdown
    assert "the probes saw no impact" in context["target_view"]["agreement"]


def test_one_revert_story_from_the_ledger_and_the_target() -> None:
    context, html, markdown = build(record(journal=journal()))
    story = context["reverts"]["stories"][0]["words"]
    assert "Killed replica 2 (pid 4242) at 3.00 s into the run" in story
    assert "the cell's supervisor restarted it: ready again 0.90 s after injection" in story
    assert "The ledger closed the fault 5.40 s after injection by the experiment's rollback " \
           "(nothing left to revert" in story
    assert context["reverts"]["faults"][0]["target_words"] == "the cell restored itself"
    for text in (html, markdown):
        assert "nothing left to revert" in text and "reverted by rollback" not in text


def test_a_halted_run_tells_the_revert_and_shows_the_events_a_reader_needs() -> None:
    events = [*pod_kill_events(),
              ev(4.0, "halted", "engine", reason="halt: error rate above 50% for 5 s"),
              ev(4.01, "reverted", "engine", faults=[]),
              ev(9.5, "worker_exited", "engine", returncode=3)]
    context, html, markdown = build(record(verdict="aborted", reason="halt: error rate"),
                                    events=events)
    shown = [e["words"] for e in context["events"]["shown"]]
    assert shown == ["fault applied: pod-kill (pod-kill-1)",
                     "halted: halt: error rate above 50% for 5 s",
                     "the runner reverted 0 faults (nothing left to revert)",
                     "the experiment's worker exited with code 3"]
    internal = context["events"]["internal"]
    assert context["events"]["internal_count"] == len(internal) == 13
    assert all(e["source"] in ("engine", "worker") for e in internal)
    # HTML: folded in <details>; Markdown: one line.
    folded = html[html.index("<details"):html.index("</details>")]
    assert "13 internal engine events" in folded and "journal_stored" in folded
    assert "journal_stored" not in html[:html.index("<details")]
    assert "Not listed: 13 internal engine events (activity completed, activity started, " \
           "journal stored, rollbacks started, worker exited, worker started); report.json " \
           "has them." in markdown
    assert "journal_stored" not in markdown and "worker_started" not in markdown
    for text in (html, markdown):
        assert "exited with code 3" in text


def test_activities_are_summarised_in_words() -> None:
    context, html, markdown = build(record(journal=journal()))
    assert [a["words"] for a in context["activities"] + context["rollbacks"]] == [
        "killed 1 replica (pod-kill) with gameday.chaos.actions.kill_pods",
        "closed 1 fault in the ledger (pod-kill-1) with gameday.chaos.actions.revert_faults"]
    assert context["steady_state"]["before"]["hypothesis"]["probes"][0]["words"] == \
        "probe cell_serves: 10 of 10 ok"
    for text in (html, markdown):
        assert "killed 1 replica (pod-kill) with gameday.chaos.actions.kill_pods" in text
        assert "probe cell_serves: 10 of 10 ok" in text
        assert "{'" not in text and "'applied'" not in text and "started_monotonic" not in text


def test_the_header_states_the_evidence_and_the_detection_floor() -> None:
    context, html, markdown = build(record())
    html = page_text(html)
    evidence = "Evidence: sandbox (local target): a sandbox cell on one machine, not production."
    assert context["run"]["evidence"] == evidence
    sampler = ("Probes at 10 Hz (50 Hz around injection and the fault's end); detection floor "
               "20.0 ms around injection and the fault's end, 100.0 ms elsewhere; 0 probes "
               "skipped (in-flight bound reached); 0 probe timeouts")
    for text in (html, markdown):
        assert evidence in text and sampler in text
    staging = RunRecord(**{**record().__dict__, "target": "kubernetes", "environment": "staging"})
    context = build_run_report(staging, [], [], [], NOW)
    assert context["run"]["evidence"] == "Evidence: staging (Kubernetes target): a staging " \
                                         "environment, not production."


def test_markdown_reads_as_plain_text() -> None:
    rec = record(criteria=[CriterionResult("p95 < 2x normal & no errors", "p95_ratio_during <= 2",
                                           "1.17", True)], journal=journal())
    markdown = build(rec)[2]
    for entity in ("&amp;", "&#", "&lt;", "&gt;", "&quot;"):
        assert entity not in markdown, entity
    assert "\\" not in markdown, [line for line in markdown.splitlines() if "\\" in line]
    assert "| p95 < 2x normal & no errors | p95_ratio_during <= 2 | 1.17 | met |" in markdown
    assert "cell_serves" in markdown and "error_rate" not in markdown.replace("error rate", "")
    # Text from the target that a renderer would take as markup is still neutralised.
    hostile = build(record(), events=[ev(3.3, "<b>x</b>", detail_ok="*y* | `z`")])[2]
    assert "<b>" not in hostile and "&lt;b&gt;x&lt;/b&gt;" in hostile
    assert "\\*y\\* \\| \\`z\\`" in hostile
