"""Compiled templates kept between processes: in a folder of the user's alone, or not at all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gameday.reporting import render

RENDER = "from gameday.reporting import render; render._HTML.get_template('resilience.html.j2')"
# the same, with Jinja's compiler broken: it succeeds only when the template comes compiled
FROM_CACHE = ("import jinja2; jinja2.Environment.compile = lambda *a, **k: 1 / 0; " + RENDER)


def _in_a_new_process(code: str, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          env={**os.environ, render.TEMPLATE_CACHE_ENV: str(cache)})


def test_a_second_process_loads_what_the_first_compiled(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert _in_a_new_process(FROM_CACHE, cache).returncode != 0  # nothing compiled yet
    assert _in_a_new_process(RENDER, cache).returncode == 0
    folders = list(cache.iterdir())
    assert len(folders) == 2 and all(f.stat().st_mode & 0o777 == 0o700 for f in folders)
    assert any(next(f for f in folders if "-html-" in f.name).iterdir())
    loaded = _in_a_new_process(FROM_CACHE, cache)
    assert loaded.returncode == 0, loaded.stderr


def test_a_folder_others_may_write_to_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(render.TEMPLATE_CACHE_ENV, str(tmp_path))
    assert render._template_cache("html-x") is not None
    (tmp_path / f"templates-{render.__version__}-html-x").chmod(0o777)
    assert render._template_cache("html-x") is None
    monkeypatch.setenv(render.TEMPLATE_CACHE_ENV, "off")
    assert render._template_cache("html-x") is None
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv(render.TEMPLATE_CACHE_ENV, str(blocked))
    assert render._template_cache("html-x") is None  # cannot be made: rendering goes on without
