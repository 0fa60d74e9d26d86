"""A real PostgreSQL primary and synchronous streaming standby for one sandbox cell.

Blocking functions only: the cell controller runs them in a worker thread. Every node listens
on 127.0.0.1 over TCP (no unix socket: a socket directory is one more permission to get wrong
when the node runs as another user), and every connection made here goes there too.

PostgreSQL refuses to run as root, so when we are root every server-side program (initdb,
postgres, pg_basebackup) runs as an unprivileged user (see ``pg_run_as``).
"""

from __future__ import annotations

import contextlib
import math
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from gameday.errors import SandboxError
from gameday.sandbox.state import open_log

REQUIRED_TOOLS = ("initdb", "postgres", "pg_basebackup")
FALLBACK_USER = "gameday"
ADMIN_DB = "postgres"  # always exists, on a standby too
POLL_S = 0.05
TOOL_TIMEOUT_S = 120.0

INSTALL_HINT = (
    "install PostgreSQL (e.g. `apt-get install postgresql`) or the bundled binaries "
    "(`pip install 'gameday-runner[sandbox-pg]'`)"
)


# --------------------------------------------------------------------------- binaries


@dataclass(frozen=True)
class PgBinaries:
    bindir: Path
    version: int  # major version

    def tool(self, name: str) -> Path:
        return self.bindir / name


def find_pg_binaries() -> PgBinaries:
    """The first usable PostgreSQL: pg_config's, the highest /usr/lib/postgresql, then pgserver's."""
    for bindir in _candidate_bindirs():
        if _has_required_tools(bindir):
            version = _major_version(bindir)
            if version is not None:
                return PgBinaries(bindir=bindir, version=version)
    raise SandboxError(f"no PostgreSQL binaries found (need {', '.join(REQUIRED_TOOLS)}); {INSTALL_HINT}")


def _candidate_bindirs() -> Iterator[Path]:
    from_config = _pg_config_bindir()
    if from_config is not None:
        yield from_config
    yield from sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_dir_version, reverse=True)
    bundled = _pgserver_bindir()
    if bundled is not None:
        yield bundled


def _pg_config_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    try:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10,
                             check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out) if out else None


def _dir_version(bindir: Path) -> tuple[int, str]:
    # "/usr/lib/postgresql/15/bin": sort numerically so 9.6 < 10 < 15.
    name = bindir.parent.name
    match = re.match(r"\d+", name)
    return (int(match.group()) if match else -1, name)


def _pgserver_bindir() -> Path | None:
    try:
        import pgserver  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return None
    package_dir = Path(pgserver.__file__).resolve().parent
    return package_dir / "pginstall" / "bin"


def _has_required_tools(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in REQUIRED_TOOLS)


def _major_version(bindir: Path) -> int | None:
    try:
        out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True,
                             timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    # "postgres (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)" / "... 9.6.24": 9.x majors are two parts.
    match = re.search(r"\)\s*(\d+)(?:\.(\d+))?", out)
    if match is None:
        return None
    major = int(match.group(1))
    return major * 10 + int(match.group(2) or 0) if major < 10 else major


# --------------------------------------------------------------------------- who runs it


@dataclass(frozen=True)
class RunAs:
    user: str
    uid: int
    gid: int


def pg_run_as() -> RunAs | None:
    """The unprivileged user PostgreSQL runs as when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", FALLBACK_USER):
        entry = _lookup_user(name)
        if entry is not None:
            return entry
    _create_system_user(FALLBACK_USER)
    entry = _lookup_user(FALLBACK_USER)
    if entry is None:
        raise SandboxError(f"created user {FALLBACK_USER!r} but cannot look it up")
    return entry


def _lookup_user(name: str) -> RunAs | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return RunAs(user=name, uid=entry.pw_uid, gid=entry.pw_gid)


def _create_system_user(name: str) -> None:
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    cmd = [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except OSError as exc:
        raise SandboxError(f"PostgreSQL cannot run as root and `useradd` failed: {exc}; "
                           "create an unprivileged user named 'postgres'") from exc
    # 9 = the user exists already (another cell created it at the same moment).
    if result.returncode not in (0, 9):
        raise SandboxError(f"PostgreSQL cannot run as root and `{' '.join(cmd)}` failed: "
                           f"{result.stderr.strip()}; create an unprivileged user named 'postgres'")


def data_root_parent(state_dir: Path, run_as: RunAs | None) -> Path:
    """Where a PostgreSQL data root may go: in ``state_dir``, or as root in the system temp dir
    (state_dir's parents may be closed to the unprivileged user: pytest's tmp dirs are 0700)."""
    return state_dir if run_as is None else Path(tempfile.gettempdir()).resolve()


def make_data_root(path: Path, run_as: RunAs | None) -> Path:
    """Create ``path`` (it must not exist) for data directories: 0700, or as root 0711 so the
    unprivileged user can reach the directories it owns inside but not list or change it."""
    os.mkdir(path, 0o700)
    if run_as is not None:
        path.chmod(0o711)
    return path


def pg_data_root(state_dir: Path, run_as: RunAs | None) -> Path:
    """A fresh data root for a PostgreSQL server of its own (each call makes a new one)."""
    parent = data_root_parent(state_dir.resolve(), run_as)
    return make_data_root(parent / f"gameday-pg-{secrets.token_hex(8)}", run_as)


def own_dir(path: Path, run_as: RunAs | None) -> None:
    """Create ``path`` (empty) with mode 0700 owned by the PostgreSQL user, as postgres demands."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if run_as is not None:
        os.chown(path, run_as.uid, run_as.gid)
    path.chmod(0o700)


def _child_env(run_as: RunAs | None, home: Path) -> dict[str, str]:
    # PG* variables of ours (PGPORT, PGDATA, PGPASSWORD...) must not leak into the servers.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["LC_ALL"] = "C"
    if run_as is not None:
        env.update(HOME=str(home), USER=run_as.user, LOGNAME=run_as.user)
    return env


def _as_user(run_as: RunAs | None) -> dict[str, Any]:
    """Popen/run keyword arguments that drop to ``run_as`` in the child (no supplementary groups)."""
    if run_as is None:
        return {}
    # cwd "/" because the parent's cwd may be closed to the user.
    return {"user": run_as.uid, "group": run_as.gid, "extra_groups": [], "cwd": "/"}


def _run_tool(cmd: list[str], run_as: RunAs | None, home: Path, what: str,
              env: dict[str, str] | None = None) -> None:
    full_env = {**_child_env(run_as, home), **(env or {})}
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S,
                                env=full_env, **_as_user(run_as))
    except (OSError, subprocess.SubprocessError) as exc:
        raise SandboxError(f"{what} failed: {exc}") from exc
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()[-2000:]
        raise SandboxError(f"{what} failed (exit {result.returncode}): {output}")


# --------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class PgCredentials:
    user: str  # "gameday": the superuser initdb creates
    password: str
    database: str  # "payments"

    def dsn(self, port: int, host: str = "127.0.0.1", **extra: str) -> str:
        """A libpq conninfo string; ``extra`` adds or overrides keys (dbname, application_name...)."""
        params: dict[str, str] = {"host": host, "port": str(port), "user": self.user,
                                  "password": self.password, "dbname": self.database}
        params.update(extra)
        return make_conninfo(**params)


def new_credentials() -> PgCredentials:
    return PgCredentials(user="gameday", password=secrets.token_urlsafe(24), database="payments")


def _connect(port: int, creds: PgCredentials, dbname: str = ADMIN_DB,
             connect_timeout: int = 3) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(creds.dsn(port, dbname=dbname), autocommit=True,
                           connect_timeout=connect_timeout)


def _poll(what: str, timeout_s: float, check: Callable[[], bool]) -> None:
    """Call ``check`` until it returns True; psycopg/OS errors count as "not yet"."""
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while True:
        try:
            if check():
                return
        except (psycopg.Error, OSError) as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f": {str(last_error).strip()}" if last_error is not None else ""
            raise SandboxError(f"{what} not reached within {timeout_s:.1f} s{detail}")
        time.sleep(POLL_S)


# --------------------------------------------------------------------------- primary


def _primary_conf(port: int) -> str:
    return f"""
# --- gameday sandbox primary ---
listen_addresses = '127.0.0.1'
port = {port}
# TCP only: no socket directory whose permissions could stop the unprivileged user.
unix_socket_directories = ''
# Up to 10 replicas with warm pools of 4-8 connections each, plus replication.
max_connections = 200
shared_buffers = '16MB'
wal_level = replica
max_wal_senders = 10
wal_keep_size = '128MB'
hot_standby = on
# Every commit waits for a standby: the sandbox must lose no acknowledged write on failover.
synchronous_standby_names = '*'
synchronous_commit = on
# A killed process keeps its writes in the OS page cache; only an OS crash would lose them,
# and a sandbox may lose everything then. fsync costs milliseconds per commit here.
fsync = off
# The server logs to stderr, which start_node sends to the cell's log directory: it outlives
# the data directory, which `sandbox down` removes.
log_line_prefix = '%m [%p] %q%a '
"""


_PG_HBA = """\
# TYPE  DATABASE     USER  ADDRESS       METHOD
host    all          all   127.0.0.1/32  scram-sha-256
host    replication  all   127.0.0.1/32  scram-sha-256
"""


def init_primary(bins: PgBinaries, data_dir: Path, port: int, creds: PgCredentials,
                 run_as: RunAs | None) -> None:
    """initdb a fresh primary in ``data_dir`` (created, must be empty) and configure it."""
    data_dir = data_dir.resolve()
    own_dir(data_dir, run_as)
    _initdb(bins, data_dir, creds, run_as)
    _append(data_dir / "postgresql.conf", _primary_conf(port))
    (data_dir / "pg_hba.conf").write_text(_PG_HBA)


def _initdb(bins: PgBinaries, data_dir: Path, creds: PgCredentials, run_as: RunAs | None) -> None:
    # The password goes through a file so it never shows on a command line; the file sits in
    # a private directory of the PostgreSQL user and is deleted right after.
    pw_dir = Path(tempfile.mkdtemp(prefix="gameday-pw-"))
    try:
        if run_as is not None:
            os.chown(pw_dir, run_as.uid, run_as.gid)
        pwfile = pw_dir / "pw"
        pwfile.write_text(creds.password + "\n")
        if run_as is not None:
            os.chown(pwfile, run_as.uid, run_as.gid)
        cmd = [str(bins.tool("initdb")), "-D", str(data_dir), "-U", creds.user,
               f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8", "--locale=C",
               "--no-sync"]
        _run_tool(cmd, run_as, data_dir, "initdb")
    finally:
        shutil.rmtree(pw_dir, ignore_errors=True)


def _append(path: Path, text: str) -> None:
    # Later lines win in postgresql.conf / postgresql.auto.conf, so appending overrides.
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text)


# --------------------------------------------------------------------------- processes


def start_node(bins: PgBinaries, data_dir: Path, log_path: Path,
               run_as: RunAs | None) -> subprocess.Popen[bytes]:
    """Start ``postgres -D data_dir``; the Popen's pid is the postmaster and leads its own group.

    Not pg_ctl: its child would be the postmaster, not the pid we hold. The own session lets
    the caller SIGKILL the whole node (postmaster and backends) with ``os.killpg``.
    """
    data_dir = data_dir.resolve()
    log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open_log(log_path) as log:
        try:
            return subprocess.Popen(
                [str(bins.tool("postgres")), "-D", str(data_dir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=_child_env(run_as, data_dir), start_new_session=True, **_as_user(run_as))
        except OSError as exc:
            raise SandboxError(f"cannot start postgres for {data_dir}: {exc}") from exc


def stop_node(proc: subprocess.Popen[bytes], timeout_s: float = 5.0) -> None:
    """Fast shutdown (SIGINT); if the node is still up after ``timeout_s``, SIGKILL all of it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout_s)
    if proc.poll() is None:
        kill_node_processes(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout_s)


def kill_node_processes(postmaster_pid: int) -> list[int]:
    """SIGKILL the postmaster and all its children at once, like a lost host; return the pids.

    ``os.killpg(postmaster)`` is not enough: every PostgreSQL child calls setsid(), so the
    group holds the postmaster alone and the backends die later, on noticing its death. The
    pid must be a postmaster not yet reaped (a live Popen of ``start_node``).
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(postmaster_pid, signal.SIGSTOP)  # it forks no new child while we list them
    victims = [postmaster_pid, *_children(postmaster_pid)]
    for pid in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return victims


def _children(pid: int) -> list[int]:
    children_file = Path(f"/proc/{pid}/task/{pid}/children")
    if children_file.exists():
        try:
            return [int(c) for c in children_file.read_text().split()]
        except OSError:
            return []
    if not Path(f"/proc/{pid}").exists():
        return []
    # Kernels without CONFIG_PROC_CHILDREN: scan for the parent pid.
    return [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit() and _parent_pid(e) == pid]


def _parent_pid(proc_dir: Path) -> int | None:
    try:
        stat = (proc_dir / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2 :].split()[1])


def wait_ready(port: int, creds: PgCredentials, timeout_s: float, dbname: str | None = None) -> None:
    """Block until ``SELECT 1`` works on ``port``; SandboxError after ``timeout_s``."""
    def check() -> bool:
        with _connect(port, creds, dbname or creds.database, connect_timeout=1) as conn:
            conn.execute("SELECT 1")
        return True

    _poll(f"PostgreSQL on port {port} ready", timeout_s, check)


def bootstrap_schema(port: int, creds: PgCredentials) -> None:
    """Create the database and the payments table if missing (on a primary)."""
    with _connect(port, creds) as conn:
        # No standby exists yet; with synchronous_standby_names='*' these commits would wait forever.
        conn.execute("SET synchronous_commit = local")
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (creds.database,)).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(creds.database)))
    with _connect(port, creds, creds.database) as conn:
        conn.execute("SET synchronous_commit = local")
        conn.execute("""
            CREATE TABLE IF NOT EXISTS payments (
                id bigserial PRIMARY KEY,
                amount_cents bigint NOT NULL,
                reference text,
                seq bigint,
                created_at timestamptz DEFAULT clock_timestamp()
            )""")
        # Lost-write checks look rows up by reference.
        conn.execute("CREATE INDEX IF NOT EXISTS payments_reference_idx ON payments (reference)")


# --------------------------------------------------------------------------- standby


def create_standby(bins: PgBinaries, primary_port: int, data_dir: Path, port: int, creds: PgCredentials,
                   run_as: RunAs | None, application_name: str) -> None:
    """Clone the primary into ``data_dir`` (created, must be empty) as a streaming standby on ``port``."""
    data_dir = data_dir.resolve()
    own_dir(data_dir, run_as)
    cmd = [str(bins.tool("pg_basebackup")), "-h", "127.0.0.1", "-p", str(primary_port),
           "-U", creds.user, "-D", str(data_dir), "-X", "stream", "-R", "-c", "fast", "--no-sync",
           "-w"]
    _run_tool(cmd, run_as, data_dir, f"pg_basebackup from port {primary_port}",
              env={"PGPASSWORD": creds.password})
    conninfo = creds.dsn(primary_port, application_name=application_name)
    _append(data_dir / "postgresql.auto.conf", _standby_conf(port, conninfo))
    data_dir.chmod(0o700)  # pg_basebackup may leave 0750; postgres insists on 0700 or 0750


def _standby_conf(port: int, primary_conninfo: str) -> str:
    return f"""
# --- gameday sandbox standby ---
port = {port}
primary_conninfo = {_quote_conf(primary_conninfo)}
# Retry the primary (and notice a promotion request) every 100 ms instead of every 5 s.
wal_retrieve_retry_interval = '100ms'
# Inherited '*' would make every commit hang after this standby is promoted (no standby yet).
synchronous_standby_names = ''
"""


def _quote_conf(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def promote(port: int, creds: PgCredentials, timeout_s: float = 5.0) -> None:
    """Promote the standby on ``port`` and return once it accepts writes."""
    try:
        with _connect(port, creds, connect_timeout=max(1, math.ceil(timeout_s))) as conn:
            # wait => false and our own 10 ms poll: pg_promote's own wait checks only every 100 ms.
            conn.execute("SELECT pg_promote(wait => false)")
            deadline = time.monotonic() + timeout_s
            while _in_recovery(conn):
                if time.monotonic() >= deadline:
                    raise SandboxError(f"standby on port {port} not promoted within {timeout_s:.1f} s")
                time.sleep(0.01)
    except psycopg.Error as exc:
        raise SandboxError(f"promoting the standby on port {port} failed: {exc}") from exc


def _in_recovery(conn: psycopg.Connection[tuple[Any, ...]]) -> bool:
    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    return bool(row and row[0])


def is_in_recovery(port: int, creds: PgCredentials) -> bool:
    with _connect(port, creds) as conn:
        return _in_recovery(conn)


def replication_state(port: int, creds: PgCredentials) -> list[dict[str, str]]:
    """The standbys the node on ``port`` streams to: application_name, state, sync_state."""
    with _connect(port, creds) as conn:
        rows = conn.execute(
            "SELECT application_name, state, sync_state FROM pg_stat_replication "
            "ORDER BY application_name").fetchall()
    return [{"application_name": str(a), "state": str(s), "sync_state": str(y)} for a, s, y in rows]


def wait_streaming(primary_port: int, creds: PgCredentials, application_name: str,
                   timeout_s: float) -> None:
    def check() -> bool:
        return any(r["application_name"] == application_name and r["state"] == "streaming"
                   for r in replication_state(primary_port, creds))

    _poll(f"standby {application_name!r} streaming from port {primary_port}", timeout_s, check)


def set_synchronous_standbys(port: int, creds: PgCredentials, names: str) -> None:
    """Set synchronous_standby_names ('*' or '') on the primary and wait until it is in force.

    The reload is asynchronous: return only once a new session sees the value and, when
    turning sync on with a standby streaming, that standby is reported sync.
    """
    with _connect(port, creds) as conn:
        conn.execute(sql.SQL("ALTER SYSTEM SET synchronous_standby_names = {}").format(sql.Literal(names)))
        conn.execute("SELECT pg_reload_conf()")
    _poll(f"synchronous_standby_names = {names!r} on port {port}", 5.0,
          lambda: _sync_setting_in_force(port, creds, names))


def _sync_setting_in_force(port: int, creds: PgCredentials, names: str) -> bool:
    with _connect(port, creds, connect_timeout=1) as conn:
        row = conn.execute("SHOW synchronous_standby_names").fetchone()
    if row is None or row[0] != names:
        return False
    if not names:
        return True
    states = replication_state(port, creds)
    streaming = [r for r in states if r["state"] == "streaming"]
    return not streaming or any(r["sync_state"] in ("sync", "quorum") for r in streaming)
