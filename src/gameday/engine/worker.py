"""The run's worker process: chaoslib's Runner in this process's main thread.

chaoslib installs signal handlers (main thread only), chaosk8s mutates process-global
configuration: each run gets a process of its own. It reports to its parent with one JSON
object a line on stdout, stores the (redacted) journal itself, and if the parent dies it is
sent SIGUSR1, on which chaoslib stops the method and still runs the rollbacks.

Secrets: before anything else, stdout, stderr and every log handler pass through one
Redactor. It knows the store URL's password first, then the cell's and the experiment's
secrets (inline and environment), then whatever chaoslib resolved (Vault, ...), so chaoslib's
own log lines and exception texts, the journal and the lines to the parent are masked.
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
from gameday.config.policy import ProviderPolicy
from gameday.config.secret_values import leaf_values
from gameday.engine.context import RunContext, set_current
from gameday.engine.redact import RedactingStream, Redactor, redact_log_handlers, store_url_secrets
from gameday.model import LedgerFault
from gameday.store import STORE_ENV, Store
from gameday.targets import open_target

PR_SET_PDEATHSIG = 1
# Rollbacks are ours to choose: chaoslib's default skips them after a failed run.
SETTINGS = {"runtime": {"rollbacks": {"strategy": "always"}}}
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Every secret this process learns; everything it writes passes through it.
REDACTOR = Redactor()


def report(event: str, **detail: Any) -> None:
    line = json.dumps(REDACTOR.value({"event": event, "monotonic": time.monotonic(), **detail}),
                      default=str)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def mask_output() -> None:
    """stdout, stderr and logging through REDACTOR, before the first line is written."""
    sys.stdout = RedactingStream(sys.stdout, REDACTOR)
    sys.stderr = RedactingStream(sys.stderr, REDACTOR)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=LOG_FORMAT, force=True)
    # The stream masks whole lines; the formatter also covers a handler added later on another
    # stream (it is what chaoslib's activity errors and tracebacks go through).
    redact_log_handlers(REDACTOR, logging.getLogger(), logging.getLogger("chaostoolkit"))


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


def _runner(strategy: Any, schedule: Any) -> Any:
    """chaoslib's Runner, telling REDACTOR the secrets it resolved before any activity runs."""
    from chaoslib.run import Runner

    class MaskingRunner(Runner):  # type: ignore[misc]
        def configure(self, experiment: dict[str, Any], settings: Any,
                      experiment_vars: Any) -> None:
            super().configure(experiment, settings, experiment_vars)
            REDACTOR.add(leaf_values(self.secrets))

    return MaskingRunner(strategy, schedule)


def on_applied(fault: LedgerFault) -> None:
    applied = fault.spec.get("applied") or {}
    sys.stdout.write(json.dumps(REDACTOR.value({
        "event": "fault_applied", "fault_id": fault.fault_id, "kind": fault.kind,
        "duration_s": fault.spec.get("duration_s", 0.0),
        "started_monotonic": applied.get("started_monotonic"),
        "monotonic": applied.get("completed_monotonic", time.monotonic())})) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gameday-worker")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--experiment", type=Path, required=True)
    parser.add_argument("--cell", required=True)
    parser.add_argument("--cells-file", type=Path, required=True)
    parser.add_argument("--parent", type=int, required=True)
    # The schedule's provider opt-ins (JSON), on top of the cell's own.
    parser.add_argument("--allow", default="{}")
    args = parser.parse_args(argv)
    die_with_parent(args.parent)
    # The store URL comes through the environment: a password on the command line is visible
    # to anyone who lists processes.
    store_url = os.environ[STORE_ENV]
    REDACTOR.add(store_url_secrets(store_url))
    mask_output()
    from chaoslib.types import Schedule, Strategy

    cell = find_cell(load_cells(args.cells_file), args.cell, str(args.cells_file))
    REDACTOR.add(cell.secret_values)
    extra = ProviderPolicy.from_json(json.loads(args.allow))
    experiment = load_experiment(args.experiment, cell.allow.union(extra))
    REDACTOR.add(experiment.secret_values)
    store = Store.open(store_url)
    set_current(RunContext(args.run_id, cell, store, open_target(cell), on_applied))
    config_vars = {"gameday_cell": cell.name, "gameday_run_id": args.run_id}
    report("worker_started", pid=os.getpid())
    with _runner(Strategy.DEFAULT, Schedule()) as runner:
        runner.register_event_handler(_reporter())
        journal = runner.run(experiment.document, settings=SETTINGS,
                             experiment_vars=(config_vars, {}))
    safe = REDACTOR.value(json.loads(json.dumps(journal, default=str)))
    store.update_run(args.run_id, journal=safe)
    report("journal_stored", status=journal.get("status"), deviated=journal.get("deviated"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
