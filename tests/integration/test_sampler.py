"""The timeline sampler against real processes: a sandbox cell, and a slow HTTP server.

    pod kill     bursting at 50 Hz through a replica kill beside a plain 50 Hz client: both
                 tallies printed; the sampler's failures are the kill's, at their send time
    latency      800 ms of latency with the cell's probe timeout: no probe-caused error, the
                 same outcome in every trial (the in-flight bound keeps our load user-like)
    in flight    a server that answers slowly never sees more than max_in_flight of our
                 requests; the ticks that would have queued are counted, not sent
"""

from __future__ import annotations

import http.client
import random
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml

from gameday.config.cells import load_cells
from gameday.engine.runner import BURST_TAIL_S
from gameday.engine.sampler import DEFAULT_MAX_IN_FLIGHT, Sampler, detection_floor_ms
from gameday.model import Sample
from gameday.sandbox import manager
from gameday.targets import open_target
from gameday.targets.base import Probe, Target
from helpers import PlainClient, Sandbox, wait_for

pytestmark = pytest.mark.integration

REPLICAS = 3
BURST_HZ = 50.0


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path_factory.mktemp("sampler-sandbox"))
    box.cli("sandbox", "up", "--replicas", str(REPLICAS), "--quiet", check=True)
    yield box
    box.cli("sandbox", "down")


def local_target(box: Sandbox, **cell: Any) -> Target:
    """The cell as the runner opens it, through a cells file (the cell's own probe timeout)."""
    path = box.state_dir / f"cells-{secrets.token_hex(3)}.yaml"
    path.write_text(yaml.safe_dump({"schema_version": 1, "cells": [
        {"name": "cell-1", "target": "local",
         "local": {"state_dir": str(box.state_dir), "sandbox_cell": "cell-1"}, **cell}]}))
    return open_target(load_cells(path)["cell-1"])


def whole_cell(box: Sandbox) -> int:
    """Wait for every replica to be ready; how many there are."""
    def ready() -> int:
        cell = manager.sandbox_status(box.state_dir)["cells"][0]
        replicas = cell["replicas"]
        return len(replicas) if len(replicas) >= REPLICAS and all(r["ready"] for r in replicas) \
            else 0

    return int(wait_for(ready, 60, "every replica ready"))


def latency_trial(box: Sandbox, target: Target, n: int) -> tuple[list[Sample], Any, float]:
    whole_cell(box)
    t0 = time.monotonic()
    sampler = Sampler(target, f"sampler-latency-{n}", 10.0, t0, burst_hz=BURST_HZ).start()
    try:
        time.sleep(0.2)
        sampler.burst(1.5)  # the runner bursts from just before injection: the worst case here
        box_fault = manager.inject_fault(box.state_dir, "cell-1", "latency",
                                         {"ms": 800, "duration": 3.0},
                                         fault_id=f"sampler-latency-{n}-{secrets.token_hex(3)}")
        t_inject = time.monotonic() - t0
        time.sleep(3.0 + 0.3)
    finally:
        sampler.stop()
    assert box_fault["spec"]["latency_ms"] == 800
    return sampler.samples(), sampler.stats(), t_inject


def test_under_800_ms_of_latency_no_error_is_ours_and_every_trial_agrees(box: Sandbox) -> None:
    target = local_target(box)  # the cell's own probe timeout (2 s by default)
    outcomes = []
    for n in range(3):
        samples, stats, t_inject = latency_trial(box, target, n)
        failed = [s for s in samples if not s.ok]
        slow = [s for s in samples if s.t >= t_inject and s.latency_ms >= 800]
        print(f"\nlatency trial {n}: {stats.sent} sent, {stats.skipped} skipped, "
              f"{len(failed)} failed, {stats.timed_out} timed out, {len(slow)} slow, "
              f"max in flight {stats.max_in_flight_seen}")
        # Every failure that is our own timeout says so; no 503 from queuing: none at all.
        assert all(s.timed_out and s.status == 0 for s in failed if s.status == 0), failed
        assert not [s for s in failed if s.status >= 500], failed
        assert stats.timed_out == sum(s.timed_out for s in samples)
        # The bound held and was what kept us polite: ticks were skipped, not queued.
        assert stats.max_in_flight_seen <= DEFAULT_MAX_IN_FLIGHT and stats.skipped > 0, stats
        assert stats.sent == len(samples)
        # And the impact was seen: the probes during the fault were slow.
        assert len(slow) >= 4, samples
        outcomes.append((len(failed), sum(s.timed_out for s in samples)))
    assert outcomes == [(0, 0)] * 3, outcomes


def test_a_probe_that_gives_up_at_its_own_timeout_says_so(box: Sandbox) -> None:
    target = local_target(box, probe={"timeout_s": 0.4})  # shorter than the latency
    whole_cell(box)
    t0 = time.monotonic()
    sampler = Sampler(target, "sampler-timeout", 10.0, t0).start()
    try:
        manager.inject_fault(box.state_dir, "cell-1", "latency", {"ms": 800, "duration": 1.2},
                             fault_id=f"sampler-timeout-{secrets.token_hex(3)}")
        time.sleep(1.0)
    finally:
        sampler.stop()
    timed_out = [s for s in sampler.samples() if s.timed_out]
    assert timed_out and sampler.stats().timed_out == len(timed_out)
    assert all(not s.ok and s.status == 0 and 350 <= s.latency_ms < 800 for s in timed_out)
    assert all(s.error and s.error.startswith("TimeoutError") for s in timed_out)
    wait_for(lambda: target.probe(0, "sampler-timeout").latency_ms < 100, 10, "latency gone")


@dataclass
class KillTrial:
    skipped: int
    burst_probes: int  # samples sent from the burst's start to the sampler's stop
    burst_s: float
    window_ms: float  # the sandbox's own: fault injected -> killed replica out of the balancer
    floor_ms: float  # one replica of those ready fails: every N-th request
    sampler_failed: list[Sample]
    plain_failed: list[float]  # send times on the run's axis
    t_inject: float
    t_removed: float


def kill_trial(box: Sandbox, target: Target, url: str, n: int) -> KillTrial:
    replicas = whole_cell(box)
    t0 = time.monotonic()
    sampler = Sampler(target, f"sampler-kill-{n}", 10.0, t0, burst_hz=BURST_HZ).start()
    time.sleep(random.uniform(0, 0.02))  # the peer's grid at a random phase to ours
    plain = PlainClient(url, BURST_HZ)
    plain.start()
    try:
        time.sleep(0.1)
        t_burst = time.monotonic() - t0
        # The runner's call when the worker starts (injection imminent), renewed by its loop
        # until BURST_TAIL_S after the injection: here the trial ends well inside it.
        sampler.burst(BURST_TAIL_S)
        time.sleep(random.uniform(0.15, 0.25))  # the kill at a random phase to both grids
        fault_id = f"sampler-kill-{n}-{secrets.token_hex(3)}"
        manager.inject_fault(box.state_dir, "cell-1", "kill-replica", {"count": 1},
                             fault_id=fault_id)
        time.sleep(0.35)  # the balancer takes the replica out within ~100 ms
    finally:
        plain.stop.set()
        plain.join()
        t_stop = time.monotonic() - t0
        sampler.stop()
    stats = sampler.stats()
    # A kill can slow a few answers past the bound's reach (skipped ticks are legitimate
    # then, and counted); never more than the bound in flight.
    assert stats.max_in_flight_seen <= DEFAULT_MAX_IN_FLIGHT, stats
    events = manager.sandbox_events(box.state_dir, "cell-1")
    injected = next(e for e in events
                    if e["event"] == "fault_injected" and e["fault_id"] == fault_id)
    victim = injected["targets"][0]["replica"]
    removed = next(e for e in events if e["event"] == "lb_endpoint_removed"
                   and e["replica"] == victim and e["monotonic"] >= injected["monotonic"])
    return KillTrial(
        skipped=stats.skipped,
        burst_probes=sum(1 for s in sampler.samples() if s.t >= t_burst),
        burst_s=min(t_stop - t_burst, BURST_TAIL_S),
        window_ms=(removed["monotonic"] - injected["monotonic"]) * 1000,
        floor_ms=detection_floor_ms(BURST_HZ, affected_share=1 / replicas),
        sampler_failed=[s for s in sampler.samples() if not s.ok],
        plain_failed=[sent - t0 for sent, status in plain.sent if status != 201],
        t_inject=injected["monotonic"] - t0, t_removed=removed["monotonic"] - t0)


def test_a_burst_probes_a_pod_kill_at_50_hz_beside_a_plain_50_hz_client(box: Sandbox) -> None:
    """Bursting at 50 Hz beside an independent 50 Hz client, over 8 kills; tallies printed.

    One killed replica of three behind round robin fails one request in three until the
    balancer's health check takes it out (0-100 ms after the kill: the check runs every
    100 ms), so the detection floor at 50 Hz is 60 ms. At the same rate the two clients are
    statistically alike, and an impact below the floor is a matter of phase for either: no
    client at the peer's rate can see every kill the peer happens to catch (measured: each
    misses some the other sees). What must hold, and is asserted: the burst really probes at
    50 Hz through the kill, never more than the bound in flight, and each failure the
    sampler records is the kill's (a 502, at its send time, outstanding while the dead
    replica was still in the balancer), not one of our own timeouts.
    """
    target = local_target(box)
    url = manager.cell_state(box.state_dir, "cell-1")["url"]
    # 8 trials: each waits for the killed replica's restart back-off (the wall time here).
    trials = [kill_trial(box, target, url, n) for n in range(8)]
    plain_saw = [bool(t.plain_failed) for t in trials]
    sampler_saw = [bool(t.sampler_failed) for t in trials]
    print(f"\npod kill, {len(trials)} trials: plain 50 Hz client saw a failed request in "
          f"{sum(plain_saw)}, the sampler (burst {BURST_HZ:g} Hz) in {sum(sampler_saw)}, "
          f"both in {sum(p and s for p, s in zip(plain_saw, sampler_saw, strict=True))}; "
          f"detection floor {trials[0].floor_ms:.0f} ms")
    for i, t in enumerate(trials):
        print(f"  trial {i}: balancer window {t.window_ms:5.1f} ms  plain {len(t.plain_failed)} "
              f"failed  sampler {len(t.sampler_failed)} failed, {t.skipped} ticks skipped")
    for t in trials:
        # The grid through the kill was the burst's: 50 Hz, bar ticks the bound skipped.
        assert t.burst_probes + t.skipped >= 0.9 * BURST_HZ * t.burst_s, t
        for sample in t.sampler_failed:
            # Failures are the kill's, stamped with their send time: each was outstanding at
            # some moment from the kill (recorded just after it) to the replica's removal
            # from the balancer (a request in flight when the replica died fails too).
            answered = sample.t + sample.latency_ms / 1000
            assert answered >= t.t_inject - 0.01 and sample.t <= t.t_removed + 0.01, (sample, t)
            assert sample.status == 502 and not sample.timed_out, sample


# ------------------------------------------------------------- a real, slow HTTP server


class SlowServer(ThreadingHTTPServer):
    """Answers every request after ``delay_s``; counts the requests it holds at once."""

    daemon_threads = True

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.served = 0
        super().__init__(("127.0.0.1", 0), SlowHandler)


class SlowHandler(BaseHTTPRequestHandler):
    server: SlowServer

    def do_GET(self) -> None:
        srv = self.server
        with srv.lock:
            srv.now += 1
            srv.most = max(srv.most, srv.now)
        try:
            time.sleep(srv.delay_s)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        finally:
            with srv.lock:
                srv.now -= 1
                srv.served += 1

    def log_message(self, format: str, *args: Any) -> None:
        pass


class HttpTarget:
    """A target whose probe is one GET to a real server, a fresh connection each."""

    name = "http"

    def __init__(self, port: int, timeout_s: float = 5.0) -> None:
        self.port = port
        self.timeout_s = timeout_s

    def probe(self, seq: int, tag: str) -> Probe:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout_s)
        started = time.perf_counter()
        try:
            conn.request("GET", f"/?seq={seq}")
            response = conn.getresponse()
            response.read()
            return Probe(response.status == 200, response.status,
                         (time.perf_counter() - started) * 1000, None, seq)
        finally:
            conn.close()


@pytest.fixture
def slow_server() -> Iterator[SlowServer]:
    server = SlowServer(delay_s=0.5)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_slow_server_never_holds_more_than_max_in_flight(slow_server: SlowServer) -> None:
    target: Any = HttpTarget(slow_server.server_address[1])
    sampler = Sampler(target, "slow", 20.0, time.monotonic(), max_in_flight=2).start()
    time.sleep(1.6)
    sampler.stop()
    stats = sampler.stats()
    # 20 Hz for 1.6 s is ~32 ticks; answers take 0.5 s, so 2 at a time send ~4 per second.
    assert slow_server.most == 2, slow_server.most  # the bound was reached, never passed
    assert stats.max_in_flight_seen == 2
    assert 4 <= stats.sent <= 10 and stats.skipped >= 20, stats
    assert 28 <= stats.sent + stats.skipped <= 36, stats
    # stop() waits for every probe: each sent one is a sample (the server may still be writing
    # its answer to one the client's timeout gave up on)
    assert stats.sent == len(sampler.samples())
    assert stats.sent - stats.max_in_flight <= slow_server.served <= stats.sent
    assert all(s.ok and s.latency_ms >= 450 for s in sampler.samples())


def test_burst_raises_the_rate_for_its_time_and_extends(slow_server: SlowServer) -> None:
    slow_server.delay_s = 0.0
    target: Any = HttpTarget(slow_server.server_address[1])
    t0 = time.monotonic()
    sampler = Sampler(target, "burst", 5.0, t0, burst_hz=50.0).start()
    time.sleep(0.5)
    sampler.burst(0.3)
    time.sleep(0.1)
    sampler.burst(0.4)  # extends the one that is on: until 0.5 s after the first call
    time.sleep(0.8)
    during = sampler.stats()
    sampler.stop()
    stats = sampler.stats()
    ts = [s.t for s in sampler.samples()]
    in_burst = [t for t in ts if 0.5 <= t < 1.0]
    assert 20 <= len(in_burst) <= 27, ts  # 50 Hz for 0.5 s
    assert 1 <= len([t for t in ts if 1.05 <= t < 1.4]) <= 3, ts  # back to 5 Hz
    assert during.burst_s_total == pytest.approx(0.5, abs=0.03), during
    assert stats.burst_s_total == pytest.approx(0.5, abs=0.03) and stats.burst_hz == 50.0
    assert stats.skipped == 0 and stats.sent == len(ts)
    plain = Sampler(target, "no-burst", 5.0, time.monotonic()).start()
    plain.burst(1.0)  # no burst rate: nothing changes
    time.sleep(0.4)
    plain.stop()
    assert plain.stats().burst_s_total == 0 and plain.stats().sent <= 3


def test_detection_floor_is_one_period_or_more() -> None:
    assert detection_floor_ms(10) == pytest.approx(100)
    assert detection_floor_ms(50) == pytest.approx(20)
    assert detection_floor_ms(50, affected_share=1 / 3) == pytest.approx(60)
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            detection_floor_ms(bad)
