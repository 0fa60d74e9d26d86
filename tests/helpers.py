"""Helpers the tests share: the CLI as a real subprocess, sandboxes, polling."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gameday.reporting.numbers import fmt

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


# What the sandbox logs when something breaks it: a fault, its revert, a kill.
FAULT_EVENTS = frozenset({"fault_injected", "fault_reverted", "toxic_added", "toxic_removed",
                          "stress_started", "stress_stopped", "primary_lost", "standby_lost",
                          "replica_exit"})


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

    def touched_since(self, since: float, cell: str = "cell-1") -> list[dict[str, Any]]:
        """The events after ``since`` (time.monotonic(), the events' clock) that a fault makes.

        By time, not by counting lines: a controller appends its events from a writer thread,
        and a replica a test before killed may still be coming back."""
        return [e for e in self.events(cell) if e["monotonic"] >= since and e["event"] in FAULT_EVENTS]

    def fault(self, cell: str, kind: str, *options: str) -> dict[str, Any]:
        out = self.cli("sandbox", "fault", cell, kind, *options, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] not in "ZX"
    except FileNotFoundError:
        return False


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# ------------------------------------------------------------- reports


class Numbers(HTMLParser):
    """Every figure an HTML report shows: key, exact value, unit and the text a reader sees."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[dict[str, Any]] = []
        self._open: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "span" and a.get("class") == "gd-num":
            self._open = {"key": a["data-key"], "value": json.loads(a["data-value"] or "null"),
                          "unit": a["data-unit"], "text": ""}

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._open is not None:
            self.found.append(self._open)
            self._open = None


def html_numbers(html: str) -> list[dict[str, Any]]:
    parser = Numbers()
    parser.feed(html)
    return parser.found


def at(data: Any, key: str) -> Any:
    for part in key.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def assert_html_shows_report_json(folder: Path) -> dict[str, Any]:
    """Every number in index.html is the value at its key in report.json, formatted one way."""
    data = json.loads((folder / "report.json").read_text())
    numbers = html_numbers((folder / "index.html").read_text())
    assert numbers, "the report shows no figure"
    for n in numbers:
        assert n["value"] == at(data, n["key"]), n
        assert n["text"] == fmt(n["value"], n["unit"]), n
    return data


class PlainClient(threading.Thread):
    """An independent peer that knows nothing of gameday: POST /payments at ``hz`` from one
    thread, a fresh connection each; any answer but 201, or none within 2 s, is a failure."""

    def __init__(self, url: str, hz: float) -> None:
        super().__init__(daemon=True)
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port
        self.period = 1.0 / hz
        self.stop = threading.Event()
        self.sent: list[tuple[float, int]] = []  # (monotonic send time, status; 0 = no answer)

    def run(self) -> None:
        next_tick = time.monotonic()
        while not self.stop.is_set():
            sent = time.monotonic()
            conn = http.client.HTTPConnection(self.host, self.port, timeout=2.0)
            try:
                conn.request("POST", "/payments", json.dumps({"amount_cents": 1}),
                             {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                status = 0
            finally:
                conn.close()
            self.sent.append((sent, status))
            next_tick += self.period
            delay = next_tick - time.monotonic()
            if delay < 0:
                next_tick, delay = time.monotonic(), 0.0
            self.stop.wait(delay)


    def __enter__(self) -> PlainClient:
        self.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop.set()
        self.join()

    @property
    def failures(self) -> list[tuple[float, int]]:
        return [(t, status) for t, status in self.sent if status != 201]
