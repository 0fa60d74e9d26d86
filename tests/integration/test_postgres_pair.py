"""A real PostgreSQL primary + synchronous standby: replication, failover with no lost write, rebuild."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from gameday.sandbox import postgres as pg

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

READY_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Node:
    name: str
    port: int
    proc: subprocess.Popen[bytes]


@dataclass
class Cluster:
    """Starts nodes and remembers every process, so the fixture can always clean up."""

    bins: pg.PgBinaries
    run_as: pg.RunAs | None
    data_root: Path
    log_dir: Path
    creds: pg.PgCredentials
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, name: str, port: int) -> Node:
        proc = pg.start_node(self.bins, self.data_root / name, self.log_dir / f"{name}.log", self.run_as)
        self.procs.append(proc)
        pg.wait_ready(port, self.creds, READY_TIMEOUT_S, dbname="postgres")
        return Node(name, port, proc)

    def primary(self, name: str = "pg-1") -> Node:
        port = free_port()
        pg.init_primary(self.bins, self.data_root / name, port, self.creds, self.run_as)
        node = self.start(name, port)
        pg.bootstrap_schema(port, self.creds)
        return node

    def standby(self, primary: Node, name: str) -> Node:
        port = free_port()
        pg.create_standby(self.bins, primary.port, self.data_root / name, port, self.creds, self.run_as,
                          application_name=name)
        node = self.start(name, port)
        pg.wait_streaming(primary.port, self.creds, name, READY_TIMEOUT_S)
        pg.set_synchronous_standbys(primary.port, self.creds, "*")
        return node

    def pair(self) -> tuple[Node, Node]:
        primary = self.primary()
        return primary, self.standby(primary, "pg-2")

    def conn(self, node: Node) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.creds.dsn(node.port), autocommit=True, connect_timeout=3)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    run_as = pg.pg_run_as()
    data_root = pg.pg_data_root(tmp_path, run_as)
    box = Cluster(bins=pg.find_pg_binaries(), run_as=run_as, data_root=data_root,
                  log_dir=tmp_path / "logs", creds=pg.new_credentials())
    try:
        yield box
    finally:
        for proc in box.procs:
            pg.stop_node(proc, timeout_s=5.0)  # escalates to SIGKILL of every process of the node
        shutil.rmtree(data_root, ignore_errors=True)


def insert(conn: psycopg.Connection[tuple[object, ...]], seq: int, reference: str) -> None:
    conn.execute("INSERT INTO payments (amount_cents, reference, seq) VALUES (%s, %s, %s)",
                 (100 + seq, reference, seq))


def seqs_on(cluster: Cluster, node: Node, reference: str) -> set[int]:
    with cluster.conn(node) as conn:
        rows = conn.execute("SELECT seq FROM payments WHERE reference = %s", (reference,)).fetchall()
    return {int(str(r[0])) for r in rows}


def wait_visible(cluster: Cluster, node: Node, reference: str, seq: int, timeout_s: float = 5.0) -> None:
    # A synchronous commit waits for the standby to flush, not to replay: poll for visibility.
    deadline = time.monotonic() + timeout_s
    while seq not in seqs_on(cluster, node, reference):
        assert time.monotonic() < deadline, f"seq {seq} of {reference} never reached {node.name}"
        time.sleep(0.02)


def kill_node(node: Node) -> None:
    """SIGKILL the postmaster and every backend: a lost primary host."""
    pg.kill_node_processes(node.proc.pid)
    node.proc.wait(timeout=5)


class Writer(threading.Thread):
    """Inserts seq 1, 2, 3... with autocommit and records each acknowledged seq until it fails."""

    def __init__(self, cluster: Cluster, node: Node, reference: str) -> None:
        super().__init__(name="writer", daemon=True)
        self.cluster, self.node, self.reference = cluster, node, reference
        self.acked: list[int] = []
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            with self.cluster.conn(self.node) as conn:
                seq = 0
                while not self.stop.is_set():
                    seq += 1
                    insert(conn, seq, self.reference)
                    self.acked.append(seq)
        except (psycopg.Error, OSError) as exc:
            self.error = exc  # expected once the primary is killed


def test_write_on_primary_reaches_sync_standby(cluster: Cluster) -> None:
    primary, standby = cluster.pair()

    assert pg.is_in_recovery(standby.port, cluster.creds)
    assert not pg.is_in_recovery(primary.port, cluster.creds)
    assert pg.replication_state(primary.port, cluster.creds) == [
        {"application_name": "pg-2", "state": "streaming", "sync_state": "sync"}]
    with cluster.conn(primary) as conn:
        insert(conn, 1, "basic")
    wait_visible(cluster, standby, "basic", 1)


def gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rfind(")") + 2] in "ZX"


@pytest.mark.parametrize("kill", ["killpg", "every_process"])
def test_primary_killed_mid_stream_loses_no_acknowledged_write(cluster: Cluster, kill: str) -> None:
    """killpg (what the cell controller does) kills the postmaster alone: PostgreSQL children call
    setsid(), so backends die on noticing its death; every_process kills them all at once."""
    primary, standby = cluster.pair()
    writer = Writer(cluster, primary, "failover")
    writer.start()
    deadline = time.monotonic() + 10
    while len(writer.acked) < 200 and writer.is_alive():
        assert time.monotonic() < deadline, "writer too slow"
        time.sleep(0.01)

    killed = time.monotonic()
    if kill == "killpg":
        os.killpg(primary.proc.pid, signal.SIGKILL)
    else:
        victims = pg.kill_node_processes(primary.proc.pid)
    pg.promote(standby.port, cluster.creds)
    took = time.monotonic() - killed
    writer.join(timeout=10)
    primary.proc.wait(timeout=5)

    assert not writer.is_alive()
    assert writer.error is not None, "the writer should have lost its primary"
    acked = set(writer.acked)
    lost = sorted(acked - seqs_on(cluster, standby, "failover"))
    print(f"\n{kill}: kill -> promoted {took:.3f} s; acknowledged {len(acked)}, lost {len(lost)}")
    assert lost == []
    assert took < 2.0
    assert not pg.is_in_recovery(standby.port, cluster.creds)
    if kill == "every_process":
        assert len(victims) > 5
        # SIGKILL lands when a process next leaves the kernel: one in uninterruptible disk I/O
        # on a busy machine dies a moment later.
        deadline = time.monotonic() + 5
        while not all(gone(pid) for pid in victims) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [pid for pid in victims if not gone(pid)] == []
    # With no standby left, a commit on the promoted node must not wait for one.
    with cluster.conn(standby) as conn:
        conn.execute("SET statement_timeout = '3s'")
        insert(conn, 10**6, "failover")


def test_new_standby_from_promoted_node_streams_sync(cluster: Cluster) -> None:
    primary, standby = cluster.pair()
    kill_node(primary)
    pg.promote(standby.port, cluster.creds)

    started = time.monotonic()
    rebuilt = cluster.standby(standby, "pg-3")
    print(f"\nstandby rebuilt in {time.monotonic() - started:.3f} s")

    # The base backup's own walsender may linger a moment after pg_basebackup exits (the
    # server ends it asynchronously): then only the new standby streams, synchronously.
    want = [{"application_name": "pg-3", "state": "streaming", "sync_state": "sync"}]
    deadline = time.monotonic() + 5
    while (state := pg.replication_state(standby.port, cluster.creds)) != want \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state == want
    assert pg.is_in_recovery(rebuilt.port, cluster.creds)
    with cluster.conn(standby) as conn:
        conn.execute("SET statement_timeout = '5s'")  # a hung sync commit fails instead of hanging
        insert(conn, 7, "rebuilt")
    wait_visible(cluster, rebuilt, "rebuilt", 7)


def test_binaries_and_unprivileged_user() -> None:
    bins = pg.find_pg_binaries()
    assert (bins.tool("initdb")).is_file()
    assert bins.version >= 10
    run_as = pg.pg_run_as()
    if os.geteuid() == 0:
        assert run_as is not None
        assert run_as.uid != 0 and run_as.user != "root"
    else:
        assert run_as is None
