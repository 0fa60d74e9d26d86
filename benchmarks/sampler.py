"""Sampler benchmark: CPU cost of the timeline sampler against a live sandbox cell.

A script that prints figures, not a timed test. For each rate (10 Hz, the base rate, and
50 Hz, the burst rate), over a few trials each, it measures the process CPU time per second
(user + system, every thread of this process; the cell's own processes are not counted) of:

    sampler      gameday.engine.sampler.Sampler probing the cell
    plain loop   the peer: one thread sending the same requests (target.probe, a fresh
                 connection each) on the same grid, one after the other
    thread pool  the previous design, for reference: a ThreadPoolExecutor(32) and one
                 submitted future per tick, on the same grid

and prints the medians, the sampler's overhead over the plain loop (CPU % of a core and
per probe), and how many probes each sent. All three run in the same sandbox, one after
the other, in each trial.

    .venv/bin/python benchmarks/sampler.py [--trials 5] [--seconds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from gameday.config.cells import load_cells
from gameday.engine.sampler import Sampler
from gameday.sandbox import manager
from gameday.targets import open_target
from gameday.targets.base import Target

RATES = (10.0, 50.0)


def cpu_per_s(run: Callable[[float], int], seconds: float) -> tuple[float, int]:
    """CPU % of one core used by this process while ``run`` probes for ``seconds``."""
    before = time.process_time()
    started = time.monotonic()
    sent = run(seconds)
    elapsed = time.monotonic() - started
    return (time.process_time() - before) / elapsed * 100, sent


def with_sampler(target: Target, hz: float) -> Callable[[float], int]:
    def run(seconds: float) -> int:
        sampler = Sampler(target, "bench-sampler", hz, time.monotonic()).start()
        time.sleep(seconds)
        sampler.stop()
        return sampler.stats().sent
    return run


def on_grid(hz: float, seconds: float, send: Callable[[int], None]) -> int:
    period = 1.0 / hz
    end = time.monotonic() + seconds
    next_tick = time.monotonic()
    seq = 0
    while next_tick < end:
        seq += 1
        send(seq)
        next_tick += period
        delay = next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_tick = time.monotonic()
    return seq


def plain_loop(target: Target, hz: float) -> Callable[[float], int]:
    def run(seconds: float) -> int:
        return on_grid(hz, seconds, lambda seq: target.probe(seq, "bench-plain") and None)
    return run


def thread_pool(target: Target, hz: float) -> Callable[[float], int]:
    def run(seconds: float) -> int:
        results: list[object] = []
        lock = threading.Lock()

        def probe(seq: int) -> None:
            result = target.probe(seq, "bench-pool")
            with lock:
                results.append(result)

        with ThreadPoolExecutor(32, thread_name_prefix="probe") as pool:
            return on_grid(hz, seconds, lambda seq: pool.submit(probe, seq) and None)
    return run


PEERS: dict[str, Callable[[Target, float], Callable[[float], int]]] = {
    "sampler": with_sampler, "plain loop": plain_loop, "thread pool": thread_pool}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    cpu: dict[tuple[str, float], list[float]] = {(p, hz): [] for p in PEERS for hz in RATES}
    sent: dict[tuple[str, float], list[int]] = {(p, hz): [] for p in PEERS for hz in RATES}
    with tempfile.TemporaryDirectory(prefix="gameday-bench-sampler-") as tmp:
        state_dir = Path(tmp) / "sandbox"
        manager.sandbox_up(state_dir, cells=1)
        try:
            cells = Path(tmp) / "cells.yaml"
            cells.write_text(yaml.safe_dump({"schema_version": 1, "cells": [
                {"name": "cell-1", "target": "local",
                 "local": {"state_dir": str(state_dir), "sandbox_cell": "cell-1"}}]}))
            target = open_target(load_cells(cells)["cell-1"])
            target.probe(0, "bench-warm-up")
            for _ in range(args.trials):
                for hz in RATES:
                    for name, make in PEERS.items():
                        pct, n = cpu_per_s(make(target, hz), args.seconds)
                        cpu[(name, hz)].append(pct)
                        sent[(name, hz)].append(n)
        finally:
            manager.sandbox_down(state_dir)
    print(f"sampler CPU, median of {args.trials} trials of {args.seconds:g} s "
          "(process CPU time per second, % of one core)")
    print(f"  {'rate':>6}  {'sampler':>8}  {'plain loop':>10}  {'thread pool':>11}  "
          f"{'overhead':>9}  {'per probe':>10}  {'sent/s':>7}")
    for hz in RATES:
        med = {p: statistics.median(cpu[(p, hz)]) for p in PEERS}
        rate = statistics.median(sent[("sampler", hz)]) / args.seconds
        overhead = med["sampler"] - med["plain loop"]
        per_probe_us = med["sampler"] / 100 / rate * 1e6
        print(f"  {hz:>4g} Hz  {med['sampler']:>7.2f}%  {med['plain loop']:>9.2f}%  "
              f"{med['thread pool']:>10.2f}%  {overhead:>+8.2f}%  {per_probe_us:>7.0f} us  "
              f"{rate:>7.1f}")
    print("  overhead = sampler - plain loop; per probe = the sampler's CPU time per probe sent")


if __name__ == "__main__":
    main()
