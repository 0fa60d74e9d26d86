"""A sandbox cell's controller (run as ``python -m gameday.sandbox.controller``).

One process per cell assembles the cell and keeps it alive: the PostgreSQL pair with its
failover controller, the database proxy, the replica supervisor, the front load balancer, the
horizontal autoscaler (autoscaler.py) and the token-protected admin API through which faults
are injected and reverted. It writes the cell's
``state.json`` whenever something changes and logs ground-truth events, both on a writer
thread (writer.py), so a slow disk never stalls the traffic its event loop carries.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import itertools
import json
import logging
import logging.handlers
import os
import queue
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from gameday.errors import InputError
from gameday.sandbox import postgres
from gameday.sandbox.autoscaler import Autoscaler, AutoscalerConfig, Decision, Pods, autoscaler_config
from gameday.sandbox.balancer import LoadBalancer
from gameday.sandbox.burner import spawn_burners
from gameday.sandbox.database import DatabasePair, FailoverController, PgNode, kill_node
from gameday.sandbox.events import EventLog, utc_now_iso
from gameday.sandbox.faults import (
    FAULT_ID,
    FaultRecord,
    FaultSpec,
    new_fault_id,
    parse_fault_request,
    validate_fault,
)
from gameday.sandbox.procs import (
    SANDBOX_ID_ENV,
    ProcessId,
    identify,
    is_alive,
    keep_priority_in_own_session,
    signal_process,
)
from gameday.sandbox.proxy import LatencyToxic, TcpProxy
from gameday.sandbox.replicas import Replica, Supervisor, free_port
from gameday.sandbox.state import SandboxLayout, decode_json, make_private_dir, write_private
from gameday.sandbox.writer import BackgroundWriter

log = logging.getLogger(__name__)

STATE_WRITE_INTERVAL_S = 0.2
READY_TIMEOUT_S = 90.0
# A retired replica leaves the balancer this long before its SIGTERM, so a request the
# balancer picked it for just before is still sent (the replica finishes what it has).
SCALE_IN_DRAIN_S = 0.1
# How long a fault call's answer waits for its events to reach the disk (the caller's own
# timeout is 10 s).
ADMIN_WRITE_WAIT_S = 2.0


def _utc_in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="microseconds")


def _pg_root(layout: SandboxLayout) -> Path:
    """The sandbox's PostgreSQL data root, once proven ours; and we must be that sandbox's."""
    marker = layout.read_marker()
    pg_root = None if marker is None else layout.check_pg_root(marker)
    if marker is None or pg_root is None:
        raise InputError(str(layout.marker), "a sandbox with a PostgreSQL data root", "none",
                         "start cells with `gameday sandbox up`")
    if os.environ.get(SANDBOX_ID_ENV) != marker.sandbox_id:
        raise InputError(SANDBOX_ID_ENV, f"the id of the sandbox in {layout.root}",
                         os.environ.get(SANDBOX_ID_ENV), "start cells with `gameday sandbox up`")
    return pg_root


class CellController:
    def __init__(self, layout: SandboxLayout, cell: str, replicas: int, cpus: list[int],
                 autoscaler: AutoscalerConfig | None = None) -> None:
        self.layout = layout
        self.cell = cell
        self.cpus = cpus
        self.writer = BackgroundWriter(f"{cell}-writer")
        self.events = EventLog(layout.events_file, cell, self.writer)
        self.token = layout.token()
        self.creds = postgres.PgCredentials(**layout.database_secrets())
        self.log_dir = layout.cell_logs(cell)
        self.pids: list[ProcessId] = []
        self.pair = DatabasePair(data_root=_pg_root(layout) / cell,
                                 log_dir=self.log_dir, creds=self.creds,
                                 on_spawn=self._record_node)
        self.replicas = [Replica(index=i, port=free_port()) for i in range(1, replicas + 1)]
        self.proxy: TcpProxy | None = None
        self.balancer = LoadBalancer(self.replicas, self.events.emit)
        self.failover: FailoverController | None = None
        self.supervisor: Supervisor | None = None
        self.faults: dict[str, FaultRecord] = {}
        self.burners: dict[str, list[ProcessId]] = {}
        self.scaling = autoscaler or autoscaler_config(replicas)
        self.autoscaler = None if not self.scaling.enabled else \
            Autoscaler(self.scaling, len(cpus), self._pods, self.scale_to)
        self.admin_port = 0
        self.status = "starting"
        self.stop_requested = asyncio.Event()
        self._last_state = ""

    # -- bookkeeping -------------------------------------------------------------------------
    def _record_pid(self, pid: int) -> None:
        proc = identify(pid)
        if proc is not None:
            self.pids.append(proc)
            # Soon after the spawn; `down` also finds a process this write did not name yet,
            # by the sandbox id in its environment.
            self.write_state()

    def _record_node(self, node: PgNode) -> None:
        self._record_pid(node.pid)

    def _record_replica(self, replica: Replica) -> None:
        if replica.pid is not None:
            self._record_pid(replica.pid)

    def state(self) -> dict[str, Any]:
        proxy = self.proxy
        toxic = proxy.toxic if proxy is not None else None
        return {
            "name": self.cell,
            "status": self.status,
            "controller": {"pid": os.getpid()},
            "url": f"http://127.0.0.1:{self.balancer.port}" if self.balancer.port else None,
            "admin_url": f"http://127.0.0.1:{self.admin_port}" if self.admin_port else None,
            "cpus": self.cpus,
            "replicas": [r.to_json() for r in self.replicas],
            # What the cell wants now; back at its desired state when current = ready = desired.
            "desired_replicas": len(self.replicas),
            "current_replicas": self._running_replicas(),
            "ready_replicas": len(self.balancer.ready_replicas()),
            "autoscaler": self.autoscaler.status() if self.autoscaler is not None
            else {**self.scaling.to_json(), "enabled": False},
            "database": [n.to_json() for n in self.pair.nodes],
            "proxy": None if proxy is None else {
                "port": proxy.port, "upstream_port": proxy.upstream_port,
                "sessions": proxy.sessions,
                "toxic": None if toxic is None else {
                    "fault_id": toxic.fault_id, "latency_ms": toxic.latency_ms,
                    "jitter_ms": toxic.jitter_ms,
                    "expires_in_s": round(toxic.expires_at - time.monotonic(), 3)},
            },
            "failover": {"ready": self.failover is not None and self.failover.can_fail_over(),
                         "rebuilding": self.failover is not None and self.failover.rebuilding},
            "faults": [f.to_json() for f in self.faults.values()],
            "pids": [p.to_json() for p in self.pids],
        }

    def _running_replicas(self) -> int:
        """Replica processes running now, those being stopped by a scale-in included."""
        supervised = [r for r, _ in self.supervisor.tasks.values()] if self.supervisor else []
        return sum(1 for r in supervised if r.process is not None and r.process.returncode is None)

    def write_state(self) -> None:
        data = self.state()
        text = json.dumps({k: v for k, v in data.items() if k != "proxy"}, default=str)
        if text != self._last_state:  # the toxic's countdown alone is no change worth a write
            self._last_state = text
            path, whole = self.layout.cell_state(self.cell), json.dumps(data, indent=2, default=str)
            self.writer.submit_latest("state", lambda: write_private(path, whole))

    async def written(self, timeout_s: float | None = None) -> bool:
        """Wait until every state write and event so far is on disk; False if ``timeout_s``
        ran out first."""
        return await asyncio.to_thread(self.writer.flush, timeout_s)

    async def _write_state_forever(self) -> None:
        while True:
            self._expire_faults()
            self.write_state()
            await asyncio.sleep(STATE_WRITE_INTERVAL_S)

    # -- faults ------------------------------------------------------------------------------
    def inject(self, spec: FaultSpec, fault_id: str | None = None) -> FaultRecord:
        fault_id = fault_id or new_fault_id(spec.kind)
        now = time.monotonic()
        record = FaultRecord(id=fault_id, cell=self.cell, spec=spec, injected_utc=utc_now_iso(),
                             expires_utc=_utc_in(spec.duration_s),
                             expires_monotonic=now + spec.duration_s, revert={})
        if spec.kind == "kill-replica":
            self._kill_replicas(record, spec.count)
        elif spec.kind == "latency":
            assert self.proxy is not None
            record.revert = {"action": "remove_toxic", "fault_id": fault_id}
            self.proxy.add_latency(LatencyToxic(fault_id, spec.latency_ms, spec.jitter_ms,
                                                now + spec.duration_s))
        elif spec.kind == "cpu":
            self._start_stress(record, spec)
        else:
            self._kill_primary(record)
        self.faults[fault_id] = record
        self.events.emit("fault_injected", fault_id=fault_id, kind=spec.kind,
                         expires_utc=record.expires_utc, targets=record.targets)
        self.write_state()
        return record

    def _kill_replicas(self, record: FaultRecord, count: int) -> None:
        alive = [r for r in self.replicas if r.process is not None and r.process.returncode is None]
        if count > len(alive):
            raise InputError("--count", f"at most the {len(alive)} replicas now running", count,
                             "wait for the supervisor to bring replicas back, or kill fewer")
        victims = random.sample(alive, count)
        for replica in victims:
            assert replica.pid is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(replica.pid, signal.SIGKILL)
            record.targets.append({"replica": replica.index, "pid": replica.pid})
        # A killed replica is brought back by the supervisor: nothing is left to revert.
        record.revert = {"action": "none", "restored_by": "supervisor"}

    def _kill_primary(self, record: FaultRecord) -> None:
        assert self.failover is not None
        if not self.failover.can_fail_over():
            raise InputError("kill-primary", "a cell with a streaming standby to fail over to",
                             "no standby ready (one is being rebuilt)",
                             "wait for the standby_rebuilt event, then try again")
        primary = self.pair.primary
        victims = kill_node(primary)
        record.targets.append({"node": primary.name, "pid": primary.pid, "port": primary.port,
                               "processes": len(victims)})
        record.revert = {"action": "none", "restored_by": "failover controller"}

    def _start_stress(self, record: FaultRecord, spec: FaultSpec) -> None:
        procs = spawn_burners(record.id, self.cpus, spec.workers, spec.load_pct,
                              record.expires_monotonic, self.layout.events_file, self.cell)
        ids = [p for p in (identify(proc.pid) for proc in procs) if p is not None]
        for proc in procs:
            self._record_pid(proc.pid)
        self.burners[record.id] = ids
        record.targets = [{"pid": p.pid, "cpu": self.cpus[i % len(self.cpus)]}
                          for i, p in enumerate(ids)]
        record.revert = {"action": "kill_burners", "pids": [p.to_json() for p in ids]}
        self.events.emit("stress_started", fault_id=record.id, pids=[p.pid for p in ids],
                         cpus=self.cpus, load_pct=spec.load_pct, workers=spec.workers)

    def revert(self, fault_id: str, reason: str = "reverted") -> FaultRecord:
        record = self.faults.get(fault_id)
        if record is None:
            raise KeyError(fault_id)
        if record.reverted_utc is not None:
            return record  # reverting twice is a no-op
        if record.spec.kind == "latency" and self.proxy is not None:
            self.proxy.remove_latency(fault_id)
        elif record.spec.kind == "cpu":
            for proc in self.burners.get(fault_id, []):
                signal_process(proc, signal.SIGTERM)
        record.reverted_utc = utc_now_iso()
        record.revert_reason = reason
        self.events.emit("fault_reverted", fault_id=fault_id, kind=record.spec.kind,
                         reason=reason)
        return record

    def _expire_faults(self) -> None:
        now = time.monotonic()
        for record in self.faults.values():
            if record.reverted_utc is None and now >= record.expires_monotonic:
                if record.spec.kind == "cpu" and any(
                        is_alive(p) for p in self.burners.get(record.id, [])):
                    continue  # burners stop themselves at the deadline; wait for them
                instant = record.revert.get("action") == "none"
                self.revert(record.id, reason="restored_by_cell" if instant else "expired")

    # -- autoscaling -------------------------------------------------------------------------
    def _pods(self) -> Pods:
        """What the autoscaler measures: ready replicas and live burners; every replica."""
        replicas = [(r, identify(r.pid)) for r in self.replicas if r.pid is not None]
        ready = [p for r, p in replicas if p is not None and r.ready]
        burners = [p for fid, procs in self.burners.items()
                   if self.faults.get(fid) is None or self.faults[fid].reverted_utc is None
                   for p in procs]
        return Pods(counted=ready + burners, watched=[p for _, p in replicas if p is not None],
                    current=len(self.replicas), demand=burners)

    async def scale_to(self, desired: int, decision: Decision) -> None:
        """Add replica slots (new indexes) or retire the newest, gracefully; then say so."""
        assert self.supervisor is not None
        current = len(self.replicas)
        self.events.emit("autoscaler_scaled", from_replicas=current, to_replicas=desired,
                         cpu_pct=decision.cpu_pct, reason=decision.reason)
        if desired > current:
            used = {r.index for r in self.replicas}
            free = (i for i in itertools.count(1) if i not in used)
            for _ in range(desired - current):
                replica = Replica(index=next(free), port=free_port())
                self.replicas.append(replica)
                self.balancer.watch(replica)
                self.supervisor.launch(replica)
            self.write_state()
            return
        victims = sorted(self.replicas, key=lambda r: r.index)[desired:]
        for replica in victims:  # out of the balancer first, then stopped
            replica.retiring = True
            self.balancer.unwatch(replica, reason="scale-in")
            self.replicas.remove(replica)
        self.write_state()
        await asyncio.sleep(SCALE_IN_DRAIN_S)
        await asyncio.gather(*(self.supervisor.retire(r, "scale-in") for r in victims))
        self.write_state()

    # -- admin API ---------------------------------------------------------------------------
    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        response: web.StreamResponse = await handler(request)
        if request.method != "GET":
            # What the caller made happen (a fault, its events) is on disk before it hears
            # back, unless the disk is stuck: then the answer is not held hostage by it.
            await self.written(ADMIN_WRITE_WAIT_S)
        return response

    async def _get_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state(), dumps=lambda d: json.dumps(d, default=str))

    async def _post_fault(self, request: web.Request) -> web.Response:
        try:
            kind, params, fault_id = parse_fault_request(await request.read())
            spec = validate_fault(kind, params, len(self.replicas), len(self.cpus))
            # A caller may name the fault (the runner's ledger does, before applying it); the
            # same id twice is the same fault, so a retried request is not a second fault.
            if fault_id is not None and not FAULT_ID.fullmatch(str(fault_id)):
                raise InputError("id", "letters, digits, '-' and '_' (at most 64)", fault_id,
                                 "pass another fault id, or none")
            if fault_id in self.faults:
                return web.json_response(self.faults[fault_id].to_json(), status=200)
            record = self.inject(spec, fault_id)
        except InputError as exc:
            return web.json_response(
                {"error": exc.message(), "where": exc.where, "expected": exc.expected,
                 "found": str(exc.found), "fix": exc.fix}, status=400)
        return web.json_response(record.to_json(), status=201)

    async def _delete_fault(self, request: web.Request) -> web.Response:
        try:
            record = self.revert(request.match_info["id"])
        except KeyError:
            return web.json_response({"error": "no such fault"}, status=404)
        return web.json_response(record.to_json())

    async def _get_faults(self, request: web.Request) -> web.Response:
        return web.json_response([f.to_json() for f in self.faults.values()])

    async def _post_shutdown(self, request: web.Request) -> web.Response:
        self.stop_requested.set()
        return web.json_response({"status": "stopping"}, status=202)

    async def _start_admin(self) -> web.AppRunner:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/state", self._get_state)
        app.router.add_get("/faults", self._get_faults)
        app.router.add_post("/faults", self._post_fault)
        app.router.add_delete("/faults/{id}", self._delete_fault)
        app.router.add_post("/shutdown", self._post_shutdown)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.admin_port = int(server.sockets[0].getsockname()[1])
        return runner

    # -- lifecycle ---------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_requested.set)
        make_private_dir(self.log_dir)
        self.write_state()
        tasks: list[asyncio.Task[Any]] = []
        admin: web.AppRunner | None = None
        try:
            await asyncio.to_thread(self.pair.bootstrap)
            self.proxy = TcpProxy(self.pair.primary.port, self.events.emit)
            await self.proxy.start()
            self.failover = FailoverController(self.pair, self.proxy, self.events.emit,
                                               self.write_state)
            tasks.append(asyncio.create_task(self.failover.run()))
            env = dict(os.environ, GAMEDAY_SANDBOX_DSN=self.creds.dsn(self.proxy.port))
            self.supervisor = Supervisor(self.replicas, env=env, cpus=self.cpus,
                                         log_dir=self.log_dir, sandbox=self.layout.root,
                                         emit=self.events.emit,
                                         on_spawn=self._record_replica)
            await self.supervisor.start()
            await self.balancer.start()
            admin = await self._start_admin()
            tasks.append(asyncio.create_task(self._write_state_forever()))
            await self._wait_ready()
            self.status = "ready"
            self.write_state()
            self.events.emit("cell_ready", url=f"http://127.0.0.1:{self.balancer.port}")
            if self.autoscaler is not None:
                tasks.append(asyncio.create_task(self.autoscaler.run()))
            await self.stop_requested.wait()
            return 0
        finally:
            await self._shutdown(tasks, admin)

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not all(r.ready for r in self.replicas):
            if time.monotonic() > deadline or self.stop_requested.is_set():
                raise RuntimeError("replicas did not become ready in time; see replica logs")
            await asyncio.sleep(0.05)

    async def _shutdown(self, tasks: list[asyncio.Task[Any]], admin: web.AppRunner | None) -> None:
        self.status = "stopping"
        with contextlib.suppress(Exception):
            self.write_state()
        for record in list(self.faults.values()):
            self.revert(record.id, reason="sandbox_down")
        if self.failover is not None:
            self.failover.stopping = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if admin is not None:
            await admin.cleanup()
        await self.balancer.close()
        if self.supervisor is not None:
            await self.supervisor.stop()
        if self.proxy is not None:
            await self.proxy.close()
        await asyncio.to_thread(self.pair.stop)
        self.status = "stopped"
        self.write_state()
        self.events.emit("cell_stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gameday-sandbox-controller")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--cell", required=True)
    parser.add_argument("--replicas", type=int, required=True)
    parser.add_argument("--cpus", required=True)
    parser.add_argument("--autoscaler", help="the autoscaler's config as JSON (default: "
                        "the defaults for --replicas)")
    args = parser.parse_args(argv)
    keep_priority_in_own_session()  # before it starts the cell's processes
    # stderr is the cell's log file: the event loop only queues a record, a thread writes it.
    to_file = logging.StreamHandler(sys.stderr)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, to_file)
    logging.basicConfig(level=logging.INFO, handlers=[logging.handlers.QueueHandler(records)])
    listener.start()
    try:
        return _run(args)
    finally:
        listener.stop()  # writes out every record still queued


def _run(args: argparse.Namespace) -> int:
    layout = SandboxLayout(args.state_dir.resolve())
    cpus = [int(c) for c in args.cpus.split(",")]
    try:
        scaling = None if args.autoscaler is None else AutoscalerConfig.from_json(
            decode_json(args.autoscaler, "--autoscaler"), "--autoscaler")
        if scaling is not None and scaling.min_replicas != args.replicas:
            raise InputError("--autoscaler: min_replicas", f"--replicas ({args.replicas})",
                             scaling.min_replicas, "start cells with `gameday sandbox up`")
    except InputError as exc:
        log.error("%s", exc.message())
        return 2
    controller = CellController(layout, args.cell, args.replicas, cpus, scaling)
    try:
        return asyncio.run(controller.run())
    except (Exception, subprocess.SubprocessError):
        log.exception("cell %s failed", args.cell)
        return 1
    finally:
        controller.writer.close()  # the last state and events reach the disk before we exit


if __name__ == "__main__":
    sys.exit(main())
