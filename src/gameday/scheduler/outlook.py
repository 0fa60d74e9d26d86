"""A schedule's next weeks as plain data, for the resilience report's coverage (reporting
never imports the scheduler: the CLI and the demo hand this over)."""

from __future__ import annotations

from datetime import datetime

from gameday.analytics.coverage import ScheduleOutlook, Upcoming
from gameday.config.schedule import Schedule
from gameday.scheduler.plan import plan as plan_runs

PLAN_WEEKS = 4  # how far ahead the resilience report's coverage looks in the schedule


def schedule_outlook(schedule: Schedule, now: datetime, weeks: int = PLAN_WEEKS) -> ScheduleOutlook:
    """The schedule's next ``weeks`` as plain data for the report (reporting never imports the
    scheduler): every planned (cell, kind, when, blocked reason), the exclusions, the gate."""
    planned = plan_runs(schedule, now, weeks)
    gate = schedule.error_budget
    return ScheduleOutlook(
        name=schedule.name, horizon_days=7.0 * weeks, cells=tuple(schedule.cells.order),
        upcoming=tuple(Upcoming(cell=r.cell, kind=r.experiment, when=r.window.start_utc,
                                blocked_reason=r.skip_reason, window_id=r.window.window_id)
                       for r in planned),
        excluded=dict(schedule.cells.exclude),
        budget_max_pct=gate.max_consumed_pct if gate is not None else None,
        budget_period_days=gate.period_days if gate is not None else 30.0,
        source=str(schedule.source))
