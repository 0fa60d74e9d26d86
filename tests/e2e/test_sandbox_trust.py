"""The sandbox trusts nothing it reads back: forged state files, foreign processes, odd numbers.

Every test drives the real CLI as a subprocess. A forged file is written the way an attacker
would write it (by hand, knowing the format); the victims are a real directory with files and
a real process whose command line names that directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gameday.sandbox.procs import start_ticks
from helpers import Sandbox, alive, run_cli, wait_for

pytestmark = pytest.mark.integration

FAKE_ID = "0123456789abcdef0123456789abcdef"


# ------------------------------------------------------------------ victims and forgeries


def spawn_victim(*argv_tail: str) -> subprocess.Popen[bytes]:
    """A long-lived process that is not the sandbox's, with ``argv_tail`` on its command line."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", *argv_tail],
                            start_new_session=True)
    wait_for(lambda: start_ticks(proc.pid) is not None, 5, "the victim to start")
    return proc


@pytest.fixture
def victim(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    folder = tmp_path / "victim"
    (folder / "deep").mkdir(parents=True)
    (folder / "precious.txt").write_text("do not delete")
    (folder / "deep" / "more.txt").write_text("nor this")
    proc = spawn_victim(str(folder))
    yield folder, proc
    proc.kill()
    proc.wait()


def ident(proc: subprocess.Popen[bytes]) -> dict[str, int]:
    ticks = start_ticks(proc.pid)
    assert ticks is not None
    return {"pid": proc.pid, "start_ticks": ticks}


def forged_marker(state_dir: Path, *, informed: bool, **fields: Any) -> dict[str, Any]:
    """A sandbox.json by hand. ``informed``: it also gets this directory's path and inode right,
    which a file shipped in a repository cannot (so only the later checks stand in the way)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    marker: dict[str, Any] = {
        "kind": "gameday-sandbox", "schema_version": 2, "sandbox_id": FAKE_ID,
        "state_dir": str(state_dir.resolve()) if informed else "/home/someone/repo/.gameday/sandbox",
        "root_inode": os.stat(state_dir).st_ino if informed else 1234,
        "status": "running", "created_utc": "2026-01-01T00:00:00+00:00", "cells": ["cell-1"],
        "replicas": 1, "pg_data_root": None, "controllers": [],
    }
    marker.update(fields)
    (state_dir / "sandbox.json").write_text(json.dumps(marker))
    (state_dir / "admin.token").write_text("forged-token")
    return marker


def forged_cell_state(state_dir: Path, pids: list[dict[str, int]]) -> None:
    cell = state_dir / "cell-1"
    cell.mkdir(exist_ok=True)
    (cell / "state.json").write_text(json.dumps({
        "name": "cell-1", "status": "ready", "controller": {"pid": 1},
        "url": None, "admin_url": None, "cpus": [0], "replicas": [], "database": [],
        "proxy": None, "failover": {}, "faults": [], "pids": pids}))


def snapshot(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every entry under ``folder``: mode, mtime and content hash (symlinks by their target)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            digest = os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            digest = ""
        found[str(path.relative_to(folder))] = (st.st_mode, st.st_mtime_ns, digest)
    return found


def assert_four_parts(stderr: str, *where: str) -> None:
    assert "expected" in stderr and "found" in stderr and "fix:" in stderr, stderr
    for part in where:
        assert part in stderr, stderr
    assert "Traceback" not in stderr, stderr


EVERY_COMMAND = (("up",), ("down",), ("status",), ("events",), ("fault", "cell-1", "kill-primary"),
                 ("revert", "cell-1"))


def assert_refused_and_untouched(state_dir: Path, victim: tuple[Path, subprocess.Popen[bytes]],
                                 *where: str,
                                 commands: tuple[tuple[str, ...], ...] = (("up",), ("down",),
                                                                          ("status",))) -> None:
    folder, proc = victim
    before_state, before_victim = snapshot(state_dir), snapshot(folder)
    box = Sandbox(state_dir)
    for command in commands:
        result = box.cli("sandbox", *command, timeout=60)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert_four_parts(result.stderr, *where)
        assert snapshot(state_dir) == before_state, command
        assert snapshot(folder) == before_victim, command
        assert alive(proc.pid), f"`sandbox {command}` signalled the victim"


# ------------------------------------------------------------------ forged sandbox.json


def test_shipped_marker_naming_a_victim_is_refused_and_touches_nothing(tmp_path, victim):
    """A repository ships .gameday/sandbox/sandbox.json: pg_data_root and a controller name
    the victim. It cannot know the inode of the directory it is cloned into."""
    state_dir = tmp_path / "repo" / ".gameday" / "sandbox"
    folder, proc = victim
    forged_marker(state_dir, informed=False, pg_data_root=str(folder), controllers=[ident(proc)])
    forged_cell_state(state_dir, [ident(proc)])
    assert_refused_and_untouched(state_dir, victim, "sandbox.json", "inode")


@pytest.mark.parametrize("variant", ["victim path", "symlink where the data root goes",
                                     "real dir there with another sandbox's id"])
def test_informed_marker_with_a_foreign_data_root_is_refused(tmp_path, victim, variant):
    """The forger gets path and inode right; pg_data_root still has to be the one the sandbox
    derives from its id, a real directory, holding the id file that names this state dir."""
    state_dir = tmp_path / "box"
    folder, _ = victim
    state_dir.mkdir()
    expected_root = state_dir.resolve() / f"gameday-pg-{FAKE_ID}"
    if variant == "victim path":
        pg_root = folder
    elif variant == "symlink where the data root goes":
        expected_root.symlink_to(folder)
        pg_root = expected_root
    else:
        # The id file of another sandbox (it names another state dir), beside the victim's files.
        expected_root.mkdir()
        (expected_root / "sandbox-id").write_text(json.dumps(
            {"sandbox_id": FAKE_ID, "state_dir": "/elsewhere/.gameday/sandbox"}))
        (expected_root / "precious.txt").write_text("another sandbox's data")
        pg_root = expected_root
    forged_marker(state_dir, informed=True, pg_data_root=str(pg_root))
    if variant == "victim path":
        assert_refused_and_untouched(state_dir, victim, "pg_data_root")
    else:  # `down` is the command that deletes the data root
        assert_refused_and_untouched(state_dir, victim, str(expected_root), commands=(("down",),))


def test_informed_marker_naming_a_victim_as_controller_is_refused(tmp_path, victim):
    state_dir = tmp_path / "box"
    _, proc = victim
    forged_marker(state_dir, informed=True, controllers=[ident(proc)])
    assert_refused_and_untouched(state_dir, victim, "sandbox.json", f"pid {proc.pid}",
                                 "GAMEDAY_SANDBOX_ID", commands=(("down",),))


def test_forged_state_json_naming_a_victims_pid_and_start_time_is_not_signalled(tmp_path, victim):
    """A victim's real pid and start ticks pass the pid-reuse check; only the sandbox id in the
    environment tells the sandbox's processes from everyone else's."""
    state_dir = tmp_path / "box"
    _, proc = victim
    forged_marker(state_dir, informed=True)
    forged_cell_state(state_dir, [ident(proc)])
    assert_refused_and_untouched(state_dir, victim, "state.json", f"pid {proc.pid}")


@pytest.mark.parametrize("command", EVERY_COMMAND, ids=" ".join)
def test_marker_from_another_directory_is_refused_by_every_command(tmp_path, victim, command):
    state_dir = tmp_path / "box"
    folder, proc = victim
    forged_marker(state_dir, informed=False, pg_data_root=str(folder), controllers=[ident(proc)])
    assert_refused_and_untouched(state_dir, victim, "sandbox.json", commands=(command,))


def test_symlinked_cell_dir_is_refused_before_up_writes_through_it(tmp_path, victim):
    """An empty-looking sandbox whose cell-1 is a symlink: `up` would unlink state.json and
    append logs in the victim directory."""
    state_dir = tmp_path / "box"
    forged_marker(state_dir, informed=True, status="down")
    folder, _ = victim
    (state_dir / "cell-1").symlink_to(folder)
    assert_refused_and_untouched(state_dir, victim, "cell-1", "symbolic link",
                                 commands=(("up",), ("down",)))


HOSTILE = "\x1b]0;pwned\x07\x1b[31m[red]boom[/]\x9b"


def assert_escaped(text: str, markup: str = "[red]boom[/]") -> None:
    assert not any(c in text for c in "\x1b\x07\x9b"), repr(text)
    assert "\\x1b" in text and markup in text, text


def test_untrusted_text_reaches_the_terminal_escaped(tmp_path):
    """Text from state files (a fault id, an event, a path in an error) is printed literally:
    no markup is interpreted and control characters arrive as escapes."""
    state_dir = tmp_path / "box"
    forged_marker(state_dir, informed=True, status="down")
    forged_cell_state(state_dir, [])
    state = json.loads((state_dir / "cell-1" / "state.json").read_text())
    state["faults"] = [{"id": HOSTILE, "expires_utc": HOSTILE, "reverted_utc": None}]
    (state_dir / "cell-1" / "state.json").write_text(json.dumps(state))
    (state_dir / "events.jsonl").write_text(json.dumps(
        {"cell": "cell-1", "event": HOSTILE, "utc": HOSTILE, HOSTILE: HOSTILE}) + "\n")
    box = Sandbox(state_dir)
    status = box.cli("sandbox", "status")
    assert status.returncode == 0, status.stderr
    assert_escaped(status.stdout)
    events = box.cli("sandbox", "events")
    assert events.returncode == 0, events.stderr
    assert_escaped(events.stdout)

    marker = json.loads((state_dir / "sandbox.json").read_text())
    marker["state_dir"] = "/x/" + HOSTILE
    (state_dir / "sandbox.json").write_text(json.dumps(marker))
    refused = box.cli("sandbox", "status")
    assert refused.returncode == 2
    assert_escaped(refused.stderr)

    # A state dir whose own name is hostile (a cells file may name any path) shows up in the
    # error's "where", not only in its repr()'d "found".
    named = tmp_path / HOSTILE.replace("/", "|")
    forged_marker(named, informed=False)
    refused = Sandbox(named).cli("sandbox", "down")
    assert refused.returncode == 2
    assert_escaped(refused.stderr, "[red]boom[|]")


def test_local_target_reads_the_state_dir_through_the_same_checks(tmp_path, victim):
    """The cells file names a state dir; the local target opens it like every command does."""
    from gameday.config.cells import load_cells
    from gameday.errors import InputError
    from gameday.targets import open_target
    from gameday.targets.base import ObservedSpan

    state_dir = tmp_path / "box"
    _, proc = victim
    forged_marker(state_dir, informed=True)
    forged_cell_state(state_dir, [ident(proc)])
    state = json.loads((state_dir / "cell-1" / "state.json").read_text())
    state["url"] = "http://127.0.0.1:9"  # it looks ready, if one read it unchecked
    (state_dir / "cell-1" / "state.json").write_text(json.dumps(state))
    cells_file = tmp_path / "cells.yaml"
    cells_file.write_text("schema_version: 1\ncells:\n  - name: c1\n    target: local\n"
                          f"    local: {{state_dir: {state_dir}, sandbox_cell: cell-1}}\n")
    target = open_target(load_cells(cells_file)["c1"])
    problem = target.reachable()
    assert problem is not None and f"pid {proc.pid}" in problem
    for call in (lambda: target.check("latency", {"latency_ms": 100, "duration_s": 5}),
                 lambda: target.url,
                 lambda: target.observe(ObservedSpan(["f"], 0.0, 0.0, 1.0)),
                 lambda: target.missing_writes("tag", [1])):
        with pytest.raises(InputError, match=f"pid {proc.pid}"):
            call()
    assert alive(proc.pid)


# ------------------------------------------------------------------ a real sandbox


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path_factory.mktemp("trust-sandbox"))
    box.cli("sandbox", "up", "--replicas", "1", "--quiet", check=True)
    yield box
    box.cli("sandbox", "down")


def event_count(box: Sandbox) -> int:
    # Read straight from the files: a CLI call per check would make these tests slow.
    return len((box.state_dir / "events.jsonl").read_text().splitlines())


def active_faults(box: Sandbox) -> list[Any]:
    return json.loads((box.state_dir / "cell-1" / "state.json").read_text())["faults"]


NUMERIC_FLAGS = [
    ("--count", ["cell-1", "kill-replica"]),
    ("--ms", ["cell-1", "latency", "--duration", "5"]),
    ("--jitter", ["cell-1", "latency", "--ms", "100", "--duration", "5"]),
    ("--duration", ["cell-1", "latency", "--ms", "100"]),
    ("--workers", ["cell-1", "cpu", "--load", "50", "--duration", "5"]),
    ("--load", ["cell-1", "cpu", "--workers", "1", "--duration", "5"]),
]


@pytest.mark.parametrize("value", ["nan", "inf"])
@pytest.mark.parametrize(("flag", "args"), NUMERIC_FLAGS)
def test_non_finite_fault_flags_exit_2_and_inject_nothing(live, flag, args, value):
    events = event_count(live)
    result = live.cli("sandbox", "fault", *args, f"{flag}={value}")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert flag in result.stderr and repr(value) in result.stderr, result.stderr
    assert event_count(live) == events and active_faults(live) == []


@pytest.mark.parametrize("value", ["nan", "inf"])
@pytest.mark.parametrize("flag", ["--cells", "--replicas"])
def test_non_finite_up_flags_exit_2_and_start_nothing(tmp_path, flag, value):
    state_dir = tmp_path / "box"
    result = run_cli("sandbox", "up", "--state-dir", str(state_dir), f"{flag}={value}")
    assert result.returncode == 2 and flag in result.stderr, result.stderr
    assert not state_dir.exists()


def post_fault(box: Sandbox, body: bytes) -> tuple[int, dict[str, Any]]:
    state = json.loads((box.state_dir / "cell-1" / "state.json").read_text())
    token = (box.state_dir / "admin.token").read_text().strip()
    request = urllib.request.Request(state["admin_url"] + "/faults", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize("body", [
    b'{"kind": "latency", "params": {"ms": NaN, "duration": 5}}',
    b'{"kind": "latency", "params": {"ms": 100, "jitter": NaN, "duration": 5}}',
    b'{"kind": "latency", "params": {"ms": Infinity, "duration": 5}}',
    b'{"kind": "cpu", "params": {"workers": 1, "duration": -Infinity}}',
    b'{"kind": "latency", "params": {"ms": 1e999, "duration": 5}}',
    b'{"kind": "latency", "params": [1, 2]}',
    b'\xff\xfe not json',
])
def test_admin_api_refuses_non_finite_numbers_with_400(live, body):
    events = event_count(live)
    status, answer = post_fault(live, body)
    assert status == 400, answer
    assert {"where", "expected", "found", "fix"} <= answer.keys()
    assert event_count(live) == events and active_faults(live) == []


def test_state_dir_is_private(live):
    root = live.state_dir
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    for path in root.rglob("*"):
        mode = stat.S_IMODE(os.lstat(path).st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
    marker = json.loads((root / "sandbox.json").read_text())
    pg_root = Path(marker["pg_data_root"])
    assert pg_root.name == f"gameday-pg-{marker['sandbox_id']}"
    # As root the data root is root's (0711: PostgreSQL's user reaches its own dirs inside).
    assert stat.S_IMODE(pg_root.stat().st_mode) == (0o711 if os.geteuid() == 0 else 0o700)
    assert stat.S_IMODE((pg_root / "cell-1").stat().st_mode) == 0o700


def test_live_sandbox_stops_only_processes_with_its_id_and_ignores_copies(tmp_path):
    """`cp -a` of a running sandbox's state dir, then `down` in the copy: the copy is not the
    directory the marker was made for, so nothing stops. Then `down` in the original stops a
    process no state file names but that carries the sandbox id, and leaves one that merely
    has the sandbox's own paths on its command line."""
    box = Sandbox(tmp_path / "box")
    box.cli("sandbox", "up", "--replicas", "1", "--quiet", check=True)
    marker = json.loads((box.state_dir / "sandbox.json").read_text())
    bystander = spawn_victim("gameday.sandbox.replica", str(box.state_dir), marker["pg_data_root"])
    stray = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                             env={**os.environ, "GAMEDAY_SANDBOX_ID": marker["sandbox_id"]},
                             start_new_session=True)
    try:
        copy = tmp_path / "copy"
        subprocess.run(["cp", "-a", str(box.state_dir), str(copy)], check=True)
        pids = box.status()["pids"]
        refused = Sandbox(copy).cli("sandbox", "down")
        assert refused.returncode == 2 and "inode" in refused.stderr, refused.stderr
        assert all(alive(p) for p in pids) and box.status()["running"]

        down = box.cli("sandbox", "down")
        assert down.returncode == 0, down.stderr
        assert [p for p in pids if alive(p)] == []
        wait_for(lambda: stray.poll() is not None, 5, "the stray to stop")
        assert alive(bystander.pid)
        assert not Path(marker["pg_data_root"]).exists()
    finally:
        box.cli("sandbox", "down")
        for proc in (bystander, stray):
            proc.kill()
            proc.wait()
