"""Bring the sandbox up and down, report its state, and inject faults through the admin API.

This is the sandbox's core API: it returns results and raises errors; it never prints. Each
call starts with ``SandboxLayout.check_ours``: nothing is written, deleted or signalled on the
strength of a state file before it is proven the sandbox's own (state.py says how), and a
process is signalled only while it carries this sandbox's id in its environment (procs.py).
"""

from __future__ import annotations

import contextlib
import json
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
from gameday.sandbox.autoscaler import AutoscalerConfig, autoscaler_config
from gameday.sandbox.events import read_events, utc_now_iso
from gameday.sandbox.faults import FAULT_ID, validate_fault
from gameday.sandbox.procs import (
    SANDBOX_ID_ENV,
    ProcessId,
    carries_id,
    identify,
    processes_with_id,
    signal_process,
    terminate,
)
from gameday.sandbox.state import (
    MAX_CELLS,
    MAX_REPLICAS,
    PG_ID_FILE,
    Marker,
    SandboxLayout,
    check_cell_state,
    make_private_dir,
    new_sandbox_id,
    new_token,
    open_log,
    pg_root_id,
    tail_lines,
    write_json_atomic,
    write_private,
)

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


def _running(marker: Marker) -> bool:
    return any(carries_id(c, marker.sandbox_id) for c in marker.controllers)


def _open(state_dir: Path) -> tuple[SandboxLayout, Marker | None]:
    layout = SandboxLayout(state_dir.resolve())
    return layout, layout.check_ours()


# --------------------------------------------------------------------------- up


def sandbox_up(state_dir: Path, cells: int = 1, replicas: int = 3,
               progress: Progress = _quiet, timeout_s: float = UP_TIMEOUT_S,
               autoscaler: AutoscalerConfig | None = None) -> UpResult:
    """Start every cell and return once all are ready (or raise, leaving nothing running).

    ``autoscaler``: every cell's autoscaler (``autoscaler_config(replicas, ...)``); None for
    its defaults (autoscaler.py)."""
    validate_up(cells, replicas)
    scaling = autoscaler_config(replicas) if autoscaler is None else autoscaler
    if scaling.min_replicas != replicas:
        raise InputError("autoscaler: min_replicas", f"--replicas ({replicas})",
                         scaling.min_replicas, "build it with autoscaler_config(replicas, ...)")
    # Checked again as the controller will check it (a config built by hand skips the flags').
    scaling = AutoscalerConfig.from_json(scaling.to_json(), "autoscaler")
    started = time.monotonic()
    layout, old = _open(state_dir)
    if old is not None and _running(old):
        return UpResult(layout.root, old.cells, True, 0.0)
    names = [f"cell-{i}" for i in range(1, cells + 1)]
    layout.check_cell_dirs(names)  # the directories this call will write into
    bins = postgres.find_pg_binaries()  # before anything is written: say now if there are none
    run_as = postgres.pg_run_as()
    if old is not None:
        _stop_everything(layout, old)  # leftovers of a sandbox that died
    progress(f"PostgreSQL {bins.version} from {bins.bindir}")
    marker = _new_sandbox(layout, names, replicas, run_as, scaling)
    try:
        _make_pg_root(marker, run_as)
        controllers = _start_controllers(layout, marker, progress)
        _wait_cells_ready(layout, marker, controllers, progress, timeout_s)
    except BaseException:
        _stop_everything(layout, marker)
        raise
    marker.status = "running"
    write_json_atomic(layout.marker, marker.to_json())
    return UpResult(layout.root, names, False, time.monotonic() - started)


def _new_sandbox(layout: SandboxLayout, names: list[str], replicas: int,
                 run_as: postgres.RunAs | None, scaling: AutoscalerConfig) -> Marker:
    """A fresh id and the state dir's files; the marker names the data root before it exists,
    so a crash right after leaves nothing `down` would not find."""
    make_private_dir(layout.root)
    sandbox_id = new_sandbox_id()
    in_state_dir, in_temp = layout.pg_roots(sandbox_id)
    marker = Marker(sandbox_id=sandbox_id, state_dir=str(layout.root),
                    root_inode=os.lstat(layout.root).st_ino, cells=names, replicas=replicas,
                    created_utc=utc_now_iso(),
                    pg_data_root=str(in_state_dir if run_as is None else in_temp),
                    autoscaler=scaling.to_json())
    write_private(layout.token_file, new_token())
    write_private(layout.secrets_file, _secrets_json(postgres.new_credentials()))
    write_private(layout.events_file, "")
    write_json_atomic(layout.marker, marker.to_json())
    return marker


def _secrets_json(creds: postgres.PgCredentials) -> str:
    return json.dumps({"database": {"user": creds.user, "password": creds.password,
                                    "database": creds.database}})


def _make_pg_root(marker: Marker, run_as: postgres.RunAs | None) -> None:
    assert marker.pg_data_root is not None
    root = postgres.make_data_root(Path(marker.pg_data_root), run_as)
    write_json_atomic(root / PG_ID_FILE, pg_root_id(marker))


def _start_controllers(layout: SandboxLayout, marker: Marker,
                       progress: Progress) -> dict[str, subprocess.Popen[bytes]]:
    started: dict[str, subprocess.Popen[bytes]] = {}
    for index, name in enumerate(marker.cells, start=1):
        proc = _spawn_controller(layout, marker, name, cell_cpus(index))
        started[name] = proc
        ident = identify(proc.pid)
        if ident is not None:
            marker.controllers.append(ident)
            write_json_atomic(layout.marker, marker.to_json())
        progress(f"{name}: controller started (pid {proc.pid})")
    return started


def _spawn_controller(layout: SandboxLayout, marker: Marker, cell: str,
                      cpus: list[int]) -> subprocess.Popen[bytes]:
    make_private_dir(layout.cell_dir(cell))
    make_private_dir(layout.cell_logs(cell))
    layout.cell_state(cell).unlink(missing_ok=True)
    # The id in the environment is what proves a process ours to a later `down`; the
    # controller passes it on to everything it starts.
    env = {**os.environ, SANDBOX_ID_ENV: marker.sandbox_id}
    with open_log(layout.cell_logs(cell) / "controller.log") as out:
        # Its own session: the cell outlives the `up` command, as a daemon does.
        return subprocess.Popen(
            [sys.executable, "-m", "gameday.sandbox.controller", "--state-dir", str(layout.root),
             "--cell", cell, "--replicas", str(marker.replicas),
             "--cpus", ",".join(map(str, cpus)),
             *([] if marker.autoscaler is None
               else ["--autoscaler", json.dumps(marker.autoscaler, allow_nan=False)])],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True, env=env,
        )


def _wait_cells_ready(layout: SandboxLayout, marker: Marker,
                      controllers: dict[str, subprocess.Popen[bytes]], progress: Progress,
                      timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    pending = set(marker.cells)
    while pending:
        for name in sorted(pending):
            state = layout.read_cell_state(name, marker)
            if state is not None and state["status"] == "ready":
                pending.discard(name)
                progress(f"{name}: ready at {state['url']}")
            elif controllers[name].poll() is not None:
                raise SandboxError(f"{name} failed to start:\n{_log_tail(layout, name)}")
        if pending and time.monotonic() > deadline:
            raise SandboxError(f"{', '.join(sorted(pending))} not ready after {timeout_s:.0f} s; "
                               f"see {layout.cell_logs(sorted(pending)[0])}")
        time.sleep(0.05)


def _log_tail(layout: SandboxLayout, cell: str, lines: int = 20) -> str:
    path = layout.cell_logs(cell) / "controller.log"
    with contextlib.suppress(OSError, InputError):
        return "\n".join(tail_lines(path, lines))
    return f"(no log at {path})"


# --------------------------------------------------------------------------- down


def sandbox_down(state_dir: Path) -> DownResult:
    layout, marker = _open(state_dir)
    if marker is None:
        return DownResult(layout.root, was_running=False)
    was_running = _running(marker)
    stopped, survivors = _stop_everything(layout, marker)
    return DownResult(layout.root, was_running, stopped, survivors)


def _recorded(layout: SandboxLayout, marker: Marker) -> list[ProcessId]:
    """Every process the sandbox recorded: controllers, and what each controller recorded."""
    procs = list(marker.controllers)
    for cell in marker.cells:
        # A state file that fails its checks now (it passed them before) adds nothing: the
        # sandbox's processes are found by their id anyway.
        with contextlib.suppress(InputError):
            state = layout.read_cell_state(cell, marker) or {"pids": []}
            procs.extend(ProcessId.from_json(p) for p in state["pids"])
    return procs


def _stop_everything(layout: SandboxLayout, marker: Marker) -> tuple[list[int], list[int]]:
    """Stop the controllers gracefully (they revert faults), then every other process proven
    ours, then remove the data root; return the pids stopped and the survivors. ``marker``
    passed ``check_ours`` or was made by this process."""
    controllers = [c for c in marker.controllers if carries_id(c, marker.sandbox_id)]
    for proc in controllers:
        signal_process(proc, signal.SIGTERM)
    deadline = time.monotonic() + CONTROLLER_STOP_TIMEOUT_S
    while time.monotonic() < deadline and any(carries_id(c, marker.sandbox_id) for c in controllers):
        time.sleep(0.05)
    recorded = _recorded(layout, marker)
    # Recorded and still ours, plus strays no state file names (a crash between spawn and
    # record): both proven by the id in their environment, never by a path on a command line.
    ours = {p for p in recorded if carries_id(p, marker.sandbox_id)}
    ours.update(processes_with_id(marker.sandbox_id))
    survivors = terminate(sorted(ours, key=lambda p: p.pid))
    _remove_pg_root(layout, marker)
    marker.status = "down"
    write_json_atomic(layout.marker, marker.to_json())
    stopped = {p.pid for p in controllers} | {p.pid for p in ours}
    return sorted(stopped), sorted(p.pid for p in survivors)


def _remove_pg_root(layout: SandboxLayout, marker: Marker) -> None:
    # Checked again right before the delete: a data root that is no longer provably ours
    # (swapped since the first check) is left alone.
    with contextlib.suppress(InputError):
        path = layout.check_pg_root(marker)
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- status, faults


def _live_marker(layout: SandboxLayout) -> Marker:
    marker = layout.check_ours()
    if marker is None or not _running(marker):
        raise InputError(f"--state-dir {layout.root}", "a running sandbox", "none running",
                         "start one with `gameday sandbox up`")
    return marker


def _cell_state(layout: SandboxLayout, marker: Marker, cell: str) -> dict[str, Any]:
    if cell not in marker.cells:
        raise InputError("CELL", "one of " + ", ".join(marker.cells), cell,
                         "`gameday sandbox status` lists the cells")
    state = layout.read_cell_state(cell, marker)
    if state is None or not state["admin_url"]:
        raise SandboxError(f"{cell} has no admin API yet; is it still starting?")
    return state


def cell_state(state_dir: Path, cell: str) -> dict[str, Any]:
    """The checked state file of ``cell`` of the sandbox in ``state_dir``."""
    layout, marker = _open(state_dir)
    state = None if marker is None or cell not in marker.cells else \
        layout.read_cell_state(cell, marker)
    if state is None:
        raise SandboxError(f"no running sandbox cell {cell} in {state_dir}")
    return state


def database_credentials(state_dir: Path) -> postgres.PgCredentials:
    layout, marker = _open(state_dir)
    if marker is None:
        raise SandboxError(f"no sandbox in {state_dir}")
    return postgres.PgCredentials(**layout.database_secrets())


def sandbox_status(state_dir: Path) -> dict[str, Any]:
    """The sandbox as its controllers see it now (the state files when a controller is gone)."""
    layout, marker = _open(state_dir)
    if marker is None:
        return {"state_dir": str(layout.root), "running": False, "cells": [], "pids": []}
    token = layout.token()
    cells = [_live_state(layout, marker, name, token) for name in marker.cells]
    pids = sorted({p.pid for p in _recorded(layout, marker)})
    return {"state_dir": str(layout.root), "running": _running(marker), "cells": cells,
            "pids": pids}


def _live_state(layout: SandboxLayout, marker: Marker, cell: str, token: str) -> dict[str, Any]:
    state = layout.read_cell_state(cell, marker) or {"name": cell, "status": "missing"}
    if state.get("admin_url") and state.get("status") == "ready":
        with contextlib.suppress(SandboxError, InputError):
            live = admin_call(state["admin_url"], token, "GET", "/state", timeout_s=3.0)
            state = check_cell_state(cell, live, f"{state['admin_url']}/state")
    return state


def check_fault(state_dir: Path, cell: str, kind: str, params: dict[str, Any]) -> None:
    """Raise InputError unless the fault could be applied to ``cell`` now; touches nothing."""
    layout = SandboxLayout(state_dir.resolve())
    state = _cell_state(layout, _live_marker(layout), cell)
    validate_fault(kind, params, len(state["replicas"]), len(state["cpus"]))


def inject_fault(state_dir: Path, cell: str, kind: str, params: dict[str, Any],
                 fault_id: str | None = None) -> dict[str, Any]:
    """Validate a fault against the cell, then ask its controller to apply it."""
    layout = SandboxLayout(state_dir.resolve())
    marker = _live_marker(layout)
    state = _cell_state(layout, marker, cell)
    spec = validate_fault(kind, params, len(state["replicas"]), len(state["cpus"]))
    body: dict[str, Any] = {"kind": spec.kind, "params": params}
    if fault_id is not None:
        body["id"] = _fault_id(fault_id)
    record: dict[str, Any] = admin_call(state["admin_url"], layout.token(), "POST", "/faults", body)
    return record


def _fault_id(value: Any) -> str:
    # It becomes part of an admin API path: letters, digits, '-' and '_' only.
    if not isinstance(value, str) or not FAULT_ID.fullmatch(value):
        raise InputError("FAULT_ID", "letters, digits, '-' and '_' (at most 64)", value,
                         "`gameday sandbox status --json` lists the cell's faults")
    return value


def revert_fault(state_dir: Path, cell: str, fault_id: str | None) -> list[dict[str, Any]]:
    """Revert one fault, or every active fault of the cell when ``fault_id`` is None."""
    layout = SandboxLayout(state_dir.resolve())
    marker = _live_marker(layout)
    state = _cell_state(layout, marker, cell)
    token = layout.token()
    if fault_id is None:
        listed = admin_call(state["admin_url"], token, "GET", "/faults")
        ids = [_fault_id(f.get("id")) for f in listed if isinstance(f, dict)
               and f.get("reverted_utc") is None] if isinstance(listed, list) else []
    else:
        ids = [_fault_id(fault_id)]
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
    layout, marker = _open(state_dir)
    if marker is None:
        raise InputError(f"--state-dir {layout.root}", "a sandbox state directory",
                         "no sandbox there", "start one with `gameday sandbox up`")
    if cell is not None and cell not in marker.cells:
        raise InputError("--cell", "one of " + ", ".join(marker.cells), cell,
                         "`gameday sandbox status` lists the cells")
    # In time order: a controller appends its events from a writer thread, so a line may land
    # after a later one of another process.
    return sorted(read_events(layout.events_file, cell), key=_event_time)


def _event_time(event: dict[str, Any]) -> float:
    stamp = event.get("monotonic")
    return float(stamp) if isinstance(stamp, (int, float)) and not isinstance(stamp, bool) else 0.0
