"""The scheduler service: APScheduler 3.x fires the schedule's windows; this is the only module
that talks to APScheduler.

Choices (documented in the README):
- What fires is the plan (scheduler.plan): one DateTrigger job for the next window, re-planned
  after each one. The plan owns the calendar (wall-clock windows across DST changes), so what
  runs is exactly what `gameday plan` shows.
- Jobs live in APScheduler's SQLAlchemy job store, in the store's own database
  (table apscheduler_jobs).
- misfire_grace_time = 60 s and coalesce = True: a fire that comes a little late (a busy host)
  still runs, once. Anything later is the catch-up's business: on start, windows that ended
  while no scheduler ran are recorded as skipped with reason `missed`, and a window still in
  progress runs for the time it has left.
- One window at a time per process (a single worker thread, max_instances 1); across processes
  a window is claimed by its id and every run holds the global fault lease.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gameday.config.schedule import Schedule
from gameday.engine.runner import ProgressSink
from gameday.scheduler.notify import Notifier
from gameday.scheduler.plan import PlannedWindow, window_containing, window_occurrences
from gameday.scheduler.window import Clock, WindowRunner, utc_now
from gameday.store import Store

log = logging.getLogger(__name__)

MISFIRE_GRACE_S = 60
HEARTBEAT_S = 5.0
JOBS_TABLE = "apscheduler_jobs"
# How far ahead the next window is looked for (a schedule has at least one window a week).
LOOKAHEAD = timedelta(days=15)

# The live services of this process, by schedule name: APScheduler stores a job as a reference
# to a module-level function and its arguments, so the job finds its service here.
_SERVICES: dict[str, SchedulerService] = {}


def last_seen_key(name: str) -> str:
    return f"scheduler:{name}:last_seen"


def fire_window(schedule_name: str, window_id: str) -> None:
    """APScheduler's job: run the planned window ``window_id`` of a live service."""
    service = _SERVICES.get(schedule_name)
    if service is None:
        log.warning("window %s fired but no scheduler for %s runs here", window_id, schedule_name)
        return
    service.fire(window_id)


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
    _busy: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        n = self.schedule.notifications
        notifier = Notifier(n.webhook_url, n.events, n.timeout_s) if n else Notifier(None)
        self.runner = WindowRunner(self.schedule, self.store_url, self.stop, notifier, self.say,
                                   self.progress, self.reports_dir, self.lease_ttl, self.clock)

    # -- lifecycle -----------------------------------------------------------------------
    def run_forever(self) -> None:
        """Catch up, then fire windows until ``stop`` is set. Returns once everything is
        reverted and the lease released."""
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        _SERVICES[self.schedule.name] = self
        scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(url=self.store_url, tablename=JOBS_TABLE)},
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "misfire_grace_time": MISFIRE_GRACE_S,
                          "max_instances": 1},
            timezone="UTC")
        # One store for the service's own bookkeeping (heartbeats every few seconds).
        store = Store.open(self.store_url)
        try:
            self.catch_up(store)
            scheduler.start()
            self._schedule_next(scheduler)
            while not self.stop.wait(HEARTBEAT_S):
                self._heartbeat(store)
                if not scheduler.get_jobs():  # the last window fired: plan the next one
                    self._schedule_next(scheduler)
        finally:
            # A window in progress sees `stop` and halts its run (revert within a second);
            # wait for it, so nothing is left under fault when this returns.
            scheduler.shutdown(wait=True)
            self._heartbeat(store)
            store.close()
            self.runner.notifier.close()
            _SERVICES.pop(self.schedule.name, None)

    def _schedule_next(self, scheduler: Any) -> PlannedWindow | None:
        now = self.clock()
        upcoming = [w for w in window_occurrences(self.schedule, now, now + LOOKAHEAD)
                    if w.start_utc > now]
        if not upcoming:
            return None
        planned = upcoming[0]
        scheduler.add_job(
            fire_window, "date", run_date=planned.start_utc, args=[self.schedule.name,
                                                                   planned.window_id],
            id=f"gameday:{self.schedule.name}:next", replace_existing=True,
            name=f"{self.schedule.name} window {planned.window_id}")
        self.say(f"next window {planned.window_id} at {planned.start_local:%Y-%m-%d %H:%M %Z}"
                 f" ({planned.experiment or 'no experiment'})")
        return planned

    def _heartbeat(self, store: Store) -> None:
        store.state_set(last_seen_key(self.schedule.name), self.clock().isoformat())

    def catch_up(self, store: Store) -> list[str]:
        """Record windows missed while no scheduler ran; run one still in progress."""
        now = self.clock()
        seen = store.state_get(last_seen_key(self.schedule.name))
        ended = [] if seen is None else [
            w for w in window_occurrences(self.schedule, datetime.fromisoformat(seen), now)
            if w.end_utc <= now]
        # record_missed claims each window: one that did run (or was recorded) is left alone.
        done = [w.window_id for w in ended if self.runner.record_missed(w) is not None]
        self._heartbeat(store)
        current = window_containing(self.schedule, now)
        if current is not None and now - current.start_utc > timedelta(seconds=MISFIRE_GRACE_S):
            self.say(f"window {current.window_id} is in progress: running what is left of it")
            self.fire(current.window_id)
        return done

    def fire(self, window_id: str) -> None:
        """Run the planned window ``window_id`` (once; a claimed window is not run again)."""
        now = self.clock()
        planned = next((w for w in window_occurrences(self.schedule, now - timedelta(days=2),
                                                      now + timedelta(minutes=5))
                        if w.window_id == window_id), None)
        if planned is None or planned.end_utc <= now:
            log.warning("window %s is not in the schedule now: not running it", window_id)
            return
        with self._busy:
            self.runner.run(planned)
