"""One chaos window, start to end: claim it, run one cell at a time, gate every run, report.

    claim the window (its id is deterministic): the claim has a holder and an expiry, renewed
    while the window runs; a claim that expired (its runner died) is taken over by the next
    scheduler of the schedule, which runs what is left of the window
    for each cell in order that has no run in the window yet:
        the rotation's experiment, the cell's exclusions, then the gates (freeze, incidents,
        error budget, minimum interval) right before the run: a blocked run is recorded skipped
        wait for the global fault lease (one cell under fault at a time, across processes)
        run it through the engine with the window's end as its deadline (halt: window_end)
    close the window, notify, render the window report

The core returns results and never prints; progress goes through callbacks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

from gameday.config.schedule import ErrorBudgetGate, IncidentGate, Schedule
from gameday.engine.lease import FAULT_LEASE, holder_id
from gameday.engine.reconcile import reconcile
from gameday.engine.runner import ProgressSink, RunRequest, record_skipped, run_experiment
from gameday.errors import InputError
from gameday.model import RunRecord, WindowRecord
from gameday.reporting.links import store_builder
from gameday.reporting.render import write_report
from gameday.reporting.reports import default_folder, window_report
from gameday.scheduler import gates
from gameday.scheduler.notify import Notifier
from gameday.scheduler.plan import PlannedWindow, freeze_at
from gameday.store import Store, StoreError

log = logging.getLogger(__name__)

LEASE_POLL_S = 0.5
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class WindowOutcome:
    window: WindowRecord
    runs: list[RunRecord] = field(default_factory=list)
    report: Path | None = None


def planned_from_record(window: WindowRecord) -> PlannedWindow:
    """The plan a claimed window was started with, from its own record (what a scheduler that
    takes it over resumes, even if the schedule file changed since)."""
    detail = window.detail
    start = datetime.fromisoformat(str(detail.get("scheduled_start_utc", window.started_utc)))
    week = detail.get("week_of_month")
    experiment = detail.get("experiment")
    return PlannedWindow(
        window_id=window.window_id, start_utc=start, end_utc=window.planned_end_utc or start,
        start_local=start, timezone=window.timezone,
        week_of_month=week if isinstance(week, int) else 1,
        experiment=experiment if isinstance(experiment, str) else None)


class WindowClaim:
    """Holds a window's claim while the window runs: a thread renews it every third of its
    lifetime. ``lost`` is set once it is no longer ours (taken over after it expired): the
    holder must then start nothing more in the window."""

    def __init__(self, store_url: str, window_id: str, holder: str, ttl: timedelta,
                 clock: Clock) -> None:
        self.window_id, self.holder, self.ttl, self.clock = window_id, holder, ttl, clock
        self.lost = threading.Event()
        self._done = threading.Event()
        self._store = Store.open(store_url)
        self._thread = threading.Thread(target=self._keep, name=f"claim {window_id}",
                                        daemon=True)

    def __enter__(self) -> WindowClaim:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._done.set()
        self._thread.join()
        self._store.close()

    def confirm(self) -> bool:
        """Renew now; False (and ``lost`` set) when the window is no longer ours."""
        if not self.lost.is_set() and not self._store.renew_window(
                self.window_id, self.holder, self.clock() + self.ttl):
            self.lost.set()
        return not self.lost.is_set()

    def _keep(self) -> None:
        while not self._done.wait(self.ttl.total_seconds() / 3):
            try:
                if not self.confirm():
                    return
            except StoreError as exc:  # the store is away for now: try again, the claim may hold
                log.warning("could not renew the claim on window %s: %s", self.window_id, exc)


@dataclass
class WindowRunner:
    schedule: Schedule
    store_url: str
    stop: threading.Event
    notifier: Notifier
    say: Callable[[str], None] = lambda _m: None
    progress: ProgressSink = lambda _p: None
    reports_dir: Path | None = None
    lease_ttl: timedelta = timedelta(seconds=15)
    clock: Clock = utc_now
    log_dir: Path = Path(".gameday/logs")

    # -- the window ----------------------------------------------------------------------
    def run(self, planned: PlannedWindow) -> WindowOutcome | None:
        """Run ``planned``, or what is left of it when its runner died; None when another
        scheduler holds it, it is closed, or its claim was lost to a scheduler that took it
        over while this one stalled."""
        holder = holder_id(f"{self.schedule.name}/{planned.window_id}")
        resumed = self._claim(planned, holder)
        if resumed is None:
            return None
        if not resumed:
            self.say(f"window {planned.window_id} opened ({planned.experiment or 'no experiment'})")
            self.notifier.send("window_start", self.clock(), schedule=self.schedule.name,
                               window_id=planned.window_id, experiment=planned.experiment,
                               cells=list(self.schedule.cells.order),
                               ends_at=planned.end_utc.isoformat())
        with WindowClaim(self.store_url, planned.window_id, holder, self.lease_ttl,
                         self.clock) as claim:
            runs = self._run_cells(planned, claim, resumed)
            if claim.lost.is_set() or not claim.confirm():
                self.say(f"window {planned.window_id}: another scheduler took it over; "
                         "leaving the rest to it")
                return None
            return self._close(planned, holder, runs)

    def _claim(self, planned: PlannedWindow, holder: str) -> bool | None:
        """Claim the window: False when new, True when taken over from a runner that died,
        None when not ours to run."""
        window = WindowRecord(
            window_id=planned.window_id, name=self.schedule.name, started_utc=self.clock(),
            planned_end_utc=planned.end_utc, timezone=self.schedule.timezone,
            detail={"schedule": self.schedule.source, "scheduled_start_utc":
                    planned.start_utc.isoformat(), "week_of_month": planned.week_of_month,
                    "experiment": planned.experiment, "cells": list(self.schedule.cells.order)})
        now = self.clock()
        with Store.open(self.store_url) as store:
            if store.claim_window(window, holder, now + self.lease_ttl):
                return False
            before = store.window_claim(planned.window_id)
            if not store.take_over_window(planned.window_id, holder, now + self.lease_ttl, now):
                log.info("window %s is claimed: not running it here", planned.window_id)
                return None
            # The dead runner's run becomes `interrupted` (never run again), its faults are
            # reverted and its fault lease released.
            reconcile(store)
        dead = before.holder if before is not None else "?"
        self.say(f"window {planned.window_id}: its runner died ({dead}); running what is left "
                 "of it")
        return True

    def _run_cells(self, planned: PlannedWindow, claim: WindowClaim,
                   resumed: bool) -> list[RunRecord]:
        runs: list[RunRecord] = []
        for cell in self.schedule.cells.order:
            if not claim.confirm():
                break
            record = self._done(planned, cell) or self._cell(planned, cell, claim, resumed)
            if record is None and not claim.lost.is_set():
                record = self._done(planned, cell)  # another runner ran it while we waited
            if record is None:  # the claim was lost while waiting for the fault lease
                break
            runs.append(record)
        return runs

    def _cell(self, planned: PlannedWindow, cell: str, claim: WindowClaim,
              resumed: bool) -> RunRecord | None:
        if self.clock() >= planned.end_utc:
            reason = ("runner_died: the scheduler running the window died and the window "
                      "ended before this cell's turn") if resumed else \
                "window_end: the window ended before this cell's turn"
            record: RunRecord | None = self._skip(planned, cell, reason)
        else:
            record = self._run_cell(planned, cell, claim)
        if record is not None:
            self._notify_run(planned, record)
        return record

    def _done(self, planned: PlannedWindow, cell: str) -> RunRecord | None:
        """The cell's run in this window, when it has one (before a runner died)."""
        with Store.open(self.store_url) as store:
            done = store.list_runs(window_id=planned.window_id, cell=cell, limit=1,
                                   with_journal=False)
        return done[0] if done else None

    def _close(self, planned: PlannedWindow, holder: str,
               runs: list[RunRecord]) -> WindowOutcome | None:
        with Store.open(self.store_url) as store:
            if not store.close_claimed_window(planned.window_id, holder, self.clock()):
                return None
            closed = store.get_window(planned.window_id)
            report = self._report(store, planned.window_id)
        assert closed is not None
        passed = sum(1 for r in runs if r.verdict == "passed")
        self.notifier.send("window_end", self.clock(), schedule=self.schedule.name,
                           window_id=planned.window_id, runs=len(runs), passed=passed,
                           skipped=sum(1 for r in runs if r.verdict == "skipped"),
                           report=str(report) if report else None)
        self.say(f"window {planned.window_id} closed: {passed} of {len(runs)} passed")
        return WindowOutcome(closed, runs, report)

    def record_missed(self, planned: PlannedWindow) -> WindowOutcome | None:
        """A window that passed while no scheduler ran: recorded, every run skipped (missed)."""
        window = WindowRecord(
            window_id=planned.window_id, name=self.schedule.name, started_utc=planned.start_utc,
            planned_end_utc=planned.end_utc, ended_utc=planned.end_utc, status="closed",
            timezone=self.schedule.timezone,
            detail={"schedule": self.schedule.source, "missed": True,
                    "week_of_month": planned.week_of_month, "experiment": planned.experiment})
        with Store.open(self.store_url) as store:
            if not store.claim_window(window):
                return None
        runs = [self._skip(planned, cell, "missed: no scheduler was running during the window")
                for cell in self.schedule.cells.order]
        for record in runs:
            self._notify_run(planned, record)
        self.say(f"window {planned.window_id} was missed: recorded as skipped")
        return WindowOutcome(window, runs, None)

    # -- one cell ------------------------------------------------------------------------
    def _run_cell(self, planned: PlannedWindow, cell: str,
                  claim: WindowClaim) -> RunRecord | None:
        """The cell's run (or why it was skipped); None when another runner got to it first."""
        kind = planned.experiment
        if kind is None:
            return self._skip(planned, cell, f"rotation: no experiment in week "
                                             f"{planned.week_of_month} of the month")
        if kind in self.schedule.cells.exclude.get(cell, frozenset()):
            return self._skip(planned, cell, f"excluded: {cell} never runs {kind}")
        if cell in self.schedule.cells.cannot_run:
            return self._skip(planned, cell, f"target: {self.schedule.cells.cannot_run[cell]}")
        if self.stop.is_set():
            return self._skip(planned, cell, "stopped: the scheduler is shutting down")
        blocked = self._gates(cell)
        if blocked is not None:
            return self._skip(planned, cell, blocked)
        holder = holder_id(f"{self.schedule.name}/{planned.window_id}/{cell}")
        if not self._wait_for_lease(holder, planned.end_utc):
            why = "stopped: the scheduler is shutting down" if self.stop.is_set() else \
                "window_end: the fault lease stayed taken until the window closed"
            return self._skip(planned, cell, why)
        try:
            # Under the lease no other runner starts a run: check that none ran this cell while
            # we waited, and that the window is still ours.
            if self._done(planned, cell) is not None or not claim.confirm():
                return None
            self.say(f"running {kind} against {cell}")
            try:
                return run_experiment(self._request(planned, cell, kind, holder),
                                      self.progress, self.stop, self.log_dir)
            except InputError as exc:  # the file or the cell changed since the schedule loaded
                return self._skip(planned, cell, f"invalid: {exc.message()}")
        finally:
            with Store.open(self.store_url) as store:
                store.lease_release(FAULT_LEASE, holder)

    def _request(self, planned: PlannedWindow, cell: str, kind: str, holder: str) -> RunRequest:
        return RunRequest(experiment=self.schedule.experiments[kind], cell=cell,
                          cells_file=self.schedule.cells.file, store_url=self.store_url,
                          window_id=planned.window_id, deadline_utc=planned.end_utc,
                          lease_holder=holder, lease_ttl_s=self.lease_ttl.total_seconds(),
                          allow=self.schedule.allow)

    def _skip(self, planned: PlannedWindow, cell: str, reason: str) -> RunRecord:
        kind = planned.experiment
        experiment = self.schedule.experiments.get(kind) if kind else None
        self.say(f"{cell}: skipped ({reason})")
        return record_skipped(self.store_url, cell=cell, cells_file=self.schedule.cells.file,
                              experiment=experiment, kind=kind or "none", reason=reason,
                              window_id=planned.window_id, now=self.clock())

    def _gates(self, cell: str) -> str | None:
        """The first gate that blocks ``cell`` now, as a skip reason; None when all pass."""
        for result in self.gate_results(cell):
            if result.blocked:
                return result.reason
        return None

    def gate_results(self, cell: str) -> list[gates.GateResult]:
        now = self.clock()
        results: list[gates.GateResult] = []
        freeze = freeze_at(self.schedule, now)
        results.append(gates.passed("freeze") if freeze is None else gates.GateResult(
            "freeze", True, f"freeze: {freeze.name}"))
        incidents = self.schedule.incidents
        if incidents is not None:
            results.append(self._incident_gate(cell, incidents))
        budget = self.schedule.error_budget
        # The cell's runs as far back as the budget period or the minimum interval reaches.
        lookback = max(timedelta(days=budget.period_days) if budget else timedelta(0),
                       self.schedule.cells.min_interval)
        with Store.open(self.store_url) as store:
            history = store.list_runs(cell=cell, limit=None, with_journal=False,
                                      since=now - lookback)
        if budget is not None:
            results.append(self._budget_gate(cell, budget, history, now))
        results.append(gates.min_interval_gate(cell, history, now,
                                               self.schedule.cells.min_interval))
        return results

    def _incident_gate(self, cell: str, config: IncidentGate) -> gates.GateResult:
        try:
            alerts: list[dict[str, object]] = []
            if config.alertmanager_url:
                alerts += gates.fetch_alertmanager_alerts(config.alertmanager_url,
                                                          config.timeout_s)
            if config.file is not None:
                alerts += gates.read_alerts_file(config.file)
        except gates.GateError as exc:
            return gates.incident_gate(cell, None, config.matchers, str(exc))
        return gates.incident_gate(cell, alerts, config.matchers)

    def _budget_gate(self, cell: str, config: ErrorBudgetGate, history: list[RunRecord],
                     now: datetime) -> gates.GateResult:
        consumed: float | None
        if config.prometheus_url and config.prometheus_query:
            source = "prometheus"
            try:
                consumed = gates.prometheus_budget_pct(config.prometheus_url,
                                                       config.prometheus_query, cell, 5.0)
            except gates.GateError as exc:
                return gates.error_budget_gate(cell, None, config.max_consumed_pct,
                                               config.period_days, source, error=str(exc))
        else:
            source = "store"
            slo = next((r.objectives.availability_slo for r in history if r.objectives), None)
            if slo is None:
                slo = self._cell_slo(cell)
            consumed = gates.budget_consumed_pct(cell, history, now,
                                                 timedelta(days=config.period_days), slo)
        return gates.error_budget_gate(cell, consumed, config.max_consumed_pct,
                                       config.period_days, source)

    def _cell_slo(self, cell: str) -> float:
        from gameday.config.cells import load_cells

        return load_cells(self.schedule.cells.file)[cell].availability_slo

    def _wait_for_lease(self, holder: str, until: datetime) -> bool:
        """Take the global fault lease, waiting while another run holds it (never past the
        window's end). Faults a dead holder left are reverted by the run's own reconcile."""
        with Store.open(self.store_url) as store:
            while not self.stop.is_set() and self.clock() < until:
                if store.lease_acquire(FAULT_LEASE, holder, self.lease_ttl, self.clock()):
                    return True
                self.stop.wait(LEASE_POLL_S)
        return False

    # -- after ---------------------------------------------------------------------------
    def _notify_run(self, planned: PlannedWindow, record: RunRecord) -> None:
        event = {"failed": "run_failed", "not_recovered": "run_failed", "aborted": "run_aborted",
                 "skipped": "run_skipped"}.get(record.verdict or "")
        if event is not None:
            self.notifier.send(event, self.clock(), schedule=self.schedule.name,
                               window_id=planned.window_id, cell=record.cell,
                               experiment=record.kind, run_id=record.run_id,
                               verdict=record.verdict, reason=record.reason)

    def _report(self, store: Store, window_id: str) -> Path | None:
        try:
            folder = default_folder("window", window_id, self.reports_dir)
            now = self.clock()
            return write_report(window_report(store, window_id, now), folder,
                                related=store_builder(store, now)).html
        except Exception:  # a report must never take the scheduler down with it
            log.exception("could not render the report of window %s", window_id)
            return None


__all__ = ["WindowClaim", "WindowOutcome", "WindowRunner", "planned_from_record"]
