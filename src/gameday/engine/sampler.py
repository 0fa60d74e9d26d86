"""The timeline sampler: probes the cell on a fixed grid, every probe a sample.

Probes are sent on a fixed grid whatever the previous one is doing (a slow answer must not
thin the timeline when it matters most), at the base rate, or at the burst rate while a burst
is on (the runner asks for one from just before injection through the first seconds after
it, and around the fault's end: the moments a short impact must not slip between probes).

The sampler must never become the load that breaks the cell. At most ``max_in_flight``
probes are outstanding at once; a tick that finds them all busy is counted
(``stats().skipped``) and not sent: it is never queued behind the others, so a slow cell sees
a handful of user-like requests, not a growing pile of ours. Every probe opens its own
connection (the target's job): a kept-alive one would hide a dead endpoint.

The probes run on a fixed set of ``max_in_flight`` worker threads reading a queue (a bound
that is also the number of threads: no executor, no future per probe), and one ticker thread
keeps the grid. A probe's sample keeps its send time (``Sample.t``, on the run's axis).
"""

from __future__ import annotations

import math
import queue
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from gameday.model import Sample
from gameday.targets.base import Probe, Target

# Why 3: a user's client keeps a few requests open at once (browsers allow 6 connections per
# host; an interactive session rarely has more than 2-3 outstanding), so a few concurrent
# probes are user-like. And it is what the sandbox cell can absorb however slow it gets: each
# replica keeps 4 warm database connections (replica.POOL_MIN_IDLE), one of which the
# balancer's readiness check holds while it runs (all the time under 800 ms of latency). A
# request beyond the warm ones must open a new database connection, which under injected
# latency costs several round trips and runs into the replica's 2 s connect timeout: a 503
# for that request, and a failed readiness check that takes the replica out of the
# balancer. Three probes fit in the 3 spare connections of even a single ready replica. At
# the normal ~5 ms response time three in flight allow 600 probes/s, far above any rate we
# ask for; only a slow cell (response time > 3 periods) makes ticks skip, and those skips
# are counted and reported.
DEFAULT_MAX_IN_FLIGHT = 3


def detection_floor_ms(hz: float, *, affected_share: float = 1.0) -> float:
    """The shortest impact that is surely seen at ``hz``: anything shorter could go unseen.

    A probe reports the cell as it was when the probe was sent (loopback round trips are a
    few ms). Probes are sent every ``1/hz`` s, so an impact window of length ``d`` contains
    a send time for certain only when ``d >= 1/hz``; a shorter one is seen with probability
    ``d * hz``. One probe period is therefore the floor for an impact that every request
    suffers (latency, a database that refuses writes, no ready replica at all).

    The response timing does not raise the floor: a probe in flight when the fault lands
    (a replica killed under it) fails too, which widens the window it can be caught in by
    its own round trip. The balancer does raise it for partial impact: when only a share of
    requests is affected (one killed replica of N behind round robin fails every N-th
    request until the health check takes it out, 50-90 ms after the kill in the sandbox),
    the probes landing on the dead replica are one in N, so the window must hold N probes:
    the floor is ``period / affected_share`` (3 periods, 60 ms at 50 Hz, for one replica
    of three; at 10 Hz that is 300 ms, which is why a 10 Hz sampler mostly missed a pod
    kill). Other clients interleaved in the same round robin make which probe lands where a
    matter of chance; the floor is then a typical figure, not a guarantee.

    While the in-flight bound is reached (response time above ``max_in_flight`` periods)
    ticks are skipped, and the effective rate is ``max_in_flight / response time``: the
    floor at such times is the response time over ``max_in_flight``. Skipped ticks are
    counted in ``SamplerStats.skipped`` so that a report can say so.
    """
    if not (math.isfinite(hz) and hz > 0):
        raise ValueError(f"probe rate must be a positive number of Hz, got {hz!r}")
    if not 0 < affected_share <= 1:
        raise ValueError(f"affected_share must be in (0, 1], got {affected_share!r}")
    return 1000.0 / hz / affected_share


@dataclass(frozen=True)
class SamplerStats:
    sent: int  # probes sent
    skipped: int  # ticks not sent because max_in_flight probes were outstanding
    timed_out: int  # probes that gave up at their own client timeout
    max_in_flight_seen: int  # most probes outstanding at once
    base_hz: float
    burst_hz: float | None
    burst_s_total: float  # seconds spent at the burst rate (overlapping bursts counted once)
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT  # the bound itself


class Sampler:
    def __init__(self, target: Target, tag: str, hz: float, t0: float, *,
                 burst_hz: float | None = None,
                 max_in_flight: int = DEFAULT_MAX_IN_FLIGHT) -> None:
        if not (math.isfinite(hz) and hz > 0):
            raise ValueError(f"probe rate must be a positive number of Hz, got {hz!r}")
        if burst_hz is not None and not (math.isfinite(burst_hz) and burst_hz > 0):
            raise ValueError(f"burst rate must be a positive number of Hz, got {burst_hz!r}")
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) \
                or max_in_flight < 1:
            raise ValueError(f"max_in_flight must be a whole number >= 1, got {max_in_flight!r}")
        self.target = target
        self.tag = tag
        self.hz = hz
        self.burst_hz = burst_hz
        self.period = 1.0 / hz
        self._burst_period = 1.0 / burst_hz if burst_hz is not None else self.period
        self.max_in_flight = max_in_flight
        self.t0 = t0  # the run's time origin (monotonic)
        # One condition guards the grid, the burst and the counters; the ticker waits on it
        # so that burst() and stop() take effect at once.
        self._cond = threading.Condition()
        self._stopping = False
        self._next_tick = 0.0
        self._burst_until = -math.inf
        self._burst_s_total = 0.0
        self._seq = 0
        self._in_flight = 0
        self._sent = 0
        self._skipped = 0
        self._timed_out = 0
        self._max_in_flight_seen = 0
        self._jobs: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._samples: list[Sample] = []
        self._samples_lock = threading.Lock()
        self._flushed = 0
        self._ticker = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._workers = [threading.Thread(target=self._work, name=f"probe-{i}", daemon=True)
                         for i in range(max_in_flight)]
        self._started = False

    def start(self) -> Sampler:
        for worker in self._workers:
            worker.start()
        self._next_tick = time.monotonic()
        self._started = True
        self._ticker.start()
        return self

    # -- the grid ------------------------------------------------------------------------

    def burst(self, seconds: float) -> None:
        """From now, probe at the burst rate for ``seconds`` (extending a burst that is on).

        A no-op without a burst rate, or once stopped."""
        if self.burst_hz is None or not (math.isfinite(seconds) and seconds > 0):
            return
        with self._cond:
            if self._stopping:
                return
            now = time.monotonic()
            until = now + seconds
            if now < self._burst_until:  # extend the burst that is on
                if until > self._burst_until:
                    self._burst_s_total += until - self._burst_until
                    self._burst_until = until
                return
            self._burst_s_total += seconds
            self._burst_until = until
            # The first burst probe goes now, not at the next tick of the slower grid.
            self._next_tick = min(self._next_tick, now)
            self._cond.notify_all()

    def _run(self) -> None:
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                if now >= self._next_tick:
                    self._tick()
                    period = self._burst_period if now < self._burst_until else self.period
                    self._next_tick += period
                    if self._next_tick < now:
                        # Fell behind (a stalled host): resume the grid from now rather than
                        # send the missed ticks back to back.
                        self._next_tick = now
                    continue
                self._cond.wait(self._next_tick - now)

    def _tick(self) -> None:  # with self._cond held
        if self._in_flight >= self.max_in_flight:
            self._skipped += 1  # would queue behind the outstanding probes: not sent
            return
        self._in_flight += 1
        self._max_in_flight_seen = max(self._max_in_flight_seen, self._in_flight)
        self._sent += 1
        self._seq += 1
        self._jobs.put(self._seq)

    # -- the probes ----------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            seq = self._jobs.get()
            if seq is None:
                return
            utc = datetime.now(UTC)
            sent = time.monotonic()
            try:
                result = self.target.probe(seq, self.tag)
            except Exception as exc:  # a target that raises still leaves a failed sample
                result = Probe(False, 0, (time.monotonic() - sent) * 1000,
                               f"probe raised {type(exc).__name__}: {exc}", seq)
            with self._cond:
                self._in_flight -= 1
                if result.timed_out:
                    self._timed_out += 1
            sample = Sample(t=sent - self.t0, utc=utc, ok=result.ok,
                            latency_ms=result.latency_ms, status=result.status,
                            error=result.error, write_seq=result.write_seq,
                            payment_id=result.payment_id, timed_out=result.timed_out)
            with self._samples_lock:
                self._samples.append(sample)

    def stop(self) -> None:
        """Stop probing and wait for the probes in flight (bounded by the probe timeout)."""
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            now = time.monotonic()
            if now < self._burst_until:  # the rest of the burst never happened
                self._burst_s_total -= self._burst_until - now
                self._burst_until = now
            self._cond.notify_all()
        if self._started:
            self._ticker.join()
        for _ in self._workers:
            self._jobs.put(None)  # after every probe already handed out
        if self._started:
            for worker in self._workers:
                worker.join()

    # -- what was seen -------------------------------------------------------------------

    def stats(self) -> SamplerStats:
        with self._cond:
            burst_s = self._burst_s_total
            now = time.monotonic()
            if self._burst_until > now:  # count a burst that is on up to now
                burst_s -= self._burst_until - now
            return SamplerStats(
                sent=self._sent, skipped=self._skipped, timed_out=self._timed_out,
                max_in_flight_seen=self._max_in_flight_seen, base_hz=self.hz,
                burst_hz=self.burst_hz, burst_s_total=max(0.0, burst_s),
                max_in_flight=self.max_in_flight)

    def samples(self) -> list[Sample]:
        """Every sample so far, in time order."""
        with self._samples_lock:
            samples = list(self._samples)
        samples.sort(key=lambda s: s.t)
        return samples

    def take_new(self) -> list[Sample]:
        """Samples completed since the last call (to persist as the run goes)."""
        with self._samples_lock:
            new = self._samples[self._flushed:]
            self._flushed = len(self._samples)
        return new
