"""Actions: each injects one fault in the run's cell, ledger first; ``revert_faults`` rolls back."""

from __future__ import annotations

import os
from typing import Any

from gameday.engine import faults
from gameday.engine.context import run_context
from gameday.targets.base import FaultKind

__all__ = ["add_latency", "fail_over_database", "kill_pods", "revert_faults", "stress_cpu"]


def _inject(kind: FaultKind, spec: dict[str, Any],
            configuration: dict[str, Any] | None) -> dict[str, Any]:
    ctx = run_context(configuration)
    fault = faults.inject(ctx.store, ctx.target, cell=ctx.cell.name, run_id=ctx.run_id,
                          kind=kind, spec=spec, on_applied=ctx.on_applied)
    return {"fault_id": fault.fault_id, "kind": kind, "cell": ctx.cell.name,
            "expires_utc": fault.expires_utc.isoformat(), "applied": fault.spec.get("applied")}


def kill_pods(count: int = 1, label_selector: str | None = None,
              configuration: dict[str, Any] | None = None,
              secrets: dict[str, Any] | None = None) -> dict[str, Any]:
    """Kill ``count`` replicas of the cell's service (pods matching the cell's selector)."""
    return _inject("pod-kill", {"count": count}, configuration)


def add_latency(latency_ms: float, duration_s: float, jitter_ms: float = 0.0,
                configuration: dict[str, Any] | None = None,
                secrets: dict[str, Any] | None = None) -> dict[str, Any]:
    """Delay traffic from the cell's database by ``latency_ms`` for ``duration_s``."""
    return _inject("latency", {"latency_ms": latency_ms, "jitter_ms": jitter_ms,
                               "duration_s": duration_s}, configuration)


def stress_cpu(duration_s: float, workers: int = 1, load_pct: int = 100,
               configuration: dict[str, Any] | None = None,
               secrets: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load the cell's CPUs with ``workers`` burners at ``load_pct`` for ``duration_s``."""
    return _inject("cpu-stress", {"workers": workers, "load_pct": load_pct,
                                  "duration_s": duration_s}, configuration)


def fail_over_database(configuration: dict[str, Any] | None = None,
                       secrets: dict[str, Any] | None = None) -> dict[str, Any]:
    """Lose the cell's database primary (the whole node), so its standby must take over."""
    return _inject("db-failover", {}, configuration)


def revert_faults(configuration: dict[str, Any] | None = None,
                  secrets: dict[str, Any] | None = None) -> list[str]:
    """Rollback: revert every fault this run (or, outside a run, this process) injected."""
    ctx = run_context(configuration)
    if ctx.run_id is not None:
        return faults.revert_run(ctx.store, ctx.run_id, "rollback")
    mine = [f for f in ctx.store.ledger_unreverted() if f.owner_pid == os.getpid()]
    for fault in mine:
        faults.revert(ctx.store, fault, "rollback")
    return [f.fault_id for f in mine]
