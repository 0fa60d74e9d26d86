"""A CPU burner: one process pinned to one CPU, using ``load`` percent of it in every 100 ms.

    python -m gameday.sandbox.burner --cpu N --load PCT --deadline MONO --fault-id ID \\
        [--events-file PATH --cell NAME]

The burner stops itself at ``--deadline`` (a ``time.monotonic()`` value: CLOCK_MONOTONIC is
system-wide on Linux, so a deadline computed by the controller holds here), so a stress fault
never outlives its expiry even when the controller was SIGKILLed. SIGTERM/SIGINT stop it at once.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from gameday.errors import InputError, SandboxError
from gameday.sandbox.events import EventLog
from gameday.sandbox.procs import keep_priority_in_own_session

PERIOD_S = 0.1
# A best-effort noisy neighbour: the cell's replicas hold the CPU "requests" (normal priority)
# and take the CPU back when they need it, as pods with requests do on a stressed node.
NICE = 10


class _StopFlag:
    """Set by SIGTERM/SIGINT; its socket wakes a sleeping burner at once (set_wakeup_fd)."""

    def __init__(self) -> None:
        self.stopped = False
        self._rx, self._tx = socket.socketpair()
        self._rx.setblocking(False)
        self._tx.setblocking(False)
        signal.set_wakeup_fd(self._tx.fileno())
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopped = True

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` or until a stop signal arrives, whichever comes first."""
        if seconds > 0 and not self.stopped:
            select.select([self._rx], [], [], seconds)


def burn(load_pct: int, deadline: float, flag: _StopFlag) -> str:
    """Run the duty cycle until ``deadline`` or a signal; return why it stopped."""
    busy_s = PERIOD_S * load_pct / 100
    period_start = time.monotonic()
    while True:
        now = time.monotonic()
        if flag.stopped:
            return "signal"
        if now >= deadline:
            return "deadline"
        if now - period_start >= PERIOD_S:
            # Keep to a fixed grid, but never try to catch up on periods lost to preemption.
            period_start = max(period_start + PERIOD_S, now - PERIOD_S)
        period_end = min(period_start + PERIOD_S, deadline)
        _spin(busy_s, period_end, flag)
        flag.sleep(period_end - time.monotonic())


def _spin(cpu_s: float, until: float, flag: _StopFlag) -> None:
    """Burn ``cpu_s`` of CPU time, but not past the monotonic time ``until``.

    Counted in CPU time, not wall time: on a VM the hypervisor steals a good part of a vCPU
    that keeps going idle (measured: a 50 ms wall-clock spin every 100 ms gave 30-45 % CPU).
    """
    target = time.thread_time() + cpu_s
    while time.thread_time() < target and time.monotonic() < until and not flag.stopped:
        pass


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m gameday.sandbox.burner",
                                     description="Burn one CPU until a monotonic deadline.")
    parser.add_argument("--cpu", type=int, required=True, help="CPU to pin to")
    parser.add_argument("--nice", type=int, default=NICE, help="scheduling niceness")
    parser.add_argument("--load", type=int, required=True, help="percent of the CPU, 1..100")
    parser.add_argument("--deadline", type=float, required=True, help="time.monotonic() to stop at")
    parser.add_argument("--fault-id", required=True)
    parser.add_argument("--events-file", type=Path)
    parser.add_argument("--cell")
    args = parser.parse_args(argv)
    if not 1 <= args.load <= 100:
        parser.error(f"--load must be 1..100, got {args.load}")
    if (args.events_file is None) != (args.cell is None):
        parser.error("--events-file and --cell go together")
    return args


def main(argv: list[str] | None = None) -> int:
    flag = _StopFlag()  # first, so a SIGTERM right after start is not the default (silent) death
    args = _parse(argv)
    log = EventLog(args.events_file, args.cell) if args.events_file is not None else None
    try:
        os.sched_setaffinity(0, {args.cpu})
        os.nice(args.nice)
        keep_priority_in_own_session()
    except OSError as exc:
        print(f"burner: cannot pin to CPU {args.cpu}: {exc}", file=sys.stderr)
        _report(log, args.fault_id, args.cpu, "error")  # keeps started/stopped counts whole
        return 2
    reason = burn(args.load, args.deadline, flag)
    _report(log, args.fault_id, args.cpu, reason)
    return 0


def _report(log: EventLog | None, fault_id: str, cpu: int, reason: str) -> None:
    if log is not None:
        log.emit("stress_stopped", fault_id=fault_id, pid=os.getpid(), cpu=cpu, reason=reason)


def spawn_burners(fault_id: str, cpus: list[int], workers: int, load_pct: int, deadline: float,
                  events_file: Path | None, cell: str | None) -> list[subprocess.Popen[bytes]]:
    """Start ``workers`` burners, worker i pinned to ``cpus[i % len(cpus)]``.

    Each runs in its own session, so it outlives a SIGKILLed parent and stops at ``deadline``.
    """
    _check(cpus, workers, load_pct, events_file, cell)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(workers):
            cmd = _command(fault_id, cpus[i % len(cpus)], load_pct, deadline, events_file, cell)
            # A new session: a SIGKILL aimed at the parent's group leaves the burner to its deadline.
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    start_new_session=True)
            procs.append(proc)
    except OSError as exc:
        for proc in procs:  # all or nothing: no half-started fault
            proc.kill()
            proc.wait()
        raise SandboxError(f"could not start CPU burner {len(procs) + 1} of {workers}: {exc}") \
            from exc
    return procs


def _command(fault_id: str, cpu: int, load_pct: int, deadline: float, events_file: Path | None,
             cell: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "gameday.sandbox.burner", "--cpu", str(cpu),
           "--load", str(load_pct), "--deadline", repr(deadline), "--fault-id", fault_id]
    if events_file is not None and cell is not None:
        cmd += ["--events-file", str(events_file), "--cell", cell]
    return cmd


def _check(cpus: list[int], workers: int, load_pct: int, events_file: Path | None,
           cell: str | None) -> None:
    allowed = os.sched_getaffinity(0)
    if not cpus or not set(cpus) <= allowed:
        raise InputError("cpus", f"a non-empty subset of the CPUs allowed here {sorted(allowed)}",
                         cpus, "list CPUs this machine has, e.g. [0]")
    if workers < 1:
        raise InputError("workers", "at least 1", workers, "start one burner or more")
    if not 1 <= load_pct <= 100:
        raise InputError("load_pct", "1 to 100 (percent of one CPU)", load_pct,
                         "pass e.g. 80")
    if (events_file is None) != (cell is None):
        raise InputError("events_file/cell", "both or neither", (events_file, cell),
                         "pass the cell's name with its events file")


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    # Nothing is left to clean up: skip the interpreter's teardown (tens of ms) so a stop is
    # over the moment its event is written.
    os._exit(code)
