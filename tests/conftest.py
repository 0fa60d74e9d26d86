"""Shared test helpers: the CLI as a real subprocess, and real sandboxes."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from gameday.sandbox import postgres as pg
from helpers import Sandbox, run_cli

# ---------------------------------------------------------- parallel runs (pytest-xdist)
#
# Tests that compare measured timings with bounds (latency added, p95 ratios under CPU stress,
# a revert within a second, burner duty cycles) run one at a time, in one work unit, in the
# first worker (gw0), at normal priority; every other worker, and all it starts (sandboxes,
# PostgreSQL, scheduler processes), runs at nice 19: it uses what CPU the timing tests leave
# and never slows them down. Modules whose module-scoped fixture must run once (several
# scheduler processes waiting for one minute) are one work unit each.
#
# The units are made by our own scheduler: pytest 9 builds node ids in a way pytest-xdist
# 3.8's `xdist_group` marks no longer reach, so `--dist loadgroup` would split groups.
TIMING_UNIT = "timing"
TIMING_WORKER = "gw0"
OTHERS_NICE = 19
TIMING_MODULES = ("tests/e2e/test_sandbox_cli.py", "tests/e2e/test_sigterm_phases.py",
                  "tests/e2e/test_sandbox_disk.py",
                  # the runner against a plain client, and one verdict over identical trials:
                  # at nice 19 under the other workers the cell itself answers late
                  "tests/e2e/test_sampler_trust.py",
                  "tests/integration/test_burner.py", "tests/integration/test_proxy.py",
                  "tests/integration/test_sampler.py", "tests/integration/test_autoscaler.py")
TIMING_TESTS = (
    "tests/e2e/test_engine.py::test_experiment_passes_and_agrees_with_ground_truth",
    "tests/e2e/test_engine.py::test_a_cell_that_cannot_recover_is_not_recovered_and_still_stored",
    "tests/e2e/test_engine.py::test_demo_runs_the_rotation_and_agrees_with_ground_truth",
    "tests/e2e/test_engine.py::test_halt_condition_reverts_within_a_second",
    "tests/e2e/test_engine.py::test_sigterm_halts_reverts_and_still_records_the_run",
)
WHOLE_MODULES = ("tests/e2e/test_scheduler_replicas.py", "tests/e2e/test_scheduler.py")


def work_unit(nodeid: str) -> str:
    """Which tests must run together, in one worker, one after the other."""
    module = nodeid.split("::")[0]
    if module in TIMING_MODULES or nodeid.split("[")[0] in TIMING_TESTS:
        return TIMING_UNIT
    return module if module in WHOLE_MODULES else nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnits(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            # The timing unit goes to gw0 with its first assignment; the others take it only
            # when nothing else is left (gw0 never needs to: it starts with it).
            if TIMING_UNIT in self.workqueue:
                first = node.gateway.id == TIMING_WORKER
                self.workqueue.move_to_end(TIMING_UNIT, last=not first)
            super()._assign_work_unit(node)

    return WorkUnits(config, log)


# Nice orders processes only within their session group where the kernel groups sessions for
# CPU time (sched_autogroup), and every PostgreSQL backend leads a session of its own: the other
# workers' databases would weigh as much as the whole timing unit. Where the run may (root),
# it turns the grouping off for its duration, so nice 19 means what it says; it is put back at
# the end.
AUTOGROUP_SWITCH = Path("/proc/sys/kernel/sched_autogroup_enabled")
AUTOGROUP_RESTORE = pytest.StashKey[str]()
AUTOGROUP_NOTE = pytest.StashKey[str]()


def _autogroups_off(config: pytest.Config) -> str:
    try:
        before = AUTOGROUP_SWITCH.read_text(encoding="ascii").strip()
        if before != "0":
            AUTOGROUP_SWITCH.write_text("0", encoding="ascii")
            config.stash[AUTOGROUP_RESTORE] = before
            return "sched_autogroup: off for this run (restored after), so nice holds"
        return "sched_autogroup: off"
    except OSError as exc:
        return f"sched_autogroup: left as it is ({exc.strerror}); timing tests share CPU"


def pytest_configure(config: pytest.Config) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        config.stash[AUTOGROUP_NOTE] = _autogroups_off(config)
    elif worker != TIMING_WORKER:
        os.nice(OTHERS_NICE)



def pytest_report_header(config: pytest.Config) -> str | None:
    return config.stash.get(AUTOGROUP_NOTE, None)


def pytest_unconfigure(config: pytest.Config) -> None:
    before = config.stash.get(AUTOGROUP_RESTORE, None)
    if before is not None:
        with contextlib.suppress(OSError):
            AUTOGROUP_SWITCH.write_text(before, encoding="ascii")


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
