"""Report data, built from records by pure functions: no clock, no database, no rendering.

    build_run_report(record, samples, events, faults, now)        -> dict   (here)
    build_window_report(window, runs, now)                        -> dict   (window_context)
    build_resilience_report(runs, now, since, until, cells)       -> dict   (resilience_context)

Each result is plain JSON (it is written as report.json, with REPORT_SCHEMA_VERSION) and is
the only thing the templates see: every number a report shows comes from here, and every
number here comes from the analytics functions.

The run report reads the run's figures of version 2 (shared/DESIGN.md "Measurements"), the
target's own observations included, from the record: reporting knows nothing of the sandbox.
A figure that has no number says why in words ("no impact seen", "not measured"), never 0 s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import fields, is_dataclass
from datetime import datetime
from typing import Any

from gameday.analytics.recovery import error_rate, percentile
from gameday.analytics.timeline import timeline_buckets
from gameday.model import LedgerFault, RunEvent, RunRecord, Sample
from gameday.model.figures import FIGURES_VERSION, INSTANTANEOUS_KINDS, upgrade_v1
from gameday.reporting.numbers import NO_IMPACT, NOT_MEASURED, NOT_RECOVERED, fmt

REPORT_SCHEMA_VERSION = 1
KINDS = ("pod-kill", "latency", "cpu-stress", "db-failover")
KIND_WORDS = {"pod-kill": "pod kill", "latency": "network latency", "cpu-stress": "CPU stress",
              "db-failover": "database failover"}
# A timeline chart stays legible up to a few hundred buckets.
MAX_BUCKETS = 300
OUTPUT_CHARS = 300  # journal outputs can be large; the report shows their start
WORDS_CHARS = 120  # a value quoted inside a sentence


_LEAVES = frozenset({str, int, bool, type(None)})
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def field_names(kind: type) -> tuple[str, ...]:
    """A dataclass's field names, looked up once per class."""
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(f.name for f in fields(kind))
    return names


def plain(value: Any) -> Any:
    """Dataclasses, tuples, mappings and datetimes as JSON values; non-finite floats as null.

    By exact type first: a run report is some 30,000 values and a fleet's some 100,000, and
    asdict's deep copy of each leaf cost more than their rendering."""
    kind = type(value)
    if kind in _LEAVES:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is dict:
        return {k if type(k) is str else str(k): plain(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [plain(v) for v in value]
    if kind is datetime:
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return {name: plain(getattr(value, name)) for name in field_names(kind)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
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


# -- the run's figures ------------------------------------------------------------------------

# Every figure of version 2 (the contract of issue 10) a run report reads; null = not measured.
FIGURE_KEYS = (
    "figures_version", "upgraded_from", "impact", "t_inject", "t_cause_end", "t_first_breach",
    "t_recovered", "time_to_impact_s", "impact_s", "recovery_s", "adapted", "recovered",
    "error_rate", "error_span_s", "error_rate_during_recovery", "peak_error_rate",
    "p95_ms_baseline", "p95_ms_during", "p95_ratio_during", "latency_tolerance_ms", "samples",
    "downtime_s", "probe_hz", "burst_hz", "detection_floor_ms", "detection_floor_base_ms",
    "probes_skipped", "probe_timeouts", "rto_s", "rpo_rows", "rpo_s",
    # the target's own observation
    "restore_s", "failover_s", "scale_out_s", "replica_crashes", "target_restored_s",
    "observed_by")
TARGET_SOURCES = ("sandbox", "target")
TARGET_WORDS = {"local": "local target", "kubernetes": "Kubernetes target"}
OBSERVER_WORDS = {"sandbox": "the sandbox (the local target's own view of its processes)",
                  "kubernetes": "Kubernetes (the cluster's own view)"}
# What ends the cause of impact, per kind: "recovered 0.12 s after ..."
CAUSE_END_WORDS = {"pod-kill": "the replica was killed", "db-failover": "the primary was lost",
                   "latency": "the latency was removed", "cpu-stress": "the CPU stress ended"}


def _figures(record: RunRecord) -> dict[str, Any]:
    """The run's figures as version 2: a record of version 1 that the store did not migrate
    (built by hand, read from an old export) is upgraded the way the store migration does."""
    raw = dict(record.figures or {})
    if raw and raw.get("figures_version") != FIGURES_VERSION:
        if raw.get("t_cause_end") is None and raw.get("t_fault_end") is not None:
            raw["t_cause_end"] = raw["t_inject"] if record.kind in INSTANTANEOUS_KINDS \
                else raw["t_fault_end"]
        raw = upgrade_v1(record.kind, raw)
    out = {k: raw.get(k) for k in FIGURE_KEYS}
    if out["t_cause_end"] is None and out["t_inject"] is not None:
        out["t_cause_end"] = raw.get("t_fault_end", out["t_inject"])
    return out


def _t_recovered(f: dict[str, Any]) -> float | None:
    """When the probes saw the cell back, on the run's axis (derived when not stored)."""
    if f["t_recovered"] is not None:
        return float(f["t_recovered"])
    if f["impact"] != "seen" or f["recovery_s"] is None:
        return None
    first = _t_first_breach(f)
    base = first if f["adapted"] else f["t_cause_end"]
    return None if base is None else float(base) + float(f["recovery_s"])


def _t_first_breach(f: dict[str, Any]) -> float | None:
    if f["t_first_breach"] is not None:
        return float(f["t_first_breach"])
    if f["t_inject"] is None or f["time_to_impact_s"] is None:
        return None
    return float(f["t_inject"]) + float(f["time_to_impact_s"])


def _sustained(f: dict[str, Any]) -> bool:
    return f["t_inject"] is not None and f["t_cause_end"] is not None \
        and float(f["t_cause_end"]) > float(f["t_inject"])


def _impact_words(record: RunRecord, f: dict[str, Any]) -> str:
    floor = f["detection_floor_ms"]
    if f["impact"] is None:
        if record.verdict == "skipped":
            return "Nothing was injected: the run was skipped."
        return "No fault was injected, so there was nothing to measure."
    if f["impact"] == "none":
        unseen = f"an impact shorter than {fmt(floor, 'ms')} could go unseen" if floor is not None \
            else "the detection floor of this run was not recorded"
        return f"No user-visible impact seen by the probes ({unseen})."
    affected = f["impact_s"]
    if f["recovery_s"] is None or not f["recovered"]:
        start = f"from {fmt(f['time_to_impact_s'], 's')} after injection" \
            if f["time_to_impact_s"] is not None else "after injection"
        return f"Users were affected {start}, and the cell had not recovered when the run ended."
    if f["adapted"]:
        return (f"Users were affected for {fmt(affected, 's')}; the cell adapted while the fault "
                f"was on: it recovered {fmt(f['recovery_s'], 's')} after the first impact, "
                "before the fault ended.")
    after = CAUSE_END_WORDS.get(record.kind, "the fault ended")
    return f"Users were affected for {fmt(affected, 's')}; the cell recovered " \
           f"{fmt(f['recovery_s'], 's')} after {after}."


def _sampler(f: dict[str, Any]) -> dict[str, Any]:
    """How the probes sampled, and what that leaves unseen (the detection floor)."""
    parts = []
    if f["probe_hz"] is not None:
        rate = f"Probes at {fmt(f['probe_hz'])} Hz"
        if f["burst_hz"] is not None and f["burst_hz"] != f["probe_hz"]:
            rate += f" ({fmt(f['burst_hz'])} Hz around injection and the fault's end)"
        parts.append(rate)
    if f["detection_floor_ms"] is not None:
        floor = f"detection floor {fmt(f['detection_floor_ms'], 'ms')}"
        if f["detection_floor_base_ms"] is not None \
                and f["detection_floor_base_ms"] != f["detection_floor_ms"]:
            floor += f" around injection and the fault's end, " \
                     f"{fmt(f['detection_floor_base_ms'], 'ms')} elsewhere"
        parts.append(floor)
    else:
        parts.append(f"detection floor {NOT_MEASURED}")
    skipped = f["probes_skipped"]
    parts.append(f"{fmt(skipped)} probes skipped (in-flight bound reached)" if skipped is not None
                 else f"probes skipped: {NOT_MEASURED}")
    timeouts = f["probe_timeouts"]
    parts.append(f"{fmt(timeouts)} probe timeouts (the probe's own client gave up: not counted "
                 "as errors of the cell)" if timeouts is not None
                 else f"probe timeouts: {NOT_MEASURED}")
    words = "; ".join(parts) + "."
    return {"probe_hz": f["probe_hz"], "burst_hz": f["burst_hz"],
            "detection_floor_ms": f["detection_floor_ms"],
            "detection_floor_base_ms": f["detection_floor_base_ms"],
            "probes_skipped": skipped, "probe_timeouts": timeouts,
            "words": words[0].upper() + words[1:]}


def _tile(label: str, key: str, value: Any, unit: str, words: str, note: str | None = None
          ) -> dict[str, Any]:
    """One figure tile: a number, or words saying why there is none (never 0 for "none")."""
    if isinstance(value, bool):
        value = None
    return {"label": label, "key": key, "value": value, "unit": unit,
            "text": fmt(value, unit) if value is not None else words, "note": note}


def _tiles(record: RunRecord, f: dict[str, Any], events: Sequence[RunEvent]) -> list[dict[str, Any]]:
    impact = f["impact"]
    none = impact == "none"
    # A figure that exists only with impact: "no impact seen" when there was none.
    gone = NO_IMPACT if none else NOT_RECOVERED if impact == "seen" and not f["recovered"] \
        else NOT_MEASURED
    tiles = [_tile("User-visible impact", "impact", None, "",
                   {"none": NO_IMPACT, "seen": "seen by the probes"}.get(impact or "",
                                                                      "no fault injected"),
                   None if f["detection_floor_ms"] is None
                   else f"detection floor {fmt(f['detection_floor_ms'], 'ms')}"),
             _tile("Time to impact", "time_to_impact_s", f["time_to_impact_s"], "s",
                   NO_IMPACT if none else NOT_MEASURED, "first failed probe after injection"),
             _tile("Impact duration", "impact_s", f["impact_s"], "s", gone,
                   "how long users were affected"),
             _tile("Recovery", "recovery_s", f["recovery_s"], "s", gone,
                   "adapted: recovered while the fault was on (from first impact)"
                   if f["adapted"] else "after " + CAUSE_END_WORDS.get(record.kind,
                                                                      "the fault ended"))]
    observed = f["observed_by"]
    by = f"observed by {observed}" if observed else "the target's own figure"
    tiles.append(_tile("Time to full redundancy", "restore_s", f["restore_s"], "s", NOT_MEASURED,
                       by + ": every replica ready, primary and standby streaming"))
    if record.kind == "db-failover" or f["failover_s"] is not None:
        tiles.append(_tile("Failover", "failover_s", f["failover_s"], "s", NOT_MEASURED,
                           by + ": standby promoted after the primary was lost"))
    if record.kind == "cpu-stress" or f["scale_out_s"] is not None:
        scaled = any(e.name == "autoscaler_scaled" for e in events if e.source in TARGET_SOURCES)
        tiles.append(_tile("Scale-out", "scale_out_s", f["scale_out_s"], "s",
                           "no replica added" if observed and not scaled else NOT_MEASURED,
                           by + ": first replica the autoscaler added"))
    tiles.append(_tile("Replica crashes", "replica_crashes", f["replica_crashes"], "",
                       NOT_MEASURED, "replica exits not caused by the fault"))
    if record.kind == "db-failover" or f["rto_s"] is not None:
        tiles += [_tile("RTO", "rto_s", f["rto_s"], "s", NOT_MEASURED,
                        "first acknowledged write after the primary was lost"),
                  _tile("RPO (writes lost)", "rpo_rows", f["rpo_rows"], "", NOT_MEASURED,
                        "acknowledged writes missing after the failover"),
                  _tile("RPO (seconds)", "rpo_s", f["rpo_s"], "s", NOT_MEASURED,
                        "newest surviving acknowledged write before the loss")]
    span = f["error_span_s"]
    tiles.append(_tile(f"Error rate (first {fmt(span, 's')})" if span is not None
                       else "Error rate", "error_rate", f["error_rate"], "ratio", NOT_MEASURED,
                       "errors the cell returned / probes sent, from injection"))
    downtime = None if none else f["downtime_s"]
    tiles.append(_tile("Downtime", "downtime_s", downtime, "s",
                       NO_IMPACT if none else NOT_MEASURED, "failed probes x probe period"))
    return tiles


def _latency_tiles(f: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        _tile("Peak error rate", "peak_error_rate", f["peak_error_rate"], "ratio", NOT_MEASURED),
        _tile("p95 before", "p95_ms_baseline", f["p95_ms_baseline"], "ms", NOT_MEASURED),
        _tile("p95 during", "p95_ms_during", f["p95_ms_during"], "ms", NOT_MEASURED),
        _tile("p95 during / before", "p95_ratio_during", f["p95_ratio_during"], "x",
              NOT_MEASURED),
        _tile("Latency tolerance", "latency_tolerance_ms", f["latency_tolerance_ms"], "ms",
              NOT_MEASURED, "a probe slower than this breaches"),
        _tile("Probes", "samples", f["samples"], "", NOT_MEASURED)]


# Figures that exist only with impact: a criterion on one is met with "no impact seen".
IMPACT_FIGURES = ("recovery_s", "impact_s", "time_to_impact_s", "recovery_after_fault_end_s")


def _zero(text: str) -> bool:
    try:
        return float(text) == 0.0
    except ValueError:
        return False


def _criteria(record: RunRecord, f: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for c in record.criteria:
        figure = c.expected.split(" ", 1)[0]
        # Runs measured by version 1 wrote "no impact" as an actual of 0 s.
        no_impact = c.actual.strip().lower() == NO_IMPACT or (
            f["impact"] == "none" and figure in IMPACT_FIGURES and _zero(c.actual))
        rows.append({"name": c.name, "expected": c.expected,
                     "actual": NO_IMPACT if no_impact else c.actual, "ok": c.ok,
                     "met_words": ("met: " + NO_IMPACT) if no_impact and c.ok
                     else "met" if c.ok else "NOT met"})
    return rows


def _run_verdict_words(record: RunRecord, f: dict[str, Any], missed: int) -> str:
    if record.verdict == "passed":
        if f["impact"] == "none":
            return "Passed: every criterion met; the probes saw no user-visible impact."
        return "Passed: the cell recovered and met every criterion."
    if record.verdict == "skipped":
        return f"Skipped, nothing was injected ({record.reason or 'no reason recorded'})."
    if record.verdict == "failed" and missed and f["impact"] == "none":
        return f"Failed: no user-visible impact seen, but {missed} " \
               f"criteri{'on' if missed == 1 else 'a'} missed."
    return verdict_words(record.verdict, record.reason, missed)


def _evidence(record: RunRecord) -> dict[str, Any]:
    environment = getattr(record, "environment", None) or "sandbox"
    target = TARGET_WORDS.get(record.target, f"{record.target} target")
    what = {"sandbox": "a sandbox cell on one machine, not production" if record.target == "local"
            else "a sandbox cluster, not production",
            "staging": "a staging environment, not production",
            "production": "production"}.get(
        environment, "an environment not recorded (the run predates environments)")
    return {"environment": environment, "target_words": target,
            "words": f"Evidence: {environment} ({target}): {what}."}


# -- what the target saw ----------------------------------------------------------------------

def _short(value: Any, limit: int = WORDS_CHARS) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _replica(d: dict[str, Any]) -> str:
    pid = f" (pid {d['pid']})" if d.get("pid") is not None else ""
    return f"replica {d.get('replica', '?')}{pid}"


def _event_words(name: str, d: dict[str, Any]) -> tuple[str, str | None]:
    """A target event in words, and its label on the timeline (None: not drawn)."""
    words: dict[str, tuple[str, str | None]] = {
        "replica_exit": (f"{_replica(d)} exited (code {d.get('returncode', '?')})",
                         f"replica {d.get('replica', '?')} exited"),
        "replica_started": (f"{_replica(d)} started (restart {d.get('restarts', '?')})", None),
        "replica_ready": (f"{_replica(d)} ready", f"replica {d.get('replica', '?')} ready"),
        "lb_endpoint_removed": (f"the balancer took {_replica(d)} out", "out of balancer"),
        "lb_endpoint_added": (f"the balancer put {_replica(d)} back", "back in balancer"),
        "toxic_added": (f"latency of {fmt(d.get('latency_ms'), 'ms')} added", "latency on"),
        "toxic_removed": (f"latency removed ({d.get('reason', 'no reason given')})",
                          "latency off"),
        "stress_started": (f"{len(d.get('pids') or [])} CPU burner(s) started at "
                           f"{d.get('load_pct', '?')} %", "CPU stress on"),
        "stress_stopped": (f"CPU burner (pid {d.get('pid', '?')}) stopped "
                           f"({d.get('reason', 'no reason given')})", "burner stopped"),
        "primary_lost": (f"database primary {d.get('node', '?')} lost "
                         f"({d.get('reason', 'no reason given')})", "primary lost"),
        "standby_promoted": (f"standby {d.get('node', '?')} promoted", "standby promoted"),
        "proxy_repointed": (f"the proxy pointed at the new primary (closed "
                            f"{d.get('closed_sessions', '?')} sessions)", "proxy repointed"),
        "standby_rebuilt": (f"new standby {d.get('node', '?')} streaming", "standby rebuilt"),
        "autoscaler_scaled": (f"the autoscaler scaled from {d.get('from_replicas', '?')} to "
                              f"{d.get('to_replicas', '?')} replicas at CPU "
                              f"{d.get('cpu_pct', '?')} % ({d.get('reason', 'no reason given')})",
                              f"scaled to {d.get('to_replicas', '?')}"),
        "fault_injected": (f"fault {d.get('fault_id', '?')} injected ({d.get('kind', '?')})", None),
        "fault_reverted": (f"fault {d.get('fault_id', '?')} ended: "
                           f"{REVERT_WORDS.get(str(d.get('reason')), str(d.get('reason')))}",
                           None),
    }
    if name in words:
        text, label = words[name]
        return _short(text, 200), label
    rest = " ".join(f"{k}={_short(v, 40)}" for k, v in d.items() if k not in ("cell", "fault_id"))
    return _short(f"{name.replace('_', ' ')} {rest}".strip(), 200), None


# Why the target says a fault ended (its fault_reverted event), in words.
REVERT_WORDS = {"restored_by_cell": "the cell restored itself", "expired": "it expired on its "
                "deadline", "sandbox_down": "the sandbox was stopped", "reverted": "reverted on "
                "request", "replaced": "replaced"}


def _target_view(record: RunRecord, f: dict[str, Any], events: Sequence[RunEvent]
                 ) -> dict[str, Any]:
    """The runner's figure beside the target's own, with the difference: never overwritten."""
    observed = f["observed_by"]
    t_inject = f["t_inject"]
    t_rec = _t_recovered(f)
    runner = None if t_inject is None or t_rec is None else t_rec - float(t_inject)
    runner_words = NO_IMPACT if f["impact"] == "none" else NOT_RECOVERED \
        if f["impact"] == "seen" else NOT_MEASURED
    target = f["target_restored_s"]
    difference = None if runner is None or target is None else runner - float(target)
    # Closer than one probe period at the burst rate, the two cannot be told apart.
    floor_ms = f.get("detection_floor_ms")
    resolution = float(floor_ms) / 1000 if isinstance(floor_ms, (int, float)) else 0.0005
    if difference is not None:
        if abs(difference) <= resolution:
            agreement = "The probes and the target agree, within the probes' resolution " \
                        f"({fmt(resolution, 's')})."
        elif difference > 0:
            agreement = f"The probes saw the cell back {fmt(difference, 's')} after the target " \
                        "says the cause was gone (the stability check and the probe period " \
                        "account for part of it)."
        else:
            agreement = f"The probes saw the cell back {fmt(-difference, 's')} before the " \
                        "target says the cause was gone: users were not affected for the last " \
                        "part of it."
    elif target is not None and f["impact"] == "none":
        floor = f["detection_floor_ms"]
        agreement = (f"The target says the cause of impact lasted {fmt(target, 's')}, yet the "
                     "probes saw no impact: it was either not visible to users or shorter than "
                     + (f"the detection floor of {fmt(floor, 'ms')}." if floor is not None
                        else "the probes could see."))
    elif target is None:
        agreement = "The target did not report when the cause of impact was gone."
    else:
        agreement = "The probes did not see the cell recover; the target says the cause was " \
                    f"gone {fmt(target, 's')} after injection."
    rows = [{"what": "cause of user impact gone", "runner_s": runner,
             "runner_text": fmt(runner, "s") if runner is not None else runner_words,
             "runner_how": "probes from outside: t_recovered \u2212 t_inject",
             "target_s": target,
             "target_text": fmt(target, "s") if target is not None else NOT_MEASURED,
             "target_how": "killed replica out of the balancer, toxic removed, burners stopped, "
                           "proxy repointed",
             "difference_s": difference,
             "difference_text": fmt(difference, "+s") if difference is not None else "\u2013"}]
    own = [(label, key, f[key], unit) for label, key, unit in (
        ("time to full redundancy", "restore_s", "s"), ("failover", "failover_s", "s"),
        ("scale-out", "scale_out_s", "s"), ("replica crashes", "replica_crashes", ""))]
    listed = [{"what": label, "key": key, "value": value, "unit": unit,
               "text": fmt(value, unit) if value is not None else NOT_MEASURED}
              for label, key, value, unit in own
              if value is not None or key in ("restore_s", "replica_crashes")
              or (key == "failover_s" and record.kind == "db-failover")
              or (key == "scale_out_s" and record.kind == "cpu-stress")]
    shown = []
    for e in events:
        if e.source not in TARGET_SOURCES:
            continue
        words, label = _event_words(e.name, e.detail)
        shown.append({"t": e.t, "since_inject_s": None if t_inject is None
                      else e.t - float(t_inject), "source": e.source, "name": e.name,
                      "words": words, "label": label})
    return {"observed_by": observed,
            "observed_by_words": OBSERVER_WORDS.get(observed or "", observed)
            if observed else None,
            "rows": rows, "agreement": agreement, "own": listed, "events": shown}


# -- faults and their reverts -----------------------------------------------------------------

LEDGER_WORDS = {"rollback": "by the experiment's rollback", "run_end": "at run end",
                "reconciled: owner gone": "by reconcile, after the runner died",
                "reconciled: expired": "by reconcile, after it expired",
                "inject_failed": "after the injection failed"}


def _ledger_words(reason: str | None) -> str:
    if reason is None:
        return "without a reason recorded"
    if reason in LEDGER_WORDS:
        return LEDGER_WORDS[reason]
    return f"when the run was halted ({_short(reason)})"


def _what_was_done(fault: LedgerFault) -> str:
    spec = fault.spec or {}
    applied = spec.get("applied") or {}
    targets = applied.get("targets") or []
    if fault.kind == "pod-kill":
        if len(targets) == 1:
            return f"killed {_replica(targets[0])}"
        n = len(targets) or spec.get("count", 1)
        which = ", ".join(_replica(t) for t in targets)
        return f"killed {n} replica{'' if n == 1 else 's'}" + (f": {which}" if which else "")
    if fault.kind == "latency":
        jitter = f" \u00b1 {fmt(spec.get('jitter_ms'), 'ms')}" if spec.get("jitter_ms") else ""
        return f"added {fmt(spec.get('latency_ms'), 'ms')}{jitter} of latency for " \
               f"{fmt(spec.get('duration_s'), 's')}"
    if fault.kind == "cpu-stress":
        workers = spec.get("workers", 1)
        return f"started {workers} CPU burner{'' if workers == 1 else 's'} at " \
               f"{spec.get('load_pct', 100)} % for {fmt(spec.get('duration_s'), 's')}"
    if fault.kind == "db-failover":
        node = next((t.get("node") for t in targets if t.get("node")), None)
        return "killed the database primary" + (f" ({node})" if node else "")
    return f"applied a {fault.kind} fault"


def _cause_end(fault: LedgerFault, mine: list[RunEvent], t0: float) -> tuple[str, float | None]:
    """How the target says the cause ended, and when (on the run's axis)."""
    def after(name: str, **match: Any) -> list[RunEvent]:
        return [e for e in mine if e.name == name and e.t >= t0 - 1e-6
                and all(e.detail.get(k) == v for k, v in match.items())]

    def since(e: RunEvent) -> str:
        return fmt(e.t - t0, "s")

    applied = (fault.spec or {}).get("applied") or {}
    if fault.kind == "pod-kill":
        killed = {t.get("replica") for t in applied.get("targets") or []}
        ready = [e for e in after("replica_ready") if not killed or e.detail.get("replica") in killed]
        if ready:
            last = max(ready, key=lambda e: e.t)
            out = [e for e in after("lb_endpoint_removed")]
            took = f"the balancer took it out {since(out[0])} after injection; " if out else ""
            return (f"{took}the cell's supervisor restarted it: ready again {since(last)} after "
                    "injection", last.t)
        return "the target reported no restart of the killed replica during the run", None
    if fault.kind == "db-failover":
        promoted, repointed, rebuilt = after("standby_promoted"), after("proxy_repointed"), \
            after("standby_rebuilt")
        if promoted:
            parts = [f"the cell's failover controller promoted the standby "
                     f"{promoted[0].detail.get('node', '')} {since(promoted[0])} after injection"
                     .replace("standby  ", "standby ")]
            if repointed:
                parts.append(f"the proxy pointed at it {since(repointed[0])} after injection")
            if rebuilt:
                parts.append(f"a new standby was streaming {since(rebuilt[0])} after injection")
            return "; ".join(parts), (repointed or promoted)[0].t
        return "the target reported no standby promotion during the run", None
    if fault.kind == "latency":
        removed = [e for e in after("toxic_removed") if e.detail.get("fault_id") in
                   (None, fault.fault_id)]
        if removed:
            why = str(removed[0].detail.get("reason", ""))
            how = {"expired": "on its own deadline"}.get(why, f"({_short(why)})" if why else "")
            return f"the latency was removed {since(removed[0])} after injection {how}".strip(), \
                removed[0].t
        return "the target reported no removal of the latency", None
    if fault.kind == "cpu-stress":
        stopped = [e for e in after("stress_stopped") if e.detail.get("fault_id") in
                   (None, fault.fault_id)]
        if stopped:
            last = max(stopped, key=lambda e: e.t)
            why = str(last.detail.get("reason", ""))
            how = {"deadline": "on their own deadline"}.get(why, f"({_short(why)})" if why else "")
            return f"the CPU burners stopped {since(last)} after injection {how}".strip(), last.t
        return "the target reported no end of the CPU stress", None
    return "the target reported nothing about how the fault ended", None


def _axis(utc: datetime | None, record: RunRecord, offset: float) -> float | None:
    return None if utc is None else (utc - record.started_utc).total_seconds() + offset


def _axis_offset(record: RunRecord, events: Sequence[RunEvent]) -> float:
    """Run time = (UTC - start) + offset: the runner's own events carry both clocks."""
    own = sorted(e.t - (e.utc - record.started_utc).total_seconds() for e in events
                 if e.source in ("engine", "worker"))
    return own[len(own) // 2] if own else 0.0


def _reverts(record: RunRecord, f: dict[str, Any], events: Sequence[RunEvent],
             faults: Sequence[LedgerFault]) -> dict[str, Any]:
    """One story per fault, from the ledger and the target's events, that does not contradict."""
    offset = _axis_offset(record, events)
    stories, rows = [], []
    for fault in faults:
        mine = [e for e in events if e.source in TARGET_SOURCES]
        applied_ev = next((e for e in events if e.source == "worker" and e.name == "fault_applied"
                           and e.detail.get("fault_id") == fault.fault_id), None)
        t_applied = applied_ev.t if applied_ev else _axis(fault.applied_utc, record, offset)
        if t_applied is None and f["t_inject"] is not None and len(faults) == 1:
            t_applied = float(f["t_inject"])
        ended = next((e for e in mine if e.name == "fault_reverted"
                      and e.detail.get("fault_id") == fault.fault_id), None)
        t_closed = _axis(fault.reverted_utc, record, offset)
        what = _what_was_done(fault)
        if t_applied is None:
            story = [f"The {fault.kind} fault {fault.fault_id} was not applied "
                     f"(ledger state {fault.state}"
                     + (f": {_short(fault.revert_reason)}" if fault.revert_reason else "") + ")."]
            cause_t = None
        else:
            cause, cause_t = _cause_end(fault, mine, t_applied)
            story = [f"{what[0].upper()}{what[1:]} at {fmt(t_applied, 's')} into the run; "
                     f"{cause}."]
        instantaneous = fault.kind in INSTANTANEOUS_KINDS
        already = instantaneous or (ended is not None and t_closed is not None
                                    and ended.t <= t_closed + 1e-6) or \
            (cause_t is not None and t_closed is not None and cause_t <= t_closed)
        if fault.state == "failed":
            story.append(f"The revert FAILED ({_short(fault.revert_reason or 'no reason')}): "
                         "check the cell, then run gameday recover.")
        elif fault.reverted_utc is None:
            story.append("The ledger still holds the fault open: gameday recover reverts it.")
        else:
            when = f" {fmt(t_closed - t_applied, 's')} after injection" \
                if t_closed is not None and t_applied is not None else ""
            left = " (nothing left to revert: a killed process is not brought back by a revert; " \
                   "the cell restores itself)" if instantaneous else \
                " (nothing left to revert)" if already else ", reverting it"
            story.append(f"The ledger closed the fault{when} "
                         f"{_ledger_words(fault.revert_reason)}{left}.")
        stories.append({"fault_id": fault.fault_id, "kind": fault.kind,
                        "words": " ".join(story)})
        rows.append({"fault_id": fault.fault_id, "kind": fault.kind, "state": fault.state,
                     "what": what, "applied_t": t_applied, "closed_t": t_closed,
                     "applied_at": fault.applied_utc, "reverted_at": fault.reverted_utc,
                     "expires_at": fault.expires_utc, "revert_reason": fault.revert_reason,
                     "ledger_words": _ledger_words(fault.revert_reason)
                     if fault.reverted_utc else "still open",
                     "target_words": REVERT_WORDS.get(str(ended.detail.get("reason")),
                                                      _short(ended.detail.get("reason")))
                     if ended else "not reported"})
    return {"stories": stories, "faults": rows}


# -- what the runner did ----------------------------------------------------------------------

def _probe_words(func: str, args: dict[str, Any], output: Any) -> str:
    if func == "cell_serves":
        probes = args.get("probes", 10)
        if isinstance(output, int | float) and not isinstance(output, bool) \
                and isinstance(probes, int) and probes > 0:
            return f"probe cell_serves: {round(float(output) * probes)} of {probes} ok"
        return f"probe cell_serves: {_short(output, 40)}"
    if func == "database_writable":
        return "probe database_writable: " + ("the database took a write" if output is True
                                              else "the database did not take a write")
    return ""


def _activity_words(item: dict[str, Any]) -> str:
    """An activity of the journal in words (what it did, with what), not its raw output."""
    activity = item.get("activity") or {}
    provider = activity.get("provider") or {}
    args = provider.get("arguments") or {}
    args = args if isinstance(args, dict) else {}
    output = item.get("output")
    kind = activity.get("type") or "activity"
    module, func = provider.get("module"), provider.get("func")
    where = f"{module}.{func}" if module and func else None
    applied = ((output or {}).get("applied") or {}) if isinstance(output, dict) else {}
    targets = applied.get("targets") or []
    text = ""
    if func == "kill_pods":
        n = len(targets) or args.get("count", 1)
        text = f"killed {n} replica{'' if n == 1 else 's'} (pod-kill)"
    elif func == "add_latency":
        text = f"added {fmt(args.get('latency_ms'), 'ms')} of latency for " \
               f"{fmt(args.get('duration_s'), 's')} (latency)"
    elif func == "stress_cpu":
        workers = args.get("workers", 1)
        text = f"loaded {workers} CPU{'' if workers == 1 else 's'} at " \
               f"{args.get('load_pct', 100)} % for {fmt(args.get('duration_s'), 's')} (cpu-stress)"
    elif func == "fail_over_database":
        node = next((t.get("node") for t in targets if isinstance(t, dict) and t.get("node")), None)
        text = "killed the database primary" + (f" {node}" if node else "") + " (db-failover)"
    elif func == "revert_faults":
        ids = output if isinstance(output, list) else []
        text = f"closed {len(ids)} fault{'' if len(ids) == 1 else 's'} in the ledger" + (
            f" ({', '.join(_short(i, 40) for i in ids[:3])}"
            + (f" and {len(ids) - 3} more" if len(ids) > 3 else "") + ")" if ids else "")
    elif func:
        probe = _probe_words(func, args, output)
        if probe:
            return probe + _failure(item)
    if text and where:
        return f"{text} with {where}" + _failure(item)
    if where:
        text = f"{kind} {where}"
    elif provider.get("type") == "process":
        text = f"{kind}: ran {_short(provider.get('path'), 60)}"
    elif provider.get("type") == "http":
        text = f"{kind}: {provider.get('method', 'GET')} {_short(provider.get('url'), 60)}"
    else:
        text = f"{kind} ({provider.get('type') or 'no provider'})"
    if output is not None and not isinstance(output, dict | list):
        text += f" returned {_short(output, 40)}"
    elif isinstance(output, dict):
        text += f" returned {len(output)} field{'' if len(output) == 1 else 's'}"
    elif isinstance(output, list):
        text += f" returned {len(output)} item{'' if len(output) == 1 else 's'}"
    return text + _failure(item)


def _failure(item: dict[str, Any]) -> str:
    exception = "".join(item.get("exception") or []).strip()
    if item.get("status") in (None, "succeeded") and not exception:
        return ""
    last = exception.splitlines()[-1] if exception else ""
    return f"; {item.get('status') or 'failed'}" + (f": {_short(last)}" if last else "")


def _activities(journal: dict[str, Any] | None, section: str) -> list[dict[str, Any]]:
    rows = []
    for item in (journal or {}).get(section, []) or []:
        activity = item.get("activity") or {}
        exception = "".join(item.get("exception") or [])
        rows.append({"name": activity.get("name"), "type": activity.get("type"),
                     "status": item.get("status"), "start": item.get("start"),
                     "end": item.get("end"), "duration_s": item.get("duration"),
                     "words": _activity_words(item),
                     "exception": exception[-OUTPUT_CHARS:] or None})
    return rows


def _steady_state(journal: dict[str, Any] | None, when: str) -> dict[str, Any] | None:
    state = ((journal or {}).get("steady_states") or {}).get(when)
    if not state:
        return None
    return {"met": state.get("steady_state_met"),
            "probes": [{"name": (p.get("activity") or {}).get("name"),
                        "words": _activity_words(p),
                        "tolerance_met": p.get("tolerance_met"), "status": p.get("status")}
                       for p in state.get("probes", []) or []]}


# Engine and worker events a reader needs; the rest are the engine's own bookkeeping.
def _needed(e: RunEvent) -> str | None:
    d = e.detail
    if e.source == "operator":
        return _short(f"operator: {e.name.replace('_', ' ')} "
                      + " ".join(f"{k}={_short(v, 40)}" for k, v in d.items()), 200)
    if e.name == "fault_applied":
        duration = d.get("duration_s")
        return f"fault applied: {d.get('kind', '?')} ({d.get('fault_id', '?')})" + (
            f" for {fmt(duration, 's')}" if duration else "")
    if e.name == "halted":
        return f"halted: {_short(d.get('reason', 'no reason given'))}"
    if e.name == "reverted":
        ids = d.get("faults") or []
        return f"the runner reverted {len(ids)} fault{'' if len(ids) == 1 else 's'}" + (
            f" ({', '.join(_short(i, 40) for i in ids)})" if ids
            else " (nothing left to revert)")
    if e.name == "worker_exited" and d.get("returncode") not in (0, None):
        return f"the experiment's worker exited with code {d.get('returncode')}"
    if e.name == "interrupted":
        return "the experiment was interrupted (chaoslib stopped the method)"
    if e.name == "activity_completed" and d.get("status") not in ("succeeded", None):
        return f"activity {_short(d.get('name'), 60)} {d.get('status')}"
    return None


def _run_events(events: Sequence[RunEvent]) -> dict[str, Any]:
    shown: list[dict[str, Any]] = []
    internal: list[dict[str, Any]] = []
    names: set[str] = set()
    for e in events:
        if e.source in TARGET_SOURCES:
            continue
        words = _needed(e)
        row = {"t": e.t, "utc": e.utc, "source": e.source, "name": e.name}
        if words is None:
            internal.append({**row, "detail": e.detail})
            names.add(e.name.replace("_", " "))
        else:
            shown.append({**row, "words": words})
    return {"shown": shown, "internal": internal, "internal_count": len(internal),
            "internal_names": sorted(names)}


# -- skipped runs -----------------------------------------------------------------------------

SKIP_ADVICE = {
    "freeze": "A change freeze covered the window. Nothing to fix: the next window after the "
              "freeze runs it (gameday plan shows when).",
    "error budget": "The cell had spent too much of its error budget to risk a fault. Runs "
                    "resume once the budget recovers; gameday plan shows the next window.",
    "incidents": "An incident was open on the cell. Runs resume once it is resolved.",
    "incident": "An incident was open on the cell. Runs resume once it is resolved.",
    "min interval": "The cell ran an experiment too recently. The next window after the "
                    "minimum interval runs it.",
    "lock": "Another run held the fault lease (one cell at a time). Run it again once that "
            "run is over.",
    "preflight": "The cell was not healthy before the fault (nothing was injected). Fix the cell "
                 "(for a sandbox, gameday sandbox status shows it), then run it again.",
    "stopped": "The run was interrupted before any fault was injected. Run it again.",
    "excluded": "The schedule excludes this experiment for this cell. Remove the exclusion from "
                "the schedule to test it; until then this cell is untested for it.",
    "target": "The cell's target cannot run this experiment.",
    "rotation": "The rotation has no experiment for this week.",
}


def _skip(record: RunRecord) -> dict[str, Any] | None:
    if record.verdict != "skipped":
        return None
    reason = record.reason or "no reason recorded"
    gate = reason.split(":", 1)[0].strip().replace("_", " ").lower() if ":" in reason else ""
    return {"reason": reason, "gate": gate or None, "cell": record.cell, "kind": record.kind,
            "kind_words": KIND_WORDS.get(record.kind, record.kind), "window_id": record.window_id,
            "when": record.started_utc,
            "what_to_do": SKIP_ADVICE.get(gate, "See the reason above; the run did not start.")}


# -- the report -------------------------------------------------------------------------------

def build_run_report(record: RunRecord, samples: Sequence[Sample], events: Sequence[RunEvent],
                     faults: Sequence[LedgerFault], now: datetime) -> dict[str, Any]:
    f = _figures(record)
    t_inject, t_cause_end = f["t_inject"], f["t_cause_end"]
    t_first, t_rec = _t_first_breach(f), _t_recovered(f)
    bucket_s = _bucket_size(samples)
    markers = []
    if t_inject is not None:
        markers.append({"t": t_inject, "label": "inject"})
        if t_first is not None:
            markers.append({"t": t_first, "label": "first impact"})
        if _sustained(f):
            markers.append({"t": t_cause_end, "label": "fault end"})
        if t_rec is not None:
            markers.append({"t": t_rec, "label": "recovered"})
    fault = None if t_inject is None else [t_inject, t_cause_end if t_cause_end is not None
                                           else t_inject]
    before = [s for s in samples if t_inject is None or s.t < t_inject]
    settled = t_rec if t_rec is not None else t_cause_end if f["impact"] == "none" else None
    after = [] if settled is None else [s for s in samples if s.t >= settled]
    objectives = record.objectives
    missed = sum(1 for c in record.criteria if not c.ok)
    evidence = _evidence(record)
    target_view = _target_view(record, f, events)
    return _report({
        "schema_version": REPORT_SCHEMA_VERSION, "report": "run", "generated_at": now,
        "title": f"{record.experiment} — {record.cell}",
        "run": {
            "run_id": record.run_id, "experiment": record.experiment,
            "experiment_path": record.experiment_path, "kind": record.kind,
            "kind_words": KIND_WORDS.get(record.kind, record.kind), "cell": record.cell,
            "target": record.target, "target_words": evidence["target_words"],
            "environment": evidence["environment"], "evidence": evidence["words"],
            "tenants": list(objectives.tenants) if objectives else [],
            "tier": objectives.tier if objectives else None, "window_id": record.window_id,
            "started_at": record.started_utc, "ended_at": record.ended_utc,
            "duration_s": (record.ended_utc - record.started_utc).total_seconds()
            if record.ended_utc else None,
            "status": record.status, "verdict": record.verdict, "reason": record.reason,
            "verdict_words": _run_verdict_words(record, f, missed),
            "skipped": record.verdict == "skipped",
        },
        "skip": _skip(record),
        "impact": {"result": f["impact"], "words": _impact_words(record, f),
                   "adapted": bool(f["adapted"]),
                   "upgraded_from": f["upgraded_from"]},
        "sampler": _sampler(f),
        "objectives": objectives,
        "figures": f,
        "tiles": _tiles(record, f, events),
        "latency_tiles": _latency_tiles(f),
        "criteria": _criteria(record, f),
        "timeline": {"bucket_s": bucket_s, "buckets": timeline_buckets(samples, bucket_s)
                     if samples else [], "fault": fault, "markers": markers,
                     "tolerance_ms": f["latency_tolerance_ms"],
                     "events": [{"t": e["t"], "label": e["label"]}
                                for e in target_view["events"] if e["label"]]},
        "steady_state": {
            "before": {"hypothesis": _steady_state(record.journal, "before"), **_stats(before)},
            "after": {"hypothesis": _steady_state(record.journal, "after"), **_stats(after)},
        },
        "activities": _activities(record.journal, "run"),
        "rollbacks": _activities(record.journal, "rollbacks"),
        "reverts": _reverts(record, f, events, faults),
        "events": _run_events(events),
        "target_view": target_view,
    })
