"""The sandbox's state directory: what is where, and proof that what is read back is ours.

    <root>/sandbox.json     marker: kind, schema_version, sandbox id, the directory it was made
                            for (path and inode), cells, controllers, the PostgreSQL data root
    <root>/admin.token      bearer token of every cell's admin API
    <root>/secrets.json     database credentials; never printed
    <root>/events.jsonl     ground-truth events of every cell
    <root>/<cell>/state.json  written by the cell's controller whenever something changes
    <root>/<cell>/logs/     logs of the controller, replicas and PostgreSQL nodes
    <pg root>/sandbox-id    the sandbox id and state dir, in the data root the sandbox made:
                            <root>/gameday-pg-<id>, or as root <tmp>/gameday-pg-<id>

Directories are 0700 and files 0600. Anything in the directory may have been written by
someone else (a repository can ship a ``.gameday/sandbox``), so nothing read back is used
until ``check_ours`` has proven it: files are regular files of ours reached without symlinks,
the marker was written for this very directory (its path and inode, which a copied or shipped
file cannot know), every path it names is the one the sandbox derives from its id and holds the
id file, and every live process it names carries the sandbox id in its environment.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from gameday.errors import InputError
from gameday.sandbox.procs import SANDBOX_ID_ENV, ProcessId, carries_id, is_alive

MARKER_KIND = "gameday-sandbox"
SCHEMA_VERSION = 2
DEFAULT_STATE_DIR = Path(".gameday/sandbox")
PG_ID_FILE = "sandbox-id"
MAX_CELLS = 16
MAX_REPLICAS = 10
# The most replicas a cell ever runs: its autoscaler may double the most --replicas allows.
MAX_SCALED_REPLICAS = 2 * MAX_REPLICAS
MAX_STATE_BYTES = 4 << 20
DIR_MODE = 0o700
FILE_MODE = 0o600
MARKER_STATUSES = ("starting", "running", "down")
CELL_STATUSES = ("starting", "ready", "stopping", "stopped")
_SANDBOX_ID = re.compile(r"[0-9a-f]{32}")
_CELL_NAME = re.compile(r"cell-([1-9][0-9]?)")
_LOOPBACK_URL = re.compile(r"http://127\.0\.0\.1:([0-9]{1,5})")

FORGED_FIX = ("gameday did not write this for this directory (was it copied, moved, or shipped "
              "in a repository?) and acts on nothing in it: inspect and remove the directory, or "
              "pass another --state-dir")
PG_ROOT_FIX = ("the sandbox keeps its PostgreSQL data only there (as root: in the temp dir "
               "`sandbox up` saw, so keep TMPDIR as it was); anything else is not gameday's: "
               "inspect and remove the state dir, or pass another --state-dir")
PROCESS_FIX = ("the file names a process gameday did not start, so gameday did not write it; "
               "nothing was stopped. If the sandbox is yours, remove that file: `gameday sandbox "
               f"down` finds the sandbox's own processes by their {SANDBOX_ID_ENV}")


def new_sandbox_id() -> str:
    return secrets.token_hex(16)


def new_token() -> str:
    return secrets.token_urlsafe(32)


# --------------------------------------------------------------------------- checked files


def _shown(value: Any) -> Any:
    """A found value short enough for a one-screen message."""
    text = repr(value)
    return value if len(text) <= 120 else text[:117] + "..."


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def decode_json(raw: bytes | str, where: str, expected: str = "JSON written by gameday",
                fix: str = FORGED_FIX) -> Any:
    """Strict JSON: NaN and Infinity, which Python's json accepts, are refused."""
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError too
        raise InputError(where, expected, _shown(str(exc)), fix) from exc


def _is_ours(st: os.stat_result, where: str, kind: str) -> None:
    if st.st_uid != os.geteuid():
        raise InputError(where, f"{kind} owned by uid {os.geteuid()} (who runs gameday)",
                         f"owned by uid {st.st_uid}",
                         "run gameday as the user that made the sandbox, or pass another "
                         "--state-dir")


def open_ours(path: Path, where: str | None = None) -> int:
    """A read-only descriptor of ``path``: a regular file of ours, its last step no symlink.

    FileNotFoundError is left to the caller (a file that is not there yet is no attack).
    """
    where = where or str(path)
    try:
        # O_NONBLOCK: a FIFO planted in the state dir must not block the open.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(where, "a regular file", "a symbolic link", FORGED_FIX) from exc
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(where, "a regular file", stat.filemode(st.st_mode), FORGED_FIX)
        _is_ours(st, where, "a file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_private(path: Path, where: str | None = None, limit: int = MAX_STATE_BYTES) -> bytes:
    fd = open_ours(path, where)
    with os.fdopen(fd, "rb") as fh:
        raw = fh.read(limit + 1)
    if len(raw) > limit:
        raise InputError(where or str(path), f"at most {limit} bytes", "more", FORGED_FIX)
    return raw


def read_json(path: Path, where: str | None = None) -> Any:
    """A JSON file of ours (see ``open_ours``), strictly decoded."""
    return decode_json(read_private(path, where), where or str(path))


def tail_lines(path: Path, lines: int = 20, window: int = 64 << 10) -> list[str]:
    """The last ``lines`` lines of a log of ours (reading at most ``window`` bytes)."""
    fd = open_ours(path)
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fd).st_size
        fh.seek(max(0, size - window))
        text = fh.read(window).decode(errors="replace")
    return text.splitlines()[-lines:]


def write_json_atomic(path: Path, data: Any, mode: int = FILE_MODE) -> None:
    """Write ``data`` so a reader never sees half a file (rename is atomic, and replaces a
    symlink planted at ``path`` instead of following it)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, default=str)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by us alone (0600), atomically."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:  # mkstemp files are 0600
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def open_log(path: Path) -> IO[bytes]:
    """``path`` opened for appending, 0600, refusing a symlink or a file of someone else."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                 FILE_MODE)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(str(path), "a regular file", stat.filemode(st.st_mode), FORGED_FIX)
        _is_ours(st, str(path), "a log")
        if stat.S_IMODE(st.st_mode) != FILE_MODE:  # a log an older version made 0644
            os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "ab")


def check_private_dir(path: Path, where: str | None = None) -> bool:
    """True for a real directory of ours, False when nothing is there; InputError otherwise."""
    where = where or str(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        raise InputError(where, "a directory", "a symbolic link", FORGED_FIX)
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(where, "a directory", stat.filemode(st.st_mode),
                         "pass a directory path for the sandbox state")
    _is_ours(st, where, "a directory")
    return True


def make_private_dir(path: Path) -> None:
    """Create ``path`` and any missing parent 0700; an existing one must be ours (made 0700)."""
    if check_private_dir(path):
        path.chmod(DIR_MODE)
        return
    if not path.parent.exists():
        make_private_dir(path.parent)
    os.mkdir(path, DIR_MODE)
    path.chmod(DIR_MODE)  # whatever the umask


# --------------------------------------------------------------------------- field checks


def _whole(value: Any, low: int = 0, high: int = 2**63) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _text(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 4096 and "\0" not in value


def _list(value: Any, item: Callable[[Any], bool], most: int) -> bool:
    return isinstance(value, list) and len(value) <= most and all(item(v) for v in value)


def _port(value: Any) -> bool:
    return _whole(value, 1, 65535)


def _loopback_url(value: Any) -> bool:
    if value is None:
        return True
    match = _LOOPBACK_URL.fullmatch(value) if isinstance(value, str) else None
    return match is not None and _port(int(match[1]))


def _cell_names(value: Any) -> bool:
    return (_list(value, lambda v: isinstance(v, str) and _CELL_NAME.fullmatch(v) is not None
                  and int(v[5:]) <= MAX_CELLS, MAX_CELLS)
            and len(value) == len(set(value)) and len(value) >= 1)


def _replica(value: Any) -> bool:
    return (isinstance(value, dict) and _whole(value.get("index"), 1, MAX_SCALED_REPLICAS)
            and (value.get("pid") is None or _whole(value.get("pid"), 1))
            and _port(value.get("port")) and isinstance(value.get("ready"), bool)
            and _whole(value.get("restarts")))


def _node(value: Any) -> bool:
    return (isinstance(value, dict) and _text(value.get("name"))
            and value.get("role") in ("primary", "standby") and _port(value.get("port"))
            and _whole(value.get("pid"), 1) and isinstance(value.get("alive"), bool)
            and isinstance(value.get("streaming"), bool))


Check = tuple[str, Callable[[Any], bool], str]

MARKER_FIELDS: tuple[Check, ...] = (
    ("sandbox_id", lambda v: isinstance(v, str) and _SANDBOX_ID.fullmatch(v) is not None,
     "32 hex digits"),
    ("state_dir", _text, "the absolute path of the state dir"),
    ("root_inode", _whole, "the inode number of the state dir"),
    ("status", lambda v: v in MARKER_STATUSES, "one of " + ", ".join(MARKER_STATUSES)),
    ("created_utc", _text, "a UTC time"),
    ("cells", _cell_names, f"1 to {MAX_CELLS} distinct names from cell-1 to cell-{MAX_CELLS}"),
    ("replicas", lambda v: _whole(v, 1, MAX_REPLICAS), f"a whole number from 1 to {MAX_REPLICAS}"),
    ("pg_data_root", lambda v: v is None or _text(v), "a path or null"),
    ("controllers", lambda v: _list(v, ProcessId.valid_json, MAX_CELLS),
     "a list of {pid, start_ticks}"),
    # What `up` asked of each cell's autoscaler (its controller checks every number again).
    ("autoscaler", lambda v: v is None or isinstance(v, dict), "an object or null"),
)

CELL_FIELDS: tuple[Check, ...] = (
    ("status", lambda v: v in CELL_STATUSES, "one of " + ", ".join(CELL_STATUSES)),
    ("url", _loopback_url, "http://127.0.0.1:PORT or null"),
    ("admin_url", _loopback_url, "http://127.0.0.1:PORT or null"),
    ("cpus", lambda v: _list(v, lambda c: _whole(c, 0, 65535), 4096) and len(v) >= 1,
     "a list of CPU numbers"),
    ("replicas", lambda v: _list(v, _replica, MAX_SCALED_REPLICAS), "a list of replica records"),
    # Written by every controller since the autoscaler; optional so a state of before reads.
    ("desired_replicas", lambda v: v is None or _whole(v, 1, MAX_SCALED_REPLICAS),
     f"a whole number from 1 to {MAX_SCALED_REPLICAS}, or null"),
    ("current_replicas", lambda v: v is None or _whole(v, 0, MAX_SCALED_REPLICAS),
     f"a whole number from 0 to {MAX_SCALED_REPLICAS}, or null"),
    ("ready_replicas", lambda v: v is None or _whole(v, 0, MAX_SCALED_REPLICAS),
     f"a whole number from 0 to {MAX_SCALED_REPLICAS}, or null"),
    ("autoscaler", lambda v: v is None or isinstance(v, dict), "an object or null"),
    ("database", lambda v: _list(v, _node, 8), "a list of PostgreSQL node records"),
    ("faults", lambda v: _list(v, lambda f: isinstance(f, dict), 1 << 20), "a list of faults"),
    ("pids", lambda v: _list(v, ProcessId.valid_json, 1 << 20), "a list of {pid, start_ticks}"),
)


def _check_fields(data: dict[str, Any], checks: tuple[Check, ...], where: str) -> None:
    for name, ok, expected in checks:
        if not ok(data.get(name)):
            raise InputError(f"{where}: {name}", expected, _shown(data.get(name)), FORGED_FIX)


def check_cell_state(cell: str, data: Any, where: str) -> dict[str, Any]:
    """``data`` if it is a cell state as a controller writes it; InputError naming the field."""
    if not isinstance(data, dict) or data.get("name") != cell:
        found = data.get("name") if isinstance(data, dict) else data
        raise InputError(f"{where}: name", f'the state of "{cell}"', _shown(found), FORGED_FIX)
    _check_fields(data, CELL_FIELDS, where)
    return data


# A process that is exiting has lost its environment (reading it fails or is empty) a moment
# before it shows as a zombie: a burner at its deadline, a replica stopped by a scale-in.
EXITING_GRACE_S = 0.25


def _alive_after_exit(proc: ProcessId) -> bool:
    """``is_alive``, after giving a process that may be exiting the time to finish."""
    deadline = time.monotonic() + EXITING_GRACE_S
    while is_alive(proc):
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.01)
    return False


# --------------------------------------------------------------------------- the marker


@dataclass
class Marker:
    """``sandbox.json``: which sandbox made the directory, for which directory, what it runs."""

    sandbox_id: str
    state_dir: str
    root_inode: int
    cells: list[str]
    replicas: int
    created_utc: str
    status: str = "starting"
    pg_data_root: str | None = None
    controllers: list[ProcessId] = field(default_factory=list)
    autoscaler: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": MARKER_KIND, "schema_version": SCHEMA_VERSION,
                "sandbox_id": self.sandbox_id, "state_dir": self.state_dir,
                "root_inode": self.root_inode, "status": self.status,
                "created_utc": self.created_utc, "cells": self.cells, "replicas": self.replicas,
                "pg_data_root": self.pg_data_root,
                "controllers": [c.to_json() for c in self.controllers],
                "autoscaler": self.autoscaler}

    @classmethod
    def parse(cls, data: Any, where: str) -> Marker:
        if not isinstance(data, dict) or data.get("kind") != MARKER_KIND:
            raise InputError(where, f'kind "{MARKER_KIND}"',
                             _shown(data.get("kind") if isinstance(data, dict) else data),
                             "pass another --state-dir; this one belongs to something else")
        if data.get("schema_version") != SCHEMA_VERSION:
            raise InputError(where, f"schema_version {SCHEMA_VERSION}",
                             _shown(data.get("schema_version")),
                             "stop that sandbox with the gameday version that made it, then "
                             "remove the directory")
        _check_fields(data, MARKER_FIELDS, where)
        return cls(sandbox_id=data["sandbox_id"], state_dir=data["state_dir"],
                   root_inode=data["root_inode"], cells=list(data["cells"]),
                   replicas=data["replicas"], created_utc=data["created_utc"],
                   status=data["status"], pg_data_root=data["pg_data_root"],
                   controllers=[ProcessId.from_json(c) for c in data["controllers"]],
                   autoscaler=data.get("autoscaler"))


def pg_root_name(sandbox_id: str) -> str:
    return f"gameday-pg-{sandbox_id}"


def pg_root_id(marker: Marker) -> dict[str, str]:
    """What the id file in the PostgreSQL data root says: whose it is, for which state dir."""
    return {"sandbox_id": marker.sandbox_id, "state_dir": marker.state_dir}


def _temp_root() -> Path:
    return Path(tempfile.gettempdir()).resolve()


# --------------------------------------------------------------------------- the layout


@dataclass(frozen=True)
class SandboxLayout:
    root: Path

    @property
    def marker(self) -> Path:
        return self.root / "sandbox.json"

    @property
    def token_file(self) -> Path:
        return self.root / "admin.token"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.json"

    @property
    def events_file(self) -> Path:
        return self.root / "events.jsonl"

    def cell_dir(self, cell: str) -> Path:
        return self.root / cell

    def cell_state(self, cell: str) -> Path:
        return self.root / cell / "state.json"

    def cell_logs(self, cell: str) -> Path:
        return self.root / cell / "logs"

    def pg_roots(self, sandbox_id: str) -> tuple[Path, Path]:
        """The only two places the sandbox puts its PostgreSQL data: in the state dir, or (as
        root, whose unprivileged PostgreSQL user may not reach the state dir) in the temp dir."""
        name = pg_root_name(sandbox_id)
        return self.root / name, _temp_root() / name

    # -- the gate: nothing read back is used before it passes ------------------------------

    def check_ours(self) -> Marker | None:
        """The marker when the directory is a sandbox's and all it names is proven ours; None
        when the directory is absent or empty. InputError for anything else: nothing is
        written, deleted or signalled on the strength of a file that fails these checks."""
        marker = self.read_marker()
        if marker is None:
            return None
        self.check_pg_root(marker)
        for cell in marker.cells:
            self.check_cell_dirs([cell])
            self.read_cell_state(cell, marker)
        self.check_processes(marker, str(self.marker), marker.controllers)
        return marker

    def read_marker(self) -> Marker | None:
        """The marker, if it was written for this very directory (the rest of ``check_ours``
        is left to the caller); None when the directory is absent or empty."""
        if not check_private_dir(self.root, f"--state-dir {self.root}"):
            return None
        if not os.path.lexists(self.marker):
            if any(self.root.iterdir()):
                raise InputError(
                    f"--state-dir {self.root}",
                    f"an empty directory or one made by `gameday sandbox up` (with {self.marker.name})",
                    "a directory with other files",
                    "pass another --state-dir; gameday never writes into a directory it did not make",
                )
            return None
        marker = Marker.parse(read_json(self.marker), str(self.marker))
        inode = os.lstat(self.root).st_ino
        if marker.state_dir != str(self.root) or marker.root_inode != inode:
            raise InputError(str(self.marker),
                             f"a marker `gameday sandbox up` wrote for this directory "
                             f"({self.root}, inode {inode})",
                             f"one for {_shown(marker.state_dir)} (inode {marker.root_inode})",
                             FORGED_FIX)
        return marker

    def check_pg_root(self, marker: Marker) -> Path | None:
        """The marker's PostgreSQL data root once proven the sandbox's own (None if it has none)."""
        if marker.pg_data_root is None:
            return None
        where = f"{self.marker}: pg_data_root"
        path = Path(marker.pg_data_root)
        allowed = self.pg_roots(marker.sandbox_id)
        if path not in allowed:
            raise InputError(where, " or ".join(map(str, allowed)) + " (made by this sandbox)",
                             _shown(marker.pg_data_root), PG_ROOT_FIX)
        if not check_private_dir(path, f"{path} (pg_data_root of {self.marker})"):
            return path  # removed already (by `down`, or a reboot emptied the temp dir)
        id_file = path / PG_ID_FILE
        try:
            found = read_json(id_file)
        except FileNotFoundError:
            found = None
        if found != pg_root_id(marker):
            raise InputError(str(id_file), f"the id of this sandbox {pg_root_id(marker)}",
                             _shown(found), FORGED_FIX)
        return path

    def check_cell_dirs(self, cells: list[str]) -> None:
        """Each cell's directory and its logs are real directories of ours, or absent."""
        for cell in cells:
            check_private_dir(self.cell_dir(cell))
            check_private_dir(self.cell_logs(cell))

    def check_processes(self, marker: Marker, where: str, procs: list[ProcessId]) -> None:
        """Every live process ``procs`` names carries this sandbox's id (dead ones are gone)."""
        for proc in procs:
            if not carries_id(proc, marker.sandbox_id) and _alive_after_exit(proc):
                raise InputError(f"{where}: pid {proc.pid}",
                                 f"a process this sandbox started (with {SANDBOX_ID_ENV} "
                                 "set to its id)",
                                 f"pid {proc.pid}, a live process it did not start", PROCESS_FIX)

    def read_cell_state(self, cell: str, marker: Marker) -> dict[str, Any] | None:
        """The cell's state once checked (shape, and the processes it names), None if absent."""
        path = self.cell_state(cell)
        try:
            data = read_json(path)
        except FileNotFoundError:
            return None
        state = check_cell_state(cell, data, str(path))
        self.check_processes(marker, str(path), [ProcessId.from_json(p) for p in state["pids"]])
        return state

    def token(self) -> str:
        try:
            return read_private(self.token_file).decode(errors="replace").strip()
        except FileNotFoundError as exc:
            raise InputError(str(self.token_file), "the admin token `gameday sandbox up` wrote",
                             "no file", FORGED_FIX) from exc

    def database_secrets(self) -> dict[str, str]:
        data = read_json(self.secrets_file)
        database = data.get("database") if isinstance(data, dict) else None
        if not isinstance(database, dict) or set(database) != {"user", "password", "database"} \
                or not all(_text(v) for v in database.values()):
            raise InputError(f"{self.secrets_file}: database", "user, password and database",
                             "something else", FORGED_FIX)
        return {str(k): str(v) for k, v in database.items()}
