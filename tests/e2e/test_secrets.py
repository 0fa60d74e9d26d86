"""Secrets never surface: one real run whose activities echo every kind of secret into
chaoslib's log lines, exception texts and journal, then everything the run left is searched.

The secrets: one inline in the experiment, one read from the environment, one of the cell's
``secrets`` (which the experiment reaches through a configuration value, so only the cell's
list marks it secret) and the store's password (a PostgreSQL role of its own, with an "@" in
its password). Each carries a random marker; no marker may appear in any table of the store,
any file of the report, any output of any command or any file under ``.gameday/``.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
import yaml

from gameday.engine.runner import record_skipped
from gameday.store import Store
from helpers import Sandbox

pytestmark = pytest.mark.integration

PROBES_MODULE = "secret_echo_probes"
# An opted-in probe (allow.python_modules) that fails with its argument in the message: the
# chaoslib error line and journal exception a secret-bearing argument produces.
PROBES = '''
def refuse(value, configuration=None, secrets=None):
    raise ValueError(f"refused to use {value}")
'''


@dataclass(frozen=True)
class Secrets:
    """Four secrets, each made of random markers: a marker is in every piece and every text
    form of its secret, so finding none of them means finding no part of any secret."""

    markers: dict[str, str]  # marker -> which secret

    @classmethod
    def new(cls) -> Secrets:
        names = ("inline", "env", "cell", "store", "store")
        return cls({secrets.token_hex(6): name for name in names})

    def _of(self, name: str) -> list[str]:
        return [m for m, n in self.markers.items() if n == name]

    @property
    def inline(self) -> str:
        return f"Inline-{self._of('inline')[0]}"

    @property
    def env(self) -> str:
        return f"Env-{self._of('env')[0]}"

    @property
    def cell(self) -> str:
        return f"Cell-{self._of('cell')[0]}"

    @property
    def store_password(self) -> str:
        head, tail = self._of("store")
        return f"{head}@{tail}"  # an unescaped "@" must not leak the tail either

    def leaks(self, text: str) -> list[str]:
        return sorted({name for marker, name in self.markers.items() if marker in text})


def store_role(server: Any, password: str) -> str:
    """A role with ``password`` owning a schema of the same name."""
    name = f"gd_secrets_{secrets.token_hex(4)}"
    with psycopg.connect(server.creds.dsn(server.port, dbname=server.database),
                         autocommit=True) as conn:
        conn.execute(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'")
        conn.execute(f'CREATE SCHEMA "{name}" AUTHORIZATION "{name}"')
    return name


def dump_schema(server: Any, schema: str) -> dict[str, str]:
    """Every row of every table of ``schema``, as JSON text per table."""
    with psycopg.connect(server.creds.dsn(server.port, dbname=server.database)) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (schema,))]
        return {t: "\n".join(r[0] for r in conn.execute(
            f'SELECT row_to_json(r)::text FROM "{schema}"."{t}" r')) for t in tables}


def experiment(path: Path, known: Secrets) -> Path:
    everything = "${inline_token} ${env_token} ${cell_token} ${gameday_store}"
    doc = {
        "version": "1.0.0",
        # chaoslib substitutes the title: its "Running experiment:" line and the journal. The
        # runner stores the title as written: with a secret's value in it, that is masked too.
        "title": f"Secrets drill {everything} {known.env}",
        "description": "A pod kill whose activities echo every secret.",
        "configuration": {
            "gameday_cell": {"type": "env", "key": "GAMEDAY_CELL", "default": "cell-1"},
            "gameday_store": {"type": "env", "key": "GAMEDAY_STORE", "default": "sqlite:///x.db"},
            "cell_token": {"type": "env", "key": "GD_TEST_CELL_TOKEN"},
        },
        "secrets": {"drill": {"inline_token": known.inline,
                              "env_token": {"type": "env", "key": "GD_TEST_ENV_SECRET"}}},
        "extensions": [{"name": "gameday", "kind": "pod-kill", "probe_hz": 10, "baseline_s": 0.5,
                        "recovery_timeout_s": 15, "stability_window_s": 1,
                        # Always missed: the run's reason (and the webhook's) quotes its name.
                        "criteria": [{"name": f"no more than {known.cell} samples",
                                      "figure": "samples", "max": 0}]}],
        "steady-state-hypothesis": {"title": "The payments API serves", "probes": [{
            "type": "probe", "name": "payments-succeed",
            "tolerance": {"type": "range", "range": [0.5, 1.0]},
            "provider": {"type": "python", "module": "gameday.chaos.probes",
                         "func": "cell_serves", "arguments": {"probes": 3}}}]},
        "method": [
            {"type": "action", "name": "kill-one-replica", "provider": {
                "type": "python", "module": "gameday.chaos.actions", "func": "kill_pods",
                "arguments": {"count": 1}}},
            {"type": "probe", "name": "echo-the-secrets", "provider": {
                "type": "python", "module": PROBES_MODULE, "func": "refuse",
                "arguments": {"value": everything}}},
        ],
        "rollbacks": [{"type": "action", "name": "revert-every-fault", "provider": {
            "type": "python", "module": "gameday.chaos.actions", "func": "revert_faults"}}],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def cells_file(path: Path, state_dir: Path, known: Secrets) -> Path:
    cell = {"name": "cell-1", "target": "local", "tier": 1,
            "local": {"state_dir": str(state_dir), "sandbox_cell": "cell-1"},
            "secrets": {"payments_api_token": known.cell},
            "allow": {"python_modules": [PROBES_MODULE]}}
    path.write_text(yaml.safe_dump({"schema_version": 1, "cells": [cell]}))
    return path


class Cli:
    """``gameday`` run from ``work`` (so ``.gameday/`` is the test's own), outputs kept."""

    def __init__(self, work: Path, known: Secrets) -> None:
        self.work = work
        self.env = {k: v for k, v in os.environ.items() if k != "GAMEDAY_STORE"}
        path = os.pathsep.join(p for p in (str(work), os.environ.get("PYTHONPATH")) if p)
        self.env.update(PYTHONUNBUFFERED="1", PYTHONPATH=path,
                        GD_TEST_ENV_SECRET=known.env, GD_TEST_CELL_TOKEN=known.cell)
        self.outputs: list[tuple[str, str]] = []

    def __call__(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "gameday", *args], capture_output=True,
                                text=True, timeout=timeout, cwd=self.work, env=self.env)
        self.outputs.append((f"gameday {args[0]} (stdout)", result.stdout))
        self.outputs.append((f"gameday {args[0]} (stderr)", result.stderr))
        return result


def assert_private(path: Path, mode: int) -> None:
    assert stat.S_IMODE(path.stat().st_mode) == mode, (path, oct(path.stat().st_mode))


def test_secrets_appear_nowhere(shared_sandbox: Sandbox, postgres_server: Any,
                                tmp_path: Path) -> None:
    known = Secrets.new()
    work = tmp_path / "work"
    work.mkdir()
    (work / f"{PROBES_MODULE}.py").write_text(PROBES)
    role = schema = store_role(postgres_server, known.store_password)
    host = f"127.0.0.1:{postgres_server.port}/{postgres_server.database}"
    options = f"?options=-csearch_path%3D{schema}"
    store = f"postgresql://{role}:{quote(known.store_password, safe='')}@{host}{options}"
    cli = Cli(work, known)

    result = cli("run", str(experiment(work / "drill.yaml", known)), "--cell", "cell-1",
                 "--cells-file", str(cells_file(work / "cells.yaml", shared_sandbox.state_dir, known)),
                 "--store", store, "--json", timeout=240)
    assert result.returncode == 1, result.stdout + result.stderr
    out = json.loads(result.stdout)
    run_id = out["run_id"]
    assert cli("show", run_id, "--store", store, "--json").returncode == 0
    assert cli("report", "run", run_id, "--store", store, "--out",
               str(work / "report")).returncode == 0
    # The same password with its "@" unescaped: refused before anything connects.
    unescaped = f"postgresql://{role}:{known.store_password}@{host}{options}"
    refused = cli("runs", "--store", unescaped)

    tables = dump_schema(postgres_server, schema)
    found: dict[str, list[str]] = {}
    for table, text in tables.items():
        found[f"store table {table}"] = known.leaks(text)
    for name, text in cli.outputs:
        found[name] = known.leaks(text)
    for path in (work / "report").rglob("*"):
        if path.is_file():
            found[f"report {path.name}"] = known.leaks(path.read_text(errors="replace"))
    private = work / ".gameday"
    for path in private.rglob("*"):
        if path.is_file():
            found[str(path.relative_to(work))] = known.leaks(path.read_text(errors="replace"))
    assert {where: what for where, what in found.items() if what} == {}
    assert refused.returncode == 2 and "%40" in refused.stderr, refused.stderr

    # The run did provoke chaoslib (the journal holds the substituted title and the probe's
    # error) and the runner (the reason quotes the criterion): all masked.
    assert out["verdict"] == "failed" and out["reason"].startswith("missed: no more than ***")
    assert out["experiment"] == "Secrets drill ${inline_token} ${env_token} ${cell_token} " \
                                "${gameday_store} ***"
    journal = json.loads(next(r for r in tables["journals"].splitlines()
                              if run_id in r))["journal"]
    assert journal["experiment"]["title"].startswith("Secrets drill ***")
    failed = [r for r in journal["run"] if r["activity"]["name"] == "echo-the-secrets"]
    assert failed and "refused to use ***" in "".join(failed[0]["exception"])

    (log,) = (private / "logs").glob(f"{run_id}.worker.log")
    text = log.read_text()
    assert "Running experiment: Secrets drill ***" in text
    assert "=> failed: ValueError: refused to use ***" in text
    assert_private(log, 0o600)
    assert_private(private, 0o700)
    assert_private(private / "logs", 0o700)


def test_a_skipped_run_is_stored_with_its_reason_masked(tmp_path: Path) -> None:
    # What the scheduler records (and posts to its webhook) when a gate blocks a cell.
    known = Secrets.new()
    url = f"sqlite:///{tmp_path / 'gameday.db'}"
    record = record_skipped(url, cell="cell-1", experiment=None, kind="pod-kill",
                            cells_file=cells_file(tmp_path / "cells.yaml", tmp_path, known),
                            reason=f"incident: an alert quotes {known.cell}", window_id=None,
                            now=datetime.now(UTC))
    with Store.open(url) as store:
        stored = store.get_run(record.run_id)
    assert stored is not None and stored.reason == record.reason == "incident: an alert quotes ***"
