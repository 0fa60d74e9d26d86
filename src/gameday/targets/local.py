"""The local target: a cell of the sandbox on this machine (the embedded default)."""

from __future__ import annotations

import http.client
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gameday.config.cells import Cell
from gameday.errors import GamedayError, InputError, SandboxError
from gameday.sandbox import manager
from gameday.sandbox.ground_truth import observe
from gameday.sandbox.state import SandboxLayout
from gameday.sandbox.workload import missing_acknowledged
from gameday.targets.base import (
    OBSERVES,
    WRITE_LEDGER,
    FaultKind,
    Observation,
    ObservedSpan,
    Probe,
    TargetEvent,
)

# Our fault kinds in the sandbox's words, and how their arguments are named there.
SANDBOX_KIND: dict[FaultKind, str] = {
    "pod-kill": "kill-replica",
    "latency": "latency",
    "cpu-stress": "cpu",
    "db-failover": "kill-primary",
}
SANDBOX_PARAM = {"count": "count", "latency_ms": "ms", "jitter_ms": "jitter",
                 "duration_s": "duration", "workers": "workers", "load_pct": "load"}


def sandbox_params(spec: dict[str, Any]) -> dict[str, Any]:
    return {SANDBOX_PARAM[k]: v for k, v in spec.items() if k in SANDBOX_PARAM}


class LocalTarget:
    name = "local"
    capabilities = frozenset({WRITE_LEDGER, OBSERVES})

    def __init__(self, cell: Cell) -> None:
        assert cell.local_state_dir is not None and cell.sandbox_cell is not None
        self.cell = cell
        self.state_dir: Path = cell.local_state_dir
        self.sandbox_cell: str = cell.sandbox_cell
        self.layout = SandboxLayout(self.state_dir.resolve())
        self._url: str | None = None
        self._conn: http.client.HTTPConnection | None = None

    def _state(self) -> dict[str, Any]:
        # Through the sandbox's checks, like every command: the cells file names the state
        # dir, and what is in it is trusted only once proven the sandbox's own.
        state = manager.cell_state(self.state_dir, self.sandbox_cell)
        if not state["url"]:
            raise SandboxError(f"no running sandbox cell {self.sandbox_cell} in {self.state_dir}")
        return state

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = str(self._state()["url"])
        return self._url

    def check(self, kind: FaultKind, spec: dict[str, Any]) -> None:
        manager.check_fault(self.state_dir, self.sandbox_cell, SANDBOX_KIND[kind],
                            sandbox_params(spec))

    def revert_spec(self, fault_id: str, kind: FaultKind) -> dict[str, Any]:
        return {"target": "local", "state_dir": str(self.layout.root),
                "sandbox_cell": self.sandbox_cell, "fault_id": fault_id}

    def inject(self, fault_id: str, kind: FaultKind, spec: dict[str, Any]) -> dict[str, Any]:
        record = manager.inject_fault(self.state_dir, self.sandbox_cell, SANDBOX_KIND[kind],
                                      sandbox_params(spec), fault_id=fault_id)
        return {"targets": record.get("targets", []), "expires_utc": record.get("expires_utc"),
                "sandbox_revert": record.get("revert")}

    def reachable(self) -> str | None:
        try:
            state = self._state()
        except (SandboxError, GamedayError) as exc:
            return str(exc)
        if state.get("status") != "ready":
            return f"sandbox cell {self.sandbox_cell} is {state.get('status')}"
        return None

    def probe(self, seq: int, tag: str, timeout_s: float | None = None) -> Probe:
        """One sequence-numbered write through the cell's front door (a fresh connection each:
        probes run concurrently and a kept-alive one would hide a dead endpoint)."""
        parts = urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                          timeout=timeout_s or self.cell.probe_timeout_s)
        started = time.perf_counter()
        try:
            body = json.dumps({"amount_cents": 100, "seq": seq, "reference": tag})
            conn.request("POST", "/payments", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
            latency = (time.perf_counter() - started) * 1000
            if response.status == 201:
                return Probe(True, 201, latency, None, seq, int(json.loads(payload)["id"]))
            return Probe(False, response.status, latency, _error_text(payload), seq)
        except TimeoutError as exc:  # socket.timeout: our own client timeout gave up
            # The cell may merely be slow: not an error it returned (Probe.timed_out).
            return Probe(False, 0, (time.perf_counter() - started) * 1000,
                         f"TimeoutError: {exc}", seq, timed_out=True)
        except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
            return Probe(False, 0, (time.perf_counter() - started) * 1000,
                         f"{type(exc).__name__}: {exc}", seq)
        finally:
            conn.close()

    def missing_writes(self, tag: str, seqs: list[int]) -> list[int]:
        creds = manager.database_credentials(self.state_dir)
        status = manager.sandbox_status(self.state_dir)
        cell = next(c for c in status["cells"] if c["name"] == self.sandbox_cell)
        primary = next(n for n in cell["database"] if n["role"] == "primary")
        return missing_acknowledged(int(primary["port"]), creds, tag, seqs)

    def observe(self, span: ObservedSpan) -> Observation:
        """The sandbox's own events in the run's span, and its figures from them."""
        events = [e for e in manager.sandbox_events(self.state_dir, self.sandbox_cell)
                  if span.start <= float(e.get("monotonic", 0.0)) <= span.end]
        seen = observe(events, fault_ids=span.fault_ids, t_inject=span.t_inject,
                       span=(span.start, span.end))
        figures = dict(seen.figures)
        killed = sum(len(e.get("targets", [])) for e in events
                     if e.get("event") == "fault_injected" and e.get("kind") == "kill-replica"
                     and e.get("fault_id") in span.fault_ids)
        if killed:
            # Behind round robin only this share of requests meets a killed replica: the
            # probes' detection floor is that much longer (engine.sampler.detection_floor_ms).
            replicas = len(self._state().get("replicas") or []) or killed
            figures["affected_share"] = min(1.0, killed / replicas)
        return Observation("sandbox", figures, tuple(_target_event(e) for e in events),
                           seen.complete, seen.detail)


def _target_event(event: dict[str, Any]) -> TargetEvent:
    detail = {k: v for k, v in event.items() if k not in ("event", "utc", "monotonic", "cell")}
    try:
        utc = datetime.fromisoformat(str(event.get("utc")))
    except ValueError:
        utc = datetime.now(UTC)
    return TargetEvent(float(event.get("monotonic", 0.0)), utc, str(event.get("event")), detail)


def _error_text(payload: bytes) -> str:
    try:
        data = json.loads(payload)
    except ValueError:
        return payload[:200].decode(errors="replace")
    return str(data.get("error", data)) if isinstance(data, dict) else str(data)


def revert_local(spec: dict[str, Any]) -> bool:
    """Revert through the sandbox's admin API; a sandbox that is gone has nothing left to revert."""
    try:
        reverted = manager.revert_fault(Path(spec["state_dir"]), spec["sandbox_cell"],
                                        spec["fault_id"])
    except InputError as exc:
        if exc.where in ("FAULT_ID", "CELL") or exc.where.startswith("--state-dir"):
            return False  # never applied, or the sandbox (and its faults) went down
        raise
    return bool(reverted) and reverted[0].get("revert_reason") == "reverted"
