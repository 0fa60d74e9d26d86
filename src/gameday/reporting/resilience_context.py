"""The resilience report's data (pure): what leadership reads, over the runs of a period.

Its first screen answers "are we resilient, and what should we do next?": the evidence's
environment, the objectives with a status, coverage (cell x kind: last tested, never,
excluded; next run or what blocks it), fleet MTTR beside "k of n runs had no user-visible
impact" and the mean time to full redundancy, the top findings with their next steps, and the
score with what lowered it. The schedule's plan comes in as plain data (a ScheduleOutlook built
by the CLI): reporting never imports the scheduler.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, fields, is_dataclass
from datetime import datetime, timedelta
from typing import Any

from gameday.analytics import assessment, fleet
from gameday.analytics.coverage import CoverageCell, ScheduleOutlook, coverage
from gameday.model import RunRecord
from gameday.reporting.context import KIND_WORDS, KINDS, REPORT_SCHEMA_VERSION, plain
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


def _plain(value: Any) -> Any:
    """``context.plain`` with the common types first: at fleet scale the report holds some
    100,000 values (coverage, scorecard, findings) and this runs over every one."""
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is dict:
        return {str(k): _plain(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_plain(v) for v in value]
    if kind is datetime:
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return plain(value)


def _weeks(runs: Sequence[RunRecord]) -> list[str]:
    return sorted({fleet.week_label(r.started_utc) for r in runs})


def _env_label(envs: Sequence[str]) -> str:
    return " + ".join(envs) if envs else "no runs"


def _mttr_target(runs: Sequence[RunRecord]) -> float:
    """The most common bound of the experiments' criteria on recovery_s (seconds)."""
    bounds: Counter[float] = Counter()
    for run in runs[:MTTR_TARGET_SAMPLE]:  # the experiments' criteria repeat run after run
        for c in run.criteria:
            head, _, rest = c.expected.partition(" <= ")
            if head == "recovery_s" and " " not in rest:
                try:
                    bounds[float(rest)] += 1
                except ValueError:
                    continue
    return bounds.most_common(1)[0][0] if bounds else DEFAULT_MTTR_TARGET_S


def _mttr_trend(runs: Sequence[RunRecord], envs: Sequence[str]) -> dict[str, Any]:
    """MTTR by week: of all cells per environment, and per cell up to a legible number."""
    weeks = _weeks(runs)
    series = []
    by_env_week = fleet.group(fleet.evidence(runs), ("environment", "week"))
    for env in envs:
        values = [fleet.mttr(by_env_week[(env, w)]).mean_s if (env, w) in by_env_week else None
                  for w in weeks]
        series.append((f"all cells ({env})", values))
    cells = sorted({r.cell for r in runs})
    if len(envs) == 1 and 1 < len(cells) <= MAX_SERIES_CELLS:
        grouped = fleet.group(fleet.evidence(runs), ("cell", "week"))
        for cell in cells:
            values = [fleet.mttr(grouped.get((cell, w), [])).mean_s for w in weeks]
            series.append((cell, values))
    target = _mttr_target(runs)
    return {"weeks": weeks, "series": [{"name": n, "values": v} for n, v in series],
            "target": {"value": target, "label": f"criterion: recovery within {fmt(target, 's')}"}}


SUMMARY_EXAMPLES = 3  # the summary names the newest few; the findings table lists the rest


def _few(runs: Sequence[RunRecord], one: Callable[[RunRecord], str], many: str,
         example: Callable[[RunRecord], str]) -> str:
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


def _summary(runs: Sequence[RunRecord], envs: Sequence[str], cover: Sequence[CoverageCell],
             score: fleet.ResilienceScore, trend: fleet.Trend,
             budget: Sequence[fleet.RollingBudget]) -> list[str]:
    """The plain-language lines leadership reads first."""
    evidence = fleet.evidence(runs)
    label = _env_label(envs)
    never = sum(1 for c in cover if c.state == "never")
    excluded = sum(1 for c in cover if c.state == "excluded")
    gaps = []
    if never:
        gaps.append(f"{never} cell and kind pair{'s' if never != 1 else ''} never tested")
    if excluded:
        gaps.append(f"{excluded} excluded by the schedule")
    gap_text = f" ({'; '.join(gaps)})" if gaps else ""
    if not evidence:
        skipped = sum(1 for r in runs if r.verdict == "skipped")
        return ["No experiment ran to a verdict in this period"
                + (f" ({skipped} skipped)" if skipped else "") + f"{gap_text}."]
    cells = sorted({r.cell for r in evidence})
    missed = {r.cell for r in evidence if r.verdict != "passed"}
    clean = [c for c in cells if c not in missed]
    lines = [f"{len(clean)} of {len(cells)} cell{'s' if len(cells) != 1 else ''} passed all the runs "
             f"they ran, on {label} evidence{gap_text}."]
    if "production" not in envs:
        lines.append(f"Evidence from {label} only: it shows how these cells recover there, not how "
                     "production does.")
    newest = sorted(evidence, key=lambda r: r.started_utc, reverse=True)
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


def _scorecard(runs: Sequence[RunRecord], score: fleet.ResilienceScore,
               dr: Sequence[fleet.DrCompliance], budget: Sequence[fleet.RollingBudget],
               explained: Sequence[dict[str, Any]],
               by_cell: dict[str, fleet.Mttr]) -> list[dict[str, Any]]:
    dr_of = {d.cell: d for d in dr}
    rates = {cell: rate for (cell,), rate in fleet.pass_rate_by(runs, ("cell",)).items()}
    budget_of = {b.cell: b for b in budget}
    grouped = fleet.group(runs, ("cell",))
    why = {row["cell"]: row["lowered_by"] for row in explained}
    rows = []
    for cell_score in score.cells:
        cell = cell_score.cell
        mine = grouped.get((cell,), [])
        newest = max(mine, key=lambda r: r.started_utc) if mine else None
        m = by_cell.get(cell) or fleet.Mttr(0, 0, None, None, None)
        d = dr_of.get(cell)
        b = budget_of.get(cell)
        rows.append({
            "cell": cell, "tier": cell_score.tier,
            "tenants": list(newest.objectives.tenants) if newest and newest.objectives else [],
            "environments": list(fleet.environments(mine)),
            "score": cell_score.score, "lowered_by": why.get(cell, ""), "runs": len(mine),
            "pass_rate": rates[cell].rate if cell in rates else None,
            "mttr_mean_s": m.mean_s, "no_impact": m.no_impact, "impact_known": m.evidence,
            "restore_mean_s": m.restore_mean_s,
            "rto_pct": d.rto_pct if d else None, "rpo_pct": d.rpo_pct if d else None,
            "budget_pct": b.pct if b else None,
            "last_run_at": newest.started_utc if newest else None,
        })
    return rows


def _mttr_rows(by: Sequence[tuple[str, fleet.Mttr]], key: str) -> list[dict[str, Any]]:
    return [{key: label, **asdict(m)} for label, m in by]


def build_resilience_report(runs: Sequence[RunRecord], now: datetime, since: datetime,
                            until: datetime | None = None,
                            cells: Sequence[str] | None = None,
                            outlook: ScheduleOutlook | None = None,
                            envs: Sequence[str] | None = None) -> dict[str, Any]:
    """The leadership report over runs started in [since, until or now), optionally of some
    cells and environments; ``outlook``: what the schedule will run (coverage's next runs)."""
    end = until or now
    chosen = fleet.select_runs(runs, since, end, cells, envs)
    known = fleet.select_runs(runs, None, end, cells, envs)  # last tested may predate the period
    period = end - since
    # The trend needs the previous period too: it comes from ``runs``, not ``chosen``.
    trend = fleet.trend(fleet.select_runs(runs, since - period, end, cells, envs), end, period)
    budget_days = outlook.budget_period_days if outlook else 30.0
    budget_limit = (outlook.budget_max_pct if outlook else None) or assessment.BUDGET_FREEZE_PCT
    rolling = fleet.rolling_budget(known, end, timedelta(days=budget_days))
    env_list = fleet.environments(chosen)
    label = _env_label(env_list)
    cell_names = sorted({r.cell for r in chosen} | set(cells or ())
                        | (set(outlook.cells) if outlook and not cells else set()))
    cover = coverage(known, end, cell_names, outlook, rolling)
    score = fleet.resilience_score(chosen, end, cell_names)
    dr = fleet.dr_compliance(chosen)
    objectives: list[dict[str, Any]] = []
    for env in env_list or ("sandbox",):
        mine = [r for r in chosen if fleet.environment(r) == env]
        objectives += [_objective_row(o, env) for o in assessment.objectives(
            mine, cell_names, rolling if len(env_list) <= 1 else (), budget_limit)
            if len(env_list) <= 1 or o.key != "error_budget"]
    if len(env_list) > 1:  # the budget is the cell's, whatever the environment of the runs
        objectives.append(_objective_row(assessment.objectives([], cell_names, rolling, budget_limit)[-1],
                                         label))
    tiers = {c.cell: c.tier for c in score.cells}
    actions = assessment.actions(chosen, cover, rolling, tiers, budget_limit, budget_days)
    explained = _score_rows(score, cover)
    pass_cell_kind = fleet.pass_rate_by(chosen, ("cell", "kind"))
    overall = fleet.mttr(chosen)
    evidence = fleet.evidence(chosen)
    mttr_of = {key: fleet.mttr_by(evidence, key) for key in ("environment", "kind", "cell", "week")}
    # Untested and excluded pairs are rows too, marked, so the heat map flags them.
    by_cell_kind = [{"cell": cell, "kind": kind, **asdict(rate), "mark": None}
                    for (cell, kind), rate in pass_cell_kind.items()]
    by_cell_kind += [{"cell": c.cell, "kind": c.kind, "evidence": 0, "passed": 0, "rate": None,
                      "mark": "excluded" if c.state == "excluded" else "untested"}
                     for c in cover if c.state != "tested" and (c.cell, c.kind) not in pass_cell_kind]
    by_cell_kind.sort(key=lambda row: (row["cell"], row["kind"]))
    has_evidence = any(fleet.classify(r) == "evidence" for r in chosen)
    out = _plain({
        "schema_version": REPORT_SCHEMA_VERSION, "report": "resilience", "generated_at": now,
        "title": "Resilience report",
        "period": {"since": since, "until": end, "days": period / timedelta(days=1),
                   "cells": list(cells) if cells else None, "environments": list(envs) if envs else None},
        "evidence": {
            "environments": list(env_list), "label": label,
            "production": "production" in env_list,
            "by_environment": [{"environment": e, "runs": len(g),
                                "evidence": sum(1 for r in g if fleet.classify(r) == "evidence"),
                                "targets": sorted({r.target for r in g})}
                               for (e,), g in fleet.group(chosen, ("environment",)).items()],
            "statement": (f"Evidence: {', '.join(ENV_WORDS.get(e, e) for e in env_list)}"
                          + ("" if "production" in env_list
                             else ". It shows how the cells recover there, not how production does.")
                          if env_list else "Evidence: no runs in this period."),
        },
        "answer": _answer(objectives, cover, env_list, has_evidence),
        "next_steps": [{"finding": a.finding, "next_step": a.next_step, "cell": a.cell, "kind": a.kind}
                       for a in actions[:3]],
        "summary": _summary(chosen, env_list, cover, score, trend, rolling),
        "counts": fleet.summary_counts(chosen),
        "objectives": objectives,
        "coverage": _coverage(cover, outlook),
        "score": {"formula": fleet.SCORE_FORMULA, "fleet": score.fleet, "cells": score.cells,
                  "explained": explained},
        "scorecard": _scorecard(evidence, score, dr, rolling, explained, dict(mttr_of["cell"])),
        "mttr": {"overall": overall, "environment": label,
                 "sentence": mttr_words(overall, label), "note": INCIDENT_MTTR_NOTE,
                 **{f"by_{key}": _mttr_rows(by, key) for key, by in mttr_of.items()}},
        "mttr_trend": _mttr_trend(chosen, env_list),
        "trend": trend,
        "pass_rate": {
            "overall": fleet.pass_rate(chosen), "environment": label,
            "kinds": list(KINDS), "cells": cell_names,
            "by_cell_kind": by_cell_kind,
        },
        "dr_compliance": dr,
        "error_budget": fleet.error_budget(chosen),
        "rolling_budget": rolling,
        "actions": {"total": len(actions), "top": [asdict(a) for a in actions[:TOP_ACTIONS]],
                    "all": [asdict(a) for a in actions]},
        "findings": fleet.findings(chosen),
    })
    assert isinstance(out, dict)
    return out
