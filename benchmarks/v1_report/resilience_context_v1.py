"""The resilience report's data (pure): what leadership reads, over the runs of a period."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from gameday.model import RunRecord
from gameday.reporting.context import KIND_WORDS, KINDS, REPORT_SCHEMA_VERSION, _report
from gameday.reporting.numbers import fmt
from v1_report import fleet_v1 as fleet


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
