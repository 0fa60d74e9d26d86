"""Per-run recovery figures (shared/DESIGN.md, "Measurements"), pure functions over samples.

Times are seconds on the run's own monotonic axis. A sample *breaches* when its own probe
failed or its latency is above the latency tolerance. Sliding windows are used for the peak
error rate and the halt condition, not for breach: a trailing window would hold the breach
for its own length after the cell recovered and bias every recovery time by that much.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gameday.model import Sample


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_tolerance_ms(baseline_p95_ms: float | None, factor: float | None, floor_ms: float,
                         max_ms: float | None) -> float:
    """A sample is too slow above max(factor x baseline p95, baseline p95 + floor), capped by max.

    Without a factor only the absolute bound counts (an experiment about errors, not latency).
    """
    relative = math.inf if baseline_p95_ms is None or factor is None else max(
        factor * baseline_p95_ms, baseline_p95_ms + floor_ms)
    return min(relative, max_ms if max_ms is not None else math.inf)


def breaches(sample: Sample, tolerance_ms: float) -> bool:
    return not sample.ok or sample.latency_ms > tolerance_ms


def time_to_impact(samples: Sequence[Sample], t_inject: float, tolerance_ms: float,
                   t_started: float | None = None) -> float | None:
    """First breaching sample from the action's start on, minus t_inject (never below 0)."""
    start = t_inject if t_started is None else t_started
    first = next((s for s in samples if s.t >= start and breaches(s, tolerance_ms)), None)
    return None if first is None else max(0.0, first.t - t_inject)


def recovered_at(samples: Sequence[Sample], t_from: float, tolerance_ms: float,
                 stability_s: float) -> float | None:
    """First sample time t >= t_from with every sample in [t, t + stability] within tolerance.

    None while the timeline does not yet reach t + stability.
    """
    candidate: float | None = None
    for sample in samples:
        if sample.t < t_from:
            continue
        if breaches(sample, tolerance_ms):
            candidate = None
            continue
        if candidate is None:
            candidate = sample.t
        if sample.t >= candidate + stability_s:
            return candidate
    return None


def recovery_time(samples: Sequence[Sample], t_inject: float, tolerance_ms: float,
                  stability_s: float, t_started: float | None = None) -> float | None:
    """t_recovered - t_inject; 0 when no breach was ever seen; None when not recovered.

    Samples sent while the action ran (from ``t_started``) count as under fault: a kill lands
    before the call that made it returns.
    """
    start = t_inject if t_started is None else t_started
    t_recovered = recovered_at(samples, start, tolerance_ms, stability_s)
    if t_recovered is None:
        return None
    if time_to_impact(samples, t_inject, tolerance_ms, start) is None:
        return 0.0
    return max(0.0, t_recovered - t_inject)


def error_rate(samples: Sequence[Sample]) -> float | None:
    return None if not samples else sum(1 for s in samples if not s.ok) / len(samples)


def between(samples: Sequence[Sample], start: float, end: float) -> list[Sample]:
    return [s for s in samples if start <= s.t <= end]


def peak_error_rate(samples: Sequence[Sample], start: float, window_s: float) -> float:
    """Highest error rate over any trailing window of ``window_s`` that ends at or after start."""
    peak = 0.0
    window: list[Sample] = []
    left = 0
    for sample in samples:
        window.append(sample)
        while window[left].t < sample.t - window_s:
            left += 1
        if sample.t >= start:
            current = window[left:]
            peak = max(peak, sum(1 for s in current if not s.ok) / len(current))
    return peak


def downtime_s(samples: Sequence[Sample], start: float, period_s: float) -> float:
    """Seconds the probes saw the cell failing from ``start`` on: failed samples x the probe
    period (each probe stands for its slice of the timeline). What a run costs the error
    budget of an availability SLO."""
    return sum(1 for s in samples if s.t >= start and not s.ok) * period_s


def first_ack_after(samples: Sequence[Sample], t: float) -> float | None:
    """Completion time of the first acknowledged write sent at or after ``t``."""
    for sample in samples:
        if sample.t >= t and sample.ok and sample.write_seq is not None:
            return sample.t + sample.latency_ms / 1000
    return None


def rto(samples: Sequence[Sample], t_loss: float) -> float | None:
    """First acknowledged write after primary loss - primary loss."""
    ack = first_ack_after(samples, t_loss)
    return None if ack is None else ack - t_loss


def rpo(samples: Sequence[Sample], t_loss: float, missing: set[int]) -> tuple[int, float]:
    """Acknowledged writes lost: their count, and t_loss - the newest surviving acknowledged
    write before the first lost one (0 s when none was lost)."""
    if not missing:
        return 0, 0.0
    acked = sorted((s for s in samples if s.ok and s.write_seq is not None),
                   key=lambda s: s.write_seq or 0)
    first_lost = min(missing)
    surviving = [s for s in acked if (s.write_seq or 0) < first_lost
                 and s.write_seq not in missing]
    newest = max((s.t + s.latency_ms / 1000 for s in surviving), default=0.0)
    return len(missing), max(0.0, t_loss - newest)


@dataclass(frozen=True)
class Figures:
    t_inject: float | None
    t_fault_end: float | None
    time_to_impact_s: float | None
    recovery_s: float | None
    recovered: bool
    error_rate_during_recovery: float | None
    peak_error_rate: float | None
    p95_ms_baseline: float | None
    p95_ms_during: float | None
    p95_ratio_during: float | None
    latency_tolerance_ms: float
    samples: int
    downtime_s: float | None = None
    rto_s: float | None = None
    rpo_rows: int | None = None
    rpo_s: float | None = None


def run_figures(samples: Sequence[Sample], *, t_inject: float | None, t_fault_end: float | None,
                stability_s: float, t_started: float | None = None, factor: float | None,
                floor_ms: float, max_ms: float | None, window_s: float, period_s: float,
                failover: bool = False, missing_writes: set[int] | None = None) -> Figures:
    """Every per-run figure from the timeline, the injection time and the fault's end.

    The baseline is what came before the action started; "during" runs from the action's start
    to the later of the fault's end and recovery, and at least ``window_s``.
    """
    start = t_inject if t_started is None else t_started
    baseline = [s.latency_ms for s in samples if s.ok and (start is None or s.t < start)]
    p95_base = percentile(baseline, 95)
    tolerance = latency_tolerance_ms(p95_base, factor, floor_ms, max_ms)
    if t_inject is None:
        return Figures(None, None, None, None, False, None, None, p95_base, None, None,
                       tolerance, len(samples))
    assert start is not None
    recovery = recovery_time(samples, t_inject, tolerance, stability_s, start)
    t_recovered = None if recovery is None else t_inject + recovery
    horizon = samples[-1].t if samples else t_inject
    observed_end = horizon if t_recovered is None else min(horizon, t_recovered + stability_s)
    during_end = max(t_fault_end or t_inject, t_recovered or horizon, t_inject + window_s)
    during = [s.latency_ms for s in between(samples, start, during_end) if s.ok]
    p95_during = percentile(during, 95)
    figures = Figures(
        t_inject=t_inject, t_fault_end=t_fault_end,
        time_to_impact_s=time_to_impact(samples, t_inject, tolerance, start),
        recovery_s=recovery, recovered=recovery is not None,
        error_rate_during_recovery=error_rate(between(samples, start, observed_end)),
        peak_error_rate=peak_error_rate(samples, start, window_s),
        p95_ms_baseline=p95_base, p95_ms_during=p95_during,
        p95_ratio_during=(p95_during / p95_base) if p95_during is not None and p95_base else None,
        latency_tolerance_ms=tolerance, samples=len(samples),
        downtime_s=downtime_s(samples, start, period_s),
    )
    if not failover:
        return figures
    rows, seconds = rpo(samples, t_inject, missing_writes or set())
    return Figures(**{**figures.__dict__, "rto_s": rto(samples, t_inject), "rpo_rows": rows,
                      "rpo_s": seconds})


def halt_reached(samples: Sequence[Sample], now: float, error_rate_above: float,
                 for_s: float) -> bool:
    """True when the error rate over the last ``for_s`` seconds is above the limit and the
    timeline covers that whole span."""
    if not samples or samples[0].t > now - for_s:
        return False
    recent = [s for s in samples if s.t >= now - for_s]
    rate = error_rate(recent)
    return rate is not None and rate > error_rate_above
