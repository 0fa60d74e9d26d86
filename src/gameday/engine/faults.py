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
from gameday.errors import GamedayError
from gameday.model import LedgerFault
from gameday.model.faults import validate_spec
from gameday.sandbox.procs import ProcessId, identify, is_alive
from gameday.store import Store
from gameday.targets.base import FaultKind, Target

# Instant faults (a kill) have nothing to expire, but the ledger still gives them a deadline.
INSTANT_EXPIRY_S = 60.0

log = logging.getLogger(__name__)

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
