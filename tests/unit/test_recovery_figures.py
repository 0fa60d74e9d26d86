"""Per-run figures on hand-made timelines, with hand-computed expected values."""

from datetime import UTC, datetime

import pytest

from gameday.analytics.criteria import Criterion, evaluate, verdict
from gameday.analytics.recovery import (
    downtime_s,
    halt_reached,
    latency_tolerance_ms,
    peak_error_rate,
    percentile,
    recovery_time,
    rpo,
    rto,
    run_figures,
    time_to_impact,
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


def test_no_breach_means_recovery_zero():
    samples = timeline("." * 50)
    assert time_to_impact(samples, 1.0, 100) is None
    assert recovery_time(samples, 1.0, 100, stability_s=1.0) == 0.0


def test_impact_and_recovery_from_first_stable_sample():
    # inject at 1.0 s; failures at 1.2..1.4 s; stable from 1.5 s on
    samples = timeline("." * 12 + "xxx" + "." * 30)
    assert time_to_impact(samples, 1.0, 100) == pytest.approx(0.2)
    assert recovery_time(samples, 1.0, 100, stability_s=1.0) == pytest.approx(0.5)


def test_not_recovered_when_the_stability_window_is_never_whole():
    samples = timeline("." * 10 + "x.x.x.x.x.x.x.x.x")
    assert recovery_time(samples, 1.0, 100, stability_s=1.0) is None


def test_samples_during_the_action_count_as_under_fault():
    # the kill lands at 0.9 s, the call that made it returns at 1.0 s
    samples = timeline("." * 9 + "x" + "." * 30)
    assert time_to_impact(samples, 1.0, 100) is None
    assert time_to_impact(samples, 1.0, 100, t_started=0.9) == 0.0
    assert recovery_time(samples, 1.0, 100, 1.0, t_started=0.9) == 0.0  # recovered at 1.0


def test_slow_samples_breach():
    samples = timeline("." * 10 + "sss" + "." * 20)
    assert time_to_impact(samples, 1.0, 100) == pytest.approx(0.0)
    assert recovery_time(samples, 1.0, 100, 1.0) == pytest.approx(0.3)


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


def test_run_figures_for_a_failover():
    samples = timeline("." * 30 + "xxx" + "." * 60)
    f = run_figures(samples, t_inject=3.0, t_fault_end=3.0, stability_s=2.0, factor=None,
                    floor_ms=0, max_ms=250, window_s=1.0, period_s=0.1, failover=True,
                    missing_writes=set())
    assert f.time_to_impact_s == pytest.approx(0.0)
    assert f.recovery_s == pytest.approx(0.3)
    assert f.rto_s == pytest.approx(0.31)
    assert (f.rpo_rows, f.rpo_s) == (0, 0.0)
    assert f.p95_ms_baseline == 10.0
    # [3.0, recovered 3.3 + stability 2.0] holds 24 samples, 3 of them failed
    assert f.error_rate_during_recovery == pytest.approx(3 / 24)
    # 3 failed probes at 10 Hz: 0.3 s of the availability budget
    assert f.downtime_s == pytest.approx(0.3)


def test_run_without_injection_has_no_figures():
    f = run_figures(timeline("." * 10), t_inject=None, t_fault_end=None, stability_s=1,
                    factor=2, floor_ms=50, max_ms=None, window_s=1, period_s=0.1)
    assert f.recovery_s is None and not f.recovered and f.samples == 10


def test_downtime_counts_failed_probes_from_the_start_only():
    samples = timeline("xx" + "." * 8 + "xxxx" + "." * 6)
    assert downtime_s(samples, start=1.0, period_s=0.1) == pytest.approx(0.4)
    assert downtime_s(samples, start=0.0, period_s=0.5) == pytest.approx(3.0)
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
    assert not missing[0].ok and missing[0].actual == "none"
