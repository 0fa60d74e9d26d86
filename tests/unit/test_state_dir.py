"""A state dir that is not ours is refused before anything is written into it."""

import json

import pytest

from gameday.errors import InputError
from gameday.sandbox.state import SandboxLayout


def test_missing_and_empty_dirs_are_fine(tmp_path):
    assert SandboxLayout(tmp_path / "new").check_ours() is None
    assert SandboxLayout(tmp_path).check_ours() is None


def test_foreign_dir_is_refused_and_untouched(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError) as caught:
        SandboxLayout(tmp_path).check_ours()
    assert "--state-dir" in caught.value.where
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_marker_of_something_else_is_refused(tmp_path):
    (tmp_path / "sandbox.json").write_text(json.dumps({"kind": "other"}))
    with pytest.raises(InputError) as caught:
        SandboxLayout(tmp_path).check_ours()
    assert caught.value.found == "other"


def test_a_file_is_not_a_state_dir(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(InputError):
        SandboxLayout(target).check_ours()


def test_marker_of_an_older_schema_is_refused(tmp_path):
    (tmp_path / "sandbox.json").write_text(json.dumps({"kind": "gameday-sandbox",
                                                       "schema_version": 1}))
    with pytest.raises(InputError) as caught:
        SandboxLayout(tmp_path).check_ours()
    assert caught.value.found == 1 and "gameday version that made it" in caught.value.fix
