"""Process identity, proof of ownership, and termination by pid, safe against pid reuse.

A pid alone can be recycled by the kernel; a pid together with its start time (field 22 of
``/proc/PID/stat``) names one process for its whole life. A pid and start time read back from
a file prove nothing, though (a forged file can name any live process), so every process the
sandbox starts carries ``GAMEDAY_SANDBOX_ID`` in its environment: the sandbox signals only
processes whose ``/proc/PID/environ`` holds its own id.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SANDBOX_ID_ENV = "GAMEDAY_SANDBOX_ID"


@dataclass(frozen=True)
class ProcessId:
    pid: int
    start_ticks: int

    def to_json(self) -> dict[str, int]:
        return {"pid": self.pid, "start_ticks": self.start_ticks}

    @classmethod
    def from_json(cls, data: dict[str, int]) -> ProcessId:
        return cls(int(data["pid"]), int(data["start_ticks"]))

    @staticmethod
    def valid_json(data: Any) -> bool:
        """True for ``{"pid": N, "start_ticks": T}`` with whole numbers a kernel can hand out."""
        if not isinstance(data, dict) or set(data) != {"pid", "start_ticks"}:
            return False
        pid, ticks = data["pid"], data["start_ticks"]
        return (all(isinstance(v, int) and not isinstance(v, bool) for v in (pid, ticks))
                and 1 < pid < 2**22 and 0 <= ticks < 2**63)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return stat[stat.rfind(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None when there is no such process."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])


def process_state(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return None if fields is None else fields[0]


def identify(pid: int) -> ProcessId | None:
    ticks = start_ticks(pid)
    return None if ticks is None else ProcessId(pid, ticks)


def is_alive(proc: ProcessId) -> bool:
    """True while the very process ``proc`` names runs (a zombie counts as gone)."""
    if start_ticks(proc.pid) != proc.start_ticks:
        return False
    return process_state(proc.pid) not in (None, "Z", "X")


def _environ_holds(pid: int, entry: bytes) -> bool:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or another user's process we may not inspect: not ours
        return False
    return entry in raw.split(b"\0")


def carries_id(proc: ProcessId, sandbox_id: str) -> bool:
    """True when the live process ``proc`` was started by the sandbox ``sandbox_id``."""
    if not is_alive(proc):
        return False
    holds = _environ_holds(proc.pid, f"{SANDBOX_ID_ENV}={sandbox_id}".encode())
    # Still the same process after the read: the environment read was that process's.
    return holds and start_ticks(proc.pid) == proc.start_ticks


def processes_with_id(sandbox_id: str) -> list[ProcessId]:
    """Every live process (but this one) started by the sandbox ``sandbox_id``."""
    found: list[ProcessId] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        proc = identify(int(entry.name))
        if proc is not None and carries_id(proc, sandbox_id):
            found.append(proc)
    return found


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
    """SIGTERM each process group, SIGKILL what remains after ``grace_s``; return survivors.

    The caller vouches for ``procs`` (it started them, or proved them its own with
    ``carries_id``); each signal is sent only while the pid still has its start time.
    """
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


AUTOGROUP = Path("/proc/self/autogroup")


def keep_priority_in_own_session(autogroup: Path = AUTOGROUP) -> bool:
    """Give this process's session group the process's own niceness; True if it was set.

    On kernels that group each session for CPU time (``sched_autogroup_enabled``), a nice
    value only orders processes within their session, and every session weighs the same. A
    sandbox process starts its own session (to outlive its parent), so without this a
    burner at nice 10 takes as much CPU as the replica it should yield to, and a sandbox
    started under ``nice`` does not yield to anything. Call it right after start, before the
    process starts children. Without autogroups (or permission) it does nothing.
    """
    try:
        nice = os.getpriority(os.PRIO_PROCESS, 0)
        if nice < 0:  # a session may lower its group's priority, never raise it
            return False
        autogroup.write_text(str(nice), encoding="ascii")
    except OSError:
        return False
    return True
