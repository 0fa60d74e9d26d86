"""A throwaway PostgreSQL for `benchmarks/reports.py --postgres URL`, started the way the
tests start theirs (tests/conftest.py, `postgres_server`: gameday.sandbox.postgres's initdb,
start and readiness check; no standby, so no synchronous commit). Prints the URL, then serves
until interrupted (Ctrl-C or SIGTERM), and removes its data directory.

    .venv/bin/python benchmarks/pg_server.py &          # prints postgresql://gameday:...@127.0.0.1:PORT/postgres
    .venv/bin/python benchmarks/reports.py --postgres "$URL"
"""

from __future__ import annotations

import shutil
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path
from urllib.parse import quote

from gameday.sandbox import postgres as pg


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="gameday-bench-pg-"))
    run_as = pg.pg_run_as()
    data_root = pg.pg_data_root(work, run_as)
    creds = pg.new_credentials()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    proc = None
    try:
        bins = pg.find_pg_binaries()
        port = free_port()
        pg.init_primary(bins, data_root / "store", port, creds, run_as)
        proc = pg.start_node(bins, data_root / "store", work / "logs" / "store.log", run_as)
        pg.wait_ready(port, creds, 30.0, dbname="postgres")
        pg.set_synchronous_standbys(port, creds, "")  # no standby: commits must not wait for one
        print(f"postgresql://{creds.user}:{quote(creds.password, safe='')}@127.0.0.1:{port}/postgres",
              flush=True)
        stop.wait()
    finally:
        if proc is not None:
            pg.stop_node(proc, timeout_s=5.0)
        shutil.rmtree(work, ignore_errors=True)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
