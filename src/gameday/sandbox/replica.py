"""One replica of the sandbox's payments API (run as ``python -m gameday.sandbox.replica``).

    POST /payments        {"amount_cents": int, "reference"?: str, "seq"?: int} -> 201 {"id", ...}
    GET  /payments/{id}   the stored row, or 404
    GET  /healthz         the process is alive
    GET  /readyz          the database answers (what the load balancer's health check asks)

Every write is one round trip to PostgreSQL (autocommit, ``INSERT ... RETURNING``), through the
cell's database proxy, so a latency toxic adds its latency once per request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import select
import signal
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from aiohttp import web

from gameday.sandbox.procs import keep_priority_in_own_session

# A commit can hang while synchronous replication has no standby; never hold a client longer.
QUERY_TIMEOUT_S = 5.0
READY_TIMEOUT_S = 1.5
POOL_MAX_IDLE = 8
# Like any production pool, keep warm connections: a new one costs several round trips
# (startup, SCRAM), which a latency toxic would multiply.
POOL_MIN_IDLE = 4
POOL_TOP_UP_INTERVAL_S = 1.0


class ConnectionPool:
    """A minimal pool that drops any connection that failed, so a failover is survived at once.

    Off-the-shelf pools back off before reconnecting after errors; a replica must instead try
    the (repointed) database proxy on the very next request.
    """

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.idle: list[psycopg.AsyncConnection[Any]] = []

    async def _borrow(self) -> psycopg.AsyncConnection[Any]:
        while self.idle:
            conn = self.idle.pop()
            if _usable(conn):
                return conn
            with contextlib.suppress(Exception):
                await conn.close()
        return await psycopg.AsyncConnection.connect(
            self.dsn, autocommit=True, prepare_threshold=None, connect_timeout=2
        )

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        conn = await self._borrow()
        try:
            yield conn
        except BaseException:
            # The idle ones most likely lead to the same dead server (a failover closes them
            # all): drop them too, or each would fail one more request.
            for dead in [conn, *self.idle]:
                with contextlib.suppress(Exception):
                    await dead.close()
            self.idle.clear()
            raise
        if conn.closed or len(self.idle) >= POOL_MAX_IDLE:
            await conn.close()
        else:
            self.idle.append(conn)

    async def top_up(self) -> None:
        """Open connections until ``POOL_MIN_IDLE`` are idle; a failure waits for the next round."""
        while len(self.idle) < POOL_MIN_IDLE:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.dsn, autocommit=True, prepare_threshold=None, connect_timeout=2
                )
            except (psycopg.Error, OSError):
                return
            self.idle.append(conn)

    async def keep_warm(self) -> None:
        while True:
            await self.top_up()
            await asyncio.sleep(POOL_TOP_UP_INTERVAL_S)

    async def close(self) -> None:
        while self.idle:
            await self.idle.pop().close()


def _usable(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Test on borrow: an idle connection with anything to read has been closed by the server
    or the proxy (a failover moves the proxy and closes every session)."""
    if conn.closed:
        return False
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return False
    return not readable


POOL_KEY = web.AppKey("pool", ConnectionPool)
INDEX_KEY = web.AppKey("index", int)


DB_ERRORS = (psycopg.Error, OSError, TimeoutError)


async def fetch_one(pool: ConnectionPool, sql: str, params: tuple[Any, ...],
                    timeout_s: float = QUERY_TIMEOUT_S) -> tuple[Any, ...] | None:
    """One statement, one round trip, bounded in time; a failed connection is dropped."""
    async with pool.connection() as conn:
        cursor = await asyncio.wait_for(conn.execute(sql, params), timeout_s)
        return await cursor.fetchone()


def _unavailable(exc: BaseException) -> web.Response:
    return web.json_response(
        {"error": "database unavailable", "detail": type(exc).__name__}, status=503
    )


async def create_payment(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": "body must be JSON"}, status=400)
    amount = body.get("amount_cents") if isinstance(body, dict) else None
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        return web.json_response(
            {"error": "amount_cents must be a positive whole number", "found": amount}, status=400
        )
    reference = body.get("reference")
    seq = body.get("seq")
    if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int)):
        return web.json_response({"error": "seq must be a whole number"}, status=400)
    try:
        row = await fetch_one(
            request.app[POOL_KEY],
            "INSERT INTO payments (amount_cents, reference, seq) VALUES (%s, %s, %s) RETURNING id",
            (amount, None if reference is None else str(reference), seq),
        )
    except DB_ERRORS as exc:
        return _unavailable(exc)
    assert row is not None
    return web.json_response(
        {"id": row[0], "seq": seq, "replica": request.app[INDEX_KEY]}, status=201
    )


async def get_payment(request: web.Request) -> web.Response:
    try:
        payment_id = int(request.match_info["id"])
    except ValueError:
        return web.json_response({"error": "id must be a whole number"}, status=400)
    try:
        row = await fetch_one(
            request.app[POOL_KEY],
            "SELECT id, amount_cents, reference, seq, created_at FROM payments WHERE id = %s",
            (payment_id,),
        )
    except DB_ERRORS as exc:
        return _unavailable(exc)
    if row is None:
        return web.json_response({"error": "not found"}, status=404)
    return web.json_response(
        {"id": row[0], "amount_cents": row[1], "reference": row[2], "seq": row[3],
         "created_at": row[4].isoformat()}
    )


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "pid": os.getpid()})


async def readyz(request: web.Request) -> web.Response:
    try:
        await fetch_one(request.app[POOL_KEY], "SELECT 1", (), READY_TIMEOUT_S)
    except DB_ERRORS as exc:
        return _unavailable(exc)
    return web.json_response({"status": "ready", "pid": os.getpid()})


def build_app(dsn: str, index: int) -> web.Application:
    app = web.Application()
    app[POOL_KEY] = ConnectionPool(dsn)
    app[INDEX_KEY] = index
    app.router.add_post("/payments", create_payment)
    app.router.add_get("/payments/{id}", get_payment)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)

    async def warm_pool(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(app[POOL_KEY].keep_warm())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await app[POOL_KEY].close()

    app.cleanup_ctx.append(warm_pool)
    return app


async def serve(port: int, dsn: str, index: int) -> None:
    runner = web.AppRunner(build_app(dsn, index), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gameday-sandbox-replica")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--cpus", default="", help="comma-separated CPUs to pin to")
    parser.add_argument("--sandbox", default="", help="state dir; names the process as ours")
    args = parser.parse_args(argv)
    keep_priority_in_own_session()
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    # The DSN carries the password: it comes through the environment, never the command line.
    dsn = os.environ.pop("GAMEDAY_SANDBOX_DSN")
    asyncio.run(serve(args.port, dsn, args.index))


if __name__ == "__main__":
    main()
