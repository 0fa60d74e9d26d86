"""A SQLite store opened again and again in one process, while it is open there already and
another process writes to it, keeps working: opening a store must never open (and close) the
database file itself, which would drop the POSIX locks the open connections hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gameday.store import Store

WRITER = """
import sys
from gameday.store import Store
with Store.open(sys.argv[1]) as store:
    for i in range(400):
        store.state_set(f"writer:{i % 7}", str(i))
"""


def test_reopening_a_store_beside_an_open_one_while_another_process_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gameday.db'}"
    held = Store.open(url)
    try:
        writer = subprocess.Popen([sys.executable, "-c", WRITER, url])
        rounds = 0
        while writer.poll() is None or rounds < 20:
            with Store.open(url, create=False) as again:  # what every command does
                again.state_set("reader", str(rounds))
            held.state_set("held", str(rounds))
            assert held.state_get("held") == str(rounds)
            rounds += 1
        assert writer.wait(timeout=60) == 0
        with Store.open(url, create=False) as last:
            assert last.state_get("writer:0") is not None
            assert last.state_get("reader") == str(rounds - 1)
    finally:
        held.close()
