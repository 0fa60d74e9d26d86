"""`validate --cell` checks the faults against the live cell, so a run cannot start with a
fault the cell cannot take (a kill of 50 replicas on a cell of 3)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import ROOT, Sandbox

pytestmark = pytest.mark.integration


def gameday(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gameday", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def kill(tmp_path: Path, count: int) -> Path:
    doc = yaml.safe_load((ROOT / "experiments" / "local" / "pod-kill.yaml").read_text())
    doc["method"][0]["provider"]["arguments"] = {"count": count}
    path = tmp_path / f"kill-{count}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def cells(tmp_path: Path, state_dir: Path) -> Path:
    path = tmp_path / "cells.yaml"
    path.write_text(yaml.safe_dump({"schema_version": 1, "cells": [{
        "name": "cell-1", "target": "local",
        "local": {"state_dir": str(state_dir), "sandbox_cell": "cell-1"}}]}))
    return path


def test_a_fault_the_cell_cannot_take_is_refused_and_every_file_reported(
        shared_sandbox: Sandbox, tmp_path: Path) -> None:
    cells_file = cells(tmp_path, shared_sandbox.state_dir)
    too_many, fine = kill(tmp_path, 50), kill(tmp_path, 3)
    result = gameday("validate", str(too_many), str(fine), "--cell", "cell-1", "--cells-file",
                     str(cells_file))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{too_many}: method.0.provider.arguments (against cell cell-1)" in result.stderr
    assert "the cell has 3" in result.stderr
    assert f"{fine}: valid (pod-kill, cell cell-1)" in result.stdout  # reported all the same
    assert "1 of 2 experiment files invalid" in result.stderr


def test_without_a_live_cell_validate_says_what_it_could_not_check(tmp_path: Path) -> None:
    cells_file = cells(tmp_path, tmp_path / "no-sandbox")
    result = gameday("validate", str(kill(tmp_path, 50)), "--cell", "cell-1", "--cells-file",
                     str(cells_file))
    assert result.returncode == 0, result.stderr
    assert "faults not checked against the live cell" in result.stdout
