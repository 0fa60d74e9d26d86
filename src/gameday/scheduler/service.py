"""The scheduler service: APScheduler 3.x times the schedule's windows; this is the only module
that talks to APScheduler.

Choices (documented in the README):
- What fires is the plan (scheduler.plan): one DateTrigger job for the next window, re-planned
  after each one. The plan owns the calendar (wall-clock windows across DST changes), so what
  runs is exactly what `gameday plan` shows.
- Jobs live in a memory job store, one per process. APScheduler 3's job stores must not be
  shared between schedulers (replicas sharing a SQL job store fire and delete each other's
  jobs), and nothing in a job needs to outlive the process: the plan is recomputed from the
  schedule file on every start. Exactly-once across replicas comes from the store's window
  claim: every replica of a schedule fires the window, one claims it, the others watch it.
- A claim has a holder and an expiry, renewed while the window runs. Every tick (a third of the
  lease ttl, at most HEARTBEAT_S) each replica looks for its schedule's windows whose claim
  expired (their runner died) and takes one over: what is left of it runs, or is recorded
  skipped (`runner_died`) once the window has ended, and the window is closed and reported.
- APScheduler's job only hands the window to this process's own window thread, so a window
  that raises is logged and the next one still fires; a window in progress that nobody claimed
  (its fire failed first) is fired again on the next tick. A watchdog checks every tick that
  each planned window fired within WATCHDOG_GRACE_S of its start; when one did not, it says
  so, replaces the APScheduler instance and runs the window itself.
- misfire_grace_time = 60 s and coalesce = True: a fire that comes a little late (a busy host)
  still runs, once. On start, windows that ended while no scheduler ran are recorded as skipped
  with reason `missed`, and a window in progress (at any moment inside it) runs what is left.
- One window at a time per process (one window thread); across processes every run holds the
  global fault lease.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from gameday.config.schedule import Schedule
from gameday.engine.runner import ProgressSink
from gameday.model import WindowRecord
from gameday.scheduler.notify import Notifier
from gameday.scheduler.plan import PlannedWindow, window_containing, window_occurrences
from gameday.scheduler.window import Clock, WindowRunner, planned_from_record, utc_now
from gameday.store import Store

log = logging.getLogger(__name__)

MISFIRE_GRACE_S = 60
HEARTBEAT_S = 5.0
# How late past its start a window may fire before the watchdog calls the timer dead.
WATCHDOG_GRACE_S = 15.0
# How far ahead the next window is looked for (a schedule has at least one window a week).
LOOKAHEAD = timedelta(days=15)


def last_seen_key(name: str) -> str:
    return f"scheduler:{name}:last_seen"


@dataclass
class SchedulerService:
    schedule: Schedule
    store_url: str
    stop: threading.Event
    say: Callable[[str], None] = lambda _m: None
    progress: ProgressSink = lambda _p: None
    reports_dir: Path | None = None
    lease_ttl: timedelta = timedelta(seconds=15)
    clock: Clock = utc_now
    runner: WindowRunner = field(init=False)
    # Planned windows whose fire is due, by id, until APScheduler fires them (the watchdog's).
    _awaiting: dict[str, PlannedWindow] = field(default_factory=dict, init=False)
    _next: PlannedWindow | None = field(default=None, init=False)
    _active: set[str] = field(default_factory=set, init=False)  # windows queued or running here
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _scheduler: Any = field(default=None, init=False)
    _windows: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        from gameday.config.cells import load_cells

        n = self.schedule.notifications
        # The cells' secrets are masked in every payload (reasons are masked when stored too).
        secrets = [v for c in load_cells(self.schedule.cells.file).values()
                   for v in c.secret_values]
        notifier = Notifier(n.webhook_url, n.events, n.timeout_s, secrets) if n \
            else Notifier(None)
        self.runner = WindowRunner(self.schedule, self.store_url, self.stop, notifier, self.say,
                                   self.progress, self.reports_dir, self.lease_ttl, self.clock)
        self._windows = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gameday-window")

    @property
    def tick_s(self) -> float:
        # Often enough that an expired claim is taken over within about one lease ttl.
        return min(HEARTBEAT_S, self.lease_ttl.total_seconds() / 3)

    # -- lifecycle -----------------------------------------------------------------------
    def run_forever(self) -> None:
        """Catch up, then fire windows until ``stop`` is set. Returns once everything is
        reverted and the lease released."""
        # One store for the service's own bookkeeping (heartbeats, claims it watches).
        store = Store.open(self.store_url)
        try:
            self._start_timer()
            self.catch_up(store)
            self._plan_next()
            while not self.stop.wait(self.tick_s):
                self.tick(store)
        finally:
            self._stop_timer()
            # A window in progress sees `stop` and halts its run (revert within a second);
            # wait for it, so nothing is left under fault when this returns. Windows queued
            # behind it are dropped: another replica, or the next start, runs them.
            self._windows.shutdown(wait=True, cancel_futures=True)
            self._guarded("heartbeat", lambda: self._heartbeat(store))
            store.close()
            self.runner.notifier.close()

    def tick(self, store: Store) -> None:
        """The main loop's round: each check on its own, so one failing spares the others."""
        self._guarded("heartbeat", lambda: self._heartbeat(store))
        self._guarded("watchdog", self.watchdog)
        self._guarded("takeover", lambda: self.adopt_orphans(store))
        self._guarded("unclaimed window", lambda: self.fire_unclaimed(store))
        self._guarded("planning", self._plan_next)

    def _guarded(self, what: str, check: Callable[[], object]) -> None:
        try:
            check()
        except Exception:
            log.exception("scheduler %s: the %s check failed; trying again in %.0f s",
                          self.schedule.name, what, self.tick_s)

    # -- the timer (APScheduler) -----------------------------------------------------------
    def _start_timer(self) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor as JobExecutor
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        self._scheduler = BackgroundScheduler(
            jobstores={"default": MemoryJobStore()},
            executors={"default": JobExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "misfire_grace_time": MISFIRE_GRACE_S,
                          "max_instances": 1},
            timezone="UTC")
        self._scheduler.start()
        with self._lock:
            awaiting = list(self._awaiting.values())
        for planned in awaiting:
            self._add_job(planned)

    def _stop_timer(self) -> None:
        from apscheduler.schedulers.base import SchedulerNotRunningError

        if self._scheduler is None:
            return
        # wait=False: its jobs only hand windows over, so there is nothing to wait for.
        with suppress(SchedulerNotRunningError):
            self._scheduler.shutdown(wait=False)

    def _add_job(self, planned: PlannedWindow) -> None:
        self._scheduler.add_job(
            self._fired, "date", run_date=planned.start_utc, args=[planned.window_id],
            id=f"window:{planned.window_id}", replace_existing=True,
            name=f"{self.schedule.name} window {planned.window_id}")

    def _fired(self, window_id: str) -> None:
        """APScheduler's job: hand the window to the window thread."""
        with self._lock:
            self._awaiting.pop(window_id, None)
        self._enqueue(window_id, partial(self.fire, window_id))

    def _plan_next(self) -> PlannedWindow | None:
        """Give APScheduler the plan's next window once the previous one is due."""
        now = self.clock()
        if self._next is not None and self._next.start_utc > now:
            return None
        upcoming = [w for w in window_occurrences(self.schedule, now, now + LOOKAHEAD)
                    if w.start_utc > now]
        if not upcoming:
            return None
        self._next = planned = upcoming[0]
        with self._lock:
            self._awaiting[planned.window_id] = planned
        self._add_job(planned)
        self.say(f"next window {planned.window_id} at {planned.start_local:%Y-%m-%d %H:%M %Z}"
                 f" ({planned.experiment or 'no experiment'})")
        return planned

    def watchdog(self) -> list[str]:
        """Windows that did not fire within WATCHDOG_GRACE_S of their start: the timer stopped
        firing. Say so, replace it, and run them here (what is left of them)."""
        now = self.clock()
        with self._lock:
            late = [w for w in self._awaiting.values()
                    if now - w.start_utc >= timedelta(seconds=WATCHDOG_GRACE_S)]
            for planned in late:
                del self._awaiting[planned.window_id]
        if not late:
            return []
        for planned in late:
            self.say(f"watchdog: window {planned.window_id} was due at {planned.start_utc:%H:%M:%S}"
                     " UTC but did not fire; restarting the scheduler's timer and running it")
        self._stop_timer()
        self._start_timer()
        for planned in late:
            self._enqueue(planned.window_id, partial(self.fire, planned.window_id))
        return [w.window_id for w in late]

    # -- windows -------------------------------------------------------------------------
    def _enqueue(self, window_id: str, work: Callable[[], object]) -> None:
        """Run ``work`` on the window thread, unless that window is queued or running here."""
        with self._lock:
            if window_id in self._active or self.stop.is_set():
                return
            self._active.add(window_id)
        self._windows.submit(self._run_window, window_id, work)

    def _run_window(self, window_id: str, work: Callable[[], object]) -> None:
        try:
            if not self.stop.is_set():
                work()
        except Exception as exc:  # logged; the next window still fires
            log.exception("window %s failed", window_id)
            self.say(f"window {window_id} failed ({type(exc).__name__}: {exc}); the scheduler "
                     "keeps firing and tries the window again (once its claim, if any, expires)")
        finally:
            with self._lock:
                self._active.discard(window_id)

    def fire(self, window_id: str) -> None:
        """Run the planned window ``window_id`` (once; a claimed window is not run again)."""
        now = self.clock()
        planned = next((w for w in window_occurrences(self.schedule, now - timedelta(days=2),
                                                      now + timedelta(minutes=5))
                        if w.window_id == window_id), None)
        if planned is None or planned.end_utc <= now:
            log.warning("window %s is not in the schedule now: not running it", window_id)
            return
        self.runner.run(planned)

    def resume(self, window: WindowRecord) -> None:
        """Take over ``window`` from a runner that died and run what is left of it."""
        self.runner.run(planned_from_record(window))

    def adopt_orphans(self, store: Store) -> list[str]:
        """Queue this schedule's windows whose claim expired (their runner died)."""
        orphans = [w for w in store.orphaned_windows(self.schedule.name, self.clock())
                   if w.window_id not in self._active]
        for window in orphans:
            self._enqueue(window.window_id, partial(self.resume, window))
        return [w.window_id for w in orphans]

    def fire_unclaimed(self, store: Store) -> str | None:
        """Queue the window in progress when no scheduler has claimed it (a fire that failed
        before its claim, or one this process missed)."""
        current = window_containing(self.schedule, self.clock())
        if current is None or current.window_id in self._active or \
                store.get_window(current.window_id) is not None:
            return None
        self._enqueue(current.window_id, partial(self.fire, current.window_id))
        return current.window_id

    def _heartbeat(self, store: Store) -> None:
        store.state_set(last_seen_key(self.schedule.name), self.clock().isoformat())

    def catch_up(self, store: Store) -> list[str]:
        """Record windows missed while no scheduler ran; run what is left of one in progress
        and of any whose runner died."""
        now = self.clock()
        seen = store.state_get(last_seen_key(self.schedule.name))
        ended = [] if seen is None else [
            w for w in window_occurrences(self.schedule, datetime.fromisoformat(seen), now)
            if w.end_utc <= now]
        # record_missed claims each window: one that did run (or was recorded) is left alone.
        done = [w.window_id for w in ended if self.runner.record_missed(w) is not None]
        self._guarded("heartbeat", lambda: self._heartbeat(store))
        self.adopt_orphans(store)
        current = window_containing(self.schedule, now)
        if current is not None:
            self.say(f"window {current.window_id} is in progress: running what is left of it")
            self._enqueue(current.window_id, partial(self.fire, current.window_id))
        return done
