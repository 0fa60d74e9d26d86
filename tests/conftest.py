"""Shared test helpers: the CLI as a real subprocess, and real sandboxes."""

from __future__ import annotations

import dataclasses
import itertools
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from gameday.sandbox import postgres as pg
from helpers import Sandbox, run_cli


@pytest.fixture
def gameday_cli() -> Any:
    return run_cli


@pytest.fixture
def sandbox_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    started: list[Sandbox] = []

    def start(cells: int = 1, replicas: int = 3) -> Sandbox:
        box = Sandbox(tmp_path_factory.mktemp("sandbox"))
        started.append(box)
        box.cli("sandbox", "up", "--cells", str(cells), "--replicas", str(replicas), "--quiet",
                check=True)
        return box

    yield start
    for box in started:
        box.cli("sandbox", "down")


@pytest.fixture(scope="module")
def shared_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One cell for the tests of a module that leave it healthy behind them."""
    box = Sandbox(tmp_path_factory.mktemp("shared-sandbox"))
    box.cli("sandbox", "up", "--quiet", check=True)
    yield box
    box.cli("sandbox", "down")


# ---------------------------------------------------------- a real PostgreSQL for stores


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PgServer:
    port: int
    creds: pg.PgCredentials
    database: str = "gameday_store"
    names: Iterator[int] = dataclasses.field(default_factory=itertools.count)

    def new_database_url(self) -> str:
        """A URL to a fresh, empty schema, so tests never see each other's rows.

        A schema (through search_path), not a database: CREATE DATABASE takes ~0.4 s here.
        """
        name = f"test_{next(self.names)}"
        with psycopg.connect(self.creds.dsn(self.port, dbname=self.database), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        password = quote(self.creds.password, safe="")
        return (f"postgresql://{self.creds.user}:{password}@127.0.0.1:{self.port}/{self.database}"
                f"?options=-csearch_path%3D{name}")


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    run_as = pg.pg_run_as()
    work = tmp_path_factory.mktemp("store-pg")
    data_root = pg.pg_data_root(work, run_as)
    creds = pg.new_credentials()
    proc: subprocess.Popen[bytes] | None = None
    try:
        bins = pg.find_pg_binaries()
        port = free_port()
        pg.init_primary(bins, data_root / "store", port, creds, run_as)
        proc = pg.start_node(bins, data_root / "store", work / "logs" / "store.log", run_as)
        pg.wait_ready(port, creds, 30.0, dbname="postgres")
        # init_primary asks for a synchronous standby; there is none, so commits would hang.
        pg.set_synchronous_standbys(port, creds, "")
        server = PgServer(port, creds)
        with psycopg.connect(creds.dsn(port, dbname="postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{server.database}"')
        yield server
    finally:
        if proc is not None:
            pg.stop_node(proc, timeout_s=5.0)
        shutil.rmtree(data_root, ignore_errors=True)
