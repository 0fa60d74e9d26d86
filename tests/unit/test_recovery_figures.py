"""Per-run figures on hand-made timelines, with hand-computed expected values."""

from datetime import UTC, datetime

import pytest

from gameday.analytics.criteria import Criterion, evaluate, verdict
from gameday.analytics.recovery import (
    cell_error,
    downtime_s,
    first_breach,
    halt_reached,
    latency_tolerance_ms,
    peak_error_rate,
    percentile,
    recovery,
    rpo,
    rto,
    run_figures,
    span_error_rate,
)
from gameday.model import Sample

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def timeline(spec: str, hz: float = 10.0, latency: float = 10.0, start: float = 0.0):
    """'.' ok, 'x' failed, 's' slow (1000 ms); one character a sample."""
    out = []
    for i, c in enumerate(spec):
        out.append(Sample(t=start + i / hz, utc=T0, ok=c != "x", status=201 if c != "x" else 502,
                          latency_ms=1000.0 if c == "s" else latency, write_seq=i + 1))
    return out


def test_percentile_interpolates():
    assert percentile([], 95) is None
    assert percentile([5.0], 95) == 5.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(list(range(1, 101)), 95) == pytest.approx(95.05)


def rec(samples, t_inject=1.0, cause_end=None, stability=1.0, timeout=60.0, started=None):
    return recovery(samples, t_inject=t_inject, t_cause_end=t_inject if cause_end is None
                    else cause_end, tolerance_ms=100, stability_s=stability, timeout_s=timeout,
                    t_started=started)


def test_no_impact_is_a_result_of_its_own_never_a_recovery_of_zero():
    r = rec(timeline("." * 50))
    assert r.impact == "none" and r.recovered
    assert r.recovery_s is None and r.impact_s is None and r.time_to_impact_s is None
    assert first_breach(timeline("." * 50), 1.0, 100) is None


def test_instantaneous_fault_recovery_from_injection():
    # inject at 1.0 s; failures at 1.2..1.4 s; stable from 1.5 s on
    r = rec(timeline("." * 12 + "xxx" + "." * 30))
    assert r.impact == "seen" and not r.adapted
    assert r.time_to_impact_s == pytest.approx(0.2)
    assert r.impact_s == pytest.approx(0.3)  # 1.2 -> 1.5
    assert r.recovery_s == pytest.approx(0.5)  # cause end = injection (1.0) -> 1.5


def test_sustained_fault_recovery_is_from_its_end_not_from_injection():
    # a 3 s latency fault from 1.0 s: slow 1.0..4.0, removed at 4.0, stable from 4.3 s
    samples = timeline("." * 10 + "s" * 33 + "." * 30)
    r = rec(samples, cause_end=4.0)
    assert r.impact_s == pytest.approx(3.3)  # users were affected for about the fault's length
    assert r.recovery_s == pytest.approx(0.3)  # but the cell came back 0.3 s after removal
    assert not r.adapted
    # a longer fault leaves the recovery time alone
    longer = rec(timeline("." * 10 + "s" * 63 + "." * 30), cause_end=7.0)
    assert longer.recovery_s == pytest.approx(0.3) and longer.impact_s == pytest.approx(6.3)


def test_a_cell_that_adapts_while_the_fault_is_on():
    # a 5 s fault from 1.0 s; the cell breaches 1.0..1.5 then copes (retries, scaling)
    samples = timeline("." * 10 + "s" * 5 + "." * 60)
    r = rec(samples, cause_end=6.0)
    assert r.adapted and r.impact == "seen"
    assert r.recovery_s == pytest.approx(0.5)  # first breach 1.0 -> stable from 1.5
    assert r.impact_s == pytest.approx(0.5)


def test_not_recovered_when_the_stability_window_is_never_whole():
    r = rec(timeline("." * 10 + "x.x.x.x.x.x.x.x.x"))
    assert r.impact == "seen" and not r.recovered and r.recovery_s is None
    assert r.time_to_impact_s == pytest.approx(0.0)


def test_recovery_later_than_the_timeout_is_no_recovery():
    samples = timeline("." * 10 + "x" * 30 + "." * 20)  # back at 4.0 s: 3 s after the kill
    assert rec(samples, timeout=5.0).recovery_s == pytest.approx(3.0)
    late = rec(samples, timeout=2.0)
    assert not late.recovered and late.recovery_s is None


def test_samples_during_the_action_count_as_under_fault():
    # the kill lands at 0.9 s, the call that made it returns at 1.0 s
    samples = timeline("." * 9 + "x" + "." * 30)
    assert rec(samples).impact == "none"
    r = rec(samples, started=0.9)
    assert r.impact == "seen" and r.time_to_impact_s == 0.0
    assert r.recovery_s == pytest.approx(0.0)  # stable from 1.0, the injection itself


def test_slow_samples_breach():
    r = rec(timeline("." * 10 + "sss" + "." * 20))
    assert r.time_to_impact_s == pytest.approx(0.0)
    assert r.recovery_s == pytest.approx(0.3)


def test_error_rate_is_time_weighted_over_a_fixed_span():
    # 1 s of 50 Hz burst with 5 failures (0.1 s) after injection at 1.0, then 10 Hz
    base = [Sample(t=i / 10, utc=T0, ok=True, status=201, latency_ms=10) for i in range(10)]
    burst = [Sample(t=1.0 + i / 50, utc=T0, ok=not 5 <= i < 10, status=201, latency_ms=10)
             for i in range(50)]
    tail = [Sample(t=2.0 + i / 10, utc=T0, ok=True, status=201, latency_ms=10) for i in range(90)]
    samples = base + burst + tail
    # 0.1 s of errors in a 10 s span: 1 %, however many probes the burst sent
    assert span_error_rate(samples, 1.0, 11.0, 0.1) == pytest.approx(0.01, abs=0.001)
    # the span is fixed: more stable samples after it do not dilute it
    more = samples + [Sample(t=11.0 + i / 10, utc=T0, ok=True, status=201, latency_ms=10)
                      for i in range(1, 100)]
    assert span_error_rate(more, 1.0, 11.0, 0.1) == span_error_rate(samples, 1.0, 11.0, 0.1)
    assert span_error_rate([], 0, 1, 0.1) is None


def test_the_probes_own_timeouts_are_not_errors_of_the_cell():
    samples = timeline("." * 20)
    slow = [Sample(t=2.0 + i / 10, utc=T0, ok=False, status=0, latency_ms=2000,
                   error="TimeoutError", timed_out=True) for i in range(5)]
    assert span_error_rate(samples + slow, 0.0, 3.0, 0.1) == 0.0
    # ... though they breach (as slow answers) and cost downtime as failed probes do
    assert rec(samples + slow, t_inject=1.5).impact == "seen"
    assert cell_error(Sample(t=0, utc=T0, ok=False, status=503, latency_ms=1))


def test_latency_tolerance():
    assert latency_tolerance_ms(10, 2.0, 50, None) == 60  # baseline + floor wins
    assert latency_tolerance_ms(100, 2.0, 50, None) == 200  # factor wins
    assert latency_tolerance_ms(100, 2.0, 50, 150) == 150  # absolute cap
    assert latency_tolerance_ms(100, None, 0, 250) == 250  # absolute only


def test_peak_error_rate_over_trailing_windows():
    samples = timeline("." * 10 + "xx" + "." * 20)
    # two failures in a one-second window of 10 or 11 samples (float edges of the window)
    assert 2 / 11 - 1e-9 <= peak_error_rate(samples, 1.0, window_s=1.0) <= 2 / 10 + 1e-9
    assert peak_error_rate(timeline("." * 30), 1.0, 1.0) == 0.0


def test_rto_is_first_ack_after_loss():
    samples = timeline("." * 10 + "xxxx" + "." * 10)
    # loss at 1.0; first ok write sent at 1.4 s, acknowledged 10 ms later
    assert rto(samples, 1.0) == pytest.approx(0.41)
    assert rto(timeline("x" * 20), 0.5) is None


def test_rpo_counts_missing_and_measures_the_gap():
    samples = timeline("." * 20)  # write_seq 1..20, acked at t + 0.01
    assert rpo(samples, 1.5, set()) == (0, 0.0)
    rows, seconds = rpo(samples, 1.5, {13, 14})
    # newest surviving ack before the gap: seq 12 at 1.1 s + 10 ms
    assert rows == 2 and seconds == pytest.approx(1.5 - 1.11)


def figures(samples, **kw):
    args = {"t_inject": 3.0, "t_cause_end": 3.0, "stability_s": 2.0, "timeout_s": 60.0,
            "factor": None, "floor_ms": 0, "max_ms": 250, "window_s": 1.0, "error_span_s": 6.0,
            "period_s": 0.1}
    return run_figures(samples, **{**args, **kw})


def test_run_figures_for_a_failover():
    samples = timeline("." * 30 + "xxx" + "." * 60)
    f = figures(samples, failover=True, missing_writes=set())
    assert f.impact == "seen" and f.time_to_impact_s == pytest.approx(0.0)
    assert f.recovery_s == pytest.approx(0.3) and f.impact_s == pytest.approx(0.3)
    assert f.rto_s == pytest.approx(0.31)
    assert (f.rpo_rows, f.rpo_s) == (0, 0.0)
    assert f.p95_ms_baseline == 10.0
    # 0.3 s of errors over the fixed 6 s span from injection (time-weighted)
    assert f.error_rate == pytest.approx(0.3 / 6.0, rel=0.05)
    # the same failover with a shorter stability window: the same error rate
    assert figures(samples, stability_s=0.5).error_rate == f.error_rate
    # 3 failed probes at 10 Hz: 0.3 s of the availability budget
    assert f.downtime_s == pytest.approx(0.3)
    assert f.figures_version == 2


def test_run_figures_with_no_impact():
    f = figures(timeline("." * 90))
    assert f.impact == "none" and f.recovered and f.recovery_s is None
    assert f.error_rate == 0.0 and f.downtime_s == 0.0


def test_run_figures_of_a_sustained_fault():
    samples = timeline("." * 30 + "s" * 40 + "." * 40)  # 4 s of latency from 3.0 s
    f = figures(samples, t_cause_end=7.0, factor=2.0, floor_ms=50, max_ms=None)
    assert f.impact == "seen" and f.recovery_s == pytest.approx(0.0) and not f.adapted
    assert f.impact_s == pytest.approx(4.0)
    assert f.t_cause_end == 7.0


def test_run_without_injection_has_no_figures():
    f = figures(timeline("." * 10), t_inject=None, t_cause_end=None, factor=2, floor_ms=50,
                max_ms=None)
    assert f.recovery_s is None and not f.recovered and f.samples == 10 and f.impact is None


def test_downtime_counts_failed_probes_from_the_start_only():
    samples = timeline("xx" + "." * 8 + "xxxx" + "." * 6)
    assert downtime_s(samples, start=1.0, period_s=0.1) == pytest.approx(0.4)
    # each probe stands for the time to its neighbours, not for a longer nominal period
    assert downtime_s(samples, start=0.0, period_s=0.5) == pytest.approx(0.6)
    assert downtime_s([], start=0.0, period_s=0.1) == 0.0


def test_halt_needs_the_error_rate_above_the_limit_over_the_whole_span():
    samples = timeline("." * 10 + "x" * 30)
    # [-0.2, 1.8]: 19 samples, 9 failed (47 %)
    assert not halt_reached(samples, now=1.8, error_rate_above=0.5, for_s=2.0)
    assert halt_reached(samples, now=3.9, error_rate_above=0.5, for_s=2.0)
    assert not halt_reached(samples[:5], now=0.4, error_rate_above=0.5, for_s=2.0)


def test_criteria_and_verdict():
    crit = [Criterion("recovery_s", "recovered in a minute", max=60),
            Criterion("rpo_rows", "no data loss", max=0)]
    results = evaluate(crit, {"recovery_s": 12.5, "rpo_rows": 2})
    assert [r.ok for r in results] == [True, False]
    assert results[1].expected == "rpo_rows <= 0" and results[1].actual == "2"
    assert verdict(results, recovered=True, halted=None, injected=True)[0] == "failed"
    assert verdict(results[:1], recovered=True, halted=None, injected=True) == (
        "passed", "every criterion met")
    assert verdict(results, recovered=False, halted=None, injected=True)[0] == "not_recovered"
    assert verdict(results, recovered=True, halted="halt: x", injected=True) == (
        "aborted", "halt: x")
    missing = evaluate([Criterion("rto_s", "rto", max=30)], {"rto_s": None})
    assert not missing[0].ok and missing[0].actual == "not measured"


def test_a_recovery_criterion_is_met_with_no_impact_seen():
    crit = [Criterion("recovery_s", "full recovery within 1 minute", max=60),
            Criterion("restore_s", "restarted within 30 s", max=30),
            Criterion("error_rate_during_recovery", "errors < 1 %", max=0.01)]
    results = evaluate(crit, {"impact": "none", "recovery_s": None, "restore_s": 0.9,
                              "error_rate": 0.0})
    assert [(r.ok, r.actual) for r in results] == [
        (True, "no impact seen"), (True, "0.9"), (True, "0")]
    # with impact seen, a missing recovery time is not met
    seen = evaluate(crit[:1], {"impact": "seen", "recovery_s": None})
    assert not seen[0].ok and seen[0].actual == "not measured"
