"""Report data, built from records by pure functions: no clock, no database, no rendering.

    build_run_report(record, samples, events, faults, now)        -> dict
    build_window_report(window, runs, now)                        -> dict
    build_resilience_report(runs, now, since, until, cells)       -> dict

Each result is plain JSON (it is written as report.json, with REPORT_SCHEMA_VERSION) and is
the only thing the templates see: every number a report shows comes from here, and every
number here comes from the analytics functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime, timedelta
from typing import Any

from gameday.analytics import fleet
from gameday.analytics.recovery import error_rate, percentile
from gameday.analytics.timeline import timeline_buckets
from gameday.model import LedgerFault, RunEvent, RunRecord, Sample, WindowRecord
from gameday.reporting.numbers import fmt
from gameday.sandbox.ground_truth import service_restored_s

REPORT_SCHEMA_VERSION = 1
KINDS = ("pod-kill", "latency", "cpu-stress", "db-failover")
KIND_WORDS = {"pod-kill": "pod kill", "latency": "network latency", "cpu-stress": "CPU stress",
              "db-failover": "database failover"}
# A timeline chart stays legible up to a few hundred buckets.
MAX_BUCKETS = 300
OUTPUT_CHARS = 300  # journal outputs can be large; the report shows their start


def plain(value: Any) -> Any:
    """Dataclasses, tuples and datetimes as JSON values; non-finite floats as null."""
    if is_dataclass(value) and not isinstance(value, type):
        return plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _report(data: dict[str, Any]) -> dict[str, Any]:
    out = plain(data)
    assert isinstance(out, dict)
    return out


def verdict_words(verdict: str | None, reason: str | None, criteria_missed: int = 0) -> str:
    reason = reason or ""
    if verdict == "passed":
        return "Passed: the cell recovered and met every criterion."
    if verdict == "failed":
        if criteria_missed:
            return f"Failed: the cell recovered but missed {criteria_missed} " \
                   f"criteri{'on' if criteria_missed == 1 else 'a'}."
        return f"Failed: {reason}."
    if verdict == "not_recovered":
        return "Not recovered: the cell did not recover within the recovery timeout."
    if verdict == "aborted":
        return f"Aborted by a safety condition: {reason}."
    if verdict == "skipped":
        return f"Skipped: {reason}."
    return "Still running, or interrupted before a verdict."


def _bucket_size(samples: Sequence[Sample]) -> float:
    if not samples:
        return 1.0
    span = samples[-1].t - samples[0].t
    size = 1.0
    while span / size > MAX_BUCKETS:
        size *= 2
    return size


def _stats(samples: Sequence[Sample]) -> dict[str, Any]:
    rate = error_rate(samples)
    return {"samples": len(samples), "success_ratio": None if rate is None else 1 - rate,
            "p95_ms": percentile([s.latency_ms for s in samples if s.ok], 95)}


def _activities(journal: dict[str, Any] | None, section: str) -> list[dict[str, Any]]:
    rows = []
    for item in (journal or {}).get(section, []) or []:
        activity = item.get("activity") or {}
        output = item.get("output")
        text = "" if output is None else str(output)
        rows.append({"name": activity.get("name"), "type": activity.get("type"),
                     "status": item.get("status"), "start": item.get("start"),
                     "end": item.get("end"), "duration_s": item.get("duration"),
                     "output": text[:OUTPUT_CHARS] + ("…" if len(text) > OUTPUT_CHARS else ""),
                     "exception": "".join(item.get("exception") or [])[-OUTPUT_CHARS:] or None})
    return rows


def _steady_state(journal: dict[str, Any] | None, when: str) -> dict[str, Any] | None:
    state = ((journal or {}).get("steady_states") or {}).get(when)
    if not state:
        return None
    return {"met": state.get("steady_state_met"),
            "probes": [{"name": (p.get("activity") or {}).get("name"),
                        "output": str(p.get("output"))[:OUTPUT_CHARS],
                        "tolerance_met": p.get("tolerance_met"), "status": p.get("status")}
                       for p in state.get("probes", []) or []]}


def _ground_truth(events: Sequence[RunEvent], faults: Sequence[LedgerFault],
                  recovery_s: float | None, impact_s: float | None) -> dict[str, Any] | None:
    sandbox = [e for e in events if e.source == "sandbox"]
    if not sandbox:
        return None
    # Stored sandbox events keep their own time on the run's axis: differences are exact.
    raw = [{"event": e.name, "monotonic": e.t, **e.detail} for e in sandbox]
    truth = service_restored_s(raw, faults[0].fault_id) if faults else None
    # A fault the runner never saw land has nothing to recover from (recovery 0), whatever
    # the sandbox logged.
    if impact_s is None and recovery_s is not None:
        truth = 0.0 if truth is not None else None
    return {
        "events": [{"t": e.t, "utc": e.utc.isoformat(), "name": e.name,
                    "detail": {k: v for k, v in e.detail.items() if k != "fault_id"}}
                   for e in sandbox],
        "service_restored_s": truth,
        "runner_recovery_s": recovery_s,
        "difference_s": None if truth is None or recovery_s is None else recovery_s - truth,
    }


def build_run_report(record: RunRecord, samples: Sequence[Sample], events: Sequence[RunEvent],
                     faults: Sequence[LedgerFault], now: datetime) -> dict[str, Any]:
    f = record.figures
    t_inject, t_fault_end = f.get("t_inject"), f.get("t_fault_end")
    impact, recovery = f.get("time_to_impact_s"), f.get("recovery_s")
    bucket_s = _bucket_size(samples)
    markers = []
    if t_inject is not None:
        markers.append({"t": t_inject, "label": "inject"})
        if impact is not None:
            markers.append({"t": t_inject + impact, "label": "first impact"})
        if recovery is not None:
            markers.append({"t": t_inject + recovery, "label": "recovered"})
    fault = None if t_inject is None else [t_inject, t_fault_end if t_fault_end is not None
                                           else t_inject]
    before = [s for s in samples if t_inject is None or s.t < t_inject]
    after = [] if t_inject is None or recovery is None else \
        [s for s in samples if s.t >= t_inject + recovery]
    objectives = record.objectives
    missed = sum(1 for c in record.criteria if not c.ok)
    return _report({
        "schema_version": REPORT_SCHEMA_VERSION, "report": "run", "generated_at": now,
        "title": f"{record.experiment} — {record.cell}",
        "run": {
            "run_id": record.run_id, "experiment": record.experiment,
            "experiment_path": record.experiment_path, "kind": record.kind,
            "kind_words": KIND_WORDS.get(record.kind, record.kind), "cell": record.cell,
            "target": record.target, "tenants": list(objectives.tenants) if objectives else [],
            "tier": objectives.tier if objectives else None, "window_id": record.window_id,
            "started_at": record.started_utc, "ended_at": record.ended_utc,
            "duration_s": (record.ended_utc - record.started_utc).total_seconds()
            if record.ended_utc else None,
            "status": record.status, "verdict": record.verdict, "reason": record.reason,
            "verdict_words": verdict_words(record.verdict, record.reason, missed),
        },
        "objectives": objectives,
        "figures": {k: f.get(k) for k in (
            "time_to_impact_s", "recovery_s", "rto_s", "rpo_rows", "rpo_s", "peak_error_rate",
            "error_rate_during_recovery", "p95_ms_baseline", "p95_ms_during", "p95_ratio_during",
            "downtime_s", "latency_tolerance_ms", "samples")},
        "criteria": record.criteria,
        "timeline": {"bucket_s": bucket_s, "buckets": timeline_buckets(samples, bucket_s)
                     if samples else [], "fault": fault, "markers": markers},
        "steady_state": {
            "before": {"hypothesis": _steady_state(record.journal, "before"), **_stats(before)},
            "after": {"hypothesis": _steady_state(record.journal, "after"), **_stats(after)},
        },
        "activities": _activities(record.journal, "run"),
        "rollbacks": _activities(record.journal, "rollbacks"),
        "reverts": [{"fault_id": x.fault_id, "kind": x.kind, "state": x.state,
                     "created_at": x.created_utc, "applied_at": x.applied_utc,
                     "expires_at": x.expires_utc, "reverted_at": x.reverted_utc,
                     "revert_reason": x.revert_reason} for x in faults],
        "engine_events": [{"t": e.t, "utc": e.utc, "source": e.source, "name": e.name,
                           "detail": e.detail} for e in events if e.source != "sandbox"],
        "ground_truth": _ground_truth(events, faults, recovery, impact),
    })


def _run_row(run: RunRecord) -> dict[str, Any]:
    f = run.figures
    return {"run_id": run.run_id, "cell": run.cell, "kind": run.kind,
            "experiment": run.experiment, "started_at": run.started_utc,
            "verdict": run.verdict or run.status, "reason": run.reason,
            "class": fleet.classify(run),
            "time_to_impact_s": f.get("time_to_impact_s"), "recovery_s": f.get("recovery_s"),
            "rto_s": f.get("rto_s"), "rpo_rows": f.get("rpo_rows"),
            "downtime_s": f.get("downtime_s")}


def build_window_report(window: WindowRecord, runs: Sequence[RunRecord],
                        now: datetime) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda r: (r.started_utc, r.run_id))
    executed = [r for r in ordered if r.verdict != "skipped"]
    skipped = [r for r in ordered if r.verdict == "skipped"]
    downtime = sum(float(r.figures.get("downtime_s") or 0.0) for r in executed)
    return _report({
        "schema_version": REPORT_SCHEMA_VERSION, "report": "window", "generated_at": now,
        "title": f"Chaos window {window.name}",
        "window": {"window_id": window.window_id, "name": window.name,
                   "started_at": window.started_utc, "planned_end_at": window.planned_end_utc,
                   "ended_at": window.ended_utc, "status": window.status,
                   "timezone": window.timezone, "detail": window.detail},
        "runs": [_run_row(r) for r in executed],
        "skipped": [{"cell": r.cell, "kind": r.kind, "started_at": r.started_utc,
                     "reason": r.reason, "run_id": r.run_id} for r in skipped],
        "figures": {"counts": fleet.summary_counts(ordered), "mttr": fleet.mttr(ordered),
                    "pass_rate": fleet.pass_rate(ordered), "downtime_s": downtime,
                    "cells": sorted({r.cell for r in ordered})},
        "findings": fleet.findings(ordered),
    })


def _weeks(runs: Sequence[RunRecord]) -> list[str]:
    return sorted({fleet.week_label(r.started_utc) for r in runs})


def _mttr_trend(runs: Sequence[RunRecord], overall: dict[str, fleet.Mttr]) -> dict[str, Any]:
    """MTTR by week (``overall``: of all cells), and per cell up to a legible number."""
    weeks = _weeks(runs)
    series = [("all cells", [overall[w].mean_s if w in overall else None for w in weeks])]
    cells = sorted({r.cell for r in runs})
    if 1 < len(cells) <= 8:
        for cell in cells:
            by_week = dict(fleet.mttr_by([r for r in runs if r.cell == cell], "week"))
            series.append((cell, [by_week[w].mean_s if w in by_week else None for w in weeks]))
    return {"weeks": weeks, "series": [{"name": n, "values": v} for n, v in series]}


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


def _summary(runs: Sequence[RunRecord], score: fleet.ResilienceScore,
             trend: fleet.Trend, budget: Sequence[fleet.ErrorBudget]) -> list[str]:
    """The plain-language lines leadership reads first."""
    evidence = [r for r in runs if fleet.classify(r) == "evidence"]
    if not evidence:
        skipped = sum(1 for r in runs if r.verdict == "skipped")
        return ["No experiment ran to a verdict in this period"
                + (f" ({skipped} skipped)." if skipped else ".")]
    cells = sorted({r.cell for r in evidence})
    clean = [c for c in cells if all(r.verdict == "passed" for r in evidence if r.cell == c)]
    lines = [f"{len(clean)} of {len(cells)} cell{'s' if len(cells) != 1 else ''} recovered "
             f"within objectives in every experiment."]
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
    if m.mean_s is not None:
        change = "" if trend.mttr_change_s is None else (
            f", {'up' if trend.mttr_change_s > 0 else 'down'} "
            f"{fmt(abs(trend.mttr_change_s), 's')} on the previous period")
        lines.append(f"Mean time to recover {fmt(m.mean_s, 's')} (median {fmt(m.median_s, 's')}, "
                     f"p90 {fmt(m.p90_s, 's')}) over {m.runs} recover{'ies' if m.runs != 1 else 'y'}"
                     f"{change}.")
    if score.fleet is not None:
        lines.append(f"Resilience score {fmt(score.fleet, 'score')} out of 100.")
    if budget:
        worst = max(budget, key=lambda b: b.pct)
        lines.append(f"Chaos used at most {fmt(worst.pct, 'pct')} of a cell's monthly error budget "
                     f"({worst.cell}, {worst.month}).")
    return lines


def _scorecard(runs: Sequence[RunRecord], score: fleet.ResilienceScore,
               dr: Sequence[fleet.DrCompliance], budget: Sequence[fleet.ErrorBudget],
               by_cell_mttr: dict[str, fleet.Mttr]) -> list[dict[str, Any]]:
    dr_of = {d.cell: d for d in dr}
    rows = []
    for cell_score in score.cells:
        cell = cell_score.cell
        mine = [r for r in runs if r.cell == cell]
        newest = max(mine, key=lambda r: r.started_utc)
        latest_budget = [b for b in budget if b.cell == cell]
        mttr = by_cell_mttr.get(cell)
        d = dr_of.get(cell)
        rows.append({
            "cell": cell, "tier": cell_score.tier,
            "tenants": list(newest.objectives.tenants) if newest.objectives else [],
            "score": cell_score.score, "runs": len(mine),
            "pass_rate": fleet.pass_rate(mine).rate,
            "mttr_mean_s": mttr.mean_s if mttr else None,
            "mttr_p90_s": mttr.p90_s if mttr else None,
            "rto_pct": d.rto_pct if d else None, "rpo_pct": d.rpo_pct if d else None,
            "budget_month": latest_budget[-1].month if latest_budget else None,
            "budget_pct": latest_budget[-1].pct if latest_budget else None,
            "last_run_at": newest.started_utc,
        })
    return rows


def build_resilience_report(runs: Sequence[RunRecord], now: datetime, since: datetime,
                            until: datetime | None = None,
                            cells: Sequence[str] | None = None) -> dict[str, Any]:
    """The leadership report over runs started in [since, until or now)."""
    end = until or now
    chosen = fleet.select_runs(runs, since, end, cells)
    period = end - since
    # The trend needs the previous period too: it comes from ``runs``, not ``chosen``.
    trend = fleet.trend(fleet.select_runs(runs, since - period, end, cells), end, period)
    score = fleet.resilience_score(chosen, end)
    dr = fleet.dr_compliance(chosen)
    budget = fleet.error_budget(chosen)
    pass_cell_kind = fleet.pass_rate_by(chosen, ("cell", "kind"))
    cell_names = sorted({r.cell for r in chosen})
    findings = fleet.findings(chosen)
    by_cell, by_week = fleet.mttr_by(chosen, "cell"), fleet.mttr_by(chosen, "week")
    return _report({
        "schema_version": REPORT_SCHEMA_VERSION, "report": "resilience", "generated_at": now,
        "title": "Resilience report",
        "period": {"since": since, "until": end, "days": period / timedelta(days=1),
                   "cells": list(cells) if cells else None},
        "summary": _summary(chosen, score, trend, budget),
        "counts": fleet.summary_counts(chosen),
        "score": {"formula": fleet.SCORE_FORMULA, "fleet": score.fleet, "cells": score.cells},
        "scorecard": _scorecard(chosen, score, dr, budget, dict(by_cell)),
        "mttr": {"overall": fleet.mttr(chosen),
                 "by_kind": [{"kind": k, **asdict(m)} for k, m in fleet.mttr_by(chosen, "kind")],
                 "by_cell": [{"cell": c, **asdict(m)} for c, m in by_cell],
                 "by_week": [{"week": w, **asdict(m)} for w, m in by_week]},
        "mttr_trend": _mttr_trend(chosen, dict(by_week)),
        "trend": trend,
        "pass_rate": {
            "overall": fleet.pass_rate(chosen),
            "kinds": list(KINDS), "cells": cell_names,
            "by_cell_kind": [{"cell": cell, "kind": kind, **asdict(rate)}
                             for (cell, kind), rate in sorted(pass_cell_kind.items())],
        },
        "dr_compliance": dr,
        "error_budget": budget,
        "findings": findings,
        "action_items": [{"finding": f"{x.cell}: {x.criterion} ({x.kind}, {x.started_utc:%Y-%m-%d})",
                          "run_id": x.run_id, "owner": "", "due": "", "status": "open"}
                         for x in findings[:10]],
    })
