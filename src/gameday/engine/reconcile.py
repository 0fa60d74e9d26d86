"""What every gameday command does first: clean up after crashes.

Faults whose owner died are reverted; runs whose runner died are marked ``interrupted`` (their
samples and events so far stay stored), never left as ``running``; a fault lease whose holder
died on this host is released.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from gameday.engine import faults
from gameday.engine.lease import FAULT_LEASE, holder_gone
from gameday.model import LedgerFault
from gameday.sandbox.procs import ProcessId, is_alive
from gameday.store import Store


@dataclass(frozen=True)
class Reconciled:
    faults: list[LedgerFault]
    runs: list[str]
    lease_released: str | None = None  # the dead holder whose lease was released


def reconcile(store: Store) -> Reconciled:
    reverted = faults.reconcile(store)
    interrupted = []
    for run in store.runs_with_status("running"):
        owner = None if run.runner_pid is None or run.runner_start_ticks is None \
            else ProcessId(run.runner_pid, run.runner_start_ticks)
        if owner is None or not is_alive(owner):
            faults.revert_run(store, run.run_id, "reconciled: runner gone")
            store.update_run(run.run_id, status="interrupted", ended_utc=datetime.now(UTC),
                             verdict="aborted", reason="interrupted: the runner process died")
            interrupted.append(run.run_id)
    lease = store.lease_get(FAULT_LEASE)
    released = None
    if lease is not None and holder_gone(lease.holder):
        store.lease_release(FAULT_LEASE, lease.holder)
        released = lease.holder
    return Reconciled(reverted, interrupted, released)
