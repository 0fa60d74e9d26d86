"""The timeline sampler: probes the cell at a fixed rate, every probe a sample.

Probes are sent on a fixed grid whatever the previous one is doing (a slow answer must not
thin the timeline when it matters most), each from a small thread pool.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from gameday.model import Sample
from gameday.targets.base import Target

MAX_IN_FLIGHT = 32


class Sampler:
    def __init__(self, target: Target, tag: str, hz: float, t0: float) -> None:
        self.target = target
        self.tag = tag
        self.period = 1.0 / hz
        self.t0 = t0  # the run's time origin (monotonic)
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(MAX_IN_FLIGHT, thread_name_prefix="probe")
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._seq = 0
        self._flushed = 0
        # At most MAX_IN_FLIGHT probes at once: a cell that stops answering must not grow an
        # unbounded queue of probes behind it (a tick with no free slot is not sent).
        self._slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def _probe(self, seq: int, sent: float, utc: datetime) -> None:
        try:
            result = self.target.probe(seq, self.tag)
        finally:
            self._slots.release()
        sample = Sample(t=sent - self.t0, utc=utc, ok=result.ok, latency_ms=result.latency_ms,
                        status=result.status, error=result.error, write_seq=result.write_seq,
                        payment_id=result.payment_id)
        with self._lock:
            self._samples.append(sample)

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            if self._slots.acquire(blocking=False):
                self._seq += 1
                self._pool.submit(self._probe, self._seq, time.monotonic(), datetime.now(UTC))
            next_tick += self.period
            delay = next_tick - time.monotonic()
            if delay < 0:  # fell behind (a stalled host): skip ticks rather than burst
                next_tick = time.monotonic()
                delay = 0
            self._stop.wait(delay)

    def stop(self) -> None:
        """Stop probing and wait for the probes in flight (bounded by the probe timeout)."""
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(wait=True)

    def samples(self) -> list[Sample]:
        """Every sample so far, in time order."""
        with self._lock:
            return sorted(self._samples, key=lambda s: s.t)

    def take_new(self) -> list[Sample]:
        """Samples completed since the last call (to persist as the run goes)."""
        with self._lock:
            new = self._samples[self._flushed:]
            self._flushed = len(self._samples)
        return new
