"""Bring the sandbox up and down, report its state, and inject faults through the admin API.

This is the sandbox's core API: it returns results and raises errors; it never prints.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gameday.errors import InputError, SandboxError
from gameday.sandbox import postgres
from gameday.sandbox.admin_client import admin_call
from gameday.sandbox.events import read_events, utc_now_iso
from gameday.sandbox.faults import validate_fault
from gameday.sandbox.procs import ProcessId, identify, is_alive, signal_process, terminate
from gameday.sandbox.state import (
    MARKER_KIND,
    SCHEMA_VERSION,
    SandboxLayout,
    new_token,
    write_json_atomic,
    write_secret,
)

MAX_CELLS = 16
MAX_REPLICAS = 10
UP_TIMEOUT_S = 120.0
CONTROLLER_STOP_TIMEOUT_S = 20.0

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class UpResult:
    state_dir: Path
    cells: list[str]
    already_running: bool
    took_s: float


@dataclass(frozen=True)
class DownResult:
    state_dir: Path
    was_running: bool
    stopped: list[int] = field(default_factory=list)
    survivors: list[int] = field(default_factory=list)


def validate_up(cells: int, replicas: int) -> None:
    if not 1 <= cells <= MAX_CELLS:
        raise InputError("--cells", f"a whole number from 1 to {MAX_CELLS}", cells,
                         "ask for fewer cells, e.g. --cells 2")
    if not 1 <= replicas <= MAX_REPLICAS:
        raise InputError("--replicas", f"a whole number from 1 to {MAX_REPLICAS}", replicas,
                         "ask for 1 to 10 replicas per cell, e.g. --replicas 3")


def cell_cpus(index: int) -> list[int]:
    """The CPUs of cell ``index`` (1-based): one each, round robin over the CPUs we may use."""
    available = sorted(os.sched_getaffinity(0))
    return [available[(index - 1) % len(available)]]


def _controllers(marker: dict[str, Any]) -> list[ProcessId]:
    return [ProcessId.from_json(c) for c in marker.get("controllers", [])]


def running_marker(layout: SandboxLayout) -> dict[str, Any] | None:
    """The marker of a sandbox whose controllers still run, else None."""
    marker = layout.check_ours()
    if marker is None or not any(is_alive(c) for c in _controllers(marker)):
        return None
    return marker


def sandbox_up(state_dir: Path, cells: int = 1, replicas: int = 3,
               progress: Progress = _quiet, timeout_s: float = UP_TIMEOUT_S) -> UpResult:
    """Start every cell and return once all are ready (or raise, leaving nothing running)."""
    validate_up(cells, replicas)
    layout = SandboxLayout(state_dir.resolve())
    started = time.monotonic()
    marker = layout.check_ours()
    if marker is not None and running_marker(layout) is not None:
        return UpResult(layout.root, layout.cell_names(marker), True, 0.0)
    bins = postgres.find_pg_binaries()  # before anything is written: say now if there are none
    run_as = postgres.pg_run_as()
    if marker is not None:
        _stop_everything(layout, marker)  # leftovers of a sandbox that died
    progress(f"PostgreSQL {bins.version} from {bins.bindir}")
    layout.root.mkdir(parents=True, exist_ok=True)
    write_secret(layout.token_file, new_token())
    creds = postgres.new_credentials()
    write_secret(layout.secrets_file, _secrets_json(creds))
    layout.events_file.write_text("")
    names = [f"cell-{i}" for i in range(1, cells + 1)]
    marker = {"kind": MARKER_KIND, "schema_version": SCHEMA_VERSION, "status": "starting",
              "created_utc": utc_now_iso(), "cells": names, "replicas": replicas,
              "pg_data_root": str(postgres.pg_data_root(layout.root, run_as)),
              "controllers": []}
    write_json_atomic(layout.marker, marker)
    try:
        for index, name in enumerate(names, start=1):
            proc = _spawn_controller(layout, name, replicas, cell_cpus(index))
            ident = identify(proc.pid)
            if ident is not None:
                marker["controllers"].append(ident.to_json())
                write_json_atomic(layout.marker, marker)
            progress(f"{name}: controller started (pid {proc.pid})")
        _wait_cells_ready(layout, names, marker, progress, timeout_s)
    except BaseException:
        _stop_everything(layout, marker)
        raise
    marker["status"] = "running"
    write_json_atomic(layout.marker, marker)
    return UpResult(layout.root, names, False, time.monotonic() - started)


def _secrets_json(creds: postgres.PgCredentials) -> str:
    import json

    return json.dumps({"database": {"user": creds.user, "password": creds.password,
                                    "database": creds.database}})


def _spawn_controller(layout: SandboxLayout, cell: str, replicas: int,
                      cpus: list[int]) -> subprocess.Popen[bytes]:
    logs = layout.cell_logs(cell)
    logs.mkdir(parents=True, exist_ok=True)
    layout.cell_state(cell).unlink(missing_ok=True)
    with (logs / "controller.log").open("ab") as out:
        # Its own session: the cell outlives the `up` command, as a daemon does.
        return subprocess.Popen(
            [sys.executable, "-m", "gameday.sandbox.controller", "--state-dir", str(layout.root),
             "--cell", cell, "--replicas", str(replicas), "--cpus", ",".join(map(str, cpus))],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
        )


def _wait_cells_ready(layout: SandboxLayout, names: list[str], marker: dict[str, Any],
                      progress: Progress, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    pending = set(names)
    controllers = dict(zip(names, _controllers(marker), strict=True))
    while pending:
        for name in sorted(pending):
            state = layout.read_cell_state(name)
            if state is not None and state.get("status") == "ready":
                pending.discard(name)
                progress(f"{name}: ready at {state['url']}")
            elif not is_alive(controllers[name]):
                raise SandboxError(f"{name} failed to start:\n{_log_tail(layout, name)}")
        if pending and time.monotonic() > deadline:
            raise SandboxError(f"{', '.join(sorted(pending))} not ready after {timeout_s:.0f} s; "
                               f"see {layout.cell_logs(sorted(pending)[0])}")
        time.sleep(0.05)


def _log_tail(layout: SandboxLayout, cell: str, lines: int = 20) -> str:
    path = layout.cell_logs(cell) / "controller.log"
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return f"(no log at {path})"


def sandbox_down(state_dir: Path) -> DownResult:
    layout = SandboxLayout(state_dir.resolve())
    marker = layout.check_ours()
    if marker is None:
        return DownResult(layout.root, was_running=False)
    was_running = running_marker(layout) is not None
    stopped, survivors = _stop_everything(layout, marker)
    return DownResult(layout.root, was_running, stopped, survivors)


def recorded_pids(layout: SandboxLayout, marker: dict[str, Any]) -> list[ProcessId]:
    """Every process the sandbox started: controllers, and what each controller recorded."""
    procs = _controllers(marker)
    for cell in layout.cell_names(marker):
        state = layout.read_cell_state(cell) or {}
        procs.extend(ProcessId.from_json(p) for p in state.get("pids", []))
    return procs


def _stop_everything(layout: SandboxLayout, marker: dict[str, Any]) -> tuple[list[int], list[int]]:
    """Stop the controllers gracefully (they revert faults), then make sure nothing is left."""
    controllers = [c for c in _controllers(marker) if is_alive(c)]
    for proc in controllers:
        signal_process(proc, signal.SIGTERM)
    deadline = time.monotonic() + CONTROLLER_STOP_TIMEOUT_S
    while time.monotonic() < deadline and any(is_alive(c) for c in controllers):
        time.sleep(0.05)
    procs = recorded_pids(layout, marker)
    alive = [p for p in procs if is_alive(p)]
    survivors = terminate(alive + _strays(layout, marker))
    pg_root = marker.get("pg_data_root")
    if pg_root:
        shutil.rmtree(pg_root, ignore_errors=True)
    marker["status"] = "down"
    write_json_atomic(layout.marker, marker)
    return sorted({p.pid for p in procs}), sorted(p.pid for p in survivors)


def _strays(layout: SandboxLayout, marker: dict[str, Any]) -> list[ProcessId]:
    """Processes of ours that no state file names (a crash between spawn and record).

    Ours are sandbox modules started with this state dir on their command line, and PostgreSQL
    nodes whose data lives under this sandbox's data root; nothing else is touched.
    """
    root = str(layout.root).encode()
    pg_root = str(marker.get("pg_data_root") or "\0").encode()
    found: list[ProcessId] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if (b"gameday.sandbox." in cmdline and root in cmdline) or pg_root in cmdline:
            ident = identify(int(entry.name))
            if ident is not None:
                found.append(ident)
    return found


def _live_marker(layout: SandboxLayout) -> dict[str, Any]:
    marker = running_marker(layout)
    if marker is None:
        raise InputError(f"--state-dir {layout.root}", "a running sandbox", "none running",
                         "start one with `gameday sandbox up`")
    return marker


def _cell_state(layout: SandboxLayout, marker: dict[str, Any], cell: str) -> dict[str, Any]:
    names = layout.cell_names(marker)
    if cell not in names:
        raise InputError("CELL", "one of " + ", ".join(names), cell,
                         "`gameday sandbox status` lists the cells")
    state = layout.read_cell_state(cell)
    if state is None or not state.get("admin_url"):
        raise SandboxError(f"{cell} has no admin API yet; is it still starting?")
    return state


def sandbox_status(state_dir: Path) -> dict[str, Any]:
    """The sandbox as its controllers see it now (the state files when a controller is gone)."""
    layout = SandboxLayout(state_dir.resolve())
    marker = layout.check_ours()
    if marker is None:
        return {"state_dir": str(layout.root), "running": False, "cells": [], "pids": []}
    token = layout.token()
    cells = []
    for name in layout.cell_names(marker):
        state = layout.read_cell_state(name) or {"name": name, "status": "missing"}
        if state.get("admin_url") and state.get("status") == "ready":
            with contextlib.suppress(SandboxError):
                state = admin_call(state["admin_url"], token, "GET", "/state", timeout_s=3.0)
        cells.append(state)
    pids = sorted({p.pid for p in recorded_pids(layout, marker)})
    return {"state_dir": str(layout.root), "running": running_marker(layout) is not None,
            "cells": cells, "pids": pids}


def check_fault(state_dir: Path, cell: str, kind: str, params: dict[str, Any]) -> None:
    """Raise InputError unless the fault could be applied to ``cell`` now; touches nothing."""
    layout = SandboxLayout(state_dir.resolve())
    state = _cell_state(layout, _live_marker(layout), cell)
    validate_fault(kind, params, len(state.get("replicas", [])), len(state.get("cpus", [1])))


def inject_fault(state_dir: Path, cell: str, kind: str, params: dict[str, Any],
                 fault_id: str | None = None) -> dict[str, Any]:
    """Validate a fault against the cell, then ask its controller to apply it."""
    layout = SandboxLayout(state_dir.resolve())
    marker = _live_marker(layout)
    state = _cell_state(layout, marker, cell)
    spec = validate_fault(kind, params, len(state.get("replicas", [])), len(state.get("cpus", [1])))
    body: dict[str, Any] = {"kind": spec.kind, "params": params}
    if fault_id is not None:
        body["id"] = fault_id
    record: dict[str, Any] = admin_call(state["admin_url"], layout.token(), "POST", "/faults", body)
    return record


def revert_fault(state_dir: Path, cell: str, fault_id: str | None) -> list[dict[str, Any]]:
    """Revert one fault, or every active fault of the cell when ``fault_id`` is None."""
    layout = SandboxLayout(state_dir.resolve())
    marker = _live_marker(layout)
    state = _cell_state(layout, marker, cell)
    token = layout.token()
    if fault_id is None:
        ids = [f["id"] for f in admin_call(state["admin_url"], token, "GET", "/faults")
               if f.get("reverted_utc") is None]
    else:
        ids = [fault_id]
    reverted = []
    for fid in ids:
        try:
            reverted.append(admin_call(state["admin_url"], token, "DELETE", f"/faults/{fid}"))
        except SandboxError as exc:
            if "404" in str(exc):
                raise InputError("FAULT_ID", f"a fault of {cell}", fid,
                                 "`gameday sandbox status --json` lists the cell's faults") from exc
            raise
    return reverted


def sandbox_events(state_dir: Path, cell: str | None = None) -> list[dict[str, Any]]:
    layout = SandboxLayout(state_dir.resolve())
    marker = layout.check_ours()
    if marker is None:
        raise InputError(f"--state-dir {layout.root}", "a sandbox state directory",
                         "no sandbox there", "start one with `gameday sandbox up`")
    if cell is not None and cell not in layout.cell_names(marker):
        raise InputError("--cell", "one of " + ", ".join(layout.cell_names(marker)), cell,
                         "`gameday sandbox status` lists the cells")
    return read_events(layout.events_file, cell)
