"""Shared test helpers: the CLI as a real subprocess, and real sandboxes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, timeout: float = 180, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run ``gameday ARGS`` as a user would: a separate process, output captured."""
    result = subprocess.run(
        [sys.executable, "-m", "gameday", *args], capture_output=True, text=True,
        timeout=timeout, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"gameday {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


class Sandbox:
    """A running sandbox driven through the CLI."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def cli(self, *args: str, check: bool = False, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, "--state-dir", str(self.state_dir), check=check, timeout=timeout)

    def status(self) -> dict[str, Any]:
        return json.loads(self.cli("sandbox", "status", "--json", check=True).stdout)

    def cell(self, name: str = "cell-1") -> dict[str, Any]:
        return next(c for c in self.status()["cells"] if c["name"] == name)

    def events(self, cell: str = "cell-1") -> list[dict[str, Any]]:
        return json.loads(self.cli("sandbox", "events", "--cell", cell, "--json", check=True).stdout)

    def fault(self, cell: str, kind: str, *options: str) -> dict[str, Any]:
        out = self.cli("sandbox", "fault", cell, kind, *options, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])


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
