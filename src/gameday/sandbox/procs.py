"""Process identity and termination by pid, safe against pid reuse.

A pid alone can be recycled by the kernel; a pid together with its start time (field 22 of
``/proc/PID/stat``) names one process for its whole life.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcessId:
    pid: int
    start_ticks: int

    def to_json(self) -> dict[str, int]:
        return {"pid": self.pid, "start_ticks": self.start_ticks}

    @classmethod
    def from_json(cls, data: dict[str, int]) -> ProcessId:
        return cls(int(data["pid"]), int(data["start_ticks"]))


def start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[19])


def process_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return stat[stat.rfind(")") + 2 :].split()[0]


def identify(pid: int) -> ProcessId | None:
    ticks = start_ticks(pid)
    return None if ticks is None else ProcessId(pid, ticks)


def is_alive(proc: ProcessId) -> bool:
    """True while the very process ``proc`` names runs (a zombie counts as gone)."""
    if start_ticks(proc.pid) != proc.start_ticks:
        return False
    return process_state(proc.pid) not in (None, "Z", "X")


def signal_process(proc: ProcessId, sig: int, group: bool = False) -> bool:
    """Send ``sig`` to ``proc`` (or its process group) if it is still that process."""
    if not is_alive(proc):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group and os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, sig)
        else:
            os.kill(proc.pid, sig)
        return True
    return False


def terminate(procs: list[ProcessId], grace_s: float = 3.0) -> list[ProcessId]:
    """SIGTERM each process group, SIGKILL what remains after ``grace_s``; return survivors."""
    for proc in procs:
        signal_process(proc, signal.SIGTERM, group=True)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(is_alive(p) for p in procs):
        time.sleep(0.05)
    for proc in procs:
        signal_process(proc, signal.SIGKILL, group=True)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(is_alive(p) for p in procs):
        time.sleep(0.05)
    return [p for p in procs if is_alive(p)]
