"""The cell's front load balancer: round robin over ready replicas, with active health checks.

Like a Kubernetes Service in front of readiness probes: a replica is taken out after a failed
check and put back after a good one. There are no blind retries, so a killed replica shows as
errors to clients until the health check takes it out, as it would in a real cluster. Replicas
the autoscaler adds are watched from then on (``watch``); one it retires is taken out first
(``unwatch``), before its process is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time

import aiohttp
from aiohttp import web

from gameday.sandbox.events import EventSink
from gameday.sandbox.replicas import Replica

HEALTH_INTERVAL_S = 0.1
HEALTH_TIMEOUT_S = 2.0
# A refused connection means the process is gone: out at once. A slow or failing answer may be
# a passing hiccup: out after this many in a row.
FAILURE_THRESHOLD = 2
REQUEST_TIMEOUT_S = 10.0
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
     "transfer-encoding", "upgrade", "host", "content-length"}
)


class LoadBalancer:
    def __init__(self, replicas: list[Replica], emit: EventSink) -> None:
        self.replicas = replicas
        self.emit = emit
        self._rr = itertools.count()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._health_session: aiohttp.ClientSession | None = None
        self._tasks: dict[int, asyncio.Task[None]] = {}  # by id() of the replica
        self.port = 0

    async def start(self, port: int = 0) -> int:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S), auto_decompress=False
        )
        self._health_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True),
            timeout=aiohttp.ClientTimeout(total=HEALTH_TIMEOUT_S),
        )
        app = web.Application(client_max_size=1 << 20)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = int(server.sockets[0].getsockname()[1])
        for replica in self.replicas:
            self.watch(replica)
        return self.port

    def watch(self, replica: Replica) -> None:
        """Health-check ``replica`` (in ``self.replicas``); it joins the rotation once ready."""
        if id(replica) not in self._tasks:
            self._tasks[id(replica)] = asyncio.create_task(self._check_forever(replica))

    def unwatch(self, replica: Replica, reason: str) -> None:
        """Take ``replica`` out of the rotation at once and stop checking it."""
        task = self._tasks.pop(id(replica), None)
        if task is not None:
            task.cancel()
        if replica.ready:
            replica.ready = False
            self.emit("lb_endpoint_removed", replica=replica.index, pid=replica.pid,
                      port=replica.port, reason=reason)

    def ready_replicas(self) -> list[Replica]:
        return [r for r in self.replicas if r.ready and not r.retiring]

    def _pick(self) -> Replica | None:
        ready = self.ready_replicas()
        return ready[next(self._rr) % len(ready)] if ready else None

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        replica = self._pick()
        if replica is None:
            return web.json_response({"error": "no ready replica"}, status=503)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        try:
            async with self._session.request(
                request.method, replica.url + request.rel_url.raw_path_qs,
                headers=headers, data=body, allow_redirects=False,
            ) as upstream:
                payload = await upstream.read()
                out_headers = {k: v for k, v in upstream.headers.items()
                               if k.lower() not in HOP_BY_HOP}
                out_headers["X-Gameday-Replica"] = str(replica.index)
                return web.Response(status=upstream.status, body=payload, headers=out_headers)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return web.json_response(
                {"error": f"replica {replica.index} unreachable", "detail": type(exc).__name__},
                status=502, headers={"X-Gameday-Replica": str(replica.index)},
            )

    async def _check_forever(self, replica: Replica) -> None:
        while True:
            started = time.monotonic()
            await self._check(replica)
            await asyncio.sleep(max(0.0, HEALTH_INTERVAL_S - (time.monotonic() - started)))

    async def _check(self, replica: Replica) -> None:
        pid = replica.pid
        if pid is None:
            return
        assert self._health_session is not None
        try:
            async with self._health_session.get(replica.url + "/readyz") as resp:
                await resp.read()
                ok, hard = resp.status == 200, False
                reason = f"readyz {resp.status}"
        except aiohttp.ClientConnectorError as exc:
            ok, hard, reason = False, True, f"connection failed: {exc.os_error}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            ok, hard, reason = False, False, type(exc).__name__
        if pid != replica.pid or replica.retiring:
            return  # the replica was restarted (or retired) while we asked
        if ok:
            replica.health_failures = 0
            if not replica.ready:
                replica.ready = True
                self.emit("lb_endpoint_added", replica=replica.index, pid=pid, port=replica.port)
            if not replica.ready_once:
                replica.ready_once = True
                self.emit("replica_ready", replica=replica.index, pid=pid, port=replica.port,
                          since_start_s=round(time.monotonic() - replica.started_monotonic, 3))
            return
        replica.health_failures += 1
        if replica.ready and (hard or replica.health_failures >= FAILURE_THRESHOLD):
            replica.ready = False
            self.emit("lb_endpoint_removed", replica=replica.index, pid=pid, port=replica.port,
                      reason=reason)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        for session in (self._session, self._health_session):
            if session is not None:
                with contextlib.suppress(Exception):
                    await session.close()
