"""A TCP proxy with a latency toxic, between the payments API and PostgreSQL.

The kernel here has no ``netem``, so latency is injected in user space, toxiproxy-style: every
chunk flowing upstream -> client is delivered ``latency_ms ± jitter`` after it was read, in
order. Client -> upstream is not delayed, so a request/response round trip gains the latency
exactly once. Each session keeps a delay line of ``(due, data)``; a chunk read at ``t`` is due
at ``max(t + delay, previous due)``, so delays never add up across chunks.

Half-close is forwarded (EOF on one side becomes ``write_eof`` on the other); a reset on either
side aborts both. Everything runs on the caller's event loop: call the methods from it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from dataclasses import dataclass

from gameday.errors import InputError
from gameday.sandbox.events import EventSink

log = logging.getLogger(__name__)

READ_SIZE = 64 * 1024
# Bytes a session may hold in its delay line before it stops reading the upstream.
DELAY_LINE_LIMIT = 4 * 1024 * 1024
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class LatencyToxic:
    fault_id: str
    latency_ms: float
    jitter_ms: float
    expires_at: float  # time.monotonic() deadline

    def delay_s(self) -> float:
        jitter = random.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
        return max(0.0, self.latency_ms + jitter) / 1000.0


class _DelayLine:
    """Chunks waiting for their due time; one producer, one consumer, bounded in bytes."""

    def __init__(self, limit: int = DELAY_LINE_LIMIT) -> None:
        self._items: deque[tuple[float, bytes]] = deque()
        self._bytes = 0
        self._limit = limit
        self._last_due = 0.0
        self._not_empty = asyncio.Event()
        self._not_full = asyncio.Event()

    async def put(self, data: bytes, delay_s: float) -> None:
        """Queue ``data`` (b"" is EOF) due ``delay_s`` from now, never before earlier chunks."""
        while self._bytes >= self._limit:  # back-pressure: stop reading a fast upstream
            self._not_full.clear()
            await self._not_full.wait()
        self._last_due = max(time.monotonic() + delay_s, self._last_due)
        self._items.append((self._last_due, data))
        self._bytes += len(data)
        self._not_empty.set()

    async def get(self) -> bytes:
        """The next chunk, once it is due."""
        while not self._items:
            self._not_empty.clear()
            await self._not_empty.wait()
        due, data = self._items.popleft()
        self._bytes -= len(data)
        self._not_full.set()
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        return data


class _Session:
    """One client connection and its upstream connection."""

    def __init__(self, proxy: TcpProxy, client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                 upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self.proxy = proxy
        self.client_r, self.client_w = client
        self.up_r, self.up_w = upstream
        self.line = _DelayLine()

    async def run(self) -> bool:
        """Forward both ways until both sides sent EOF (True) or one side failed (False)."""
        tasks = [asyncio.create_task(self._client_to_upstream()),
                 asyncio.create_task(self._upstream_to_line()),
                 asyncio.create_task(self._line_to_client())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            failed = [t for t in done if t.exception() is not None]
            if failed:
                log.debug("proxy session reset: %r", failed[0].exception())
            return not failed
        finally:
            # Whatever ended the session (a reset, a cancel), the other tasks have nothing left
            # to do; the caller closes the sockets.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _client_to_upstream(self) -> None:
        while data := await self.client_r.read(READ_SIZE):
            self.up_w.write(data)
            await self.up_w.drain()
        _write_eof(self.up_w)

    async def _upstream_to_line(self) -> None:
        while data := await self.up_r.read(READ_SIZE):
            await self.line.put(data, self.proxy.current_delay_s())
        await self.line.put(b"", 0.0)  # EOF follows the data still queued, undelayed itself

    async def _line_to_client(self) -> None:
        while data := await self.line.get():
            self.client_w.write(data)
            await self.client_w.drain()
        _write_eof(self.client_w)


def _write_eof(writer: asyncio.StreamWriter) -> None:
    if writer.can_write_eof() and not writer.is_closing():
        writer.write_eof()


def _end(writer: asyncio.StreamWriter | None, clean: bool) -> None:
    # A clean end still has bytes to flush: close. Otherwise (a reset, a repoint) the session is
    # over at once: abort, so the peer gets a reset rather than a half-open socket.
    if writer is None:
        return
    if clean:
        writer.close()
    else:
        writer.transport.abort()


class TcpProxy:
    """Listens on loopback and forwards every connection to ``upstream_port``."""

    def __init__(self, upstream_port: int, emit: EventSink, host: str = "127.0.0.1") -> None:
        self._upstream_port = upstream_port
        self._emit = emit
        self._host = host
        self._server: asyncio.Server | None = None
        self._port = 0
        self._toxic: LatencyToxic | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def port(self) -> int:
        return self._port

    @property
    def upstream_port(self) -> int:
        return self._upstream_port

    @property
    def toxic(self) -> LatencyToxic | None:
        return self._toxic

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self, port: int = 0) -> int:
        """Listen on 127.0.0.1:``port`` (0: any free port); return the bound port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self._port = int(self._server.sockets[0].getsockname()[1])
        return self._port

    async def close(self) -> None:
        """Stop listening and close every session."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        await self._close_sessions()
        if self._server is not None:
            await self._server.wait_closed()
        if self._toxic is not None:
            self._drop_toxic("closed")

    async def repoint(self, upstream_port: int) -> None:
        """Send new sessions to ``upstream_port`` and close the existing ones, like a moved VIP."""
        old_port = self._upstream_port
        self._upstream_port = upstream_port  # sessions starting from now connect to the new one
        closed = await self._close_sessions()
        self._emit("proxy_repointed", old_port=old_port, new_port=upstream_port,
                   closed_sessions=closed)

    async def _close_sessions(self) -> int:
        tasks = list(self._sessions)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return len(tasks)

    # -- sessions ----------------------------------------------------------------------------
    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)  # before any await, so a repoint or close sees it
        up_w: asyncio.StreamWriter | None = None
        clean = False
        try:
            if self._closing:
                return
            try:
                upstream = await asyncio.wait_for(
                    asyncio.open_connection(self._host, self._upstream_port), CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                log.debug("proxy: upstream %s unreachable: %r", self._upstream_port, exc)
                return
            up_w = upstream[1]
            clean = await _Session(self, (client_r, client_w), upstream).run()
        finally:
            self._sessions.discard(task)
            _end(client_w, clean)
            _end(up_w, clean)

    # -- the latency toxic -------------------------------------------------------------------
    def current_delay_s(self) -> float:
        """The delay for a chunk read now: 0 without a toxic or past its deadline."""
        toxic = self._toxic
        if toxic is None or time.monotonic() >= toxic.expires_at:
            return 0.0
        return toxic.delay_s()

    def add_latency(self, toxic: LatencyToxic) -> None:
        """Install ``toxic`` in place of any current one; it removes itself at its deadline."""
        if toxic.latency_ms < 0 or toxic.jitter_ms < 0:
            raise InputError("latency toxic", "latency_ms and jitter_ms >= 0",
                             (toxic.latency_ms, toxic.jitter_ms), "pass non-negative milliseconds")
        loop = asyncio.get_running_loop()
        if self._toxic is not None:
            self._drop_toxic("replaced")
        self._toxic = toxic
        expires_in = toxic.expires_at - time.monotonic()
        # Our own timer, so the toxic goes even if the controller never gets to revert it.
        self._expiry = loop.call_later(max(0.0, expires_in), self._expire, toxic.fault_id)
        self._emit("toxic_added", fault_id=toxic.fault_id, latency_ms=toxic.latency_ms,
                   jitter_ms=toxic.jitter_ms, expires_in_s=round(expires_in, 3))

    def remove_latency(self, fault_id: str | None = None) -> bool:
        """Remove the toxic if it is ``fault_id``'s (any toxic when None); False if none was."""
        if self._toxic is None or fault_id not in (None, self._toxic.fault_id):
            return False
        self._drop_toxic("reverted")
        return True

    def _expire(self, fault_id: str) -> None:
        if self._toxic is not None and self._toxic.fault_id == fault_id:
            self._drop_toxic("expired")

    def _drop_toxic(self, reason: str) -> None:
        toxic = self._toxic
        assert toxic is not None
        self._toxic = None
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self._emit("toxic_removed", fault_id=toxic.fault_id, reason=reason)
