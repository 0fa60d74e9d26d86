"""Report data, built from records by pure functions: no clock, no database, no rendering.

    build_run_report(record, samples, events, faults, now)        -> dict   (here)
    build_window_report(window, runs, now)                        -> dict   (window_context)
    build_resilience_report(runs, now, since, until, cells)       -> dict   (resilience_context)

Each result is plain JSON (it is written as report.json, with REPORT_SCHEMA_VERSION) and is
the only thing the templates see: every number a report shows comes from here, and every
number here comes from the analytics functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime
from typing import Any

from gameday.analytics.recovery import error_rate, percentile
from gameday.analytics.timeline import timeline_buckets
from gameday.model import LedgerFault, RunEvent, RunRecord, Sample
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
