"""The cell's database: a PostgreSQL primary and a synchronous standby, watched and failed over.

The failover controller notices a lost primary within a second, fences it, promotes the
standby, repoints the database proxy and then rebuilds a new standby from the new primary, so
the cell is back to two nodes. A lost standby degrades the primary to asynchronous commits
(otherwise every commit would wait forever for a standby that is gone) until it is rebuilt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gameday.errors import SandboxError
from gameday.sandbox import postgres
from gameday.sandbox.events import EventSink
from gameday.sandbox.proxy import TcpProxy
from gameday.sandbox.replicas import free_port

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 0.1
# A primary that refuses connections this many checks in a row is lost (3 x 0.2 s < 1 s).
PROBE_INTERVAL_S = 0.2
PROBE_FAILURES = 3
START_TIMEOUT_S = 30.0
REBUILD_RETRY_S = 2.0


@dataclass
class PgNode:
    name: str
    role: Literal["primary", "standby"]
    port: int
    data_dir: Path
    proc: subprocess.Popen[bytes] = field(repr=False)
    streaming: bool = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def exited(self) -> bool:
        return self.proc.poll() is not None

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "role": self.role, "port": self.port, "pid": self.pid,
                "alive": not self.exited(), "streaming": self.streaming}


class DatabasePair:
    """Blocking operations on the cell's PostgreSQL nodes (run them in a worker thread)."""

    def __init__(self, *, data_root: Path, log_dir: Path, creds: postgres.PgCredentials,
                 on_spawn: Callable[[PgNode], None]) -> None:
        self.bins = postgres.find_pg_binaries()
        self.run_as = postgres.pg_run_as()
        self.data_root = data_root
        self.log_dir = log_dir
        self.creds = creds
        self.on_spawn = on_spawn
        self.nodes: list[PgNode] = []
        self._serial = 0

    @property
    def primary(self) -> PgNode:
        return next(n for n in self.nodes if n.role == "primary")

    @property
    def standby(self) -> PgNode | None:
        return next((n for n in self.nodes if n.role == "standby"), None)

    def _next_node(self) -> tuple[str, Path, int]:
        self._serial += 1
        name = f"pg-{self._serial}"
        return name, self.data_root / name, free_port()

    def _start(self, name: str, role: Literal["primary", "standby"], data_dir: Path,
               port: int) -> PgNode:
        proc = postgres.start_node(self.bins, data_dir, self.log_dir / f"{name}.log", self.run_as)
        node = PgNode(name=name, role=role, port=port, data_dir=data_dir, proc=proc)
        self.on_spawn(node)
        postgres.wait_ready(port, self.creds, START_TIMEOUT_S, dbname="postgres")
        return node

    def bootstrap(self) -> None:
        # The cell's own part of the data root: 0700, reachable by the PostgreSQL user alone.
        postgres.own_dir(self.data_root, self.run_as)
        name, data_dir, port = self._next_node()
        postgres.init_primary(self.bins, data_dir, port, self.creds, self.run_as)
        self.nodes.append(self._start(name, "primary", data_dir, port))
        postgres.bootstrap_schema(port, self.creds)
        self.add_standby()

    def add_standby(self) -> PgNode:
        primary = self.primary
        name, data_dir, port = self._next_node()
        postgres.create_standby(self.bins, primary.port, data_dir, port, self.creds, self.run_as,
                                application_name=name)
        node = self._start(name, "standby", data_dir, port)
        self.nodes.append(node)
        try:
            postgres.wait_streaming(primary.port, self.creds, name, START_TIMEOUT_S)
        except BaseException:
            self.forget(node)  # a half-built standby would block the next rebuild
            raise
        node.streaming = True
        postgres.set_synchronous_standbys(primary.port, self.creds, "*")
        return node

    def promote_standby(self) -> PgNode:
        standby = self.standby
        if standby is None or standby.exited():
            raise SandboxError("no live standby to promote: the cell's database is down")
        postgres.promote(standby.port, self.creds)
        standby.role = "primary"
        return standby

    def degrade_to_async(self) -> None:
        postgres.set_synchronous_standbys(self.primary.port, self.creds, "")

    def forget(self, node: PgNode) -> None:
        """Fence a lost node (kill whatever is left of it) and drop its data."""
        kill_node(node)
        self.nodes.remove(node)
        shutil.rmtree(node.data_dir, ignore_errors=True)

    def stop(self) -> None:
        for node in list(self.nodes):
            postgres.stop_node(node.proc)


def kill_node(node: PgNode) -> list[int]:
    """SIGKILL the postmaster and every backend at once, like a lost host; return their pids."""
    victims = postgres.kill_node_processes(node.pid) if not node.exited() else []
    with contextlib.suppress(subprocess.TimeoutExpired):
        node.proc.wait(timeout=5)
    return victims


async def port_answers(port: int, timeout_s: float = 0.3) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout_s)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class FailoverController:
    """Watches the pair and repairs it; every step is a ground-truth event."""

    def __init__(self, pair: DatabasePair, proxy: TcpProxy, emit: EventSink,
                 on_change: Callable[[], None]) -> None:
        self.pair = pair
        self.proxy = proxy
        self.emit = emit
        self.on_change = on_change
        self.rebuilding = False
        self.stopping = False

    def can_fail_over(self) -> bool:
        standby = self.pair.standby
        return not self.rebuilding and standby is not None and standby.streaming \
            and not standby.exited()

    async def run(self) -> None:
        failures = 0
        last_probe = 0.0
        while not self.stopping:
            await asyncio.sleep(WATCH_INTERVAL_S)
            if self.rebuilding:
                continue
            primary = self.pair.primary
            if primary.exited():
                await self._fail_over(primary, "process exited")
                failures = 0
                continue
            standby = self.pair.standby
            if standby is not None and standby.exited():
                await self._replace_standby(standby)
                continue
            if standby is None:
                await self._rebuild()  # an earlier rebuild failed: try again
                continue
            if time.monotonic() - last_probe >= PROBE_INTERVAL_S:
                last_probe = time.monotonic()
                failures = 0 if await port_answers(primary.port) else failures + 1
                if failures >= PROBE_FAILURES:
                    await self._fail_over(primary, f"unreachable {failures} checks in a row")
                    failures = 0

    async def _fail_over(self, lost: PgNode, reason: str) -> None:
        self.emit("primary_lost", node=lost.name, port=lost.port, pid=lost.pid, reason=reason)
        await asyncio.to_thread(kill_node, lost)  # fence it before anything else is promoted
        started = time.monotonic()
        try:
            promoted = await asyncio.to_thread(self.pair.promote_standby)
        except SandboxError:
            log.exception("failover impossible")
            return
        self.emit("standby_promoted", node=promoted.name, port=promoted.port, pid=promoted.pid,
                  took_s=round(time.monotonic() - started, 3))
        await self.proxy.repoint(promoted.port)
        await asyncio.to_thread(self.pair.forget, lost)
        self.on_change()
        await self._rebuild()

    async def _replace_standby(self, lost: PgNode) -> None:
        self.emit("standby_lost", node=lost.name, port=lost.port, pid=lost.pid)
        await asyncio.to_thread(self.pair.degrade_to_async)
        await asyncio.to_thread(self.pair.forget, lost)
        self.on_change()
        await self._rebuild()

    async def _rebuild(self) -> None:
        self.rebuilding = True
        started = time.monotonic()
        try:
            node = await asyncio.to_thread(self.pair.add_standby)
        except (SandboxError, OSError, subprocess.SubprocessError):
            log.exception("standby rebuild failed; retrying in %.0f s", REBUILD_RETRY_S)
            await asyncio.sleep(REBUILD_RETRY_S)
            self.rebuilding = False
            return
        finally:
            self.on_change()
        self.rebuilding = False
        self.emit("standby_rebuilt", node=node.name, port=node.port, pid=node.pid,
                  took_s=round(time.monotonic() - started, 3))
