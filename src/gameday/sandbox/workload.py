"""A write-ledger workload: sequence-numbered payments, each acknowledgement recorded.

It is how lost writes are counted, never estimated: after a failover, every acknowledged
sequence number is looked up in the surviving primary.
"""

from __future__ import annotations

import http.client
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import psycopg

from gameday.sandbox.postgres import PgCredentials


@dataclass(frozen=True)
class Attempt:
    seq: int
    sent_monotonic: float
    done_monotonic: float
    status: int  # HTTP status, 0 when the connection failed
    payment_id: int | None


@dataclass
class WriteLedger:
    """Writes ``{"seq": n, "reference": tag}`` payments to a cell until stopped."""

    url: str
    interval_s: float = 0.02
    timeout_s: float = 5.0
    tag: str = field(default_factory=lambda: "ledger-" + secrets.token_hex(4))
    attempts: list[Attempt] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> WriteLedger:
        self._thread = threading.Thread(target=self._run, name="write-ledger", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout_s + 1)

    def __enter__(self) -> WriteLedger:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def acknowledged(self) -> list[Attempt]:
        return [a for a in self.attempts if a.status == 201]

    def _run(self) -> None:
        parts = urlsplit(self.url)
        conn: http.client.HTTPConnection | None = None
        seq = 0
        while not self._stop.is_set():
            seq += 1
            if conn is None:
                conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                                  timeout=self.timeout_s)
            sent = time.monotonic()
            status, payment_id = 0, None
            try:
                body = json.dumps({"amount_cents": 100 + seq, "seq": seq, "reference": self.tag})
                conn.request("POST", "/payments", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                payload = response.read()
                status = response.status
                if status == 201:
                    payment_id = int(json.loads(payload)["id"])
            except (OSError, http.client.HTTPException, ValueError, KeyError):
                conn.close()
                conn = None
            self.attempts.append(Attempt(seq, sent, time.monotonic(), status, payment_id))
            self._stop.wait(self.interval_s)
        if conn is not None:
            conn.close()


def missing_acknowledged(port: int, creds: PgCredentials, tag: str, seqs: list[int]) -> list[int]:
    """Acknowledged sequence numbers of ``tag`` that the database at ``port`` does not hold."""
    with psycopg.connect(creds.dsn(port), autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute("SELECT seq FROM payments WHERE reference = %s", (tag,)).fetchall()
    present = {r[0] for r in rows}
    return sorted(s for s in seqs if s not in present)


def first_ack_after(attempts: list[Attempt], t: float) -> Attempt | None:
    """The first write sent after monotonic time ``t`` that was acknowledged."""
    return next((a for a in attempts if a.sent_monotonic >= t and a.status == 201), None)
