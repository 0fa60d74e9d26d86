"""The database proxy over real sockets: latency toxic, expiry, repoint, half-close and resets."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gameday.sandbox.proxy import LatencyToxic, TcpProxy

pytestmark = pytest.mark.integration

Event = tuple[str, dict[str, Any], float]

# An upstream in its own process, so that it can really die (SIGKILL) under the proxy.
ECHO_PROCESS = """
import socket, threading
srv = socket.create_server(("127.0.0.1", 0))
print(srv.getsockname()[1], flush=True)
def serve(conn):
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


class Events:
    """A list-appending event sink, with the monotonic time of each event."""

    def __init__(self) -> None:
        self.items: list[Event] = []

    def __call__(self, event: str, **details: Any) -> None:
        self.items.append((event, details, time.monotonic()))

    def named(self, name: str) -> list[Event]:
        return [e for e in self.items if e[0] == name]


class Upstream:
    """A line server: answers each line with ``reply`` (or echoes it), says bye on EOF."""

    def __init__(self, reply: bytes | None = None) -> None:
        self.reply = reply
        self.server: asyncio.Server | None = None
        self.port = 0
        self.ended: list[float] = []  # when each connection saw EOF or a reset

    async def start(self) -> Upstream:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(self.reply if self.reply is not None else line)
                await writer.drain()
            writer.write(b"bye\n")  # only possible when the client half-closed
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            self.ended.append(time.monotonic())
            writer.close()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _round_trip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      line: bytes = b"ping\n") -> float:
    started = time.monotonic()
    writer.write(line)
    await writer.drain()
    assert await reader.readline() == line
    return time.monotonic() - started


async def _median_rtt_ms(port: int, clients: int, each: int) -> float:
    """Median round trip over ``clients`` concurrent connections doing ``each`` requests."""
    async def one_client() -> list[float]:
        reader, writer = await _connect(port)
        try:
            return [await _round_trip(reader, writer) for _ in range(each)]
        finally:
            writer.close()
    results = await asyncio.gather(*(one_client() for _ in range(clients)))
    return statistics.median(t for r in results for t in r) * 1000


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """True if the connection ends (EOF or reset) within ``seconds``."""
    try:
        return await asyncio.wait_for(reader.read(), seconds) == b""
    except ConnectionError:
        return True
    except TimeoutError:
        return False


def _run(scenario: Callable[[TcpProxy, Upstream, Events], Awaitable[None]],
         reply: bytes | None = None) -> None:
    async def main() -> None:
        upstream = await Upstream(reply).start()
        events = Events()
        proxy = TcpProxy(upstream.port, events)
        await proxy.start()
        try:
            await scenario(proxy, upstream, events)
        finally:
            await proxy.close()
            await upstream.close()
    asyncio.run(main())


def test_latency_toxic_adds_latency_once_and_expires_by_itself() -> None:
    async def scenario(proxy: TcpProxy, upstream: Upstream, events: Events) -> None:
        baseline = await _median_rtt_ms(proxy.port, clients=4, each=5)
        deadline = time.monotonic() + 1.5
        proxy.add_latency(LatencyToxic("f-lat", 200.0, 0.0, deadline))
        toxic = await _median_rtt_ms(proxy.port, clients=4, each=5)
        print(f"baseline {baseline:.2f} ms, with 200 ms toxic {toxic:.2f} ms")
        assert 180 <= toxic - baseline <= 220
        assert time.monotonic() < deadline, "measurement overran the toxic"

        await asyncio.sleep(deadline - time.monotonic() + 0.05)
        after = await _median_rtt_ms(proxy.port, clients=4, each=5)
        print(f"after expiry {after:.2f} ms")
        assert after - baseline < 20
        assert proxy.toxic is None
        added, removed = events.named("toxic_added"), events.named("toxic_removed")
        assert [e[1]["fault_id"] for e in added] == ["f-lat"]
        assert added[0][1]["latency_ms"] == 200.0
        assert 1.4 < added[0][1]["expires_in_s"] <= 1.5
        assert [e[1] for e in removed] == [{"fault_id": "f-lat", "reason": "expired"}]
        assert abs(removed[0][2] - deadline) < 0.05  # removed at its deadline, by the proxy
    _run(scenario)


def test_delays_do_not_add_up_and_order_is_kept_with_jitter() -> None:
    async def scenario(proxy: TcpProxy, upstream: Upstream, events: Events) -> None:
        reader, writer = await _connect(proxy.port)
        proxy.add_latency(LatencyToxic("f-jit", 100.0, 50.0, time.monotonic() + 10))
        started = time.monotonic()
        lines = [f"{i}\n".encode() for i in range(20)]
        for line in lines:  # 20 requests 10 ms apart, all in flight at once
            writer.write(line)
            await writer.drain()
            await asyncio.sleep(0.01)
        got = [await reader.readline() for _ in lines]
        took = time.monotonic() - started
        print(f"20 pipelined answers at 100±50 ms took {took * 1000:.0f} ms")
        assert got == lines
        assert took < 0.2 + 0.15 + 0.1  # one latency for the lot, not one per chunk
        writer.close()
    _run(scenario)


def test_chunks_queued_when_the_toxic_goes_keep_their_due_time_and_order() -> None:
    async def scenario(proxy: TcpProxy, upstream: Upstream, events: Events) -> None:
        reader, writer = await _connect(proxy.port)
        await _round_trip(reader, writer)  # connected to the upstream
        proxy.add_latency(LatencyToxic("f-q", 300.0, 0.0, time.monotonic() + 10))
        started = time.monotonic()
        writer.write(b"a\n")
        await asyncio.sleep(0.05)
        assert proxy.remove_latency("f-q")
        writer.write(b"b\n")  # answered undelayed, but must not overtake "a"
        assert await reader.readline() == b"a\n"
        a_at = time.monotonic() - started
        assert await reader.readline() == b"b\n"
        b_at = time.monotonic() - started
        assert 0.28 <= a_at <= 0.34 and b_at >= a_at
        assert await _round_trip(reader, writer) < 0.02  # new chunks are not delayed
        writer.close()
    _run(scenario)


def test_remove_latency_is_idempotent() -> None:
    async def scenario(proxy: TcpProxy, upstream: Upstream, events: Events) -> None:
        proxy.add_latency(LatencyToxic("f-1", 50.0, 0.0, time.monotonic() + 10))
        assert not proxy.remove_latency("another-fault")
        assert proxy.toxic is not None
        assert proxy.remove_latency("f-1")
        assert not proxy.remove_latency("f-1")
        assert not proxy.remove_latency()
        assert [e[1] for e in events.named("toxic_removed")] == [
            {"fault_id": "f-1", "reason": "reverted"}]

        # A replaced toxic is reported gone; the expiry timer of the old one is cancelled.
        proxy.add_latency(LatencyToxic("f-2", 50.0, 0.0, time.monotonic() + 0.1))
        proxy.add_latency(LatencyToxic("f-3", 50.0, 0.0, time.monotonic() + 10))
        await asyncio.sleep(0.2)
        assert proxy.toxic is not None and proxy.toxic.fault_id == "f-3"
        assert proxy.remove_latency()
        assert [(e[1]["fault_id"], e[1]["reason"]) for e in events.named("toxic_removed")] == [
            ("f-1", "reverted"), ("f-2", "replaced"), ("f-3", "reverted")]
    _run(scenario)


def test_repoint_closes_sessions_and_new_ones_reach_the_new_upstream() -> None:
    async def scenario(proxy: TcpProxy, old: Upstream, events: Events) -> None:
        new = await Upstream(b"new\n").start()
        try:
            reader, writer = await _connect(proxy.port)
            writer.write(b"x\n")
            assert await reader.readline() == b"old\n"
            assert proxy.sessions == 1
            await proxy.repoint(new.port)
            assert await _closed_within(reader, 0.5)
            assert proxy.sessions == 0
            writer.close()
            assert [e[1] for e in events.named("proxy_repointed")] == [
                {"old_port": old.port, "new_port": new.port, "closed_sessions": 1}]
            assert proxy.upstream_port == new.port

            reader, writer = await _connect(proxy.port)
            writer.write(b"x\n")
            assert await reader.readline() == b"new\n"
            writer.close()
        finally:
            await new.close()
    _run(scenario, reply=b"old\n")


def test_upstream_death_closes_the_client() -> None:
    async def main() -> None:
        upstream = await asyncio.create_subprocess_exec(
            sys.executable, "-c", ECHO_PROCESS, stdout=asyncio.subprocess.PIPE)
        try:
            assert upstream.stdout is not None
            port = int(await upstream.stdout.readline())
            proxy = TcpProxy(port, Events())
            await proxy.start()
            reader, writer = await _connect(proxy.port)
            await _round_trip(reader, writer)
            upstream.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            assert await _closed_within(reader, 0.5)
            print(f"client saw the upstream's death after {(time.monotonic() - killed) * 1000:.1f} ms")
            writer.close()
            await _until(lambda: proxy.sessions == 0, 0.5)
            await proxy.close()
        finally:
            with contextlib.suppress(ProcessLookupError):
                upstream.kill()
            await upstream.wait()
    asyncio.run(main())


def test_upstream_reset_and_client_death_close_the_other_side() -> None:
    async def scenario(proxy: TcpProxy, upstream: Upstream, events: Events) -> None:
        # A client that dies: its upstream connection ends at once.
        reader, writer = await _connect(proxy.port)
        await _round_trip(reader, writer)
        writer.transport.abort()
        await _until(lambda: len(upstream.ended) == 1, 0.5)
        await _until(lambda: proxy.sessions == 0, 0.5)

        # An upstream that resets: the client connection ends at once.
        assert upstream.server is not None
        accepted: list[asyncio.StreamWriter] = []

        async def resetting(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            accepted.append(w)
        server = await asyncio.start_server(resetting, "127.0.0.1", 0)
        await proxy.repoint(server.sockets[0].getsockname()[1])
        reader, writer = await _connect(proxy.port)
        await _until(lambda: len(accepted) == 1, 0.5)
        accepted[0].transport.abort()
        assert await _closed_within(reader, 0.5)
        writer.close()
        server.close()
        await server.wait_closed()
    _run(scenario)


def test_unreachable_upstream_closes_the_client_at_once() -> None:
    async def main() -> None:
        with socket.create_server(("127.0.0.1", 0)) as sock:
            dead_port = sock.getsockname()[1]  # free again once closed: nobody listens there
        proxy = TcpProxy(dead_port, Events())
        await proxy.start()
        reader, writer = await _connect(proxy.port)
        assert await _closed_within(reader, 0.2)
        writer.close()
        await proxy.close()
    asyncio.run(main())


def test_half_close_is_forwarded_both_ways() -> None:
    async def scenario(proxy: TcpProxy, upstream: Upstream, events: Events) -> None:
        proxy.add_latency(LatencyToxic("f-h", 50.0, 0.0, time.monotonic() + 10))
        reader, writer = await _connect(proxy.port)
        writer.write(b"last words\n")
        writer.write_eof()  # we are done sending, but still listening
        assert await reader.readline() == b"last words\n"
        assert await reader.readline() == b"bye\n"  # sent by the upstream after our EOF
        assert await reader.read() == b""  # and its EOF reached us after the data
        writer.close()
        await _until(lambda: proxy.sessions == 0, 0.5)
    _run(scenario)


def test_many_concurrent_sessions_and_close() -> None:
    async def scenario(proxy: TcpProxy, upstream: Upstream, events: Events) -> None:
        proxy.add_latency(LatencyToxic("f-many", 20.0, 10.0, time.monotonic() + 10))
        conns = await asyncio.gather(*(_connect(proxy.port) for _ in range(100)))
        rtts = await asyncio.gather(*(_round_trip(r, w, f"{i}\n".encode())
                                      for i, (r, w) in enumerate(conns)))
        assert all(0.009 <= t < 0.5 for t in rtts)
        assert proxy.sessions == 100
        await proxy.close()
        assert proxy.sessions == 0
        assert all([await _closed_within(r, 0.5) for r, _ in conns])
        for _, w in conns:
            w.close()
        with pytest.raises(OSError):
            await _connect(proxy.port)
        assert events.named("toxic_removed")[-1][1] == {"fault_id": "f-many", "reason": "closed"}
    _run(scenario)


async def _until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_bulk_transfer_arrives_intact_through_the_toxic() -> None:
    async def scenario(proxy: TcpProxy, upstream: Upstream, events: Events) -> None:
        proxy.add_latency(LatencyToxic("f-bulk", 30.0, 20.0, time.monotonic() + 10))
        reader, writer = await _connect(proxy.port)
        payload = b"".join(f"{i:08d}".encode() * 128 + b"\n" for i in range(8192))  # 8 MiB

        async def send() -> None:
            writer.write(payload)
            await writer.drain()
            writer.write_eof()
        sender = asyncio.create_task(send())
        received = await asyncio.wait_for(reader.read(), 10)
        await sender
        assert received == payload + b"bye\n"
        writer.close()
    _run(scenario)
