"""The resilience report's data (pure): what leadership reads, over the runs of a period.

Its first screen answers "are we resilient, and what should we do next?": the evidence's
environment, the objectives with a status, coverage (cell x kind: last tested, never,
excluded; next run or what blocks it), fleet MTTR beside "k of n runs had no user-visible
impact" and the mean time to full redundancy, the top findings with their next steps, and the
score with what lowered it. The schedule's plan comes in as plain data (a ScheduleOutlook built
by the CLI): reporting never imports the scheduler.

The runs are read once (tally_report), whatever their number: a fleet's year is some 100,000
runs. Every figure then comes from the tallies, equal to its definition over the runs
(analytics; tests/unit/test_fleet_analytics.py checks each against it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from heapq import heappush, heappushpop
from typing import Any

from gameday.analytics import assessment, fleet
from gameday.analytics.coverage import CoverageCell, CoverageTally, ScheduleOutlook, coverage_of
from gameday.analytics.fleet import MttrTally, RunLike
from gameday.collections_paused import no_collections
from gameday.model import CriterionResult
from gameday.reporting.context import KIND_WORDS, KINDS, REPORT_SCHEMA_VERSION, field_names, plain
from gameday.reporting.numbers import fmt

# Every figure this report reads, here and in the analytics it calls (fleet, assessment): the
# store reads only these for it (Store.report_runs); tests/unit/test_fleet_analytics.py checks
# that the report is the same from runs that hold nothing else.
FIGURES = frozenset({"impact", "recovery_s", "adapted", "restore_s", "rto_s", "rpo_s", "rpo_rows",
                     "downtime_s"})
TOP_ACTIONS = 10
MAX_SERIES_CELLS = 8
DEFAULT_MTTR_TARGET_S = 60.0  # seed: "Full recovery within 1 minute"
MTTR_TARGET_SAMPLE = 5000  # runs read for the most common recovery bound
INCIDENT_MTTR_NOTE = (
    "This is automated recovery under injected faults, not incident MTTR: the seed's 8.5-8.7 min "
    "is incident MTTR (people detecting, acknowledging and mitigating; MTTD, MTTA and MTTM come from "
    "drills), so the two are not comparable.")
STATUS_WORDS = {"met": "met", "at risk": "at risk", "unproven": "not proven", "missed": "missed",
                "unknown": "no evidence"}
ENV_WORDS = {"sandbox": "a local sandbox", "staging": "staging", "production": "production",
             "unknown": "an unrecorded environment (runs stored before environments existed)"}


def _shallow(record: Any) -> dict[str, Any]:
    """A dataclass of plain values as a dict (``asdict`` without its deep copies)."""
    return {name: getattr(record, name) for name in field_names(type(record))}


def _env_label(envs: Sequence[str]) -> str:
    return " + ".join(envs) if envs else "no runs"


# -- one pass over the runs ------------------------------------------------------------------


@dataclass(slots=True)
class EnvironmentTally:
    runs: int = 0
    evidence: int = 0
    targets: set[str] = field(default_factory=set)


@dataclass
class ReportTally:
    """Everything the report's figures read of its runs, tallied in one pass (``tally_report``).

    Chosen runs: started in the report's period [since, end); known runs: started before its
    end (coverage's "last tested" and the rolling error budget may look before the period);
    previous: the evidence runs of the period before (the trend's). Sums whose order matters
    (the score's weights, downtime) are summed in the order the runs come, as the figures'
    own definitions sum them (analytics.fleet)."""

    chosen: int = 0  # runs
    # chosen evidence runs by (environment, kind, ISO week): every MTTR but the cells'
    groups: dict[tuple[str, str, str], MttrTally] = field(default_factory=dict)
    cells: dict[str, MttrTally] = field(default_factory=dict)  # chosen evidence runs by cell
    cell_kinds: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # [evidence, passed]
    # by (cell, week) while the MTTR trend may show a series per cell (one environment, a few cells)
    cell_weeks: dict[tuple[str, str], MttrTally] | None = field(default_factory=dict)
    previous: MttrTally = field(default_factory=MttrTally)
    scores: dict[str, fleet.CellScoreTally] = field(default_factory=dict)
    dr: dict[str, fleet.DrTally] = field(default_factory=dict)
    months: dict[tuple[str, str], fleet.DowntimeTally] = field(default_factory=dict)  # chosen
    rolling: dict[str, fleet.DowntimeTally] = field(default_factory=dict)  # known, in the gate's period
    cover: CoverageTally = field(default_factory=CoverageTally)  # known
    objectives: dict[str, assessment.ObjectivesTally] = field(default_factory=dict)  # by environment
    counts: dict[tuple[str | None, bool], int] = field(default_factory=dict)  # by (verdict, halted)
    environments: dict[str, EnvironmentTally] = field(default_factory=dict)
    weeks: set[str] = field(default_factory=set)
    run_cells: set[str] = field(default_factory=set)  # of every chosen run
    # per cell, its newest evidence run (by start, the first of equals) with its start
    newest: dict[str, tuple[datetime, RunLike]] = field(default_factory=dict)
    cell_envs: dict[str, set[str]] = field(default_factory=dict)  # per cell, its evidence's
    # chosen evidence runs that may be behind a finding, or lost writes, in the order they came
    notable: list[RunLike] = field(default_factory=list)
    # (start, run id, criteria) of the newest chosen runs, at most MTTR_TARGET_SAMPLE (a heap)
    sample: list[tuple[datetime, str, Sequence[CriterionResult]]] = field(default_factory=list)


def tally_report(runs: Iterable[RunLike], since: datetime, end: datetime, budget_period: timedelta,
                 cells: Collection[str] | None = None, envs: Collection[str] | None = None) -> ReportTally:
    """One pass over ``runs`` for the report over the runs started in [since, end) of ``cells``
    and ``envs`` (None: all). Any order; each cell's runs newest first (as the store answers)
    gives the order-dependent sums (per cell) exactly as its figures' definitions sum them."""
    since, end = fleet.as_utc(since), fleet.as_utc(end)
    previous_start = since - (end - since)
    budget_start = end - budget_period
    wanted_cells = None if cells is None else frozenset(cells)
    wanted_envs = None if envs is None else frozenset(envs)
    t = ReportTally()
    groups, by_cell, cell_kinds, scores, dr = t.groups, t.cells, t.cell_kinds, t.scores, t.dr
    months, rolling, counts = t.months, t.rolling, t.counts
    environments, objectives = t.environments, t.objectives
    newest, cell_envs, notable, sample, weeks, run_cells = \
        t.newest, t.cell_envs, t.notable, t.sample, t.weeks, t.run_cells
    cell_weeks = t.cell_weeks
    cover = t.cover.add
    day_labels, decay_weight, number, mttr_values = \
        fleet.day_labels, fleet.decay_weight, fleet.number, fleet.mttr_values
    kinds = frozenset(fleet.KINDS)
    day, halt_prefix, slow_restore = timedelta(days=1), fleet.HALT_PREFIX, assessment.RESTORE_TARGET_S
    chosen = 0
    for run in runs:
        started = run.started_utc
        if started.tzinfo is not UTC:
            started = fleet.as_utc(started)
        if started >= end:
            continue
        cell = run.cell
        if wanted_cells is not None and cell not in wanted_cells:
            continue
        env = run.environment or fleet.UNKNOWN_ENVIRONMENT
        if wanted_envs is not None and env not in wanted_envs:
            continue
        verdict = run.verdict
        halted = verdict == "aborted" and (run.reason or "").startswith(halt_prefix)
        kind_of: fleet.RunClass = "running" if verdict is None else "skipped" if verdict == "skipped" \
            else "inconclusive" if verdict == "aborted" and not halted else "evidence"
        cover(run, kind_of, started)
        figures = run.figures
        if verdict != "skipped":
            downtime = number(figures.get("downtime_s")) or 0.0
            if started >= budget_start:
                budget = rolling.get(cell)
                if budget is None:
                    budget = rolling[cell] = fleet.DowntimeTally()
                budget.add_downtime(downtime, started, run.run_id, run.objectives)
        if started < since:
            if kind_of == "evidence" and started >= previous_start:
                t.previous.add(run)
            continue
        # -- a run of the report's period
        chosen += 1
        if chosen <= MTTR_TARGET_SAMPLE:
            heappush(sample, (started, run.run_id, run.criteria))
        elif started >= sample[0][0]:  # newer than the oldest kept (ties: by run id, as the heap orders)
            heappushpop(sample, (started, run.run_id, run.criteria))
        key = (verdict, halted)
        counts[key] = counts.get(key, 0) + 1
        place = environments.get(env)
        if place is None:
            place = environments[env] = EnvironmentTally()
        place.runs += 1
        place.targets.add(run.target)
        week, month = day_labels(started.date())
        weeks.add(week)
        run_cells.add(cell)
        if cell_weeks is not None and (len(run_cells) > MAX_SERIES_CELLS or len(environments) > 1):
            cell_weeks = None  # the MTTR trend shows no series per cell
        score = scores.get(cell)
        if score is None:
            score = scores[cell] = fleet.CellScoreTally()
        score.newest.offer(started, run.run_id, run.objectives)
        if verdict != "skipped":
            budget = months.get((cell, month))
            if budget is None:
                budget = months[(cell, month)] = fleet.DowntimeTally()
            budget.add_downtime(downtime, started, run.run_id, run.objectives)
        if kind_of != "evidence":
            continue
        # -- an evidence run of the report's period
        kind = run.kind
        place.evidence += 1
        restore, impact, recovery, adapted = mttr_values(verdict, figures)
        group = groups.get((env, kind, week))
        if group is None:
            group = groups[(env, kind, week)] = MttrTally()
        group.add_values(verdict, restore, impact, recovery, adapted)
        mine = by_cell.get(cell)
        if mine is None:
            mine = by_cell[cell] = MttrTally()
            cell_envs[cell] = set()
        mine.add_values(verdict, restore, impact, recovery, adapted)
        cell_envs[cell].add(env)
        if cell_weeks is not None:
            series = cell_weeks.get((cell, week))
            if series is None:
                series = cell_weeks[(cell, week)] = MttrTally()
            series.add_values(verdict, restore, impact, recovery, adapted)
        passes = cell_kinds.get((cell, kind))
        if passes is None:
            passes = cell_kinds[(cell, kind)] = [0, 0]
        passes[0] += 1
        passes[1] += verdict == "passed"
        if kind in kinds:
            score.kinds[kind].add(verdict, started, decay_weight((end - started) / day))
        if kind == "db-failover" and run.objectives is not None:
            failovers = dr.get(cell)
            if failovers is None:
                failovers = dr[cell] = fleet.DrTally()
            failovers.add(run, started)
        goals = objectives.get(env)
        if goals is None:
            goals = objectives[env] = assessment.ObjectivesTally()
        goals.add_known(run, halted, restore)
        last = newest.get(cell)
        if last is None or started > last[0]:
            newest[cell] = (started, run)
        # What may be behind a finding (assessment.actions_of: not passed, writes lost, full
        # redundancy late) or a summary line (writes lost): every other run adds nothing to them.
        if verdict != "passed" or (kind == "db-failover" and figures.get("rpo_rows")) \
                or (restore is not None and restore > slow_restore):
            notable.append(run)
    t.chosen, t.cell_weeks = chosen, cell_weeks
    return t


def merge_tallies(parts: Sequence[ReportTally]) -> ReportTally:
    """One tally of the runs of ``parts``, each the tally of the runs of other cells (a cell's
    runs all in one part, in the order the store answers them): the report of the merged tally
    is the report of all the runs in one pass. Raises ValueError when a cell is in two parts."""
    t = ReportTally()
    for part in parts:
        overlap = t.run_cells & part.run_cells or t.cover.counts.keys() & part.cover.counts.keys() \
            or t.rolling.keys() & part.rolling.keys() or t.scores.keys() & part.scores.keys()
        if overlap:
            raise ValueError(f"merge_tallies: parts share cells ({sorted(map(str, overlap))[:3]})")
        t.chosen += part.chosen
        for key, group in part.groups.items():
            t.groups.setdefault(key, MttrTally()).merge(group)
        t.previous.merge(part.previous)
        for env, goals in part.objectives.items():
            t.objectives.setdefault(env, assessment.ObjectivesTally()).merge(goals)
        for outcome, count in part.counts.items():
            t.counts[outcome] = t.counts.get(outcome, 0) + count
        for env, place in part.environments.items():
            mine = t.environments.setdefault(env, EnvironmentTally())
            mine.runs += place.runs
            mine.evidence += place.evidence
            mine.targets |= place.targets
        t.cover.merge(part.cover)
        # Tallies of one cell each: the parts' cells are apart.
        t.cells.update(part.cells)
        t.cell_kinds.update(part.cell_kinds)
        t.scores.update(part.scores)
        t.dr.update(part.dr)
        t.months.update(part.months)
        t.rolling.update(part.rolling)
        t.newest.update(part.newest)
        t.cell_envs.update(part.cell_envs)
        if t.cell_weeks is not None:
            if part.cell_weeks is None:
                t.cell_weeks = None
            else:
                t.cell_weeks.update(part.cell_weeks)
        t.weeks |= part.weeks
        t.run_cells |= part.run_cells
        t.notable += part.notable  # sorted newest first before anything reads them
        t.sample += part.sample
    if len(t.run_cells) > MAX_SERIES_CELLS or len(t.environments) > 1:
        t.cell_weeks = None  # as tally_report decides, on the cells of every part
    t.sample.sort(key=lambda item: (item[0], item[1]), reverse=True)
    del t.sample[MTTR_TARGET_SAMPLE:]
    return t


def _mttr_by(tallies: Mapping[tuple[str, str, str], MttrTally], position: int
             ) -> tuple[tuple[str, fleet.Mttr], ...]:
    """MTTR per label at ``position`` of the tallies' keys, sorted by label."""
    merged: dict[str, MttrTally] = {}
    for key, tally in tallies.items():
        label = key[position]
        into = merged.get(label)
        if into is None:
            into = merged[label] = MttrTally()
        into.merge(tally)
    return tuple((label, merged[label].mttr()) for label in sorted(merged))


def _mttr_target(sample: Iterable[tuple[datetime, str, Sequence[CriterionResult]]]) -> float:
    """The most common bound of the experiments' criteria on recovery_s (seconds), over the
    criteria of the first MTTR_TARGET_SAMPLE runs."""
    bounds: Counter[float] = Counter()
    for _started, _run_id, criteria in sample:  # the experiments' criteria repeat run after run
        for c in criteria:
            head, _, rest = c.expected.partition(" <= ")
            if head == "recovery_s" and " " not in rest:
                try:
                    bounds[float(rest)] += 1
                except ValueError:
                    continue
    return bounds.most_common(1)[0][0] if bounds else DEFAULT_MTTR_TARGET_S


def _mttr_trend(t: ReportTally, envs: Sequence[str]) -> dict[str, Any]:
    """MTTR by week: of all cells per environment, and per cell up to a legible number."""
    weeks = sorted(t.weeks)
    by_env_week: dict[tuple[str, str], MttrTally] = {}
    for (env, _kind, week), tally in t.groups.items():
        into = by_env_week.get((env, week))
        if into is None:
            into = by_env_week[(env, week)] = MttrTally()
        into.merge(tally)
    series = []
    for env in envs:
        values = [by_env_week[(env, w)].mttr().mean_s if (env, w) in by_env_week else None for w in weeks]
        series.append((f"all cells ({env})", values))
    cells = sorted(t.run_cells)
    if len(envs) == 1 and 1 < len(cells) <= MAX_SERIES_CELLS and t.cell_weeks is not None:
        empty = MttrTally()
        for cell in cells:
            values = [t.cell_weeks.get((cell, w), empty).mttr().mean_s for w in weeks]
            series.append((cell, values))
    target = _mttr_target(t.sample)
    return {"weeks": weeks, "series": [{"name": n, "values": v} for n, v in series],
            "target": {"value": target, "label": f"criterion: recovery within {fmt(target, 's')}"}}


SUMMARY_EXAMPLES = 3  # the summary names the newest few; the findings table lists the rest


def _few(runs: Sequence[RunLike], one: Callable[[RunLike], str], many: str,
         example: Callable[[RunLike], str]) -> str:
    """One summary line for runs that went wrong the same way, however many there are."""
    if len(runs) == 1:
        return one(runs[0])
    shown = "; ".join(example(r) for r in runs[:SUMMARY_EXAMPLES])
    more = f"; and {len(runs) - SUMMARY_EXAMPLES} more" if len(runs) > SUMMARY_EXAMPLES else ""
    return f"{len(runs)} {many} (newest: {shown}{more})."


def _writes(n: Any) -> str:
    return f"{n} acknowledged write{'s' if n != 1 else ''}"


def mttr_words(m: fleet.Mttr, env: str) -> str:
    """Fleet MTTR in one sentence, with "k of n" and the time to full redundancy."""
    if m.evidence == 0:
        head = f"No run with a known impact in {env}"
        if m.impact_unknown:
            head += f" ({m.impact_unknown} run{'s' if m.impact_unknown != 1 else ''} of unknown impact)"
        return head + "."
    k_of_n = f"{m.no_impact} of {m.evidence} runs had no user-visible impact"
    if m.mean_s is None:
        text = f"No recovery time in {env}: {k_of_n}"
    else:
        spread = []
        spread.append(f"median {fmt(m.median_s, 's')}" if m.median_s is not None else "median: too few runs")
        spread.append(f"p90 {fmt(m.p90_s, 's')}" if m.p90_s is not None else "p90: too few runs")
        text = (f"Fleet MTTR ({env}) {fmt(m.mean_s, 's')} ({', '.join(spread)}), the mean recovery over "
                f"the {m.runs} run{'s' if m.runs != 1 else ''} with user-visible impact; {k_of_n}")
    if m.not_recovered:
        text += f"; {m.not_recovered} did not recover"
    if m.impact_unknown:
        text += f"; {m.impact_unknown} of unknown impact left out"
    text += "; mean time to full redundancy " + (
        fmt(m.restore_mean_s, "s") + f" over {m.restore_runs} runs" if m.restore_mean_s is not None
        else "not observed")
    return text + "."


def _summary(t: ReportTally, envs: Sequence[str], cover: Sequence[CoverageCell],
             score: fleet.ResilienceScore, trend: fleet.Trend,
             budget: Sequence[fleet.RollingBudget]) -> list[str]:
    """The plain-language lines leadership reads first."""
    label = _env_label(envs)
    never = sum(1 for c in cover if c.state == "never")
    excluded = sum(1 for c in cover if c.state == "excluded")
    gaps = []
    if never:
        gaps.append(f"{never} cell and kind pair{'s' if never != 1 else ''} never tested")
    if excluded:
        gaps.append(f"{excluded} excluded by the schedule")
    gap_text = f" ({'; '.join(gaps)})" if gaps else ""
    if not t.cells:  # no evidence run
        skipped = sum(n for (verdict, _), n in t.counts.items() if verdict == "skipped")
        return ["No experiment ran to a verdict in this period"
                + (f" ({skipped} skipped)" if skipped else "") + f"{gap_text}."]
    cells = sorted(t.cells)
    clean = [c for c in cells if t.cells[c].passed == t.cells[c].evidence]
    lines = [f"{len(clean)} of {len(cells)} cell{'s' if len(cells) != 1 else ''} passed all the runs "
             f"they ran, on {label} evidence{gap_text}."]
    if "production" not in envs:
        lines.append(f"Evidence from {label} only: it shows how these cells recover there, not how "
                     "production does.")
    # every run these lines name is notable; by start alone, the first of equals first
    newest = sorted(t.notable, key=lambda r: fleet.as_utc(r.started_utc), reverse=True)
    lossy = [r for r in newest if r.kind == "db-failover" and r.figures.get("rpo_rows")]
    if lossy:
        lines.append(_few(
            lossy, lambda r: f"The database failover in {r.cell} on {r.started_utc:%Y-%m-%d} "
                             f"lost {_writes(r.figures['rpo_rows'])}.",
            "database failovers lost acknowledged writes",
            lambda r: f"{r.cell} on {r.started_utc:%Y-%m-%d}, {_writes(r.figures['rpo_rows'])}"))
    stuck = [r for r in newest if r.verdict == "not_recovered"]
    if stuck:
        lines.append(_few(
            stuck, lambda r: f"The {KIND_WORDS.get(r.kind, r.kind)} in {r.cell} on "
                             f"{r.started_utc:%Y-%m-%d} did not recover within its timeout.",
            "experiments did not recover within their timeout",
            lambda r: f"the {KIND_WORDS.get(r.kind, r.kind)} in {r.cell} on "
                      f"{r.started_utc:%Y-%m-%d}"))
    m = trend.current.mttr
    if m.evidence:
        change = "" if trend.mttr_change_s is None else (
            f" MTTR {'up' if trend.mttr_change_s > 0 else 'down'} "
            f"{fmt(abs(trend.mttr_change_s), 's')} on the previous period.")
        lines.append(mttr_words(m, label) + change)
    if score.fleet is not None:
        lines.append(f"Resilience score {fmt(score.fleet, 'score')} out of 100 (what lowered it is "
                     "shown per cell below).")
    if budget:
        worst = max(budget, key=lambda b: b.pct)
        lines.append(f"Chaos used at most {fmt(worst.pct, 'pct')} of a cell's rolling "
                     f"{worst.period_days:g}-day error budget ({worst.cell}).")
    return lines


def _answer(objs: Sequence[dict[str, Any]], cover: Sequence[CoverageCell], envs: Sequence[str],
            has_evidence: bool) -> str:
    label = _env_label(envs)
    if not has_evidence:
        return "Not known: no experiment ran to a verdict in this period."
    missed = [o["name"] for o in objs if o["status"] == "missed"]
    open_ = [o["name"] for o in objs if o["status"] in ("unproven", "at risk", "unknown")]
    gaps = sum(1 for c in cover if c.state != "tested")
    where = "" if "production" in envs else f" This is {label} evidence: production is not shown."
    if missed:
        return f"Not yet: {len(missed)} objective{'s' if len(missed) != 1 else ''} missed " \
               f"({', '.join(missed)}).{where}"
    if open_ or gaps:
        parts = []
        if open_:
            parts.append(f"{', '.join(open_)} not proven")
        if gaps:
            parts.append(f"{gaps} cell and kind pair{'s' if gaps != 1 else ''} not tested")
        return f"Not proven: nothing missed, but {'; '.join(parts)}.{where}"
    return f"Every objective met on {label} evidence.{where}"


def _objective_row(o: assessment.Objective, env: str) -> dict[str, Any]:
    if o.total == 0:
        actual = "no evidence"
    elif o.key == "pass_rate":
        actual = f"{fmt(o.value, 'ratio')} ({o.met} of {o.total} runs)"
    elif o.key == "recovery":
        actual = f"{o.met} of {o.total} runs within their criteria"
    elif o.key == "restore":
        actual = f"{o.met} of {o.total} runs within 30 s; worst {fmt(o.value, 's')}"
    elif o.key == "rto":
        actual = f"{o.met} of {o.total} failovers met; worst {fmt(o.value, 's')}"
    elif o.key == "rpo":
        rows = "none" if not o.value else _writes(int(o.value))
        actual = f"{o.met} of {o.total} failovers met; most lost: {rows}"
    else:
        actual = f"{o.met} of {o.total} cells under 50 %; highest {fmt(o.value, 'pct')}"
    words = STATUS_WORDS[o.status]
    if o.status == "met" and env != "production":
        words = f"met in {env} (not shown in production)"
    return {"key": o.key, "name": o.name, "target": o.target, "actual": actual, "status": o.status,
            "status_words": words, "detail": o.detail, "environment": env,
            "value": o.value, "unit": o.unit, "met": o.met, "total": o.total}


def _coverage_row(c: CoverageCell, horizon_days: float | None) -> dict[str, Any]:
    if c.state == "excluded":
        last = "excluded"
    elif c.state == "never":
        last = "never tested"
    else:
        last = f"{c.last_verdict.replace('_', ' ') if c.last_verdict else '?'} on {c.last_utc:%Y-%m-%d}"
        if c.stale:
            last += f" ({c.age_days:.0f} days ago: stale)"
    if not c.scheduled:
        outlook = "no schedule given"
    elif c.state == "excluded":
        outlook = "never: excluded by the schedule"
    elif c.blocked_by == "error budget":
        outlook = f"blocked by the error budget ({c.blocked_reason.split(': ', 1)[1]})" \
            if c.blocked_reason else "blocked by the error budget"
        if c.next_utc is not None:
            outlook += f"; planned {c.next_utc:%Y-%m-%d %H:%M} UTC"
    elif c.next_utc is not None:
        outlook = f"next {c.next_utc:%Y-%m-%d %H:%M} UTC"
    elif c.blocked_reason is not None:
        outlook = f"blocked: {c.blocked_reason}" + (
            f" ({c.blocked_utc:%Y-%m-%d})" if c.blocked_utc is not None else "")
    else:
        weeks = f" in the next {horizon_days / 7:g} weeks" if horizon_days else ""
        outlook = f"not in the rotation{weeks}"
    return {"cell": c.cell, "kind": c.kind, "state": c.state, "runs": c.runs, "last": last,
            "last_run_id": c.last_run_id, "last_verdict": c.last_verdict, "last_utc": c.last_utc,
            "last_environment": c.last_environment, "stale": c.stale,
            "excluded_reason": c.excluded_reason, "outlook": outlook, "next_utc": c.next_utc,
            "next_window_id": c.next_window_id, "blocked_by": c.blocked_by,
            "blocked_reason": c.blocked_reason, "blocked_window_id": c.blocked_window_id,
            "gap": c.state != "tested" or c.stale or (c.blocked_by is not None and c.next_utc is None)
            or c.blocked_by == "error budget"}


def _coverage(cover: Sequence[CoverageCell], outlook: ScheduleOutlook | None) -> dict[str, Any]:
    horizon = outlook.horizon_days if outlook else None
    rows = [_coverage_row(c, horizon) for c in cover]
    by_cell: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_cell.setdefault(row["cell"], []).append(row)
    counts = Counter(c.state for c in cover)
    return {
        "kinds": list(KINDS),
        "cells": [{"cell": cell, "kinds": kinds} for cell, kinds in by_cell.items()],
        "gaps": [r for r in rows if r["gap"]],
        "counts": {"pairs": len(cover), "tested": counts["tested"], "never": counts["never"],
                   "excluded": counts["excluded"], "stale": sum(1 for c in cover if c.stale),
                   "blocked": sum(1 for c in cover if c.blocked_by is not None and c.next_utc is None
                                  and c.state != "excluded"),
                   "budget_blocked": sum(1 for c in cover if c.blocked_by == "error budget")},
        "schedule": None if outlook is None else {
            "name": outlook.name, "source": outlook.source, "horizon_days": outlook.horizon_days,
            "budget_max_pct": outlook.budget_max_pct, "budget_period_days": outlook.budget_period_days},
    }


def _why(kind: fleet.KindScore, entry: CoverageCell | None) -> str:
    words = KIND_WORDS.get(kind.kind, kind.kind)
    outcome, decay = fleet.kind_points(kind)
    if kind.runs == 0:
        state = "excluded by the schedule" if entry is not None and entry.state == "excluded" \
            else "never tested"
        return f"{words}: {state}, untested scores 0 (-{fmt(outcome + decay, 'score')})"
    parts = []
    if outcome >= 0.5:
        parts.append(f"outcomes -{fmt(outcome, 'score')} (failed counts 0.5, not recovered or halted 0)")
    if decay >= 0.5:
        age = f"{entry.age_days:.0f} days old" if entry is not None and entry.age_days is not None else "old"
        parts.append(f"evidence {age}, fading -{fmt(decay, 'score')}")
    return f"{words}: " + ("; ".join(parts) if parts else "full marks")


def _score_rows(score: fleet.ResilienceScore, cover: Sequence[CoverageCell]) -> list[dict[str, Any]]:
    entries = {(c.cell, c.kind): c for c in cover}
    rows = []
    for cell in score.cells:
        lowered: list[dict[str, Any]] = []
        for kind in cell.kinds:
            outcome, decay = fleet.kind_points(kind)
            lowered.append({"kind": kind.kind, "score": kind.score, "points_lost": outcome + decay,
                            "outcome_points": outcome, "decay_points": decay, "runs": kind.runs,
                            "why": _why(kind, entries.get((cell.cell, kind.kind)))})
        rows.append({"cell": cell.cell, "tier": cell.tier, "score": cell.score, "kinds": lowered,
                     "lowered_by": "; ".join(k["why"] for k in lowered if k["points_lost"] >= 0.5)
                     or "nothing: full marks"})
    return rows


def _scorecard(t: ReportTally, score: fleet.ResilienceScore, dr: Sequence[fleet.DrCompliance],
               budget: Sequence[fleet.RollingBudget], explained: Sequence[dict[str, Any]],
               by_cell: dict[str, fleet.Mttr]) -> list[dict[str, Any]]:
    dr_of = {d.cell: d for d in dr}
    budget_of = {b.cell: b for b in budget}
    why = {row["cell"]: row["lowered_by"] for row in explained}
    rows = []
    for cell_score in score.cells:
        cell = cell_score.cell
        tally = t.cells.get(cell)
        newest = t.newest[cell][1] if cell in t.newest else None
        m = by_cell.get(cell) or fleet.Mttr(0, 0, None, None, None)
        d = dr_of.get(cell)
        b = budget_of.get(cell)
        rows.append({
            "cell": cell, "tier": cell_score.tier,
            "tenants": list(newest.objectives.tenants) if newest and newest.objectives else [],
            "environments": list(fleet.ordered_environments(t.cell_envs.get(cell, ()))),
            "score": cell_score.score, "lowered_by": why.get(cell, ""),
            "runs": tally.evidence if tally else 0,
            "pass_rate": tally.pass_rate().rate if tally else None,
            "mttr_mean_s": m.mean_s, "no_impact": m.no_impact, "impact_known": m.evidence,
            "restore_mean_s": m.restore_mean_s,
            "rto_pct": d.rto_pct if d else None, "rpo_pct": d.rpo_pct if d else None,
            "budget_pct": b.pct if b else None,
            "last_run_at": newest.started_utc if newest else None,
        })
    return rows


def _mttr_rows(by: Sequence[tuple[str, fleet.Mttr]], key: str) -> list[dict[str, Any]]:
    return [{key: label, **_shallow(m)} for label, m in by]


def build_resilience_report(runs: Iterable[RunLike], now: datetime, since: datetime,
                            until: datetime | None = None,
                            cells: Sequence[str] | None = None,
                            outlook: ScheduleOutlook | None = None,
                            envs: Sequence[str] | None = None) -> dict[str, Any]:
    """The leadership report over runs started in [since, until or now), optionally of some
    cells and environments; ``outlook``: what the schedule will run (coverage's next runs).

    ``runs`` may hold more: runs before ``since`` give coverage's "last tested", the trend's
    previous period and the rolling error budget. They are read once (tally_report), and every
    figure comes from that tally, as analytics' functions over the selected runs define it."""
    with no_collections():
        tally = resilience_tally(runs, now, since, until, cells, outlook, envs)
        return resilience_report_of(tally, now, since, until, cells, outlook, envs)


def resilience_tally(runs: Iterable[RunLike], now: datetime, since: datetime,
                     until: datetime | None = None,
                     cells: Sequence[str] | None = None,
                     outlook: ScheduleOutlook | None = None,
                     envs: Sequence[str] | None = None) -> ReportTally:
    """What ``build_resilience_report`` reads of ``runs`` (tally_report), for its arguments:
    the tallies of several sets of runs of other cells merge (merge_tallies)."""
    end = until or now
    if end - since <= timedelta(0):
        raise ValueError(f"trend: period must be positive, got {end - since}")
    budget_days = outlook.budget_period_days if outlook else 30.0
    with no_collections():
        return tally_report(runs, since, end, timedelta(days=budget_days), cells, envs)


def resilience_report_of(t: ReportTally, now: datetime, since: datetime, until: datetime | None = None,
                         cells: Sequence[str] | None = None, outlook: ScheduleOutlook | None = None,
                         envs: Sequence[str] | None = None) -> dict[str, Any]:
    """``build_resilience_report`` from the tally of its runs (``resilience_tally``)."""
    with no_collections():
        return _build(t, now, since, until, cells, outlook, envs)


def _build(t: ReportTally, now: datetime, since: datetime, until: datetime | None,
           cells: Sequence[str] | None, outlook: ScheduleOutlook | None,
           envs: Sequence[str] | None) -> dict[str, Any]:
    end = until or now
    period = end - since
    budget_days = outlook.budget_period_days if outlook else 30.0
    budget_limit = (outlook.budget_max_pct if outlook else None) or assessment.BUDGET_FREEZE_PCT
    rolling = fleet.rolling_budget_of(t.rolling, timedelta(days=budget_days))
    env_list = fleet.ordered_environments(t.environments)
    label = _env_label(env_list)
    cell_names = sorted(t.run_cells | set(cells or ())
                        | (set(outlook.cells) if outlook and not cells else set()))
    cover = coverage_of(t.cover, end, cell_names, outlook, rolling)
    score = fleet.resilience_score_of(t.scores, cell_names)
    dr = fleet.dr_compliance_of(t.dr)
    objectives: list[dict[str, Any]] = []
    for env in env_list or ("sandbox",):
        tally = t.objectives.get(env) or assessment.ObjectivesTally()
        objectives += [_objective_row(o, env) for o in assessment.objectives_of(
            tally, cell_names, rolling if len(env_list) <= 1 else (), budget_limit)
            if len(env_list) <= 1 or o.key != "error_budget"]
    if len(env_list) > 1:  # the budget is the cell's, whatever the environment of the runs
        objectives.append(_objective_row(assessment.objectives([], cell_names, rolling, budget_limit)[-1],
                                         label))
    tiers = {c.cell: c.tier for c in score.cells}
    newest_first = sorted(t.notable, key=fleet.newest_key, reverse=True)
    actions = assessment.actions_of(newest_first, cover, rolling, tiers, env_list, t.chosen > 0,
                                    budget_limit, budget_days)
    explained = _score_rows(score, cover)
    pass_cell_kind = {key: fleet.PassRate(n, passed, passed / n)
                      for key, (n, passed) in sorted(t.cell_kinds.items())}
    current = fleet.merged(t.groups.values())
    overall = current.mttr()
    trend = fleet.trend_of(current, t.previous, end, period)
    mttr_of = {"environment": _mttr_by(t.groups, 0), "kind": _mttr_by(t.groups, 1),
               "cell": tuple((cell, t.cells[cell].mttr()) for cell in sorted(t.cells)),
               "week": _mttr_by(t.groups, 2)}
    # Untested and excluded pairs are rows too, marked, so the heat map flags them.
    by_cell_kind = [{"cell": cell, "kind": kind, **_shallow(rate), "mark": None}
                    for (cell, kind), rate in pass_cell_kind.items()]
    by_cell_kind += [{"cell": c.cell, "kind": c.kind, "evidence": 0, "passed": 0, "rate": None,
                      "mark": "excluded" if c.state == "excluded" else "untested"}
                     for c in cover if c.state != "tested" and (c.cell, c.kind) not in pass_cell_kind]
    by_cell_kind.sort(key=lambda row: (row["cell"], row["kind"]))
    has_evidence = bool(t.cells)
    budgets = fleet.error_budget_of(t.months)
    out = plain({
        "schema_version": REPORT_SCHEMA_VERSION, "report": "resilience", "generated_at": now,
        "title": "Resilience report",
        "period": {"since": since, "until": end, "days": period / timedelta(days=1),
                   "cells": list(cells) if cells else None, "environments": list(envs) if envs else None},
        "evidence": {
            "environments": list(env_list), "label": label,
            "production": "production" in env_list,
            "by_environment": [{"environment": e, "runs": t.environments[e].runs,
                                "evidence": t.environments[e].evidence,
                                "targets": sorted(t.environments[e].targets)}
                               for e in sorted(t.environments)],
            "statement": (f"Evidence: {', '.join(ENV_WORDS.get(e, e) for e in env_list)}"
                          + ("" if "production" in env_list
                             else ". It shows how the cells recover there, not how production does.")
                          if env_list else "Evidence: no runs in this period."),
        },
        "answer": _answer(objectives, cover, env_list, has_evidence),
        "next_steps": [{"finding": a.finding, "next_step": a.next_step, "cell": a.cell, "kind": a.kind}
                       for a in actions[:3]],
        "summary": _summary(t, env_list, cover, score, trend, rolling),
        "counts": fleet.summary_counts_of(t.counts),
        "objectives": objectives,
        "coverage": _coverage(cover, outlook),
        "score": {"formula": fleet.SCORE_FORMULA, "fleet": score.fleet, "cells": score.cells,
                  "explained": explained},
        "scorecard": _scorecard(t, score, dr, rolling, explained, dict(mttr_of["cell"])),
        "mttr": {"overall": overall, "environment": label,
                 "sentence": mttr_words(overall, label), "note": INCIDENT_MTTR_NOTE,
                 **{f"by_{key}": _mttr_rows(by, key) for key, by in mttr_of.items()}},
        "mttr_trend": _mttr_trend(t, env_list),
        "trend": trend,
        "pass_rate": {
            "overall": current.pass_rate(), "environment": label,
            "kinds": list(KINDS), "cells": cell_names,
            "by_cell_kind": by_cell_kind,
        },
        "dr_compliance": dr,
        "error_budget": budgets,
        "error_budget_cells": fleet.budget_by_cell(budgets),
        "rolling_budget": rolling,
        "actions": {"total": len(actions), "top": list(actions[:TOP_ACTIONS]), "all": list(actions)},
        "findings": fleet.findings_of(r for r in newest_first if r.verdict != "passed"),
    })
    assert isinstance(out, dict)
    return out
