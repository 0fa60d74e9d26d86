"""The global fault lease: every run holds it, so one cell is under fault at a time.

A holder names its process ("<label> @<host> pid <pid> start <ticks>"): a lease whose holder
died on this host is released by the next `gameday` command's reconcile; one held from another
host (a scheduler replica) is taken over only once it has expired.
"""

from __future__ import annotations

import os
import re
import socket

from gameday.sandbox.procs import ProcessId, identify, is_alive

FAULT_LEASE = "faults"
_HOLDER = re.compile(r" @(?P<host>\S+) pid (?P<pid>\d+) start (?P<ticks>\d+)$")


def holder_id(label: str) -> str:
    me = identify(os.getpid())
    ticks = me.start_ticks if me else 0
    return f"{label} @{socket.gethostname()} pid {os.getpid()} start {ticks}"


def holder_gone(holder: str) -> bool:
    """True when ``holder`` is a process of this host that no longer runs."""
    match = _HOLDER.search(holder)
    if match is None or match["host"] != socket.gethostname():
        return False
    return not is_alive(ProcessId(int(match["pid"]), int(match["ticks"])))
