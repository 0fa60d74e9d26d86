"""A run's timeline in fixed-width time buckets (pure): what the report's timeline chart draws.

Times are seconds on the run's own axis (``Sample.t``). Buckets are half-open,
``[t_start, t_end)``, consecutive, and empty ones are kept so a gap in the probes shows as a
gap. Latency figures count the successful probes only: a failed probe's latency is the time it
took to fail, not the cell's latency.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gameday.analytics.recovery import percentile
from gameday.model import Sample

# Tolerance, in bucket widths, for float noise at bucket edges: 3 * 0.1 / 0.1 is 2.9999999999999996,
# yet a probe at t = 0.3 belongs to the bucket that starts at 0.3.
_EDGE_EPS = 1e-9


@dataclass(frozen=True)
class Bucket:
    t_start: float
    t_end: float
    samples: int
    ok: int
    success_ratio: float | None  # ok / samples; None for an empty bucket
    p95_ms: float | None  # p95 latency of the ok samples; None when there are none
    max_ms: float | None  # highest latency of the ok samples; None when there are none


def _index(t: float, start: float, bucket_s: float) -> int:
    return math.floor((t - start) / bucket_s + _EDGE_EPS)


def timeline_buckets(samples: Sequence[Sample], bucket_s: float = 1.0, start: float | None = None,
                     end: float | None = None) -> tuple[Bucket, ...]:
    """Consecutive buckets ``[start + k*bucket_s, start + (k+1)*bucket_s)`` from start to end.

    ``start`` defaults to the earliest sample's t floored to a multiple of ``bucket_s`` (buckets
    line up with whole seconds of the run); an explicit ``start`` is used as given. ``end``
    defaults to the latest sample's t. The last bucket is the one that holds ``end`` (end is
    inclusive, so the latest sample is always counted); buckets are whole, so that bucket counts
    all its samples, even those after ``end``. Samples outside every bucket are ignored.

    No samples and no explicit start and end: no buckets. Raises ValueError when bucket_s is
    not a positive finite number, or when end is before start.
    """
    if not (math.isfinite(bucket_s) and bucket_s > 0):
        raise ValueError(f"bucket_s must be a positive number of seconds, got {bucket_s!r}")
    times = [s.t for s in samples]
    if start is None:
        if not times:
            return ()
        start = math.floor(min(times) / bucket_s + _EDGE_EPS) * bucket_s
    if end is None:
        if not times:
            return ()
        end = max(times)
    if not (math.isfinite(start) and math.isfinite(end)):
        raise ValueError(f"start and end must be finite, got {start!r} and {end!r}")
    if end < start:
        raise ValueError(f"end ({end!r}) is before start ({start!r})")

    count = _index(end, start, bucket_s) + 1
    members: list[list[Sample]] = [[] for _ in range(count)]
    for sample in samples:
        index = _index(sample.t, start, bucket_s)
        if 0 <= index < count:
            members[index].append(sample)

    buckets: list[Bucket] = []
    for k, inside in enumerate(members):
        ok_latencies = [s.latency_ms for s in inside if s.ok]
        buckets.append(Bucket(
            t_start=round(start + k * bucket_s, 9),
            t_end=round(start + (k + 1) * bucket_s, 9),
            samples=len(inside),
            ok=len(ok_latencies),
            success_ratio=len(ok_latencies) / len(inside) if inside else None,
            p95_ms=percentile(ok_latencies, 95),
            max_ms=max(ok_latencies) if ok_latencies else None,
        ))
    return tuple(buckets)
