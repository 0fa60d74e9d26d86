"""Timeline buckets on hand-made timelines, with hand-computed expected values."""

import math
from datetime import UTC, datetime

import pytest

from gameday.analytics.timeline import Bucket, timeline_buckets
from gameday.model import Sample

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def sample(t: float, ok: bool = True, latency: float = 10.0) -> Sample:
    return Sample(t=t, utc=T0, ok=ok, latency_ms=latency, status=200 if ok else 502)


def ten_hz(seconds: range, failed: set[int] = frozenset(), latency: float = 10.0) -> list[Sample]:
    """10 probes a second over the given whole seconds; ``failed`` holds sample indexes (t * 10)."""
    return [sample(i / 10, ok=i not in failed, latency=latency)
            for s in seconds for i in range(s * 10, s * 10 + 10)]


def test_three_failures_in_second_three_give_seventy_percent():
    buckets = timeline_buckets(ten_hz(range(6), failed={31, 34, 38}))
    assert [(b.t_start, b.t_end) for b in buckets] == [(k, k + 1) for k in range(6)]
    assert [b.samples for b in buckets] == [10] * 6
    assert [b.ok for b in buckets] == [10, 10, 10, 7, 10, 10]
    assert [b.success_ratio for b in buckets] == [1.0, 1.0, 1.0, 0.7, 1.0, 1.0]


def test_p95_and_max_over_the_ok_samples_only():
    samples = [sample(i / 10, latency=10.0 * (i + 1)) for i in range(10)]  # 10, 20, ..., 100 ms
    samples.append(sample(0.95, ok=False, latency=5000.0))  # a timeout: not the cell's latency
    (bucket,) = timeline_buckets(samples)
    # rank = 9 * 0.95 = 8.55 -> 90 + 0.55 * (100 - 90)
    assert bucket.p95_ms == pytest.approx(95.5)
    assert bucket.max_ms == 100.0
    assert (bucket.samples, bucket.ok) == (11, 10)
    assert bucket.success_ratio == pytest.approx(10 / 11)


def test_bucket_with_only_failures_has_no_latency():
    (bucket,) = timeline_buckets([sample(0.0, ok=False), sample(0.5, ok=False)])
    assert bucket == Bucket(0.0, 1.0, samples=2, ok=0, success_ratio=0.0, p95_ms=None, max_ms=None)


def test_gap_in_the_probes_is_a_run_of_empty_buckets():
    samples = ten_hz(range(2)) + ten_hz(range(4, 5))
    buckets = timeline_buckets(samples)
    assert len(buckets) == 5
    assert [b.samples for b in buckets] == [10, 10, 0, 0, 10]
    for empty in buckets[2:4]:
        assert (empty.ok, empty.success_ratio, empty.p95_ms, empty.max_ms) == (0, None, None, None)
    assert (buckets[2].t_start, buckets[3].t_end) == (2.0, 4.0)


def test_default_start_is_floored_to_the_bucket_size():
    buckets = timeline_buckets([sample(2.3), sample(3.5), sample(4.1)])
    assert [(b.t_start, b.samples) for b in buckets] == [(2.0, 1), (3.0, 1), (4.0, 1)]
    halves = timeline_buckets([sample(2.3), sample(2.7)], bucket_s=0.5)
    assert [(b.t_start, b.t_end, b.samples) for b in halves] == [(2.0, 2.5, 1), (2.5, 3.0, 1)]


def test_explicit_start_and_end():
    samples = ten_hz(range(1, 4))  # t 1.0 .. 3.9
    buckets = timeline_buckets(samples, start=0.0, end=6.0)
    # the last bucket is the one holding end: [6, 7)
    assert [b.samples for b in buckets] == [0, 10, 10, 10, 0, 0, 0]
    assert buckets[-1].t_start == 6.0
    clipped = timeline_buckets(samples, start=1.5, end=2.6)
    # explicit start used as given; samples before it and after the last bucket are left out
    assert [(b.t_start, b.t_end, b.samples) for b in clipped] == [(1.5, 2.5, 10), (2.5, 3.5, 10)]


def test_half_second_buckets():
    buckets = timeline_buckets(ten_hz(range(2), failed={7}), bucket_s=0.5)
    assert [(b.t_start, b.t_end) for b in buckets] == [(0.0, 0.5), (0.5, 1.0), (1.0, 1.5), (1.5, 2.0)]
    assert [b.samples for b in buckets] == [5, 5, 5, 5]
    assert [b.success_ratio for b in buckets] == [1.0, 0.8, 1.0, 1.0]


def test_samples_on_a_bucket_edge_land_in_the_bucket_that_starts_there():
    t = 0.0
    samples = []
    for _ in range(10):  # accumulated floats: 0.30000000000000004, 0.7999999999999999, ...
        samples.append(sample(t))
        t += 0.1
    buckets = timeline_buckets(samples, bucket_s=0.1)
    assert len(buckets) == 10
    assert [b.samples for b in buckets] == [1] * 10


def test_unordered_samples_and_one_sample():
    buckets = timeline_buckets([sample(1.2), sample(0.1), sample(1.9, ok=False)])
    assert [(b.samples, b.ok) for b in buckets] == [(1, 1), (2, 1)]
    (only,) = timeline_buckets([sample(7.25, latency=42.0)])
    assert only == Bucket(7.0, 8.0, samples=1, ok=1, success_ratio=1.0, p95_ms=42.0, max_ms=42.0)


def test_no_samples():
    assert timeline_buckets([]) == ()
    assert timeline_buckets([], start=0.0) == ()
    empty = timeline_buckets([], start=0.0, end=2.5)
    assert [(b.t_start, b.samples, b.success_ratio) for b in empty] == [(0, 0, None), (1, 0, None),
                                                                          (2, 0, None)]


@pytest.mark.parametrize("bucket_s", [0.0, -1.0, math.nan, math.inf])
def test_bucket_size_must_be_positive(bucket_s):
    with pytest.raises(ValueError, match="bucket_s"):
        timeline_buckets(ten_hz(range(2)), bucket_s=bucket_s)


def test_end_before_start_is_an_error():
    with pytest.raises(ValueError, match="before start"):
        timeline_buckets(ten_hz(range(2)), start=5.0, end=1.0)
