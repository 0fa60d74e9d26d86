"""Untrusted text reaches the terminal literally: no markup interpreted, control characters
escaped, in every command that prints it."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gameday.model import CriterionResult, RunRecord, WindowRecord
from gameday.store import Store

TITLE = "[/]Pod kill [x] [bold]loud[/bold] \x1b[31mred\x1b]0;owned\x07"
REASON = "missed: [/] \x1b[2Jcleared"
WINDOW = "game day [red]12[/red] \x1b[5mblink"


def gameday(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gameday", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_titles_reasons_and_names_are_printed_literally(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gameday.db'}"
    now = datetime.now(UTC)
    with Store.open(url) as store:
        store.create_window(WindowRecord(window_id="win-1", name=WINDOW, started_utc=now))
        store.create_run(RunRecord(
            run_id="run-1", experiment=TITLE, experiment_path="x.yaml", kind="pod-kill",
            cell="cell-1", target="local", started_utc=now - timedelta(seconds=30),
            status="completed", ended_utc=now, verdict="failed", reason=REASON,
            criteria=[CriterionResult("[/]crit \x1b[1m", "recovery_s <= 60", "75", False)]))
    outputs = {
        "show": gameday(tmp_path, "show", "run-1", "--store", url),
        "runs": gameday(tmp_path, "runs", "--store", url),
        "window list": gameday(tmp_path, "window", "list", "--store", url),
    }
    for command, result in outputs.items():
        assert result.returncode == 0, f"{command}: {result.stderr}"
        text = result.stdout + result.stderr
        assert "\x1b" not in text and "\x07" not in text, f"{command} let a control through"
        assert "Traceback" not in text
    show = outputs["show"].stdout
    assert "[/]Pod kill [x] [bold]loud[/bold] \\x1b[31mred\\x1b]0;owned\\x07" in show
    assert "missed: [/] \\x1b[2Jcleared" in show
    assert "[/]crit \\x1b[1m" in show
    assert "\\x1b[2Jcl" in outputs["runs"].stdout
    assert "game day [red]12[/red] \\x1b[5mblink" in outputs["window list"].stdout
