"""Replica slots of a cell and the supervisor that keeps them running, like a kubelet.

A killed replica is restarted after a back-off of 0.5 s doubling to 10 s; the back-off resets
once a replica has stayed up for 30 s. The autoscaler adds replicas (``launch``) and retires
them (``retire``: SIGTERM, SIGKILL after a grace period, never restarted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gameday.sandbox.events import EventSink
from gameday.sandbox.state import open_log

log = logging.getLogger(__name__)

BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 10.0
BACKOFF_RESET_AFTER_S = 30.0
RETIRE_GRACE_S = 5.0  # a retired replica's SIGTERM, then SIGKILL (like terminationGracePeriod)


def next_backoff(previous_s: float | None, ran_for_s: float) -> float:
    """Delay before the next restart, given the last delay and how long the replica ran."""
    if previous_s is None or ran_for_s >= BACKOFF_RESET_AFTER_S:
        return BACKOFF_INITIAL_S
    return min(previous_s * 2, BACKOFF_MAX_S)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Replica:
    """One replica slot: its port is stable across restarts, its process is not."""

    index: int
    port: int
    pid: int | None = None
    ready: bool = False
    ready_once: bool = False  # has this process been ready since it started
    started_monotonic: float = 0.0
    restarts: int = 0
    health_failures: int = 0
    retiring: bool = False  # scaled in: out of the balancer, stopped, never restarted
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def to_json(self) -> dict[str, object]:
        return {"index": self.index, "pid": self.pid, "port": self.port, "ready": self.ready,
                "restarts": self.restarts}


class Supervisor:
    """Starts every replica and restarts any that exits, with back-off."""

    def __init__(
        self,
        replicas: list[Replica],
        *,
        env: dict[str, str],
        cpus: list[int],
        log_dir: Path,
        sandbox: Path,
        emit: EventSink,
        on_spawn: Callable[[Replica], None],
    ) -> None:
        self.replicas = replicas
        self.env = env
        self.cpus = cpus
        self.log_dir = log_dir
        self.sandbox = sandbox
        self.emit = emit
        self.on_spawn = on_spawn
        self.stopping = False
        # Every replica this supervisor runs, retiring ones included, with its task.
        self.tasks: dict[int, tuple[Replica, asyncio.Task[None]]] = {}

    async def start(self) -> None:
        for replica in self.replicas:
            self.launch(replica)

    def launch(self, replica: Replica) -> None:
        """Start keeping ``replica`` running (a new slot the autoscaler added)."""
        self.tasks[id(replica)] = (replica, asyncio.create_task(self._keep_running(replica)))

    async def retire(self, replica: Replica, reason: str) -> None:
        """Stop ``replica`` for good: SIGTERM, SIGKILL after ``RETIRE_GRACE_S``."""
        replica.retiring = True
        entry = self.tasks.get(id(replica))
        if entry is None:
            return
        task = entry[1]
        proc = replica.process
        if proc is None or proc.returncode is not None:
            task.cancel()  # waiting out a back-off (or not started yet): nothing runs
        else:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(asyncio.shield(proc.wait()), RETIRE_GRACE_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
            code = await proc.wait()
            self.emit("replica_stopped", replica=replica.index, pid=proc.pid, returncode=code,
                      reason=reason,
                      ran_for_s=round(time.monotonic() - replica.started_monotonic, 3))
        await asyncio.gather(task, return_exceptions=True)
        late = replica.process  # spawned while we cancelled a back-off
        if late is not None and late is not proc and late.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(late.pid, 9)
            await late.wait()
        self.tasks.pop(id(replica), None)

    async def _spawn(self, replica: Replica) -> asyncio.subprocess.Process:
        if not port_is_free(replica.port):
            replica.port = free_port()
        log_file = self.log_dir / f"replica-{replica.index}.log"
        # Off the event loop, which carries the cell's traffic: a slow disk must not stall it.
        with await asyncio.to_thread(open_log, log_file) as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gameday.sandbox.replica",
                "--port", str(replica.port), "--index", str(replica.index),
                "--cpus", ",".join(map(str, self.cpus)), "--sandbox", str(self.sandbox),
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                env=self.env, start_new_session=True,
            )
        if replica.ready:  # the health check had not noticed the exit yet
            self.emit("lb_endpoint_removed", replica=replica.index, pid=replica.pid,
                      port=replica.port, reason="replaced")
        replica.process = proc
        replica.pid = proc.pid
        replica.ready = False
        replica.ready_once = False
        replica.health_failures = 0
        replica.started_monotonic = time.monotonic()
        self.on_spawn(replica)
        self.emit("replica_started", replica=replica.index, pid=proc.pid, port=replica.port,
                  restarts=replica.restarts)
        return proc

    async def _keep_running(self, replica: Replica) -> None:
        backoff: float | None = None
        while not self.stopping and not replica.retiring:
            proc = await self._spawn(replica)
            code = await proc.wait()
            ran_for = time.monotonic() - replica.started_monotonic
            if self.stopping or replica.retiring:
                return
            self.emit("replica_exit", replica=replica.index, pid=proc.pid, returncode=code,
                      ran_for_s=round(ran_for, 3))
            backoff = next_backoff(backoff, ran_for)
            log.info("replica %s exited with %s; restarting in %.1fs", replica.index, code, backoff)
            await asyncio.sleep(backoff)
            replica.restarts += 1

    async def stop(self) -> None:
        self.stopping = True
        running = [replica for replica, _ in self.tasks.values()]
        for replica in running:
            if replica.process is not None and replica.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    replica.process.terminate()
        for replica in running:
            if replica.process is None:
                continue
            try:
                await asyncio.wait_for(replica.process.wait(), 3.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(replica.process.pid, 9)
                await replica.process.wait()
        tasks = [task for _, task in self.tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
