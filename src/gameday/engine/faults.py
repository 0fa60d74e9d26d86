"""Fault arguments (pure validation) and the one code path of every injection: ledger first.

    inject(): validate -> ledger row (pending, with expiry and revert spec) -> apply -> applied
    revert(): target revert (idempotent) -> ledger row reverted
    reconcile(): revert every unreverted fault whose owner process is gone
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from gameday import targets
from gameday.errors import GamedayError, InputError
from gameday.model import LedgerFault
from gameday.sandbox.procs import ProcessId, identify, is_alive
from gameday.store import Store
from gameday.targets.base import FAULT_KINDS, FaultKind, Target

log = logging.getLogger(__name__)

MAX_DURATION_S = 3600.0
# Instant faults (a kill) have nothing to expire, but the ledger still gives them a deadline.
INSTANT_EXPIRY_S = 60.0

# kind -> {argument: (type, low, high)}; every argument is optional unless listed in REQUIRED.
ARGUMENTS: dict[FaultKind, dict[str, tuple[type, float, float]]] = {
    "pod-kill": {"count": (int, 1, 100)},
    "latency": {"latency_ms": (float, 0, 60_000), "jitter_ms": (float, 0, 60_000),
                "duration_s": (float, 0, MAX_DURATION_S)},
    "cpu-stress": {"workers": (int, 1, 256), "load_pct": (int, 1, 100),
                   "duration_s": (float, 0, MAX_DURATION_S)},
    "db-failover": {},
}
REQUIRED: dict[FaultKind, tuple[str, ...]] = {
    "pod-kill": (), "latency": ("latency_ms", "duration_s"),
    "cpu-stress": ("duration_s",), "db-failover": (),
}


def validate_spec(kind: Any, spec: dict[str, Any], where: str) -> dict[str, Any]:
    """Check a fault's arguments without touching anything; return them normalised."""
    if kind not in FAULT_KINDS:
        raise InputError(f"{where}.kind", "one of " + ", ".join(FAULT_KINDS), kind,
                         "use a fault kind gameday knows")
    allowed = ARGUMENTS[kind]
    out: dict[str, Any] = {}
    for name, value in spec.items():
        if name not in allowed:
            raise InputError(f"{where}.{name}", "arguments of " + kind + ": "
                             + (", ".join(allowed) or "none"), name, f"remove {name}")
        typ, low, high = allowed[name]
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        whole = isinstance(value, int) and not isinstance(value, bool)
        if not numeric or (typ is int and not whole):
            raise InputError(f"{where}.{name}", "a whole number" if typ is int else "a number",
                             value, f"give {name} as a number")
        positive = name == "duration_s"
        if value < low or value > high or (positive and value <= 0):
            lower = f"above {low:g}" if positive else f"at least {low:g}"
            raise InputError(f"{where}.{name}", f"a value {lower} and at most {high:g}", value,
                             f"set {name} within that range")
        out[name] = typ(value)
    for name in REQUIRED[kind]:
        if name not in out:
            raise InputError(f"{where}.{name}", f"{name} for a {kind} fault", "nothing",
                             f"add {name}")
    if kind == "latency" and out.get("jitter_ms", 0) > out["latency_ms"]:
        raise InputError(f"{where}.jitter_ms", "a jitter no larger than latency_ms",
                         out["jitter_ms"], "lower jitter_ms")
    return out


def new_fault_id(kind: str) -> str:
    return f"{kind}-{secrets.token_hex(5)}"


def _now() -> datetime:
    return datetime.now(UTC)


def inject(store: Store, target: Target, *, cell: str, run_id: str | None, kind: FaultKind,
           spec: dict[str, Any], on_applied: Callable[[LedgerFault], None] | None = None
           ) -> LedgerFault:
    """Apply one fault. The ledger row is durable before the target is touched."""
    spec = validate_spec(kind, spec, "fault")
    target.check(kind, spec)
    fault_id = new_fault_id(kind)
    owner = identify(os.getpid())
    duration = float(spec.get("duration_s", 0.0))
    fault = LedgerFault(
        fault_id=fault_id, run_id=run_id, cell=cell, target=target.name, kind=kind, spec=spec,
        revert=target.revert_spec(fault_id, kind),
        expires_utc=_now() + timedelta(seconds=duration or INSTANT_EXPIRY_S),
        state="pending", owner_pid=owner.pid if owner else None,
        owner_start_ticks=owner.start_ticks if owner else None, created_utc=_now(),
    )
    store.ledger_add(fault)
    started = time.monotonic()
    try:
        detail = target.inject(fault_id, kind, spec)
        completed = time.monotonic()
    except BaseException:
        # It may have landed before the error: revert to be sure, then record the failure.
        _revert_quietly(store, fault, "inject_failed")
        raise
    # When the action started and completed (monotonic, system-wide): the run's t_inject.
    detail = {**detail, "started_monotonic": started, "completed_monotonic": completed}
    applied = replace(fault, state="applied", applied_utc=_now(),
                      spec={**spec, "applied": detail})
    store.ledger_update(fault_id, state="applied", applied_utc=applied.applied_utc,
                        spec=applied.spec)
    if on_applied is not None:
        on_applied(applied)
    return applied


def revert(store: Store, fault: LedgerFault, reason: str) -> bool:
    """Revert ``fault`` (idempotent) and mark it in the ledger; True if it was still active."""
    was_active = targets.revert(fault.revert)
    store.ledger_update(fault.fault_id, state="reverted", reverted_utc=_now(),
                        revert_reason=reason)
    log.info("fault %s reverted (%s)", fault.fault_id, reason)
    return was_active


def _revert_quietly(store: Store, fault: LedgerFault, reason: str) -> None:
    try:
        revert(store, fault, reason)
    except GamedayError:
        log.exception("could not revert %s after a failed injection", fault.fault_id)
        store.ledger_update(fault.fault_id, state="failed", revert_reason=reason)


def revert_run(store: Store, run_id: str, reason: str) -> list[str]:
    """Revert every unreverted fault of a run; return their ids."""
    done = []
    for fault in store.ledger_for_run(run_id):
        if fault.reverted_utc is None:
            revert(store, fault, reason)
            done.append(fault.fault_id)
    return done


def owner_alive(fault: LedgerFault) -> bool:
    if fault.owner_pid is None or fault.owner_start_ticks is None:
        return False
    return is_alive(ProcessId(fault.owner_pid, fault.owner_start_ticks))


def reconcile(store: Store) -> list[LedgerFault]:
    """Revert every fault whose owner process is gone: what a crash left behind."""
    reverted = []
    for fault in store.ledger_unreverted():
        if owner_alive(fault) and fault.expires_utc > _now():
            continue  # its run is still going and will revert it
        revert(store, fault, "reconciled: owner gone" if not owner_alive(fault)
               else "reconciled: expired")
        reverted.append(fault)
    return reverted
