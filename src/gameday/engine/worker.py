"""The run's worker process: chaoslib's Runner in this process's main thread.

chaoslib installs signal handlers (main thread only), chaosk8s mutates process-global
configuration: each run gets a process of its own. It reports to its parent with one JSON
object a line on stdout, stores the (redacted) journal itself, and if the parent dies it is
sent SIGUSR1, on which chaoslib stops the method and still runs the rollbacks.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from gameday.config.cells import find_cell, load_cells
from gameday.config.experiments import load_experiment
from gameday.engine.context import RunContext, set_current
from gameday.engine.redact import redact
from gameday.model import LedgerFault
from gameday.store import STORE_ENV, Store
from gameday.targets import open_target

PR_SET_PDEATHSIG = 1
# Rollbacks are ours to choose: chaoslib's default skips them after a failed run.
SETTINGS = {"runtime": {"rollbacks": {"strategy": "always"}}}


def report(event: str, **detail: Any) -> None:
    line = json.dumps({"event": event, "monotonic": time.monotonic(), **detail}, default=str)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def die_with_parent(parent_pid: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGUSR1, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os.kill(os.getpid(), signal.SIGUSR1)


def _reporter() -> Any:
    from chaoslib.run import RunEventHandler

    class Reporter(RunEventHandler):  # type: ignore[misc]
        def start_activity(self, activity: dict[str, Any]) -> None:
            report("activity_started", name=activity.get("name"), type=activity.get("type"))

        def activity_completed(self, activity: dict[str, Any], run: dict[str, Any]) -> None:
            report("activity_completed", name=activity.get("name"), status=run.get("status"),
                   duration=run.get("duration"))

        def start_rollbacks(self, experiment: dict[str, Any]) -> None:
            report("rollbacks_started")

        def interrupted(self, experiment: dict[str, Any], journal: dict[str, Any]) -> None:
            report("interrupted")

    return Reporter()


def on_applied(fault: LedgerFault) -> None:
    applied = fault.spec.get("applied") or {}
    sys.stdout.write(json.dumps({
        "event": "fault_applied", "fault_id": fault.fault_id, "kind": fault.kind,
        "duration_s": fault.spec.get("duration_s", 0.0),
        "started_monotonic": applied.get("started_monotonic"),
        "monotonic": applied.get("completed_monotonic", time.monotonic())}) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gameday-worker")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--experiment", type=Path, required=True)
    parser.add_argument("--cell", required=True)
    parser.add_argument("--cells-file", type=Path, required=True)
    parser.add_argument("--parent", type=int, required=True)
    args = parser.parse_args(argv)
    die_with_parent(args.parent)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from chaoslib.run import Runner
    from chaoslib.types import Schedule, Strategy

    experiment = load_experiment(args.experiment)
    cell = find_cell(load_cells(args.cells_file), args.cell, str(args.cells_file))
    # The store URL comes through the environment: a password on the command line is visible
    # to anyone who lists processes.
    store = Store.open(os.environ[STORE_ENV])
    set_current(RunContext(args.run_id, cell, store, open_target(cell), on_applied))
    config_vars = {"gameday_cell": cell.name, "gameday_run_id": args.run_id}
    report("worker_started", pid=os.getpid())
    with Runner(Strategy.DEFAULT, Schedule()) as runner:
        runner.register_event_handler(_reporter())
        journal = runner.run(experiment.document, settings=SETTINGS,
                             experiment_vars=(config_vars, {}))
    safe = redact(json.loads(json.dumps(journal, default=str)),
                  [*experiment.secret_values, *cell.secret_values])
    store.update_run(args.run_id, journal=safe)
    report("journal_stored", status=journal.get("status"), deviated=journal.get("deviated"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
