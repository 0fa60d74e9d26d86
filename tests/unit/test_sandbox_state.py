"""What the sandbox reads back from its state dir is checked before it is used.

Files are written by hand, as a forger would write them; no process is started.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from gameday.errors import InputError
from gameday.sandbox.state import (
    SandboxLayout,
    make_private_dir,
    open_log,
    read_json,
    write_json_atomic,
    write_private,
)

SANDBOX_ID = "ab" * 16


def marker_for(root: Path, **fields: Any) -> dict[str, Any]:
    root.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "kind": "gameday-sandbox", "schema_version": 2, "sandbox_id": SANDBOX_ID,
        "state_dir": str(root.resolve()), "root_inode": os.stat(root).st_ino, "status": "down",
        "created_utc": "2026-01-01T00:00:00+00:00", "cells": ["cell-1"], "replicas": 1,
        "pg_data_root": None, "controllers": [],
    }
    data.update(fields)
    return data


def write_marker(root: Path, data: dict[str, Any] | str) -> SandboxLayout:
    text = data if isinstance(data, str) else json.dumps(data)
    (root / "sandbox.json").write_text(text)
    return SandboxLayout(root.resolve())


def refused(layout: SandboxLayout) -> InputError:
    with pytest.raises(InputError) as caught:
        layout.check_ours()
    message = caught.value.message()
    assert "expected" in message and "found" in message and "fix:" in message
    return caught.value


def test_a_marker_written_for_this_directory_is_ours(tmp_path):
    layout = write_marker(tmp_path, marker_for(tmp_path))
    marker = layout.check_ours()
    assert marker is not None and marker.sandbox_id == SANDBOX_ID and marker.cells == ["cell-1"]


def test_a_marker_made_for_another_directory_is_refused(tmp_path):
    box = tmp_path / "box"
    data = marker_for(box, root_inode=os.stat(tmp_path).st_ino)  # a copy: same path, new inode
    error = refused(write_marker(box, data))
    assert error.where.endswith("sandbox.json") and "inode" in error.expected


def test_a_moved_state_dir_is_refused(tmp_path):
    data = marker_for(tmp_path, state_dir="/somewhere/else")
    assert "inode" in refused(write_marker(tmp_path, data)).expected


@pytest.mark.parametrize(("field", "value"), [
    ("cells", ["../../etc"]),
    ("cells", ["cell-1", "cell-1"]),
    ("cells", []),
    ("cells", ["cell-17"]),
    ("replicas", 0),
    ("replicas", "3"),
    ("sandbox_id", "../x"),
    ("controllers", [{"pid": "1", "start_ticks": 2}]),
    ("controllers", [{"pid": 1.5, "start_ticks": 2}]),
    ("pg_data_root", 5),
    ("status", "weird"),
    ("root_inode", True),
])
def test_each_marker_field_is_checked(tmp_path, field, value):
    error = refused(write_marker(tmp_path, marker_for(tmp_path, **{field: value})))
    assert error.where.endswith(f"sandbox.json: {field}")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_json_is_refused(tmp_path, literal):
    text = json.dumps(marker_for(tmp_path)).replace('"replicas": 1', f'"replicas": {literal}')
    error = refused(write_marker(tmp_path, text))
    assert error.where.endswith("sandbox.json")


def test_a_symlinked_marker_is_refused_and_not_followed(tmp_path):
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps(marker_for(tmp_path / "box")))
    (tmp_path / "box" / "sandbox.json").symlink_to(elsewhere)
    assert refused(SandboxLayout(tmp_path / "box")).found == "a symbolic link"


def test_a_fifo_marker_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "sandbox.json")
    assert "regular file" in refused(SandboxLayout(tmp_path)).expected


# CI runs as root: there it must run, never skip.
@pytest.mark.skipif(os.geteuid() != 0 and not os.environ.get("CI"),
                    reason="needs root to give a file to another user")
def test_a_marker_of_another_user_is_refused(tmp_path):
    layout = write_marker(tmp_path, marker_for(tmp_path))
    os.chown(layout.marker, 65534, 65534)
    assert "owned by uid 65534" in refused(layout).found


# ------------------------------------------------------------------ the PostgreSQL data root


def pg_root_of(tmp_path: Path) -> Path:
    return tmp_path.resolve() / f"gameday-pg-{SANDBOX_ID}"


def test_the_derived_data_root_with_its_id_file_is_ours(tmp_path):
    root = pg_root_of(tmp_path)
    layout = write_marker(tmp_path, marker_for(tmp_path, pg_data_root=str(root)))
    assert layout.check_pg_root(layout.check_ours()) == root  # absent: removed already
    root.mkdir()
    (root / "sandbox-id").write_text(json.dumps(
        {"sandbox_id": SANDBOX_ID, "state_dir": str(tmp_path.resolve())}))
    assert layout.check_pg_root(layout.check_ours()) == root


@pytest.mark.parametrize("where", ["/", "/tmp", "{tmp}/victim", "{tmp}/gameday-pg-other",
                                   "{tmp}/gameday-pg-" + SANDBOX_ID + "/.."])
def test_any_other_data_root_is_refused(tmp_path, where):
    path = where.format(tmp=tmp_path.resolve())
    error = refused(write_marker(tmp_path, marker_for(tmp_path, pg_data_root=path)))
    assert error.where.endswith("pg_data_root")


@pytest.mark.parametrize("id_file", [None, {"sandbox_id": SANDBOX_ID, "state_dir": "/other"},
                                     {"sandbox_id": "cd" * 16, "state_dir": "{tmp}"}])
def test_a_data_root_without_this_sandboxs_id_file_is_refused(tmp_path, id_file):
    root = pg_root_of(tmp_path)
    root.mkdir()
    if id_file is not None:
        id_file = {k: v.format(tmp=tmp_path.resolve()) for k, v in id_file.items()}
        (root / "sandbox-id").write_text(json.dumps(id_file))
    refused(write_marker(tmp_path, marker_for(tmp_path, pg_data_root=str(root))))


def test_a_symlink_where_the_data_root_goes_is_refused(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    pg_root_of(tmp_path).symlink_to(victim)
    error = refused(write_marker(tmp_path, marker_for(tmp_path, pg_data_root=str(pg_root_of(tmp_path)))))
    assert error.found == "a symbolic link"


# ------------------------------------------------------------------ cell states


def cell_state(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "cell-1", "status": "ready", "url": "http://127.0.0.1:8080",
                            "admin_url": "http://127.0.0.1:8081", "cpus": [0], "replicas": [],
                            "database": [], "faults": [], "pids": []}
    data.update(fields)
    return data


def with_cell_state(tmp_path: Path, state: dict[str, Any]) -> SandboxLayout:
    layout = write_marker(tmp_path, marker_for(tmp_path))
    layout.cell_dir("cell-1").mkdir()
    layout.cell_state("cell-1").write_text(json.dumps(state))
    return layout


def test_a_cell_state_as_a_controller_writes_it_passes(tmp_path):
    state = cell_state(replicas=[{"index": 1, "pid": 5, "port": 9, "ready": True, "restarts": 0}],
                       database=[{"name": "pg-1", "role": "primary", "port": 7, "pid": 6,
                                  "alive": True, "streaming": False}])
    layout = with_cell_state(tmp_path, state)
    marker = layout.check_ours()
    assert marker is not None and layout.read_cell_state("cell-1", marker) == state


@pytest.mark.parametrize(("field", "value"), [
    ("name", "cell-2"),
    ("admin_url", "http://evil.example:80"),
    ("admin_url", "http://127.0.0.1:80/../x"),
    ("url", "http://127.0.0.1:99999"),
    ("status", "[red]x"),
    ("cpus", []),
    ("replicas", [{"index": 1}]),
    ("database", [{"name": "pg-1", "role": "primary", "port": "5432", "pid": 1, "alive": True,
                   "streaming": True}]),
    ("pids", [{"pid": 0, "start_ticks": 1}]),
    ("pids", "all"),
])
def test_each_cell_state_field_is_checked(tmp_path, field, value):
    error = refused(with_cell_state(tmp_path, cell_state(**{field: value})))
    assert error.where.endswith(f"state.json: {field}")


def test_a_symlinked_cell_dir_is_refused(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    layout = write_marker(tmp_path, marker_for(tmp_path))
    layout.cell_dir("cell-1").symlink_to(victim)
    assert refused(layout).found == "a symbolic link"


# ------------------------------------------------------------------ private writes


def test_private_dirs_and_their_missing_parents_are_0700(tmp_path):
    make_private_dir(tmp_path / "a" / "b" / "c")
    for path in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700


def test_writes_replace_a_planted_symlink_instead_of_following_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for i, write in enumerate((lambda p: write_private(p, "token"),
                               lambda p: write_json_atomic(p, {"a": 1}))):
        planted = tmp_path / f"planted-{i}"
        planted.symlink_to(victim)
        write(planted)
        assert not planted.is_symlink() and stat.S_IMODE(planted.stat().st_mode) == 0o600
    assert victim.read_text() == "precious"


def test_logs_refuse_a_planted_symlink(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "controller.log").symlink_to(victim)
    with pytest.raises(OSError):
        open_log(tmp_path / "controller.log")
    with open_log(tmp_path / "replica.log") as log:
        log.write(b"line\n")
    assert stat.S_IMODE((tmp_path / "replica.log").stat().st_mode) == 0o600
    assert victim.read_text() == "precious"


def test_read_json_refuses_nan(tmp_path):
    (tmp_path / "x.json").write_text('{"a": NaN}')
    with pytest.raises(InputError):
        read_json(tmp_path / "x.json")
