"""Reports benchmark: a fleet of 500 cells over 50 weeks (a script that prints figures, not a
timed test).

    store                 500 cells x 50 weeks x 4 kinds = 100,000 runs (--cells, --weeks; --runs N
                          keeps the newest N), written with Store.create_run into a fresh SQLite file
                          (and, with --postgres URL, into a fresh database created on that server and
                          dropped after). Seeded: version-2 figures (impact none or seen, recovery from
                          the end of the cause, the target's restore_s / failover_s / scale_out_s),
                          each cell's environment (sandbox 60 %, staging 30 %, production 10 %),
                          verdicts (mostly passed; some failed, not_recovered, aborted on a "halt:" or
                          by the operator, skipped), criteria (evaluated by gameday's own criteria
                          code), tier 1-3 objectives and a Chaos Toolkit journal of the real shape (a
                          few KB) on every executed run, weekly windows. The 50 runs of the side-by-side
                          also get a timeline (10 Hz samples), events and a ledger fault, as a real run
                          has. Generation time is printed apart: it is not part of any figure. A
                          PostgreSQL store is then vacuumed and analysed, as autovacuum would have
                          done long since to a year of runs (else it does so while we measure).
    resilience report     `gameday report resilience --since 400d --store URL --out DIR` in a fresh
                          process each time: wall time (median of --repeat, default 5), the CPU time
                          of its processes (it forks one per CPU to read and tally the runs), and
                          peak memory: a bare `python -S` wrapper posix_spawns the command, reads
                          ru_maxrss from os.wait4 on its pid (the largest process) and sums VmRSS
                          over its process tree every 10 ms (the whole). Target: under 3 s and 1 GB
                          (10^9 bytes, the sum); printed PASS/MISS, never asserted.
    phases                once, in another fresh process, as the CLI makes it: open the store
                          (reconcile too), read + tally the runs (reports.resilience_report_tally:
                          Store.report_runs, the report's figures only, one process per CPU, each
                          its own cells), build the report data from the tally, render + write;
                          timed, then traced (tracemalloc peaks per phase, this process only). A
                          missed time target, or --profile, prints cProfile's top functions by
                          cumulative time (this process only).
    the current peer      the report as it was before issue 10 (benchmarks/v1_report/: a frozen copy
                          of analytics/fleet.py, reporting/resilience_context.py and the resilience
                          templates at 487eb5c, rendered by today's renderer, reading whole records
                          with Store.list_runs as it did) against today's (as the CLI), each in a
                          fresh process on the same store in the same run: wall, peak RSS, phases,
                          and the ratio v1 / new.
    pandas                the fleet aggregation (MTTR by kind, week and cell, "k of n", pass rate per
                          cell and kind, RTO compliance, rolling error budget, the score) both ways on
                          the same runs: gameday.analytics (pure Python) and pandas (DataFrame from
                          the records, groupby), best of 3, pandas' import timed apart, results
                          compared figure by figure.
    side by side          the journals of 50 of those runs (spread over the year, every kind and
                          verdict) written to journal-NN.json; theirs: `chaos report
                          --export-format=html5 journal-*.json out.html` (chaostoolkit-reporting
                          0.18.0, which needs pandoc on PATH; --chaos PATH for a `chaos` in another
                          virtualenv); ours: the reports of the same 50 runs as one `gameday
                          report run ID ...` command (fresh process; one process per CPU builds
                          and renders them), and as 50 `gameday report run ID` calls; beside them
                          the same 50 in one process with its imports done (run_report +
                          write_report in a loop), for what the work alone costs. Wall, CPU and
                          summed RSS. Medians of --reps (default 3). Ratio = theirs / ours.

    .venv/bin/python benchmarks/reports.py [--repeat 5] [--reps 3] [--quick] [--postgres URL]
                                           [--chaos PATH]

    PostgreSQL: start a throwaway server the way the tests do (tests/conftest.py,
    `postgres_server`), then pass its URL:
        .venv/bin/python benchmarks/pg_server.py > /tmp/pg_url &   # prints the URL, serves until killed
        .venv/bin/python benchmarks/reports.py --postgres "$(cat /tmp/pg_url)"
    chaos report: python3 -m venv /tmp/chaos-venv && /tmp/chaos-venv/bin/pip install chaostoolkit
        'chaostoolkit-reporting==0.18.0'; apt-get install pandoc; then --chaos /tmp/chaos-venv/bin/chaos
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import io
import json
import math
import os
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from gameday.analytics.criteria import Criterion, evaluate, verdict
from gameday.model.records import (
    CellObjectives,
    LedgerFault,
    RunEvent,
    RunRecord,
    Sample,
    WindowRecord,
)
from gameday.store import Store, resolve_store_url

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments" / "local"
BIN = Path(sys.executable).parent
KINDS = ("pod-kill", "latency", "cpu-stress", "db-failover")
ENVIRONMENTS = ("sandbox", "staging", "production")
TARGET_S = 3.0
TARGET_BYTES = 1_000_000_000
SIDE_BY_SIDE = 50
PROBE_HZ = 10.0
MB = 1_000_000
STARTUP = "import gameday.cli.main, gameday.reporting.reports, gameday.reporting.render"
# tier -> availability SLO %, p95 SLO ms, RTO s, RPO s
TIER_OBJECTIVES = {1: (99.95, 250.0, 900.0, 60.0), 2: (99.9, 300.0, 1800.0, 300.0),
                   3: (99.5, 500.0, 3600.0, 900.0)}
TENANTS = ("acme-bank", "globex-payments", "initech", "umbrella-retail", "hooli-pay", "stark-fin",
           "wayne-trust", "wonka-pay", "tyrell-credit", "cyberdyne-bank", "soylent-pay", "oscorp")
# Base odds of each outcome; a cell's frailty (0.3-3) scales everything but "passed".
OUTCOMES = (("failed", 0.06), ("not_recovered", 0.015), ("halt", 0.015), ("operator", 0.005),
            ("died", 0.005), ("skipped", 0.03))
FAULT_S = {"pod-kill": 0.0, "latency": 10.0, "cpu-stress": 10.0, "db-failover": 0.0}
SANDBOX_KIND = {"pod-kill": "kill-replica", "latency": "latency", "cpu-stress": "cpu",
                "db-failover": "kill-primary"}
FAILURE = {"pod-kill": (502, "bad gateway: upstream connection refused"),
           "latency": (504, "upstream timed out"), "cpu-stress": (503, "service unavailable"),
           "db-failover": (503, "database unavailable")}


# -------------------------------------------------------------------------------- the fleet


@dataclass(frozen=True)
class Cell:
    name: str
    objectives: CellObjectives
    later: CellObjectives | None  # objectives from mid-year on (a re-tiered cell)
    frailty: float
    environment: str  # where its runs' evidence comes from


@dataclass(frozen=True)
class Experiment:
    kind: str
    path: str
    doc: dict[str, Any]
    criteria: tuple[Criterion, ...]
    pause_s: float


def objectives(tier: int, tenants: Sequence[str]) -> CellObjectives:
    slo, p95, rto, rpo = TIER_OBJECTIVES[tier]
    return CellObjectives(tier=tier, tenants=tuple(tenants), availability_slo=slo,
                          p95_latency_slo_ms=p95, rto_s=rto, rpo_s=rpo)


def make_cells(count: int, rng: random.Random) -> list[Cell]:
    cells = []
    for i in range(count):
        tier = rng.choices((1, 2, 3), weights=(3, 4, 3))[0]
        tenants = rng.sample(TENANTS, rng.randint(1, 3))
        later = objectives(tier - 1, tenants) if tier > 1 and rng.random() < 0.1 else None
        cells.append(Cell(f"cell-{i + 1:03d}", objectives(tier, tenants), later,
                          rng.choice((0.3, 0.6, 1.0, 1.0, 1.0, 1.5, 3.0)),
                          rng.choices(ENVIRONMENTS, weights=(6, 3, 1))[0]))
    return cells


def load_experiments() -> dict[str, Experiment]:
    out = {}
    for kind in KINDS:
        path = EXPERIMENTS / f"{kind}.yaml"
        doc = yaml.safe_load(path.read_text())
        ext = next(e for e in doc["extensions"] if e["name"] == "gameday")
        criteria = tuple(Criterion(figure=c["figure"], name=c["name"], max=c.get("max"),
                                   min=c.get("min")) for c in ext["criteria"])
        pause = float(doc["method"][0].get("pauses", {}).get("after", 0))
        out[kind] = Experiment(kind, str(path.relative_to(ROOT)), doc, criteria, pause)
    return out


def pick_outcome(cell: Cell, rng: random.Random) -> str:
    x = rng.random()
    for outcome, odds in OUTCOMES:
        x -= odds * cell.frailty
        if x < 0:
            return outcome
    return "passed"


def figures_for(kind: str, outcome: str, exp: Experiment, rng: random.Random) -> dict[str, Any]:
    """Version-2 figures (shared/DESIGN.md "Measurements") as the runner and the target give them,
    drawn to give ``outcome``: impact none or seen, recovery from the end of the cause, the
    target's own time to full redundancy, failover and scale-out times."""
    base = rng.uniform(3.0, 14.0)
    t_inject = rng.uniform(3.4, 6.8)
    fault_s = FAULT_S[kind]
    t_cause_end = t_inject + fault_s
    to_impact: float | None = None  # first breach - t_inject; None: no impact seen
    impact_s: float | None = None
    recovery: float | None = None  # t_recovered - t_cause_end
    err, peak, downtime, ratio = 0.0, 0.0, 0.0, rng.uniform(1.05, 1.9)
    rto: float | None = None
    rpo_rows: int | None = None
    rpo_s: float | None = None
    restore: float | None = None
    failover: float | None = None
    scale_out: float | None = None
    crashes = 0
    if kind == "pod-kill":
        restore = rng.uniform(0.7, 3.0) if outcome != "failed" else rng.uniform(0.7, 45.0)
        if rng.random() < 0.4 or outcome == "failed":
            to_impact = rng.uniform(0.0, 0.1)
            impact_s = rng.uniform(0.05, 1.5) if outcome != "failed" else rng.uniform(1.0, 8.0)
            recovery = to_impact + impact_s
            err, peak, downtime = rng.uniform(0.0, 0.008), rng.uniform(0.05, 0.34), rng.uniform(0.0, 0.6)
            if outcome == "failed":
                err, downtime = rng.uniform(0.012, 0.08), rng.uniform(0.5, 4.0)
    elif kind == "latency":
        to_impact = rng.uniform(0.02, 0.08)
        recovery = rng.uniform(5.5, 25.0) if outcome == "failed" else rng.uniform(0.01, 0.6)
        impact_s = fault_s - to_impact + recovery
        ratio = (200.0 + base * rng.uniform(0.9, 1.2)) / base
    elif kind == "cpu-stress":
        scale_out = rng.uniform(12.0, 55.0) if outcome != "failed" else rng.uniform(15.0, 90.0)
        if rng.random() < 0.4 or outcome == "failed":
            to_impact = rng.uniform(0.1, 1.5)
            recovery = rng.uniform(0.05, 1.5)  # back when the burners stop
            impact_s = fault_s - to_impact + recovery
        if outcome == "failed":
            if rng.random() < 0.7:
                ratio = rng.uniform(2.1, 4.5)
            else:
                crashes = rng.randint(1, 2)
    else:  # db-failover
        to_impact = rng.uniform(0.0, 0.05)
        impact_s = rng.uniform(0.08, 2.4)
        recovery = to_impact + impact_s
        failover = rng.uniform(0.02, 0.3)
        restore = recovery + rng.uniform(1.0, 20.0)  # standby rebuilt and streaming again
        rto = recovery + rng.uniform(0.01, 0.05)
        rpo_rows, rpo_s = 0, 0.0
        err, peak, downtime = rng.uniform(0.002, 0.03), rng.uniform(0.05, 0.6), rng.uniform(0.1, 1.5)
        if outcome == "failed":
            if rng.random() < 0.6:
                rpo_rows = rng.randint(1, 12)
                rpo_s = rpo_rows * rng.uniform(0.005, 0.05)
            else:
                recovery = rng.uniform(31.0, 58.0)
                impact_s = recovery - to_impact
                rto = recovery + rng.uniform(0.01, 0.05)
                err, downtime = rng.uniform(0.2, 0.6), recovery * rng.uniform(0.8, 1.0)
    if outcome in ("not_recovered", "halt"):
        to_impact = to_impact if to_impact is not None else rng.uniform(0.05, 0.5)
        recovery, rto, impact_s = None, None, None
        if kind == "db-failover":
            rpo_rows, rpo_s = rng.randint(0, 40), rng.uniform(0.0, 3.0)
        err, peak = rng.uniform(0.3, 1.0), rng.uniform(0.6, 1.0)
        downtime = rng.uniform(40.0, 75.0) if outcome == "not_recovered" else rng.uniform(5.0, 12.0)
    seen = to_impact is not None
    t_recovered = None if recovery is None else t_cause_end + recovery
    span = t_inject + exp.pause_s + rng.uniform(4.8, 8.5)
    if t_recovered is not None:
        span = max(span, t_recovered + 10.0)  # the stability window after recovery
    elif outcome == "not_recovered":
        span = t_inject + 60.0 + rng.uniform(0.1, 0.5)  # the recovery timeout
    p95_during = base * ratio
    return {
        "figures_version": 2, "impact": "seen" if seen else "none",
        "t_inject": t_inject, "t_cause_end": t_cause_end,
        "t_first_breach": None if to_impact is None else t_inject + to_impact,
        "t_recovered": t_recovered, "time_to_impact_s": to_impact, "impact_s": impact_s,
        "recovery_s": recovery, "adapted": False,
        "recovered": (not seen) or recovery is not None,
        "error_rate": err, "error_rate_during_recovery": err, "error_span_s": 30.0,
        "peak_error_rate": peak, "p95_ms_baseline": base,
        "p95_ms_during": p95_during, "p95_ratio_during": p95_during / base,
        "latency_tolerance_ms": 250.0 if kind in ("pod-kill", "db-failover") else base + 50.0,
        "samples": int(span * PROBE_HZ) - rng.randint(0, 3), "downtime_s": downtime,
        "probe_hz": PROBE_HZ, "burst_hz": 50.0, "detection_floor_ms": 20.0,
        "detection_floor_base_ms": 100.0, "probes_skipped": 0, "probe_timeouts": 0,
        "rto_s": rto, "rpo_rows": rpo_rows, "rpo_s": rpo_s, "replica_crashes": crashes,
        "restore_s": restore, "failover_s": failover, "scale_out_s": scale_out,
        "target_restored_s": None if recovery is None else max(0.0, fault_s + rng.uniform(0.01, 0.1)),
        "observed_by": "sandbox",
        "recovery_after_fault_end_s": recovery if kind in ("latency", "cpu-stress") else None,
    }


def iso(moment: datetime) -> str:
    return moment.isoformat()


def fault_output(kind: str, cell: str, fault_id: str, at: datetime, mono: float,
                 rng: random.Random) -> dict[str, Any]:
    pid = rng.randint(2_000, 60_000)
    targets: list[dict[str, Any]]
    if kind == "pod-kill":
        targets = [{"replica": rng.randint(1, 3), "pid": pid}]
        revert: dict[str, Any] = {"action": "none", "restored_by": "supervisor"}
    elif kind == "latency":
        targets, revert = [], {"action": "remove_toxic", "fault_id": fault_id}
    elif kind == "cpu-stress":
        targets = [{"pid": pid, "cpu": 0}]
        revert = {"action": "kill_burners", "pids": [{"pid": pid, "start_ticks": rng.randint(10**4, 10**6)}]}
    else:
        targets = [{"node": f"pg-{rng.randint(1, 3)}", "pid": pid, "port": rng.randint(30_000, 60_000),
                    "processes": rng.randint(18, 30)}]
        revert = {"action": "none", "restored_by": "failover controller"}
    took = rng.uniform(0.003, 0.02)
    return {"fault_id": fault_id, "kind": kind, "cell": cell,
            "expires_utc": iso(at + timedelta(seconds=60)),
            "applied": {"targets": targets,
                        "expires_utc": iso(at + timedelta(seconds=FAULT_S[kind] + took)),
                        "sandbox_revert": revert, "started_monotonic": round(mono, 9),
                        "completed_monotonic": round(mono + took, 9)}}


def activity(item: dict[str, Any], output: Any, start: datetime, duration: float,
             status: str = "succeeded") -> dict[str, Any]:
    return {"activity": item, "output": output, "start": iso(start), "status": status,
            "end": iso(start + timedelta(seconds=duration)), "duration": round(duration, 6)}


def journal_for(exp: Experiment, started: datetime, figures: dict[str, Any], outcome: str,
                fault: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A Chaos Toolkit journal of the shape the worker stores (chaoslib 1.44)."""
    doc = exp.doc
    probe = doc["steady-state-hypothesis"]["probes"][0]
    healthy: Any = True if probe["tolerance"] is True else 1.0
    probe_s = rng.uniform(0.003, 0.06)
    action_at = started + timedelta(seconds=figures["t_inject"] - rng.uniform(0.01, 0.03))
    j_start = action_at - timedelta(seconds=probe_s + 0.0004)
    before = activity(probe, healthy, j_start + timedelta(microseconds=300), probe_s)
    before["tolerance_met"] = True
    action_s = rng.uniform(0.008, 0.03)
    run = [activity(doc["method"][0], fault, action_at, action_s)]
    after_at = action_at + timedelta(seconds=action_s + exp.pause_s)
    after: dict[str, Any] | None = None
    status, deviated = "completed", False
    if outcome in ("halt", "operator"):
        status = "interrupted"
        after_at = action_at + timedelta(seconds=action_s + rng.uniform(1.0, exp.pause_s))
    else:
        met = outcome != "not_recovered"
        probe_out: Any = healthy if met else (False if healthy is True else round(rng.uniform(0.0, 0.6), 2))
        after_probe = activity(probe, probe_out, after_at, rng.uniform(0.003, 0.06))
        after_probe["tolerance_met"] = met
        after = {"steady_state_met": met, "probes": [after_probe]}
        after_at += timedelta(seconds=after_probe["duration"] + 0.0004)
        if not met:
            status, deviated = "failed", True
    rollback = activity(doc["rollbacks"][0], [fault["fault_id"]], after_at, rng.uniform(0.005, 0.009))
    end = after_at + timedelta(seconds=rollback["duration"] + 0.0001)
    return {"chaoslib-version": "1.44.0", "platform": "Linux-6.1.0-28-amd64-x86_64-with-glibc2.36",
            "node": "gameday-runner-1", "experiment": copy.deepcopy(doc), "start": iso(j_start),
            "status": status, "deviated": deviated,
            "steady_states": {"before": {"steady_state_met": True, "probes": [before]},
                              "after": after, "during": []},
            "run": run, "rollbacks": [rollback], "end": iso(end),
            "duration": (end - j_start).total_seconds()}


def make_run(cell: Cell, exp: Experiment, started: datetime, window_id: str, late: bool,
             rng: random.Random) -> RunRecord:
    outcome = pick_outcome(cell, rng)
    run_id = f"run-{started:%Y%m%dT%H%M%S}-{rng.getrandbits(24):06x}"
    obj = cell.later if late and cell.later is not None else cell.objectives
    common: dict[str, Any] = {"run_id": run_id, "experiment": exp.doc["title"],
                              "experiment_path": exp.path, "kind": exp.kind, "cell": cell.name,
                              "target": "local", "started_utc": started, "window_id": window_id,
                              "objectives": obj, "environment": cell.environment,
                              "runner_pid": rng.randint(2_000, 60_000),
                              "runner_start_ticks": rng.randint(10**4, 10**7)}
    if outcome == "skipped":
        reason = rng.choice(("preflight: steady state does not hold: 3 of 10 probes failed (503)",
                             "preflight: steady state does not hold: 10 of 10 probes failed "
                             "(connection refused)",
                             f"lock: cell cell-{rng.randint(1, 50):02d} is under fault; one cell at a time"))
        return RunRecord(**common, status="completed", verdict="skipped", reason=reason,
                         ended_utc=started + timedelta(seconds=rng.uniform(0.8, 2.5)))
    figures = figures_for(exp.kind, outcome, exp, rng)
    if outcome == "died":
        return RunRecord(**common, status="interrupted", verdict="aborted",
                         reason="interrupted: the runner process died",
                         ended_utc=started + timedelta(hours=rng.uniform(0.5, 6)))
    halt = {"halt": "halt: error rate above 50% for 5 s",
            "operator": "operator: interrupted"}.get(outcome)
    results = evaluate(exp.criteria, figures)
    decided, reason = verdict(results, recovered=bool(figures["recovered"]), halted=halt, injected=True)
    fault_id = f"{exp.kind}-{rng.getrandbits(40):010x}"
    fault_at = started + timedelta(seconds=figures["t_inject"])
    fault = fault_output(exp.kind, cell.name, fault_id, fault_at, rng.uniform(500.0, 90_000.0), rng)
    journal = journal_for(exp, started, figures, outcome, fault, rng)
    ended = started + timedelta(seconds=figures["samples"] / PROBE_HZ + rng.uniform(0.3, 0.6))
    return RunRecord(**common, status="completed", verdict=decided, reason=reason, ended_utc=ended,
                     figures=figures, criteria=results, journal=journal)


def generate(cells: int, weeks: int, limit: int | None, seed: int,
             now: datetime) -> tuple[list[WindowRecord], list[RunRecord]]:
    """Weekly windows (Saturdays 02:00 UTC, the newest at least a day old), every cell running
    every kind one after another; the newest ``limit`` runs."""
    rng = random.Random(seed)
    fleet = make_cells(cells, rng)
    experiments = load_experiments()
    newest = (now - timedelta(days=1)).replace(hour=2, minute=0, second=0, microsecond=0)
    newest -= timedelta(days=(newest.weekday() - 5) % 7)
    windows, runs = [], []
    for week in range(weeks):
        start = newest - timedelta(weeks=weeks - 1 - week)
        window_id = f"win-{start:%Y%m%dT%H%M%S}-{rng.getrandbits(24):06x}"
        cursor = start + timedelta(seconds=rng.uniform(1, 5))
        for cell in fleet:
            for kind in KINDS:
                run = make_run(cell, experiments[kind], cursor, window_id, week >= weeks // 2, rng)
                runs.append(run)
                assert run.ended_utc is not None
                # A run whose runner died ends when a later command reconciles it: the window
                # went on meanwhile.
                done = min(run.ended_utc, run.started_utc + timedelta(seconds=90))
                cursor = done + timedelta(seconds=rng.uniform(2, 6))
        windows.append(WindowRecord(
            window_id=window_id, name=f"weekly rotation {start:%Y-%m-%d}", started_utc=start,
            planned_end_utc=start + timedelta(hours=6), ended_utc=cursor, status="closed",
            detail={"cells": [c.name for c in fleet], "experiments": list(KINDS)}))
    if limit is not None and limit < len(runs):
        runs = runs[len(runs) - limit:]
        kept = {r.window_id for r in runs}
        windows = [w for w in windows if w.window_id in kept]
    return windows, runs


def timeline(run: RunRecord, fault: dict[str, Any],
             rng: random.Random) -> tuple[list[Sample], list[RunEvent], LedgerFault]:
    """Samples, events and the ledger fault of an executed run, consistent with its figures."""
    f = run.figures
    t_inject, impact, recovery = f["t_inject"], f["time_to_impact_s"], f["recovery_s"]
    bad_from = None if impact is None else t_inject + impact
    bad_to = None if bad_from is None else (f["t_recovered"] if recovery is not None else 1e9)
    status, error = FAILURE[run.kind]
    samples = []
    for k in range(int(f["samples"])):
        t = 0.0137 + k / PROBE_HZ + rng.uniform(0.0, 0.002)
        during = t_inject <= t < f["t_cause_end"] + (recovery or 0.0)
        failing = bad_from is not None and bad_to is not None and bad_from <= t < bad_to \
            and rng.random() < max(f["peak_error_rate"], 0.05)
        latency = f["p95_ms_baseline"] / 1.6 * rng.lognormvariate(0.0, 0.3)
        if during:
            latency *= f["p95_ratio_during"] if run.kind != "latency" else 1.0
            latency += 200.0 if run.kind == "latency" and t < f["t_cause_end"] else 0.0
        ok = not failing
        samples.append(Sample(t=t, utc=run.started_utc + timedelta(seconds=t), ok=ok,
                              latency_ms=latency, status=201 if ok else status,
                              error=None if ok else error, write_seq=k + 1,
                              payment_id=4_000 + k if ok else None))
    journal = run.journal or {}

    def at(t: float) -> datetime:
        return run.started_utc + timedelta(seconds=t)

    events = [RunEvent(t_inject - 0.6, at(t_inject - 0.6), "engine", "worker_started", {"pid": 4242}),
              RunEvent(t_inject - 0.03, at(t_inject - 0.03), "worker", "worker_started", {"pid": 4242})]
    for section in ("run", "rollbacks"):
        for item in journal.get(section, []):
            t0 = (datetime.fromisoformat(item["start"]) - run.started_utc).total_seconds()
            name = item["activity"]["name"]
            events.append(RunEvent(t0, at(t0), "worker", "activity_started",
                                   {"name": name, "type": item["activity"]["type"]}))
            if section == "run":
                events.append(RunEvent(t_inject, at(t_inject), "worker", "fault_applied",
                                       {"fault_id": fault["fault_id"], "kind": run.kind,
                                        "duration_s": FAULT_S[run.kind],
                                        "started_monotonic": fault["applied"]["started_monotonic"]}))
            events.append(RunEvent(t0 + item["duration"], at(t0 + item["duration"]), "worker",
                                   "activity_completed", {"name": name, "status": item["status"],
                                                          "duration": item["duration"]}))
    t_end = (datetime.fromisoformat(journal["end"]) - run.started_utc).total_seconds()
    events.append(RunEvent(t_end + 0.002, at(t_end + 0.002), "worker", "journal_stored",
                           {"status": journal["status"], "deviated": journal["deviated"]}))
    events.append(RunEvent(t_end + 0.14, at(t_end + 0.14), "engine", "worker_exited", {"returncode": 0}))
    skind = SANDBOX_KIND[run.kind]
    back = f["t_recovered"] if recovery is not None else t_inject + 60.0
    truth = [("fault_injected", t_inject - 0.006, {"kind": skind, "fault_id": fault["fault_id"],
                                                   "targets": fault["applied"]["targets"]})]
    target = (fault["applied"]["targets"] or [{}])[0]
    if run.kind == "pod-kill":
        truth += [("replica_exit", t_inject + 0.01, {"replica": target["replica"], "pid": target["pid"]}),
                  ("lb_endpoint_removed", max(t_inject + (impact or 0.0), back - rng.uniform(0.02, 0.1)),
                   {"replica": target["replica"], "pid": target["pid"]}),
                  ("replica_ready", back - 0.05, {"replica": target["replica"], "pid": target["pid"] + 7}),
                  ("lb_endpoint_added", back, {"replica": target["replica"], "pid": target["pid"] + 7})]
    elif run.kind == "latency":
        truth += [("toxic_added", t_inject, {"fault_id": fault["fault_id"], "latency_ms": 200}),
                  ("toxic_removed", f["t_cause_end"], {"fault_id": fault["fault_id"], "reason": "expired"})]
    elif run.kind == "cpu-stress":
        truth += [("stress_started", t_inject, {"fault_id": fault["fault_id"], "pids": [target["pid"]]}),
                  ("stress_stopped", f["t_cause_end"], {"fault_id": fault["fault_id"],
                                                        "pid": target["pid"], "cpu": 0,
                                                        "reason": "expired"})]
    else:
        truth += [("primary_lost", t_inject + (impact or 0.06), {"node": target["node"], "pid": target["pid"],
                                                                  "reason": "process exited"}),
                  ("standby_promoted", t_inject + 0.08, {"node": "pg-2", "took_s": 0.022}),
                  ("proxy_repointed", back - 0.04, {"old_port": target["port"], "closed_sessions": 0}),
                  ("standby_rebuilt", back + 0.3, {"node": "pg-3", "took_s": 0.24})]
    truth.append(("fault_reverted", f["t_cause_end"] + 0.1, {"fault_id": fault["fault_id"], "kind": skind,
                                                              "reason": "restored_by_cell"}))
    events += [RunEvent(t, at(t), "sandbox", name, {"cell": run.cell, **detail})
               for name, t, detail in truth]
    created = at(t_inject - 0.01)
    ledger = LedgerFault(
        fault_id=fault["fault_id"], run_id=run.run_id, cell=run.cell, target="local", kind=run.kind,
        spec={"applied": fault["applied"]},
        revert={"target": "local", "state_dir": "/var/lib/gameday/sandbox", "sandbox_cell": run.cell,
                "fault_id": fault["fault_id"]},
        expires_utc=created + timedelta(seconds=60), state="reverted", owner_pid=4242,
        owner_start_ticks=117_092, created_utc=created, applied_utc=at(t_inject),
        reverted_utc=at(t_end - 0.01), revert_reason="rollback")
    return samples, sorted(events, key=lambda e: e.t), ledger


def side_by_side_runs(runs: Sequence[RunRecord], count: int) -> list[RunRecord]:
    """``count`` executed runs spread evenly over the store (every kind, some failures)."""
    executed = [r for r in runs if r.journal is not None]
    step = max(1, len(executed) // count)
    return executed[::step][:count]


@dataclass(frozen=True)
class Generated:
    runs: int
    seconds: float
    chosen: list[str]


def fill_store(url: str, windows: Sequence[WindowRecord], runs: Sequence[RunRecord],
               seed: int) -> Generated:
    chosen = side_by_side_runs(runs, SIDE_BY_SIDE)
    rng = random.Random(seed + 1)
    started = time.perf_counter()
    with Store.open(url) as store:
        for window in windows:
            store.create_window(window)
        for run in runs:
            store.create_run(run)
        for run in chosen:
            assert run.journal is not None
            samples, events, fault = timeline(run, run.journal["run"][0]["output"], rng)
            store.ledger_add(fault)
            store.add_samples(run.run_id, samples)
            store.add_events(run.run_id, events)
    seconds = time.perf_counter() - started
    if url.startswith("postgresql"):
        # A store's year of runs has long been vacuumed and analysed by autovacuum; one loaded a
        # moment ago has not, and autovacuum would do it while the reports are measured.
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("VACUUM ANALYZE"))
        engine.dispose()
    # Read back through Store: the reports read what Store wrote.
    with Store.open(url) as store:
        stored = store.list_runs(limit=None, with_journal=False)
        again = store.get_run(chosen[0].run_id)
    if len(stored) != len(runs) or again is None or again.journal != chosen[0].journal:
        raise SystemExit(f"read back {len(stored)} of {len(runs)} runs, or a journal differs")
    return Generated(len(stored), seconds, [r.run_id for r in chosen])


# -------------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Measured:
    wall_s: float
    rss_bytes: int  # the largest process's peak (os.wait4)
    tree_rss_bytes: int  # the peak of the sum over the process tree (sampled every 10 ms)
    cpu_s: float
    stdout: str


# A bare interpreter (-S, ~10 MB) spawns the command and waits for it: os.wait4's ru_maxrss of a
# process counts its parent's memory at fork time (the address space it had until exec), so the
# command must not be forked from this process, which holds every generated run. ru_maxrss is
# the largest one process of the tree reached; the report forks children that read beside it,
# so a thread also sums VmRSS over the tree every 10 ms (pages shared after a fork are counted in
# each: an upper bound).
_WRAPPER = """import json, os, sys, threading, time
def tree(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(k) for k in f.read().split()]
    except OSError:
        kids = []
    return [pid] + [p for k in kids for p in tree(k)]
def rss(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
started = time.perf_counter()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
peak, done = [0], threading.Event()
def sample():
    while not done.wait(0.01):
        peak[0] = max(peak[0], sum(rss(p) for p in tree(pid)))
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
done.set()
sampler.join()
with open(sys.argv[1], "w") as out:
    json.dump([wall, usage.ru_maxrss, peak[0], usage.ru_utime + usage.ru_stime,
               os.waitstatus_to_exitcode(status)], out)
"""


def spawn(argv: Sequence[str], cwd: Path) -> Measured:
    """Run ``argv`` (an absolute path first); its wall time, the peak RSS of its largest process
    and of the sum over its process tree, and the CPU time of it and its children."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(suffix=".json") as result:
        subprocess.run([sys.executable, "-S", "-c", _WRAPPER, result.name, *argv], stdout=out,
                       stderr=err, cwd=cwd, check=True)
        wall, maxrss_kib, tree_rss, cpu, code = json.loads(Path(result.name).read_text())
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if code != 0:
        raise SystemExit(f"{' '.join(argv[:4])} ... failed ({code}):\n{stdout}\n{stderr}")
    return Measured(wall, maxrss_kib * 1024, max(tree_rss, maxrss_kib * 1024), cpu, stdout)


def gameday_cmd() -> list[str]:
    exe = BIN / "gameday"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "gameday"]


def child(mode: str, payload: dict[str, Any], cwd: Path) -> tuple[Measured, dict[str, Any]]:
    measured = spawn([sys.executable, str(Path(__file__).resolve()), "--child", mode,
                      "--child-args", json.dumps(payload)], cwd)
    return measured, json.loads(measured.stdout.strip().splitlines()[-1])


def median_of(values: Sequence[float]) -> float:
    return statistics.median(values)


def measure_resilience(url: str, since: str, repeat: int, work: Path) -> list[Measured]:
    out = []
    for i in range(repeat):
        folder = work / f"resilience-{i}"
        out.append(spawn([*gameday_cmd(), "report", "resilience", "--since", since, "--store", url,
                          "--out", str(folder)], work))
        shutil.rmtree(folder, ignore_errors=True)
    return out


# -------------------------------------------------------------------------------- children


def _phases(args: dict[str, Any]) -> dict[str, Any]:
    """Open / read + tally / build / render+write of the resilience report, as the CLI makes it
    (reporting.reports: the runs read and tallied by one process per CPU), timed, then traced
    (tracemalloc: this process only, not the children that read beside it)."""
    from gameday.cli.runs import open_store
    from gameday.forked import cpus
    from gameday.reporting import reports
    from gameday.reporting.render import render_html, render_json, render_markdown, write_report
    from gameday.reporting.resilience_context import resilience_report_of

    def once(folder: Path, mark: Callable[[str], None]) -> dict[str, Any]:
        now = datetime.now(UTC)
        since = reports.parse_since(args["since"], now)
        store = open_store(args["url"])
        mark("open")
        tally = reports.resilience_report_tally(store, now, since)
        mark("read")
        context = resilience_report_of(tally, now, since, now)
        mark("build")
        files = write_report(context, folder)
        mark("render")
        counts = store.run_counts(until=now)
        store.close()
        shards = min(reports.MAX_SHARDS, cpus(), len(counts)) \
            if sum(counts.values()) >= reports.SHARD_MIN_RUNS else 1
        return {"runs": sum(counts.values()), "shards": shards, "html": files.html.stat().st_size,
                "json": files.json.stat().st_size, "md": files.markdown.stat().st_size,
                "context": context}

    work = Path(args["out"])
    times: dict[str, float] = {}
    last = time.perf_counter()

    def timed(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        times[name] = now - last
        last = now

    result = once(work / "timed", timed)
    context = result.pop("context")
    split = {}
    for name, fn in (("html", render_html), ("md", render_markdown), ("json", render_json)):
        t0 = time.perf_counter()
        fn(context)
        split[name] = time.perf_counter() - t0
    peaks: dict[str, int] = {}
    tracemalloc.start()

    def traced(name: str) -> None:
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()

    once(work / "traced", traced)
    tracemalloc.stop()
    out = {"times": times, "render_split": split, "peaks": peaks,
           **{k: v for k, v in result.items()}}
    if args.get("profile"):
        profiler = cProfile.Profile()
        profiler.enable()
        once(work / "profiled", lambda _name: None)
        profiler.disable()
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).sort_stats("cumulative").print_stats(args["profile"])
        out["profile"] = buffer.getvalue()
    return out


def _run_reports(args: dict[str, Any]) -> dict[str, Any]:
    """The run reports of ``ids`` in one process, as `gameday report run` makes each."""
    from gameday.reporting.render import write_report
    from gameday.reporting.reports import run_report

    started = time.perf_counter()
    now = datetime.now(UTC)
    with Store.open(args["url"]) as store:
        for i, run_id in enumerate(args["ids"]):
            write_report(run_report(store, run_id, now), Path(args["out"]) / f"run-{i:02d}")
    return {"loop_s": time.perf_counter() - started}


def _read_runs(url: str, since_text: str, lean: bool = True
               ) -> tuple[datetime, datetime, list[RunRecord], float, float]:
    """As resilience_report reads: open the store (reconcile too), the runs of both periods;
    ``lean``: with Store.report_runs and only the report's figures, as today's report reads
    (else Store.list_runs: full records, as the report read before)."""
    from gameday.cli.runs import open_store
    from gameday.reporting.reports import parse_since
    from gameday.reporting.resilience_context import FIGURES

    t0 = time.perf_counter()
    now = datetime.now(UTC)
    since = parse_since(since_text, now)
    store = open_store(url)
    t1 = time.perf_counter()
    earliest = min(since - (now - since), now - timedelta(days=30))
    runs = store.report_runs(since=earliest, until=now, figures=FIGURES) if lean else \
        store.list_runs(limit=None, since=earliest, until=now, with_journal=False)
    store.close()
    return now, since, runs, t1 - t0, time.perf_counter() - t1


def _report_once(args: dict[str, Any]) -> dict[str, Any]:
    """One resilience report in this fresh process, the new path or the v1 peer (a frozen copy
    of the aggregation and templates before issue 10, rendered by today's renderer): open, read,
    build, render + write, timed. The spawn around it gives wall time and peak RSS."""
    started = time.perf_counter()
    if args["path"] == "v1":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from jinja2 import ChoiceLoader, FileSystemLoader, PackageLoader, PrefixLoader
        from v1_report.resilience_context_v1 import build_resilience_report as build_v1

        from gameday.reporting import render
    else:
        from gameday.cli.runs import open_store
        from gameday.reporting import render, reports
        from gameday.reporting.resilience_context import resilience_report_of
    imports = time.perf_counter() - started
    if args["path"] == "v1":  # v1 reads as it did (list_runs, whole records), then aggregates
        now, since, runs, open_s, read_s = _read_runs(args["url"], args["since"], lean=False)
        count = len(runs)
        t0 = time.perf_counter()
        context = build_v1(runs, now, since, now, None)
    else:  # as `gameday report resilience`: read and tallied by one process per CPU
        t0 = time.perf_counter()
        now = datetime.now(UTC)
        since = reports.parse_since(args["since"], now)
        store = open_store(args["url"])
        t1 = time.perf_counter()
        tally = reports.resilience_report_tally(store, now, since)
        open_s, read_s, count = t1 - t0, time.perf_counter() - t1, sum(store.run_counts(until=now).values())
        store.close()
        t0 = time.perf_counter()
        context = resilience_report_of(tally, now, since, now)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    folder = Path(args["out"])
    if args["path"] == "v1":
        loader = PrefixLoader({"v1": FileSystemLoader(str(Path(__file__).resolve().parent / "v1_report"
                                                          / "templates"))}, delimiter="/")
        html_env = render._HTML.overlay(loader=ChoiceLoader([loader, PackageLoader("gameday.reporting",
                                                                                    "templates")]))
        md_env = render._MD.overlay(loader=ChoiceLoader([loader, PackageLoader("gameday.reporting",
                                                                                "templates")]))
        folder.mkdir(parents=True, exist_ok=True)
        html = html_env.get_template("v1/resilience_v1.html.j2")
        (folder / "index.html").write_text(html.render(report=context, charts=render._charts(context)))
        markdown = md_env.get_template("v1/resilience_v1.md.j2").render(report=context)
        (folder / "report.md").write_text(markdown)
        (folder / "report.json").write_text(render.render_json(context))
    else:
        render.write_report(context, folder)
    render_s = time.perf_counter() - t0
    return {"runs": count, "imports": imports, "open": open_s, "read": read_s, "build": build_s,
            "render": render_s, "html": (folder / "index.html").stat().st_size}


def _aggregate(args: dict[str, Any]) -> dict[str, Any]:
    """Fleet aggregation over the same runs, both ways: pure Python (gameday.analytics) and
    pandas (DataFrame from the records, then groupby), with pandas' import timed apart; and
    whether both agree."""
    from gameday.analytics import fleet
    from gameday.reporting.resilience_context import tally_report

    now, _since, runs, _, _ = _read_runs(args["url"], args["since"])
    reps = int(args.get("reps", 3))

    def pure() -> dict[str, Any]:
        # As the report aggregates: one pass (tally_report), every figure from its tallies.
        t = tally_report(runs, min(r.started_utc for r in runs), now, timedelta(days=30))

        def by(position: int) -> dict[str, fleet.MttrTally]:
            out: dict[str, fleet.MttrTally] = {}
            for key, tally in t.groups.items():
                out.setdefault(key[position], fleet.MttrTally()).merge(tally)
            return out

        return {"kind": {k: m.mttr().mean_s for k, m in by(1).items()},
                "week": {k: m.mttr().mean_s for k, m in by(2).items()},
                "cell": {k: m.mttr().mean_s for k, m in t.cells.items()},
                "no_impact": {k: m.no_impact for k, m in by(0).items()},
                "pass": {k: passed / n for k, (n, passed) in t.cell_kinds.items()},
                "dr": {d.cell: d.rto_pct for d in fleet.dr_compliance_of(t.dr)},
                "budget": {b.cell: b.pct for b in fleet.rolling_budget_of(t.rolling, timedelta(days=30))},
                "score": {c.cell: c.score for c in fleet.resilience_score_of(t.scores).cells}}

    t0 = time.perf_counter()
    try:
        import pandas as pd  # not a dependency of gameday any more: the benchmark's peer only
    except ImportError:
        return {"runs": len(runs), "problem": "pandas is not installed (pip install pandas)"}
    import_s = time.perf_counter() - t0

    def with_pandas() -> dict[str, Any]:
        f = [r.figures for r in runs]
        df = pd.DataFrame({
            "cell": [r.cell for r in runs], "kind": [r.kind for r in runs],
            "environment": [fleet.environment(r) for r in runs],
            "started": pd.to_datetime([r.started_utc for r in runs], utc=True),
            "verdict": [r.verdict for r in runs], "cls": [fleet.classify(r) for r in runs],
            "impact": [x.get("impact") for x in f], "recovery_s": [x.get("recovery_s") for x in f],
            "rto_s": [x.get("rto_s") for x in f], "downtime_s": [x.get("downtime_s") for x in f],
            "rto_obj": [r.objectives.rto_s if r.objectives else None for r in runs],
            "slo": [r.objectives.availability_slo if r.objectives else None for r in runs],
            "tier": [r.objectives.tier if r.objectives else None for r in runs]})
        df["recovery_s"] = pd.to_numeric(df["recovery_s"], errors="coerce")
        df["rto_s"] = pd.to_numeric(df["rto_s"], errors="coerce")
        df["downtime_s"] = pd.to_numeric(df["downtime_s"], errors="coerce").fillna(0.0)
        ev = df[df["cls"] == "evidence"]
        seen = ev[ev["impact"] == "seen"]
        iso = seen["started"].dt.isocalendar()
        week = iso["year"].astype(str) + "-W" + iso["week"].astype(str).str.zfill(2)
        out: dict[str, Any] = {
            "kind": seen.groupby("kind")["recovery_s"].mean().to_dict(),
            "week": seen.groupby(week)["recovery_s"].mean().to_dict(),
            "cell": seen.groupby("cell")["recovery_s"].mean().to_dict(),
            "no_impact": (ev["impact"] == "none").groupby(ev["environment"]).sum().to_dict(),
            "pass": (ev["verdict"] == "passed").groupby([ev["cell"], ev["kind"]]).mean().to_dict()}
        db = ev[(ev["kind"] == "db-failover") & ev["rto_obj"].notna()]
        out["dr"] = (100 * (db["rto_s"] <= db["rto_obj"]).groupby(db["cell"]).mean()).to_dict()
        recent = df[(df["started"] >= now - timedelta(days=30)) & (df["started"] < now)
                    & (df["verdict"] != "skipped")]
        newest = recent.sort_values("started").groupby("cell").last()
        down = recent.groupby("cell")["downtime_s"].sum()
        budget_s = (1 - newest["slo"] / 100) * 30 * 86400
        out["budget"] = (100 * down / budget_s).to_dict()
        # the score: per (cell, kind) decayed outcomes, then the mean over the four kinds
        value = ev["verdict"].map(fleet.OUTCOME_VALUES)
        age = (pd.Timestamp(now) - ev["started"]).dt.total_seconds() / 86400
        w = 0.5 ** (age / fleet.HALF_LIFE_DAYS)
        g = pd.DataFrame({"cell": ev["cell"], "kind": ev["kind"], "w": w, "wv": w * value}) \
            .groupby(["cell", "kind"])[["w", "wv"]].sum()
        kind_score = g["wv"] / g["w"].clip(lower=1.0)
        cells = sorted(df["cell"].unique())
        full = kind_score.reindex(pd.MultiIndex.from_product([cells, list(fleet.KINDS)]), fill_value=0.0)
        out["score"] = (100 * full.groupby(level=0).mean()).to_dict()
        return out

    def timed(fn: Callable[[], dict[str, Any]]) -> tuple[float, dict[str, Any]]:
        best, result = math.inf, {}
        for _ in range(reps):
            t0 = time.perf_counter()
            result = fn()
            best = min(best, time.perf_counter() - t0)
        return best, result

    pure_s, a = timed(pure)
    pandas_s, b = timed(with_pandas)

    def close(x: Any, y: Any) -> bool:
        if x is None or y is None or (isinstance(y, float) and math.isnan(y)):
            return (x is None) == (y is None or (isinstance(y, float) and math.isnan(y)))
        return abs(float(x) - float(y)) <= 1e-6 * max(1.0, abs(float(x)))

    differ = [f"{name}:{key}" for name in a for key in a[name]
              if not close(a[name][key], b[name].get(key))]
    return {"runs": len(runs), "pure_s": pure_s, "pandas_s": pandas_s, "pandas_import_s": import_s,
            "differ": differ[:5], "compared": sum(len(v) for v in a.values())}


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "phases": _phases, "run-reports": _run_reports, "report-once": _report_once,
    "aggregate": _aggregate}


# -------------------------------------------------------------------------------- the peer


CHAOS = BIN / "chaos"  # --chaos PATH: a `chaos` whose virtualenv has chaostoolkit-reporting


def chaos_report_problem() -> str | None:
    """Why `chaos report --export-format=html5` cannot run here, or None."""
    if not CHAOS.exists():
        return f"no chaos executable at {CHAOS} (chaostoolkit is not installed; see --chaos)"
    check = subprocess.run([str(CHAOS.parent / "python"), "-c", "import chaosreport"],
                           capture_output=True, text=True, check=False)
    if check.returncode != 0:
        last = (check.stderr.strip().splitlines() or ["?"])[-1]
        return (f"chaostoolkit-reporting cannot be imported beside {CHAOS} ({last}); "
                "pip install 'chaostoolkit-reporting==0.18.0' there, or pass --chaos")
    if shutil.which("pandoc") is None:
        return "pandoc is not on PATH (Debian: apt-get install pandoc); its HTML export runs pandoc"
    return None


def side_by_side(url: str, ids: Sequence[str], reps: int, work: Path) -> dict[str, Any]:
    folder = work / "journals"
    folder.mkdir()
    journals = []
    with Store.open(url) as store:
        for i, run_id in enumerate(ids):
            record = store.get_run(run_id)
            assert record is not None and record.journal is not None
            path = folder / f"journal-{i + 1:02d}.json"
            path.write_text(json.dumps(record.journal, indent=2))
            journals.append(path)
    sizes = [p.stat().st_size for p in journals]
    problem = chaos_report_problem()
    theirs: list[Measured] = []
    ours_one: list[Measured] = []
    ours_loop: list[float] = []
    ours_cli: list[float] = []
    ours_cli_rss: list[int] = []
    for rep in range(reps):
        if problem is None:
            out = work / f"chaos-{rep}.html"
            theirs.append(spawn([str(CHAOS), "--no-log-file", "report", "--export-format=html5",
                                 *map(str, journals), str(out)], work))
            out.unlink(missing_ok=True)
        target = work / f"ours-{rep}"
        ours_one.append(spawn([*gameday_cmd(), "report", "run", *ids, "--store", url,
                               "--out", str(target)], work))
        written = sorted(p.name for p in target.iterdir() if (p / "report.json").is_file())
        assert written == sorted(f"run-{i}" for i in ids), written  # every report, none lost
        shutil.rmtree(target, ignore_errors=True)
        ours_loop.append(child("run-reports", {"url": url, "ids": list(ids), "out": str(target)},
                               work)[1]["loop_s"])
        shutil.rmtree(target, ignore_errors=True)
        total, rss = 0.0, 0
        for i, run_id in enumerate(ids):
            m = spawn([*gameday_cmd(), "report", "run", run_id, "--store", url,
                       "--out", str(target / f"run-{i:02d}")], work)
            total += m.wall_s
            rss = max(rss, m.rss_bytes)
        ours_cli.append(total)
        ours_cli_rss.append(rss)
        shutil.rmtree(target, ignore_errors=True)
        print(f"side by side rep {rep + 1}: theirs "
              f"{theirs[-1].wall_s if theirs else float('nan'):.2f} s, ours one command "
              f"{ours_one[-1].wall_s:.2f} s, ours 50 CLI calls {total:.2f} s", file=sys.stderr)
    return {"problem": problem, "journal_kb": statistics.median(sizes) / 1000, "count": len(ids),
            "theirs": theirs, "ours_one": ours_one, "ours_loop": ours_loop, "ours_cli": ours_cli,
            "ours_cli_rss": ours_cli_rss}


# -------------------------------------------------------------------------------- stores


def postgres_database(url: str) -> tuple[str, Callable[[], None]]:
    """A fresh database on the server of ``url`` (dropped by the returned function)."""
    resolved = make_url(resolve_store_url(url))
    name = f"gameday_bench_{os.getpid()}_{int(time.time())}"
    admin = create_engine(resolved, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return resolved.set(database=name).render_as_string(hide_password=False), drop


def file_mb(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return ""
    size = sum(p.stat().st_size for p in Path(parsed.database).parent.glob(Path(parsed.database).name + "*"))
    return f", {size / MB:.1f} MB on disk"


def verdict_mix(runs: Sequence[RunRecord]) -> str:
    counts: dict[str, int] = {}
    for run in runs:
        key: str = run.verdict or run.status
        if run.verdict == "aborted":
            key = "aborted (halt)" if (run.reason or "").startswith("halt:") else "aborted (other)"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def verdict_word(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# -------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=500)
    parser.add_argument("--weeks", type=int, default=50)
    parser.add_argument("--runs", type=int, help="keep only the newest RUNS runs "
                        "(default all: cells x weeks x 4)")
    parser.add_argument("--quick", action="store_true", help="10 cells x 10 weeks, 1 repetition each")
    parser.add_argument("--repeat", type=int, default=5, help="resilience report repetitions")
    parser.add_argument("--reps", type=int, default=3, help="side-by-side repetitions")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--postgres", metavar="URL", help="also measure a PostgreSQL store: a fresh "
                        "database is created on this server (needs CREATEDB) and dropped after")
    parser.add_argument("--chaos", type=Path, help="the `chaos` executable to compare against, in a "
                        "virtualenv with chaostoolkit-reporting 0.18.0 (default: this virtualenv's)")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions even "
                        "when the time target is met")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--child-args", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](json.loads(args.child_args))))
        return
    if args.quick:
        args.cells, args.weeks, args.repeat, args.reps = 10, 10, 1, 1
    if args.chaos is not None:
        global CHAOS
        CHAOS = args.chaos.absolute()
    load = os.getloadavg()
    now = datetime.now(UTC)
    since_days = max(400, args.weeks * 7 + 14)
    since = f"{since_days}d"
    started = time.perf_counter()
    windows, runs = generate(args.cells, args.weeks, args.runs, args.seed, now)
    build_s = time.perf_counter() - started
    shape = f"{args.cells} cells x {args.weeks} weeks x {len(KINDS)} kinds"
    if args.runs is not None and args.runs < args.cells * args.weeks * len(KINDS):
        shape = f"the newest of {shape}"
    journal_kb = statistics.median(len(json.dumps(r.journal)) for r in runs if r.journal) / 1000
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="gameday-bench-") as tmp:
        work = Path(tmp)
        stores: list[tuple[str, str, Callable[[], None] | None]] = [
            ("sqlite", f"sqlite:///{work / 'gameday.db'}", None)]
        if args.postgres:
            try:
                pg_url, drop = postgres_database(args.postgres)
                stores.append(("postgresql", pg_url, drop))
            except Exception as exc:
                lines.append(f"  postgresql: cannot create a database on the server: {exc}")
        results: dict[str, dict[str, Any]] = {}
        try:
            for name, url, _ in stores:
                generated = fill_store(url, windows, runs, args.seed)
                print(f"{name}: {generated.runs:,} runs stored in {generated.seconds:.1f} s",
                      file=sys.stderr)
                measured = measure_resilience(url, since, args.repeat, work)
                _, phases = child("phases", {"url": url, "since": since, "out": str(work / "phases"),
                                             "profile": 0}, work)
                walls = [m.wall_s for m in measured]
                profile = None
                if args.profile or median_of(walls) >= TARGET_S:
                    _, prof = child("phases", {"url": url, "since": since,
                                               "out": str(work / "profile"), "profile": 25}, work)
                    profile = prof["profile"]
                peers = {path: [child("report-once", {"url": url, "since": since, "path": path,
                                                      "out": str(work / f"peer-{path}-{i}")}, work)
                                for i in range(max(1, args.repeat // 2))]
                         for path in ("v1", "new")}
                _, aggregate = child("aggregate", {"url": url, "since": since, "reps": 3}, work)
                results[name] = {"generated": generated, "measured": measured, "phases": phases,
                                 "size": file_mb(url), "profile": profile, "peers": peers,
                                 "aggregate": aggregate}
            startup = [spawn([sys.executable, "-c", STARTUP], work).wall_s
                       for _ in range(max(3, args.repeat))]
            sqlite_url = stores[0][1]
            peer = side_by_side(sqlite_url, results["sqlite"]["generated"].chosen, args.reps, work)
        finally:
            for _, _, dropper in stores:
                if dropper is not None:
                    dropper()
    load_end = os.getloadavg()

    total = len(runs)
    print(f"store: {total:,} runs ({shape}), {len(windows)} weekly windows, seed {args.seed}")
    print(f"  verdicts: {verdict_mix(runs)}")
    executed = sum(1 for r in runs if r.journal)
    print(f"  journals: median {journal_kb:.1f} KB on the {executed:,} executed runs")
    print(f"generation (not part of any figure): records built in {build_s:.1f} s")
    for name, r in results.items():
        g = r["generated"]
        print(f"  {name:<10} {g.runs:,} runs written with Store.create_run in {g.seconds:.1f} s "
              f"({g.seconds / g.runs * 1000:.2f} ms/run){r['size']}; read back {g.runs:,} via Store")
    for line in lines:
        print(line)
    print(f"resilience report over {total:,} runs: `gameday report resilience --since {since}`, "
          f"fresh process, median of {args.repeat}")
    for name, r in results.items():
        walls = [m.wall_s for m in r["measured"]]
        rss = max(m.rss_bytes for m in r["measured"])
        tree = max(m.tree_rss_bytes for m in r["measured"])
        wall = median_of(walls)
        print(f"  {name:<10} wall {wall:.2f} s (min {min(walls):.2f}, max {max(walls):.2f})  "
              f"CPU {median_of([m.cpu_s for m in r['measured']]):.2f} s (its processes together)  "
              f"< {TARGET_S:g} s: {verdict_word(wall < TARGET_S)}")
        print(f"  {'':<10} peak RSS: {tree / MB:.0f} MB summed over its processes (sampled every 10 ms), "
              f"{rss / MB:.0f} MB the largest one   < 1 GB: {verdict_word(tree < TARGET_BYTES)}")
    print(f"  start-up: interpreter + gameday CLI and reporting imports {median_of(startup):.2f} s")
    for name, r in results.items():
        p = r["phases"]
        t, peaks, split = p["times"], p["peaks"], p["render_split"]
        print(f"  in-process phases, once ({name}): total {sum(t.values()):.2f} s")
        for key, label in (("open", "open store + reconcile (+ imports)"),
                           ("read", f"read + tally {p['runs']:,} runs, {p['shards']} process(es)"),
                           ("build", "build report data from the tally"), ("render", "render + write")):
            print(f"    {label:<36} {t[key]:6.2f} s   traced peak {peaks[key] / MB:6.1f} MB")
        print(f"    (render alone: html {split['html']:.2f} s, md {split['md']:.2f} s, "
              f"json {split['json']:.2f} s)")
        print(f"    output: index.html {p['html'] / 1000:.0f} KB, report.md {p['md'] / 1000:.0f} KB, "
              f"report.json {p['json'] / 1000:.0f} KB")
        if r["profile"]:
            print(f"  cProfile, top functions by cumulative time ({name}, one in-process run):")
            print("\n".join("    " + line for line in r["profile"].strip().splitlines()))
    print("against the implementation before issue 10 (a frozen copy in benchmarks/v1_report/: "
          "its aggregation and templates, today's renderer), same data, same run, fresh processes:")
    for name, r in results.items():
        for path in ("v1", "new"):
            ms = r["peers"][path]
            wall = median_of([m.wall_s for m, _ in ms])
            rss = max(m.rss_bytes for m, _ in ms)
            ph = ms[0][1]
            r.setdefault("peer_wall", {})[path] = wall
            print(f"  {name:<10} {path:<3} wall {wall:.2f} s  peak RSS {rss / MB:.0f} MB   "
                  f"(imports {ph['imports']:.2f} s, open {ph['open']:.2f}, read {ph['read']:.2f}, "
                  f"build {ph['build']:.2f}, render+write {ph['render']:.2f}; "
                  f"index.html {ph['html'] / 1000:.0f} KB)")
        pw = r["peer_wall"]
        print(f"  {name:<10} ratio v1 / new wall: {pw['v1'] / pw['new']:.2f}")
    print("fleet aggregation, both ways, on the same runs (in one process, best of 3):")
    for name, r in results.items():
        a = r["aggregate"]
        if a.get("problem"):
            print(f"  {name:<10} pandas NOT MEASURED: {a['problem']}")
            continue
        print(f"  {name:<10} pure Python {a['pure_s']:.2f} s   pandas {a['pandas_s']:.2f} s "
              f"(+ import pandas {a['pandas_import_s']:.2f} s)   ratio pandas / pure "
              f"{(a['pandas_s'] + a['pandas_import_s']) / a['pure_s']:.2f} with its import, "
              f"{a['pandas_s'] / a['pure_s']:.2f} without; {a['compared']:,} figures compared, "
              f"{'all agree' if not a['differ'] else 'DIFFER: ' + ', '.join(a['differ'])}")
    print(f"side by side on the same {peer['count']} journals (median {peer['journal_kb']:.1f} KB), "
          f"median of {args.reps}")
    n = peer["count"]
    ours_one = median_of([m.wall_s for m in peer["ours_one"]])
    ours_cli = median_of(peer["ours_cli"])
    rows = [(f"ours, one `gameday report run ID x {n}`", ours_one,
             f"CPU {median_of([m.cpu_s for m in peer['ours_one']]):.2f} s over its processes, "
             f"peak RSS {max(m.tree_rss_bytes for m in peer['ours_one']) / MB:.0f} MB summed; "
             f"in one process, no fork, imports done: {median_of(peer['ours_loop']):.2f} s"),
            (f"ours, {n} x `gameday report run`", ours_cli,
             f"peak RSS {max(peer['ours_cli_rss']) / MB:.0f} MB, {ours_cli / n:.2f} s each")]
    if not peer["problem"]:
        theirs = median_of([m.wall_s for m in peer["theirs"]])
        rows.append(("theirs, `chaos report --export-format=html5`", theirs,
                     f"CPU {median_of([m.cpu_s for m in peer['theirs']]):.2f} s, "
                     f"peak RSS {max(m.tree_rss_bytes for m in peer['theirs']) / MB:.0f} MB "
                     f"summed (pandoc's included)"))
    for label, seconds, note in rows:
        print(f"  {label:<54} {seconds:7.2f} s   {note}")
    if peer["problem"]:
        print(f"  theirs, `chaos report --export-format=html5`: NOT MEASURED: {peer['problem']}")
    else:
        print(f"  {'ratio theirs / ours, one command (goal >= 10)':<54} {theirs / ours_one:7.2f}")
        print(f"  {f'ratio theirs / ours, {n} CLI calls':<54} {theirs / ours_cli:7.2f}")
    print(f"  (machine: {os.cpu_count()} CPUs; load average {load[0]:.2f} at start, "
          f"{load_end[0]:.2f} at end: other processes running slow every figure)")


if __name__ == "__main__":
    main()
