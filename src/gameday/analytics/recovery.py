"""Per-run recovery figures (shared/DESIGN.md, "Measurements", version 2), pure functions over
samples.

Times are seconds on the run's own monotonic axis. A sample *breaches* when its own probe
failed or its latency is above the latency tolerance. Sliding windows are used for the peak
error rate and the halt condition, not for breach: a trailing window would hold the breach
for its own length after the cell recovered and bias every recovery time by that much.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

from gameday.model import Sample
from gameday.model.figures import FIGURES_VERSION, Impact


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


def first_breach(samples: Sequence[Sample], t_from: float, tolerance_ms: float) -> Sample | None:
    """The first breaching sample sent at or after ``t_from``."""
    return next((s for s in samples if s.t >= t_from and breaches(s, tolerance_ms)), None)


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


@dataclass(frozen=True)
class Recovery:
    """Impact and recovery of one run (DESIGN.md "Measurements", version 2)."""

    impact: Impact
    t_first_breach: float | None
    t_recovered: float | None
    time_to_impact_s: float | None  # first breach - t_inject
    impact_s: float | None  # t_recovered - first breach: how long users were affected
    recovery_s: float | None  # t_recovered - t_cause_end (at least 0), or - first breach when adapted
    adapted: bool  # recovered while a sustained fault was still on
    recovered: bool  # no impact, or recovered within the timeout


def recovery(samples: Sequence[Sample], *, t_inject: float, t_cause_end: float,
             tolerance_ms: float, stability_s: float, timeout_s: float,
             t_started: float | None = None) -> Recovery:
    """Impact and recovery from the timeline.

    Samples sent while the action ran (from ``t_started``) count as under fault: a kill lands
    before the call that made it returns. A recovery later than ``timeout_s`` after the cause
    ended is no recovery: the run timed out.
    """
    start = t_inject if t_started is None else min(t_started, t_inject)
    breach = first_breach(samples, start, tolerance_ms)
    if breach is None:
        return Recovery("none", None, None, None, None, None, False, True)
    to_impact = max(0.0, breach.t - t_inject)
    t_recovered = recovered_at(samples, breach.t, tolerance_ms, stability_s)
    if t_recovered is None or t_recovered - t_cause_end > timeout_s:
        return Recovery("seen", breach.t, None, to_impact, None, None, False, False)
    # Adapted: the first good answer of the stable stretch came back while the cause was still
    # on (one sent just before a removal and answered after it does not count).
    first_good = next(s for s in samples if s.t == t_recovered)
    adapted = first_good.t + first_good.latency_ms / 1000 < t_cause_end
    since = breach.t if adapted else t_cause_end
    return Recovery("seen", breach.t, t_recovered, to_impact, t_recovered - breach.t,
                    max(0.0, t_recovered - since), adapted, True)


def error_rate(samples: Sequence[Sample]) -> float | None:
    """Share of the probes that failed (by count): what the halt condition and progress use."""
    return None if not samples else sum(1 for s in samples if not s.ok) / len(samples)


def cell_error(sample: Sample) -> bool:
    """The cell answered with an error, or did not answer at all. A probe that gave up at its
    own client timeout is not counted: the cell may merely have been slow (that is a latency
    breach), and counting it would make the probes' own limit the cell's error."""
    return not sample.ok and not sample.timed_out


def sample_weights(samples: Sequence[Sample], period_s: float) -> list[float]:
    """The seconds of timeline each sample stands for: half the gap to each neighbour, at most
    one probe period on a side. The sampler probes faster around injection, so a count of
    failed probes would over-weigh those seconds; a time weight does not."""
    times = [s.t for s in samples]
    gaps = [min(period_s, b - a) for a, b in pairwise(times)]
    if not gaps:
        return [period_s] * len(times)
    # At either end the missing neighbour is taken to be as far as the known one.
    halves = [gaps[0], *gaps, gaps[-1]]
    return [(halves[i] + halves[i + 1]) / 2 for i in range(len(times))]


def span_error_rate(samples: Sequence[Sample], start: float, end: float,
                    period_s: float) -> float | None:
    """Time-weighted share of [start, end] in which the cell returned errors (cell_error).

    A fixed span from injection, like an alert's rate window, so the figure does not change
    with how long the run waited for stability."""
    inside = [s for s in samples if start <= s.t <= end]
    if not inside:
        return None
    weights = sample_weights(inside, period_s)
    total = sum(weights)
    return sum(w for s, w in zip(inside, weights, strict=True) if cell_error(s)) / total


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


def served_share(samples: Sequence[Sample], start: float, end: float,
                 period_s: float) -> float | None:
    """Time-weighted share of [start, end] in which probes were answered successfully."""
    inside = [s for s in samples if start <= s.t <= end]
    if not inside:
        return None
    weights = sample_weights(inside, period_s)
    return sum(w for s, w in zip(inside, weights, strict=True) if s.ok) / sum(weights)


def downtime_s(samples: Sequence[Sample], start: float, period_s: float) -> float:
    """Seconds the probes saw the cell failing from ``start`` on: every failed probe stands
    for its slice of the timeline (``sample_weights``; one probe period at the base rate).
    What a run costs the error budget of an availability SLO."""
    after = [s for s in samples if s.t >= start]
    weights = sample_weights(after, period_s)
    return sum(w for s, w in zip(after, weights, strict=True) if not s.ok)


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
    """Every figure a run stores from its own probes (the target's own are added apart)."""

    t_inject: float | None
    t_cause_end: float | None
    t_first_breach: float | None
    t_recovered: float | None
    impact: Impact | None  # None: no fault was injected
    time_to_impact_s: float | None
    impact_s: float | None
    recovery_s: float | None
    adapted: bool
    recovered: bool
    error_rate: float | None
    error_span_s: float
    probe_timeouts: int
    peak_error_rate: float | None
    p95_ms_baseline: float | None
    p95_ms_during: float | None
    p95_ratio_during: float | None
    latency_tolerance_ms: float
    samples: int
    downtime_s: float | None = None
    # Graceful degradation: the time-weighted share of a sustained fault's span in which the
    # cell still answered (however slowly); None for instantaneous faults.
    served_during_fault: float | None = None
    rto_s: float | None = None
    rpo_rows: int | None = None
    rpo_s: float | None = None
    figures_version: int = FIGURES_VERSION


def run_figures(samples: Sequence[Sample], *, t_inject: float | None, t_cause_end: float | None,
                stability_s: float, timeout_s: float, t_started: float | None = None,
                factor: float | None, floor_ms: float, max_ms: float | None, window_s: float,
                error_span_s: float, period_s: float, failover: bool = False,
                missing_writes: set[int] | None = None) -> Figures:
    """Every per-run figure from the timeline, the injection time and the end of the cause.

    The baseline is what came before the action started; "during" runs from the action's start
    to the later of the cause's end and recovery, and at least ``window_s``.
    """
    start = t_inject if t_started is None else t_started
    baseline = [s.latency_ms for s in samples if s.ok and (start is None or s.t < start)]
    p95_base = percentile(baseline, 95)
    tolerance = latency_tolerance_ms(p95_base, factor, floor_ms, max_ms)
    if t_inject is None:
        return Figures(None, None, None, None, None, None, None, None, False, False, None,
                       error_span_s, 0, None, p95_base, None, None, tolerance, len(samples))
    assert start is not None
    cause_end = t_inject if t_cause_end is None else max(t_cause_end, t_inject)
    r = recovery(samples, t_inject=t_inject, t_cause_end=cause_end, tolerance_ms=tolerance,
                 stability_s=stability_s, timeout_s=timeout_s, t_started=start)
    horizon = samples[-1].t if samples else t_inject
    during_end = max(cause_end, r.t_recovered or horizon, t_inject + window_s)
    during = [s.latency_ms for s in between(samples, start, during_end) if s.ok]
    p95_during = percentile(during, 95)
    after = [s for s in samples if s.t >= start]
    figures = Figures(
        t_inject=t_inject, t_cause_end=cause_end, t_first_breach=r.t_first_breach,
        t_recovered=r.t_recovered, impact=r.impact, time_to_impact_s=r.time_to_impact_s,
        impact_s=r.impact_s, recovery_s=r.recovery_s, adapted=r.adapted, recovered=r.recovered,
        error_rate=span_error_rate(samples, start, t_inject + error_span_s, period_s),
        error_span_s=error_span_s, probe_timeouts=sum(1 for s in after if s.timed_out),
        peak_error_rate=peak_error_rate(samples, start, window_s),
        p95_ms_baseline=p95_base, p95_ms_during=p95_during,
        p95_ratio_during=(p95_during / p95_base) if p95_during is not None and p95_base else None,
        latency_tolerance_ms=tolerance, samples=len(samples),
        downtime_s=downtime_s(samples, start, period_s),
        served_during_fault=None if cause_end <= t_inject else served_share(
            samples, t_inject, cause_end, period_s),
    )
    if not failover:
        return figures
    rows, seconds = rpo(samples, t_inject, missing_writes or set())
    return replace(figures, rto_s=rto(samples, t_inject), rpo_rows=rows, rpo_s=seconds)


def halt_reached(samples: Sequence[Sample], now: float, error_rate_above: float,
                 for_s: float) -> bool:
    """True when the error rate over the last ``for_s`` seconds is above the limit and the
    timeline covers that whole span."""
    if not samples or samples[0].t > now - for_s:
        return False
    recent = [s for s in samples if s.t >= now - for_s]
    rate = error_rate(recent)
    return rate is not None and rate > error_rate_above
