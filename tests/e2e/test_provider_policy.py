"""Experiment files are code: the provider policy decides what may run, before anything is imported.

By default only gameday.chaos.actions / gameday.chaos.probes; a cell may opt in narrowly to
more probes (never faults), and the opted-in probe then really runs in a real run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gameday.store import Store
from helpers import ROOT, Sandbox

pytestmark = pytest.mark.integration

EXPERIMENTS = ROOT / "experiments" / "local"
PROBE_MODULE = """
import pathlib
pathlib.Path({imported!r}).write_text("imported")

def payments_ok(configuration=None, secrets=None):
    pathlib.Path({called!r}).write_text("called")
    return True
"""


def gameday(cwd: Path, *args: str, pythonpath: Path | None = None,
            timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMEDAY_")}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([sys.executable, "-m", "gameday", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A module with a side effect at import and when its probe is called, on PYTHONPATH."""
    mods = tmp_path / "mods" / "acmeprobes"
    mods.mkdir(parents=True)
    (mods / "__init__.py").write_text(PROBE_MODULE.format(
        imported=str(tmp_path / "imported.txt"), called=str(tmp_path / "called.txt")))
    return tmp_path


def experiment(path: Path, change: Any) -> Path:
    doc = yaml.safe_load((EXPERIMENTS / "pod-kill.yaml").read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def with_probe(doc: dict[str, Any], activity_type: str = "probe") -> None:
    probe = {"type": activity_type, "name": "acme-payments-ok",
             "tolerance": True,
             "provider": {"type": "python", "module": "acmeprobes", "func": "payments_ok"}}
    doc["steady-state-hypothesis"]["probes"].append(probe)


def cells(path: Path, state_dir: Path, allow: dict[str, Any] | None) -> Path:
    cell: dict[str, Any] = {"name": "cell-1", "target": "local",
                            "local": {"state_dir": str(state_dir), "sandbox_cell": "cell-1"}}
    if allow is not None:
        cell["allow"] = allow
    path.write_text(yaml.safe_dump({"schema_version": 1, "cells": [cell]}))
    return path


REFUSED = {
    "os-system": lambda d: d["method"][0].__setitem__("provider", {
        "type": "python", "module": "os", "func": "system",
        "arguments": {"command": "touch pwned.txt"}}),
    "process": lambda d: d["method"][0].__setitem__("provider", {
        "type": "process", "path": "/bin/sh", "arguments": "-c 'touch pwned.txt'"}),
    "http": lambda d: d["steady-state-hypothesis"]["probes"][0].__setitem__("provider", {
        "type": "http", "url": "http://127.0.0.1:9/"}),
    "controls": lambda d: d.__setitem__("controls", [{"name": "c", "provider": {
        "type": "python", "module": "acmeprobes"}}]),
    "side-effect-module": with_probe,
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_by_default_without_being_imported(project: Path, name: str) -> None:
    path = experiment(project / "x.yaml", REFUSED[name])
    result = gameday(project, "validate", str(path), pythonpath=project / "mods")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "provider policy" in result.stderr or "allow" in result.stderr
    assert "fix:" in result.stderr
    assert not (project / "imported.txt").exists(), "the module was imported"
    assert not (project / "pwned.txt").exists(), "the command ran"


def test_an_opted_in_module_may_add_probes_never_faults(project: Path) -> None:
    allow = {"python_modules": ["acmeprobes"]}
    cells_file = cells(project / "cells.yaml", project / "no-sandbox", allow)
    as_action = experiment(project / "action.yaml",
                           lambda d: d["method"].insert(0, {
                               "type": "action", "name": "acme-kill",
                               "provider": {"type": "python", "module": "acmeprobes",
                                            "func": "payments_ok"}}))
    result = gameday(project, "validate", str(as_action), "--cell", "cell-1", "--cells-file",
                     str(cells_file), pythonpath=project / "mods")
    assert result.returncode == 2
    assert "method.0.provider.module" in result.stderr and "never faults" in result.stderr
    assert not (project / "imported.txt").exists()
    # Another cell's opt-in is not this cell's: without --cell the default policy holds.
    as_probe = experiment(project / "probe.yaml", with_probe)
    refused = gameday(project, "validate", str(as_probe), pythonpath=project / "mods")
    assert refused.returncode == 2
    # `true` for programs or URLs is no narrow opt-in.
    wide = cells(project / "wide.yaml", project / "no-sandbox", {"process": True})
    result = gameday(project, "validate", str(as_probe), "--cell", "cell-1", "--cells-file",
                     str(wide), pythonpath=project / "mods")
    assert result.returncode == 2 and "allow.process" in result.stderr


def test_the_opted_in_probe_validates_and_runs(project: Path, sandbox_factory: Any) -> None:
    box: Sandbox = sandbox_factory()
    cells_file = cells(project / "cells.yaml", box.state_dir, {"python_modules": ["acmeprobes"]})
    path = experiment(project / "probe.yaml", with_probe)
    valid = gameday(project, "validate", str(path), "--cell", "cell-1", "--cells-file",
                    str(cells_file), pythonpath=project / "mods")
    assert valid.returncode == 0, valid.stderr
    assert "valid (pod-kill, cell cell-1)" in valid.stdout
    (project / "called.txt").unlink(missing_ok=True)
    store = f"sqlite:///{project / 'gameday.db'}"
    run = gameday(project, "run", str(path), "--cell", "cell-1", "--cells-file", str(cells_file),
                  "--store", store, "--json", "--baseline", "1", "--stability-window", "2",
                  pythonpath=project / "mods")
    assert run.returncode in (0, 1), run.stderr
    out = json.loads(run.stdout)
    assert out["verdict"] in ("passed", "failed"), out
    assert (project / "called.txt").read_text() == "called", "the opted-in probe did not run"
    with Store.open(store) as opened:
        record = opened.get_run(out["run_id"])
    assert record is not None and record.journal is not None
    names = [r["activity"]["name"] for r in record.journal["steady_states"]["before"]["probes"]]
    assert "acme-payments-ok" in names
