"""Run one experiment against one cell: validate, preflight, sample, supervise the worker,
halt and revert when a safety condition says so, measure, persist, then report.

The core returns a RunRecord and never prints; progress goes through a callback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from gameday.analytics.criteria import evaluate, verdict
from gameday.analytics.recovery import (
    error_rate,
    first_breach,
    halt_reached,
    percentile,
    recovered_at,
    run_figures,
)
from gameday.config import DEFAULT_CELLS_FILE
from gameday.config.cells import Cell, find_cell, load_cells
from gameday.config.experiments import (
    SETTING_RANGES,
    Experiment,
    RunSettings,
    configured_cell,
    parse_document,
)
from gameday.config.policy import DEFAULT_POLICY, ProviderPolicy
from gameday.engine import faults
from gameday.engine.checks import check_for_cell
from gameday.engine.lease import FAULT_LEASE, holder_id
from gameday.engine.redact import Redactor, redact_text, store_url_secrets
from gameday.errors import GamedayError, InputError
from gameday.files import open_private
from gameday.model import RunEvent, RunRecord, Sample
from gameday.model.figures import INSTANTANEOUS_KINDS
from gameday.sandbox.procs import identify
from gameday.store import STORE_ENV, Store
from gameday.targets import open_target
from gameday.targets.base import OBSERVES, WRITE_LEDGER, Observation, ObservedSpan, Target

log = logging.getLogger(__name__)

LOOP_S = 0.05
FLUSH_EVERY_S = 1.0
PREFLIGHT_PROBES = 3
WORKER_STOP_GRACE_S = 10.0
# The method itself (pauses included) may not run longer than this past the recovery horizon.
METHOD_SLACK_S = 120.0
DEFAULT_LEASE_TTL_S = 15.0
STOPPED = "stopped: interrupted (Ctrl-C or SIGTERM) before any fault was injected"
LEASE_RENEW_S = 1.0
# The sampler bursts from the worker's start until this long after injection, and from this
# long before a sustained fault's end until this long after it.
BURST_TAIL_S = 3.0
BURST_LEAD_S = 1.0
OBSERVE_EVERY_S = 1.0


@dataclass(frozen=True)
class RunRequest:
    experiment: Path
    cell: str | None = None
    cells_file: Path = DEFAULT_CELLS_FILE
    store_url: str | None = None
    probe_hz: float | None = None
    baseline_s: float | None = None
    stability_window_s: float | None = None
    recovery_timeout_s: float | None = None
    error_span_s: float | None = None
    window_id: str | None = None  # the chaos window the run belongs to, if any
    deadline_utc: datetime | None = None  # the window's end: halt there (reason window_end)
    lease_holder: str | None = None  # who holds the fault lease for this run (default: the run)
    lease_ttl_s: float = DEFAULT_LEASE_TTL_S
    allow: ProviderPolicy = DEFAULT_POLICY  # the schedule's opt-ins, with the cell's own


@dataclass(frozen=True)
class Progress:
    phase: str  # preflight, baseline, injecting, recovering, done
    elapsed_s: float
    samples: int
    success_ratio: float | None  # over the last second
    p95_ms: float | None  # over the last second
    note: str = ""


ProgressSink = Callable[[Progress], None]


@dataclass(frozen=True)
class Prepared:
    experiment: Experiment
    settings: RunSettings
    cell: Cell
    target: Target


def prepare(request: RunRequest) -> Prepared:
    """Everything that can be checked before touching anything; raises InputError."""
    overrides: dict[str, Any] = {k: v for k, v in {
        "probe_hz": request.probe_hz, "baseline_s": request.baseline_s,
        "stability_window_s": request.stability_window_s,
        "recovery_timeout_s": request.recovery_timeout_s,
        "error_span_s": request.error_span_s}.items() if v is not None}
    for key, value in overrides.items():
        check_setting(key, value)
    name = request.cell or configured_cell(request.experiment)
    if name is None:
        raise InputError("--cell", "the one cell to run against", "nothing",
                         "pass --cell NAME (or set gameday_cell in the experiment's configuration)")
    cell = find_cell(load_cells(request.cells_file), name, str(request.cells_file))
    experiment = check_for_cell(request.experiment, cell, request.allow).experiment
    settings = replace(experiment.settings, **overrides)
    if settings.latency_factor is None and settings.latency_max_ms is None:
        settings = replace(settings, latency_max_ms=cell.p95_latency_slo_ms)
    return Prepared(experiment, settings, cell, open_target(cell))


def check_setting(key: str, value: float) -> None:
    """An override of a run setting: finite and in the range an experiment file may use."""
    low, high, low_open = SETTING_RANGES[key]
    below = value <= low if low_open else value < low
    if not math.isfinite(value) or below or value > high:
        bound = f"above {low:g}" if low_open else f"at least {low:g}"
        raise InputError(f"--{key.removesuffix('_s').replace('_', '-')}",
                         f"a finite number {bound} and at most {high:g}", value,
                         "pass a number in that range")


def new_run_id() -> str:
    return f"run-{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


@dataclass
class _Live:
    """What the supervising loop knows as the run goes."""

    t0: float
    t_inject: float | None = None
    t_inject_started: float | None = None
    t_fault_end: float | None = None
    halted: str | None = None
    worker_done: bool = False
    worker_code: int | None = None
    events: list[RunEvent] = field(default_factory=list)
    observation: Observation | None = None
    observed_at: float = 0.0  # monotonic

    @property
    def t_cause_end(self) -> float | None:
        """When the cause of impact ended: a sustained fault's revert or expiry, else t_inject."""
        return self.t_fault_end if self.t_fault_end is not None else self.t_inject

    def event(self, source: str, what: str, mono: float | None = None, **detail: Any) -> None:
        t = (mono if mono is not None else time.monotonic()) - self.t0
        self.events.append(RunEvent(t=t, utc=datetime.now(UTC), source=source, name=what,
                                    detail=detail))


class RunSupervisor:
    def __init__(self, prepared: Prepared, store: Store, store_url: str, cells_file: Path,
                 progress: ProgressSink, stop: threading.Event, log_dir: Path,
                 request: RunRequest | None = None) -> None:
        self.p = prepared
        request = request or RunRequest(prepared.experiment.path)
        self.window_id = request.window_id
        self.allow = request.allow
        self.deadline = request.deadline_utc
        self.lease_ttl = timedelta(seconds=request.lease_ttl_s)
        self.s = prepared.settings
        self.store = store
        self.store_url = store_url
        self.cells_file = cells_file
        self.progress = progress
        self.stop = stop
        self.log_dir = log_dir
        self.run_id = new_run_id()
        self.holder = request.lease_holder or holder_id(f"run {self.run_id}")
        self.lease_renewed = time.monotonic()
        self.live = _Live(t0=time.monotonic())
        self.started_utc = datetime.now(UTC)
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.phase = "preflight"
        self.worker: subprocess.Popen[str] | None = None
        # What this process knows of the run's secrets; the worker also masks what chaoslib resolves.
        self.redactor = Redactor([*prepared.experiment.secret_values, *prepared.cell.secret_values,
                                  *store_url_secrets(store_url)])

    # -- progress ------------------------------------------------------------------------
    def _report(self, samples: list[Sample], note: str = "") -> None:
        now = time.monotonic() - self.live.t0
        recent = [s for s in samples if s.t >= now - 1.0]
        rate = error_rate(recent)
        self.progress(Progress(self.phase, now, len(samples),
                               None if rate is None else 1 - rate,
                               percentile([s.latency_ms for s in recent if s.ok], 95), note))

    # -- the run -------------------------------------------------------------------------
    def preflight(self) -> str | None:
        """None when the cell is reachable and its steady state holds, else why not."""
        problem = self.p.target.reachable()
        if problem is not None:
            return problem
        results = [self.p.target.probe(-1, "preflight") for _ in range(PREFLIGHT_PROBES)]
        failed = [r for r in results if not r.ok]
        if failed:
            return f"steady state does not hold: {len(failed)} of {len(results)} probes failed " \
                   f"({failed[0].error or failed[0].status})"
        return None

    def _other_cell_under_fault(self) -> str | None:
        for fault in self.store.ledger_unreverted():
            if fault.cell != self.p.cell.name and faults.owner_alive(fault):
                return fault.cell
        return None

    def skipped(self, reason: str) -> RunRecord:
        record = self._record(status="completed", verdict="skipped", reason=reason,
                              ended=datetime.now(UTC))
        self.store.create_run(record)
        return record

    def _record(self, **kw: Any) -> RunRecord:
        me = identify(os.getpid())
        return RunRecord(
            run_id=self.run_id, experiment=self.redactor.text(self.p.experiment.title),
            experiment_path=str(self.p.experiment.path), kind=self.s.kind, cell=self.p.cell.name,
            target=self.p.cell.target, started_utc=self.started_utc, status=kw["status"],
            ended_utc=kw.get("ended"), verdict=kw.get("verdict"),
            reason=None if kw.get("reason") is None else self.redactor.text(kw["reason"]),
            runner_pid=me.pid if me else None, runner_start_ticks=me.start_ticks if me else None,
            window_id=self.window_id, objectives=self.p.cell.objectives,
            environment=self.p.cell.environment,
        )

    def execute(self) -> RunRecord:
        if not self.store.lease_acquire(FAULT_LEASE, self.holder, self.lease_ttl,
                                        datetime.now(UTC)):
            lease = self.store.lease_get(FAULT_LEASE)
            held = f"held by {lease.holder} until {lease.expires_utc:%H:%M:%S} UTC" if lease \
                else "held by another run"
            return self.skipped(f"lock: the fault lease is {held}; one cell at a time")
        try:
            return self._execute()
        finally:
            self.store.lease_release(FAULT_LEASE, self.holder)

    def _execute(self) -> RunRecord:
        from gameday.engine.sampler import Sampler

        # A previous holder that died may still be rolling back (its worker reverts on its
        # parent's death): give it the lease's lifetime before giving up on this run.
        other = self._other_cell_under_fault()
        patience = time.monotonic() + self.lease_ttl.total_seconds()
        while other is not None and time.monotonic() < patience and not self.stop.is_set():
            time.sleep(0.2)
            self.store.lease_renew(FAULT_LEASE, self.holder, self.lease_ttl, datetime.now(UTC))
            faults.reconcile(self.store)
            other = self._other_cell_under_fault()
        if other is not None:
            return self.skipped(f"lock: cell {other} is under fault; one cell at a time")
        if self.stop.is_set():
            return self.skipped(STOPPED)
        problem = self.preflight()
        if problem is not None:
            return self.skipped(f"preflight: {problem}")
        if self.stop.is_set():  # SIGTERM during the preflight: nothing was injected
            return self.skipped(STOPPED)
        self.store.create_run(self._record(status="running"))
        sampler = Sampler(self.p.target, self.run_id, self.s.probe_hz, self.live.t0,
                          burst_hz=self.s.burst_hz).start()
        worker: subprocess.Popen[str] | None = None
        try:
            self.phase = "baseline"
            self._wait(sampler, self.s.baseline_s)
            if not self.live.halted:
                worker = self.worker = self._start_worker()
                self.phase = "injecting"
                self._supervise(sampler, worker)
        finally:
            if worker is not None:
                self._stop_worker(worker)
            sampler.stop()
            # Whatever happened, nothing of this run stays injected.
            faults.revert_run(self.store, self.run_id, self.live.halted or "run_end")
            self.store.add_samples(self.run_id, sampler.take_new())
        return self._finish(sampler)

    def _wait(self, sampler: Any, seconds: float) -> None:
        end = time.monotonic() + seconds
        last_flush = time.monotonic()
        while time.monotonic() < end and not self.live.halted:
            self._safety_checks()
            if time.monotonic() - last_flush >= FLUSH_EVERY_S:
                self.store.add_samples(self.run_id, sampler.take_new())
                last_flush = time.monotonic()
                self._report(sampler.samples())
            time.sleep(LOOP_S)

    def _start_worker(self) -> subprocess.Popen[str]:
        # 0600 in a 0700 directory: the worker masks secrets, but a log still says what it saw.
        log_file = open_private(self.log_dir / f"{self.run_id}.worker.log", append=True)
        cmd = [sys.executable, "-m", "gameday.engine.worker", "--run-id", self.run_id,
               "--experiment", str(self.p.experiment.path), "--cell", self.p.cell.name,
               "--cells-file", str(self.cells_file), "--parent", str(os.getpid()),
               "--allow", json.dumps(self.allow.to_json())]
        worker = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=log_file, text=True, bufsize=1,
                                  env={**os.environ, STORE_ENV: self.store_url})
        log_file.close()
        assert worker.stdout is not None
        threading.Thread(target=self._read_lines, args=(worker.stdout,), daemon=True).start()
        self.live.event("engine", "worker_started", pid=worker.pid)
        return worker

    def _read_lines(self, stream: IO[str]) -> None:
        for line in stream:
            with contextlib.suppress(json.JSONDecodeError):
                self.lines.put(json.loads(line))

    def _drain(self) -> None:
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return
            name = str(line.pop("event", "unknown"))
            mono = float(line.pop("monotonic", time.monotonic()))
            self.live.event("worker", name, mono, **line)
            if name == "fault_applied":
                t = mono - self.live.t0
                if self.live.t_inject is None:
                    self.live.t_inject = t
                    started = line.get("started_monotonic")
                    self.live.t_inject_started = t if started is None \
                        else float(started) - self.live.t0
                end = t + float(line.get("duration_s") or 0.0)
                self.live.t_fault_end = max(self.live.t_fault_end or end, end)
                self.phase = "recovering" if not line.get("duration_s") else "injecting"

    def _supervise(self, sampler: Any, worker: subprocess.Popen[str]) -> None:
        last_flush = time.monotonic()
        started = time.monotonic()
        while True:
            self._drain()
            now = time.monotonic() - self.live.t0
            samples = sampler.samples()
            if not self.live.halted:
                self._safety_checks()
            if not self.live.worker_done and worker.poll() is not None:
                self._drain()
                self.live.worker_done, self.live.worker_code = True, worker.returncode
                self.live.event("engine", "worker_exited", returncode=worker.returncode)
                if worker.returncode != 0 and not self.live.halted:
                    self._halt(f"worker_died: exit {worker.returncode}")
            self._burst(sampler, now)
            if self.live.t_inject is not None and not self.live.halted:
                limit, span = self._halt_condition()
                if halt_reached(samples, now, limit, span):
                    self._halt(f"halt: error rate above {limit:.0%} for {span:g} s")
            if self.live.t_fault_end is not None and now >= self.live.t_fault_end \
                    and self.phase == "injecting":
                self.phase = "recovering"
            if time.monotonic() - last_flush >= FLUSH_EVERY_S:
                self.store.add_samples(self.run_id, sampler.take_new())
                self.store.add_events(self.run_id, self._take_events())
                last_flush = time.monotonic()
                self._report(samples)
            if self._done(samples, now, started):
                return
            time.sleep(LOOP_S)

    def _burst(self, sampler: Any, now: float) -> None:
        """Probe faster where a short impact would be missed: while the fault is about to land
        and just after, and around a sustained fault's end."""
        live = self.live
        if live.t_inject is None:
            if not live.worker_done:
                sampler.burst(BURST_TAIL_S)
        elif now <= live.t_inject + BURST_TAIL_S:
            sampler.burst(live.t_inject + BURST_TAIL_S - now)
        elif live.t_fault_end is not None and live.t_fault_end > live.t_inject and \
                live.t_fault_end - BURST_LEAD_S <= now <= live.t_fault_end + BURST_TAIL_S:
            sampler.burst(live.t_fault_end + BURST_TAIL_S - now)

    def _safety_checks(self) -> None:
        """Halts that do not depend on the cell: the operator, the window's end, the lease."""
        if self.stop.is_set():
            self._halt("operator: interrupted")
        elif self.deadline is not None and datetime.now(UTC) >= self.deadline:
            self._halt("window_end")
        elif time.monotonic() - self.lease_renewed >= LEASE_RENEW_S:
            self.lease_renewed = time.monotonic()
            if not self.store.lease_renew(FAULT_LEASE, self.holder, self.lease_ttl,
                                          datetime.now(UTC)):
                self._halt("lock: the fault lease was lost (taken over after it expired)")

    def _halt_condition(self) -> tuple[float, float]:
        limit = self.s.halt_error_rate_above or self.p.cell.halt_error_rate_above
        span = self.s.halt_for_s or self.p.cell.halt_for_s
        return limit, span

    def _done(self, samples: list[Sample], now: float, started: float) -> bool:
        if self.stop.is_set() and self.live.halted:
            # Ctrl-C or SIGTERM: reverted already (the halt); the operator wants it over, not
            # a measured recovery.
            return True
        t_inject = self.live.t_inject
        if t_inject is None:
            # No fault (yet): done once the worker is, or when the method overstays.
            return self.live.worker_done or \
                time.monotonic() - started > METHOD_SLACK_S + self.s.recovery_timeout_s
        horizon = max(t_inject + self.s.recovery_timeout_s + self.s.stability_window_s,
                      t_inject + self.s.error_span_s)
        fault_end = self.live.t_fault_end or t_inject
        # The cell counts as recovered only once stable after the fault is over, and the
        # error rate's fixed span is covered.
        tolerance = self._tolerance(samples)
        settled = now >= horizon or (
            now >= fault_end and now >= t_inject + self.s.error_span_s and (
                first_breach(samples, self.live.t_inject_started or t_inject, tolerance) is None
                or recovered_at([s for s in samples if s.t >= fault_end], t_inject, tolerance,
                                self.s.stability_window_s) is not None)
            and self._target_settled(now < horizon))
        # Then let the method finish (pauses, hypothesis after, rollbacks), within bounds.
        return settled and (self.live.worker_done or now >= horizon + METHOD_SLACK_S)

    def _target_settled(self, waiting: bool) -> bool:
        """True once the target reports the cell back at its desired state (or it cannot
        observe itself); polled at most once a second."""
        if OBSERVES not in self.p.target.capabilities:
            return True
        if waiting and time.monotonic() - self.live.observed_at < OBSERVE_EVERY_S:
            return self.live.observation is not None and self.live.observation.complete
        self.live.observation = self._observe()
        self.live.observed_at = time.monotonic()
        return self.live.observation is None or self.live.observation.complete

    def _observe(self) -> Observation | None:
        if OBSERVES not in self.p.target.capabilities or self.live.t_inject is None:
            return None
        span = ObservedSpan([f.fault_id for f in self.store.ledger_for_run(self.run_id)],
                            self.live.t0 + self.live.t_inject, self.live.t0, time.monotonic())
        try:
            return self.p.target.observe(span)
        except (GamedayError, OSError) as exc:
            self.live.event("engine", "observe_failed", error=str(exc))
            return None

    def _tolerance(self, samples: list[Sample]) -> float:
        from gameday.analytics.recovery import latency_tolerance_ms

        start = self.live.t_inject_started
        base = [s.latency_ms for s in samples if s.ok and start is not None and s.t < start]
        return latency_tolerance_ms(percentile(base, 95), self.s.latency_factor,
                                    self.s.latency_floor_ms, self.s.latency_max_ms)

    def _halt(self, reason: str) -> None:
        """Stop injecting and revert now: the parent reverts through the ledger itself."""
        self.live.halted = reason
        self.live.event("engine", "halted", reason=reason)
        reverted = faults.revert_run(self.store, self.run_id, reason)
        self.live.event("engine", "reverted", faults=reverted)
        if self.live.t_fault_end is not None:  # reverted early: the fault ends now
            self.live.t_fault_end = min(self.live.t_fault_end, time.monotonic() - self.live.t0)
        if self.worker is not None and self.worker.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.worker.send_signal(signal.SIGUSR1)  # chaoslib: stop now, run rollbacks
        self.phase = "recovering"

    def _stop_worker(self, worker: subprocess.Popen[str]) -> None:
        if worker.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                worker.send_signal(signal.SIGUSR1)  # chaoslib: stop now, run the rollbacks
            try:
                worker.wait(WORKER_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        self._drain()

    def _take_events(self) -> list[RunEvent]:
        events, self.live.events = self.live.events, []
        return [replace(e, detail=self.redactor.value(e.detail)) for e in events]

    # -- figures and verdict ---------------------------------------------------------------
    def _finish(self, sampler: Any) -> RunRecord:
        from gameday.engine.sampler import detection_floor_ms

        s = self.s
        samples: list[Sample] = sampler.samples()
        failover = s.kind == "db-failover"
        missing: set[int] = set()
        if failover and self.live.t_inject is not None and \
                WRITE_LEDGER in self.p.target.capabilities:
            acked = [x.write_seq for x in samples if x.ok and x.write_seq is not None]
            missing = set(self.p.target.missing_writes(self.run_id, acked))
        live = self.live
        observation = self._observe()
        cause_end = live.t_inject if s.kind in INSTANTANEOUS_KINDS else live.t_cause_end
        removed = None if observation is None else observation.figures.get("target_restored_s")
        if s.kind not in INSTANTANEOUS_KINDS and live.t_inject is not None and removed is not None:
            # The target's own record of the removal beats ours (injection + duration, from
            # when the worker's call returned): the sandbox expires a fault from when it landed.
            cause_end = live.t_inject + float(removed)
        figures = run_figures(
            samples, t_inject=live.t_inject, t_started=live.t_inject_started,
            t_cause_end=cause_end, stability_s=s.stability_window_s,
            timeout_s=s.recovery_timeout_s, factor=s.latency_factor,
            floor_ms=s.latency_floor_ms, max_ms=s.latency_max_ms, window_s=s.error_window_s,
            error_span_s=s.error_span_s, period_s=1.0 / s.probe_hz, failover=failover,
            missing_writes=missing)
        values = asdict(figures)
        values["error_rate_during_recovery"] = values["error_rate"]  # the v1 name, same value
        stats = sampler.stats()
        share = float((observation.figures if observation else {}).get("affected_share") or 1.0)
        values.update(probe_hz=s.probe_hz, burst_hz=s.burst_hz,
                      detection_floor_ms=detection_floor_ms(s.burst_hz, affected_share=share),
                      detection_floor_base_ms=detection_floor_ms(s.probe_hz,
                                                                 affected_share=share),
                      probes_skipped=stats.skipped)
        if observation is not None:
            values.update(observation.figures)
            values["observed_by"] = observation.observed_by
            values["observation"] = observation.detail
        results = evaluate(s.criteria, values)
        outcome, reason = verdict(results, recovered=figures.recovered, halted=live.halted,
                                  injected=live.t_inject is not None)
        self.store.add_events(self.run_id, self._take_events() + self._target_events(observation))
        self.store.update_run(self.run_id, status="completed", ended_utc=datetime.now(UTC),
                              verdict=outcome, reason=self.redactor.text(reason),
                              figures=values,
                              criteria=[replace(c, name=self.redactor.text(c.name)) for c in results])
        record = self.store.get_run(self.run_id)
        assert record is not None
        return record

    def _target_events(self, observation: Observation | None) -> list[RunEvent]:
        if observation is None:
            return []
        return [RunEvent(t=e.monotonic - self.live.t0, utc=e.utc, source=observation.observed_by,
                         name=e.name, detail=self.redactor.value(e.detail))
                for e in observation.events]


def run_experiment(request: RunRequest, progress: ProgressSink, stop: threading.Event,
                   log_dir: Path = Path(".gameday/logs"),
                   prepared: Prepared | None = None) -> RunRecord:
    """Validate (unless ``prepared`` is given), reconcile the ledger, then run; the record is
    stored before it is returned."""
    from gameday.store import resolve_store_url

    prepared = prepared or prepare(request)
    url = resolve_store_url(request.store_url)
    store = Store.open(url)
    try:
        if request.window_id is not None:
            from gameday.engine.windows import open_window_named

            open_window_named(store, request.window_id)
        faults.reconcile(store)
        supervisor = RunSupervisor(prepared, store, url, request.cells_file, progress, stop,
                                   log_dir, request)
        return supervisor.execute()
    finally:
        store.close()


def record_skipped(store_url: str, *, cell: str, cells_file: Path, experiment: Path | None,
                   kind: str, reason: str, window_id: str | None, now: datetime) -> RunRecord:
    """Store a run that was not run (a gate blocked it, the window was missed, ...)."""
    from gameday.config.cells import find_cell, load_cells

    title = kind
    if experiment is not None:
        # The title only: a skip must be recorded even when the file has gone bad since.
        with contextlib.suppress(InputError):
            title = str(parse_document(experiment).get("title") or kind)
    objectives = None
    cells = load_cells(cells_file)
    if cell in cells:
        objectives = find_cell(cells, cell, str(cells_file)).objectives
    target = cells[cell].target if cell in cells else "local"
    known = [*(cells[cell].secret_values if cell in cells else ()), *store_url_secrets(store_url)]
    environment = cells[cell].environment if cell in cells else "unknown"
    record = RunRecord(run_id=new_run_id(), experiment=redact_text(title, known),
                       experiment_path=str(experiment or ""), kind=kind, cell=cell,
                       target=target, started_utc=now, status="completed", ended_utc=now,
                       verdict="skipped", window_id=window_id,
                       reason=redact_text(reason, known),
                       objectives=objectives, environment=environment)
    with Store.open(store_url) as store:
        store.create_run(record)
    return record
