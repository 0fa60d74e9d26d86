"""The store's contract, the same tests over SQLite (a file) and a real PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Collection, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from gameday.errors import InputError
from gameday.model.records import (
    RUN_SCHEMA_VERSION,
    CellObjectives,
    CriterionResult,
    LedgerFault,
    ReportRun,
    RunEvent,
    RunRecord,
    Sample,
    WindowRecord,
)
from gameday.sandbox.replicas import free_port
from gameday.store import (
    DEFAULT_STORE_URL,
    STORE_SCHEMA_VERSION,
    IncompatibleSchemaError,
    Store,
    StoreError,
    redact_url,
    resolve_store_url,
)
from gameday.store._schema import FIGURE_COLUMNS
from gameday.store._store import _IN_CHUNK

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

T0 = datetime(2025, 1, 4, 2, 0, 0, 123456, tzinfo=UTC)
CEST = timezone(timedelta(hours=2))


# --------------------------------------------------------------------------- backends


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'gameday.db'}"
    server = request.getfixturevalue("postgres_server")
    return server.new_database_url()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store.open(store_url)
    try:
        yield opened
    finally:
        opened.close()


# --------------------------------------------------------------------------- records


def make_run(run_id: str = "run-1", *, cell: str = "cell-1", started: datetime = T0,
             **fields: object) -> RunRecord:
    base = RunRecord(run_id=run_id, experiment="Pod kill", experiment_path="experiments/local/pod-kill.yaml",
                     kind="pod-kill", cell=cell, target="local", started_utc=started)
    return dataclasses.replace(base, **fields)  # type: ignore[arg-type]


def make_fault(fault_id: str, run_id: str | None = "run-1", **fields: object) -> LedgerFault:
    base = LedgerFault(fault_id=fault_id, run_id=run_id, cell="cell-1", target="local", kind="latency",
                       spec={"delay_ms": 300, "jitter_ms": 0}, revert={"action": "remove_toxic", "id": 7},
                       expires_utc=T0 + timedelta(minutes=5))
    return dataclasses.replace(base, **fields)  # type: ignore[arg-type]


def sample(t: float, **fields: object) -> Sample:
    base = Sample(t=t, utc=T0 + timedelta(seconds=t), ok=True, latency_ms=12.5, status=200)
    return dataclasses.replace(base, **fields)  # type: ignore[arg-type]


def assert_utc(value: datetime | None) -> None:
    assert value is not None and value.tzinfo is UTC


# --------------------------------------------------------------------------- runs


def test_run_round_trips_every_field(store: Store) -> None:
    run = make_run(
        # Given in +02:00: it must come back as the same instant, in UTC, microseconds intact.
        started=datetime(2025, 1, 4, 4, 0, 0, 654321, tzinfo=CEST),
        status="completed", ended_utc=T0 + timedelta(seconds=95, microseconds=1),
        verdict="failed", reason="recovery 75.2 s > 60 s",
        figures={"recovery_s": 75.2, "time_to_impact_s": 0.4, "breached": True, "mttr": None,
                 "nested": {"p90": [1.5, 2.5]}},
        criteria=[CriterionResult("recovery", "< 60 s", "75.2 s", False),
                  CriterionResult("error rate", "< 1 %", "0.4 %", True)],
        journal={"status": "completed", "run": [{"activity": {"name": "kill"}, "status": "succeeded"}],
                 "note": "élan ✓", "big": 2**53},
        runner_pid=4242, runner_start_ticks=987654321012,
    )
    store.create_run(run)

    got = store.get_run("run-1")
    assert got == run
    assert got is not None
    assert_utc(got.started_utc)
    assert_utc(got.ended_utc)
    assert got.started_utc == datetime(2025, 1, 4, 2, 0, 0, 654321, tzinfo=UTC)
    assert got.ended_utc is not None and got.ended_utc.microsecond == 123457
    assert got.schema_version == RUN_SCHEMA_VERSION
    assert store.get_run("no-such-run") is None


def test_run_without_optional_fields(store: Store) -> None:
    run = make_run()
    store.create_run(run)
    assert store.get_run(run.run_id) == run


def test_duplicate_run_is_a_store_error(store: Store) -> None:
    store.create_run(make_run())
    with pytest.raises(StoreError, match="create run 'run-1'"):
        store.create_run(make_run())


def test_update_run_sets_fields(store: Store) -> None:
    run = make_run(journal={"status": "running"})
    store.create_run(run)
    changes: dict[str, object] = {
        "status": "completed", "ended_utc": T0 + timedelta(minutes=2), "verdict": "passed",
        "reason": None, "figures": {"recovery_s": 4.25}, "journal": None,
        "criteria": [CriterionResult("recovery", "< 60 s", "4.25 s", True)],
    }
    store.update_run("run-1", **changes)
    assert store.get_run("run-1") == dataclasses.replace(run, **changes)  # type: ignore[arg-type]

    store.update_run("run-1", reason="operator note")  # other fields stay
    got = store.get_run("run-1")
    assert got is not None and got.reason == "operator note" and got.verdict == "passed"


def test_update_run_rejects_what_it_cannot_store(store: Store) -> None:
    store.create_run(make_run())
    with pytest.raises(StoreError, match="no such run"):
        store.update_run("missing", status="completed")
    with pytest.raises(StoreError, match="no such run field"):
        store.update_run("run-1", colour="red")
    with pytest.raises(StoreError, match="status must be one of"):
        store.update_run("run-1", status="finished")
    with pytest.raises(StoreError, match="not JSON serializable"):
        store.update_run("run-1", figures={"when": T0})
    with pytest.raises(StoreError, match="timezone-aware"):
        store.update_run("run-1", ended_utc=datetime(2025, 1, 4, 2, 0))  # naive
    assert store.get_run("run-1") == make_run()


def test_non_finite_figures_become_null_on_both_backends(store: Store) -> None:
    store.create_run(make_run(figures={"mean": float("nan"), "max": float("inf"), "n": 0}))
    got = store.get_run("run-1")
    assert got is not None and got.figures == {"mean": None, "max": None, "n": 0}


def test_list_runs_newest_first_by_cell_with_limit(store: Store) -> None:
    for i, cell in enumerate(["cell-1", "cell-2", "cell-1", "cell-2", "cell-1"]):
        store.create_run(make_run(f"run-{i}", cell=cell, started=T0 + timedelta(hours=i)))

    assert [r.run_id for r in store.list_runs()] == ["run-4", "run-3", "run-2", "run-1", "run-0"]
    assert [r.run_id for r in store.list_runs(cell="cell-1")] == ["run-4", "run-2", "run-0"]
    assert [r.run_id for r in store.list_runs(limit=2)] == ["run-4", "run-3"]
    assert [r.run_id for r in store.list_runs(cell="cell-2", limit=1)] == ["run-3"]
    assert store.list_runs(cell="cell-9") == []
    assert store.list_runs(limit=0) == []


def test_runs_with_status(store: Store) -> None:
    for i in range(4):
        store.create_run(make_run(f"run-{i}", started=T0 + timedelta(minutes=i)))
    store.update_run("run-1", status="completed", verdict="passed")
    store.update_run("run-3", status="interrupted")
    assert [r.run_id for r in store.runs_with_status("running")] == ["run-0", "run-2"]
    assert [r.run_id for r in store.runs_with_status("interrupted")] == ["run-3"]
    assert store.runs_with_status("completed")[0].verdict == "passed"


def reported(run: RunRecord, figures: Collection[str] | None = None) -> ReportRun:
    """What the report read gives for ``run``: its figures (those asked for, None where not
    stored), its criteria without actual values when it passed."""
    values = dict(run.figures) if figures is None else {n: run.figures.get(n) for n in figures}
    actual = run.verdict != "passed"
    return ReportRun(run.run_id, run.cell, run.kind, run.target, run.environment, run.started_utc,
                     run.verdict, run.reason, run.window_id, run.objectives, values,
                     tuple(CriterionResult(c.name, c.expected, c.actual if actual else "", c.ok)
                           for c in run.criteria))


def test_report_runs_are_list_runs_as_reports_read_them(store: Store) -> None:
    """The lean read of reports gives list_runs' runs, newest first, as ReportRuns: times UTC,
    only the figures asked for, the actual values of criteria only where the run did not pass."""
    tier1 = CellObjectives(tier=1, tenants=("acme", "globex"), availability_slo=99.95,
                           p95_latency_slo_ms=250.0, rto_s=900.0, rpo_s=60.0)
    tier2 = dataclasses.replace(tier1, tier=2, tenants=("initech",), rto_s=1800.0)
    many = [CriterionResult(f"criterion {k}", f"x{k} <= {k}", f"actual {k}", k % 4 != 1) for k in range(11)]
    made = []
    for i in range(12):
        # Some given in +02:00, some with microseconds 0 and some without an end.
        started = (T0 + timedelta(hours=i, microseconds=7 * i)).astimezone(CEST if i % 3 else UTC)
        made.append(make_run(
            f"run-{i:02d}", cell=f"cell-{i % 3}", started=started, kind=("pod-kill", "db-failover")[i % 2],
            status="completed" if i % 5 else "interrupted",
            ended_utc=None if i % 4 == 0 else started + timedelta(seconds=90, microseconds=i),
            verdict=(None, "passed", "failed", "aborted", "not_recovered", "skipped", "passed")[i % 7],
            reason=None if i % 2 else f"halt: error rate above 50 % ({i})",
            figures={} if i == 5 else {"impact": ("seen", "none")[i % 2], "recovery_s": 1.5 * i,
                                       "rpo_rows": i % 3, "adapted": i % 2 == 0, "rto_s": None,
                                       "nested": {"p90": [1.5, i]}, "big": 2**53 + i, "a.b": "dotted"},
            # more criteria than SQLite leaves actual values out of by path (8), passed or not
            criteria=many if i in (2, 6) else [] if i % 4 == 1 else [
                CriterionResult("recovery", "recovery_s <= 60", f"{i} s", i % 2 == 0),
                CriterionResult("errors", "error_rate <= 0.01", "0.4 %", True)],
            journal={"status": "completed", "i": i}, runner_pid=4000 + i,
            runner_start_ticks=None if i % 3 == 0 else 987654321012 + i,
            window_id=f"win-{i % 2}" if i % 3 else None,
            objectives=(None, tier1, tier2)[i % 3], environment=("sandbox", "staging", "production")[i % 3]))
    for run in made:
        store.create_run(run)
    since, until = T0 + timedelta(hours=1), T0 + timedelta(hours=11)

    listed = store.list_runs(limit=None, since=since, until=until, with_journal=False)
    lean = store.report_runs(since=since, until=until)
    assert [r.run_id for r in listed] == [f"run-{i:02d}" for i in range(10, 0, -1)]
    assert lean == [reported(r) for r in listed]
    for got in lean:
        assert_utc(got.started_utc)
    assert {r.verdict for r in lean} >= {"passed", "failed", "aborted", "not_recovered", "skipped", None}
    assert [c.actual for c in next(r for r in lean if r.run_id == "run-02").criteria] == \
        [f"actual {k}" for k in range(11)]  # did not pass: every actual value, past the 8th too
    assert {c.actual for c in next(r for r in lean if r.run_id == "run-06").criteria} == {""}  # passed
    assert store.report_runs() == [reported(r) for r in store.list_runs(limit=None, with_journal=False)]

    # Only the figures asked for (None where not stored), everything else the same.
    names = ("impact", "recovery_s", "rto_s", "a.b", "missing")
    trimmed = store.report_runs(since=since, until=until, figures=names)
    assert trimmed == [reported(r, names) for r in listed]
    assert trimmed[0].figures == {"impact": "seen", "recovery_s": 15.0, "rto_s": None, "a.b": "dotted",
                                  "missing": None}
    one = store.report_runs(since=since, until=until, figures=["rpo_rows"])
    assert [r.figures for r in one] == [{"rpo_rows": r.figures.get("rpo_rows")} for r in listed]
    assert {tuple(r.figures) for r in store.report_runs(figures=())} == {()}

    # Filters as list_runs' (cells) and by environment.
    some = store.report_runs(since=since, until=until, cells=["cell-1", "cell-2"], environments=["staging"])
    assert some == [reported(r) for r in listed
                    if r.cell in ("cell-1", "cell-2") and r.environment == "staging"]
    assert some and all(r.cell == "cell-1" for r in some)
    assert store.report_runs(cells=[]) == []


def test_the_report_read_streams_and_lets_go_of_its_connection(store: Store) -> None:
    """stream_report_runs gives report_runs' runs one at a time; closed early, it leaves the
    store usable; a naive bound is refused before anything is read."""
    for i in range(30):
        store.create_run(make_run(f"run-{i:02d}", cell=f"cell-{i % 3}", started=T0 + timedelta(minutes=i),
                                  verdict=("passed", "failed")[i % 2], figures={"impact": "none", "n": i},
                                  criteria=[CriterionResult("c", "x <= 1", str(i), i % 2 == 0)]))
    stream = store.stream_report_runs(since=T0, until=T0 + timedelta(days=1), figures=["n"])
    first = next(stream)
    assert [first, *stream] == store.report_runs(since=T0, until=T0 + timedelta(days=1), figures=["n"])
    assert first.run_id == "run-29" and first.figures == {"n": 29}
    for _ in range(3):  # abandoned after one run: the connection goes back, the next reads work
        early = store.stream_report_runs(cells=["cell-1"])
        assert next(early).cell == "cell-1"
        early.close()
    assert len(store.report_runs()) == 30 and len(store.list_runs(limit=None)) == 30
    with pytest.raises(StoreError, match="timezone-aware"):
        store.stream_report_runs(since=datetime(2025, 1, 4))  # naive


def test_a_resilience_report_from_the_report_read_is_the_one_from_whole_records(store: Store) -> None:
    """What report_runs leaves out (the journal, other figures, the actual values of criteria
    of runs that passed) is nothing the resilience report reads."""
    from gameday.reporting.resilience_context import FIGURES, build_resilience_report

    now, since = _fleet_of_60(store)
    lean = build_resilience_report(store.report_runs(since=T0, until=now, figures=FIGURES), now, since)
    full = build_resilience_report(store.list_runs(limit=None, since=T0, until=now, with_journal=False), now,
                                   since)
    assert lean == full
    assert lean["findings"] and lean["actions"]["total"] and lean["dr_compliance"]


def _fleet_of_60(store: Store) -> tuple[datetime, datetime]:
    """60 runs of 5 cells, every verdict and kind; the report's now and since."""

    goals = CellObjectives(tier=1, tenants=("acme",), availability_slo=99.9, p95_latency_slo_ms=250.0,
                           rto_s=2.0, rpo_s=0.0)
    verdicts = ("passed", "failed", "not_recovered", "aborted", "skipped", "passed", None)
    kinds = ("pod-kill", "latency", "cpu-stress", "db-failover")
    for i in range(60):
        verdict, kind = verdicts[i % len(verdicts)], kinds[i % 4]
        store.create_run(make_run(
            f"run-{i:02d}", cell=f"cell-{i % 5}", kind=kind, started=T0 + timedelta(hours=11 * i),
            status="completed" if verdict else "running", verdict=verdict,
            reason="halt: error rate above 50 %" if verdict == "aborted" and i % 2 else "operator: stop",
            figures={"impact": ("seen", "none", None)[i % 3], "recovery_s": 0.5 * i, "adapted": i % 4 == 0,
                     "restore_s": float(i % 40), "downtime_s": i % 3 * 2.5, "samples": 100 + i,
                     "rto_s": 0.1 * i if kind == "db-failover" else None,
                     "rpo_rows": i % 3 if kind == "db-failover" else None, "rpo_s": 0.0},
            criteria=[CriterionResult("recovery", f"recovery_s <= {5 + i % 2}", f"{0.5 * i} s", i < 12),
                      CriterionResult("errors", "error_rate <= 0.01", "0.2 %", i % 7 != 3)],
            journal={"status": "completed"}, window_id=f"win-{i // 8}",
            objectives=goals if i % 6 else None, environment=("sandbox", "production")[i % 7 % 2]))
    return T0 + timedelta(days=30), T0 + timedelta(days=12)


def test_a_resilience_report_read_by_several_processes_is_the_one_read_by_one(store: Store) -> None:
    """Shards: forked children each read and tally some cells' runs, through connections of
    their own; the report is the same, and a child that fails is an error that says so."""
    from gameday.reporting import reports
    from gameday.reporting.reports import resilience_report
    from gameday.reporting.resilience_context import FIGURES, build_resilience_report

    now, since = _fleet_of_60(store)
    lean = build_resilience_report(store.report_runs(figures=FIGURES), now, since)
    for shards in (1, 2, 3, 7):
        assert resilience_report(store, now, since, shards=shards) == lean, shards
    some = resilience_report(store, now, since, cells=["cell-1", "cell-2", "cell-4"], shards=1)
    assert resilience_report(store, now, since, cells=["cell-1", "cell-2", "cell-4"], shards=2) == some
    assert some != lean and some["pass_rate"]["cells"] == ["cell-1", "cell-2", "cell-4"]
    assert store.run_counts(since=T0, until=now) == {f"cell-{i}": 12 for i in range(5)}
    assert store.run_counts(since=T0 + timedelta(hours=11 * 55)) == {f"cell-{i}": 1 for i in range(5)}

    parent = os.getpid()
    tally = reports._ShardRead.tally

    def dies(read: Any, cells: Any) -> Any:
        if os.getpid() != parent:
            os._exit(3)
        return tally(read, cells)

    def fails(read: Any, cells: Any) -> Any:
        if os.getpid() != parent:
            raise RuntimeError("disk on fire")
        return tally(read, cells)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reports._ShardRead, "tally", dies)
        with pytest.raises(StoreError, match=r"ended \(exit code 3\) without answering"):
            resilience_report(store, now, since, shards=2)
        patch.setattr(reports._ShardRead, "tally", fails)
        with pytest.raises(StoreError, match="RuntimeError: disk on fire"):
            resilience_report(store, now, since, shards=2)
    assert resilience_report(store, now, since, shards=2) == lean  # and the store still reads


# --------------------------------------------------------------------------- timeline


def test_samples_round_trip_ordered_by_t(store: Store) -> None:
    store.create_run(make_run("run-1"))
    store.create_run(make_run("run-2"))
    batch_1 = [sample(i / 10) for i in range(300, 600)]  # arrives first, later in time
    batch_2 = [sample(i / 10, ok=i % 7 != 0, latency_ms=i * 0.123, status=503 if i % 7 == 0 else 200,
                      error="HTTP 503" if i % 7 == 0 else None, write_seq=i, payment_id=10_000 + i)
               for i in range(300)]
    store.add_samples("run-1", batch_1)
    store.add_samples("run-1", batch_2)
    store.add_samples("run-2", [sample(0.05)])
    store.add_samples("run-1", [])

    got = store.samples("run-1")
    assert got == batch_2 + batch_1
    assert all(s.utc.tzinfo is UTC for s in got)
    assert got[1].utc.microsecond == (T0 + timedelta(seconds=0.1)).microsecond
    assert store.samples("run-2") == [sample(0.05)]
    assert store.samples("no-such-run") == []


def test_samples_need_an_existing_run(store: Store) -> None:
    with pytest.raises(StoreError, match="add 1 samples to run 'ghost'"):
        store.add_samples("ghost", [sample(0.0)])


def test_events_round_trip_ordered_by_t(store: Store) -> None:
    store.create_run(make_run())
    inject = RunEvent(t=2.5, utc=T0 + timedelta(seconds=2.5), source="engine", name="fault.applied",
                      detail={"fault_id": "f-1", "pods": ["api-2"]})
    ready = RunEvent(t=9.75, utc=T0 + timedelta(seconds=9.75), source="sandbox", name="replica.ready")
    start = RunEvent(t=0.0, utc=T0, source="worker", name="phase.steady_state", detail={"ok": True})
    store.add_events("run-1", [inject, ready])
    store.add_events("run-1", [start])
    assert store.events("run-1") == [start, inject, ready]
    assert store.events("other") == []


def test_run_details_read_many_runs_as_each_is_read_alone(store: Store) -> None:
    # More runs than one IN (...) binds, so the chunks are read too; their samples and events
    # interleaved in time, so each run must get its own, in its own order.
    ids = [f"run-{i:03d}" for i in range(_IN_CHUNK + 7)]
    for n, run_id in enumerate(ids):
        store.create_run(make_run(run_id, cell=f"cell-{n % 3}", journal={"n": n} if n % 2 else None))
    for n, run_id in enumerate(ids[:40]):
        store.add_samples(run_id, [sample(t / 10 + n / 1000, ok=(t + n) % 5 != 0, write_seq=t)
                                   for t in range(20, 0, -1)])
        store.add_events(run_id, [RunEvent(t=3.0 - e, utc=T0, source="sandbox", name=f"e{e}",
                                           detail={"n": n}) for e in range(3)])
        if n % 4 == 0:
            store.ledger_add(make_fault(f"f-{n}-b", run_id=run_id, created_utc=T0 + timedelta(seconds=2)))
            store.ledger_add(make_fault(f"f-{n}-a", run_id=run_id, created_utc=T0 + timedelta(seconds=1)))
    wanted = [ids[-1], "no-such-run", *ids[:45], ids[3]]
    details = store.run_details(wanted)
    assert set(details) == set(ids[:45]) | {ids[-1]}
    for run_id, detail in details.items():
        assert detail.record == store.get_run(run_id)
        assert detail.samples == store.samples(run_id)
        assert detail.events == store.events(run_id)
        assert detail.faults == store.ledger_for_run(run_id)
    assert [s.t for s in details[ids[1]].samples] == sorted(s.t for s in details[ids[1]].samples)
    assert len(details[ids[1]].samples) == 20 and details[ids[44]].samples == []
    assert [f.fault_id for f in details[ids[4]].faults] == ["f-4-a", "f-4-b"]
    assert details[ids[1]].record.journal == {"n": 1}
    assert store.stored_run_ids(wanted) == set(details)


# --------------------------------------------------------------------------- fault ledger


def test_ledger_lifecycle(store: Store) -> None:
    store.ledger_add(make_fault("f-1", created_utc=T0))
    store.ledger_add(make_fault("f-2", created_utc=T0 + timedelta(seconds=1), owner_pid=99,
                                owner_start_ticks=123456))
    store.ledger_add(make_fault("f-3", run_id=None, created_utc=T0 + timedelta(seconds=2)))
    assert [f.fault_id for f in store.ledger_unreverted()] == ["f-1", "f-2", "f-3"]

    store.ledger_update("f-1", state="applied", applied_utc=T0 + timedelta(seconds=3))
    store.ledger_update("f-2", state="failed", revert_reason="proxy unreachable")
    store.ledger_update("f-1", state="reverted", reverted_utc=T0 + timedelta(seconds=60),
                        revert_reason="recovered", revert={"action": "remove_toxic", "id": 8})

    f1 = store.ledger_get("f-1")
    assert f1 == make_fault("f-1", created_utc=T0, state="reverted", applied_utc=T0 + timedelta(seconds=3),
                            reverted_utc=T0 + timedelta(seconds=60), revert_reason="recovered",
                            revert={"action": "remove_toxic", "id": 8})
    assert f1 is not None
    assert_utc(f1.expires_utc)
    assert_utc(f1.reverted_utc)
    # A fault that failed (to apply or to revert) is still owed a revert.
    assert [f.fault_id for f in store.ledger_unreverted()] == ["f-2", "f-3"]
    assert [f.fault_id for f in store.ledger_for_run("run-1")] == ["f-1", "f-2"]
    assert [f.fault_id for f in store.ledger_all()] == ["f-1", "f-2", "f-3"]
    assert store.ledger_get("f-3") == make_fault("f-3", run_id=None, created_utc=T0 + timedelta(seconds=2))
    assert store.ledger_get("nope") is None


def test_ledger_add_fills_created_and_is_visible_to_another_store(store_url: str) -> None:
    with Store.open(store_url) as writer, Store.open(store_url) as reader:
        before = datetime.now(UTC)
        writer.ledger_add(make_fault("f-1"))
        # Committed when ledger_add returns: another connection (another process) sees it.
        got = reader.ledger_get("f-1")
        assert got is not None and got.state == "pending"
        assert got.created_utc is not None and before <= got.created_utc <= datetime.now(UTC)


def test_ledger_rejects_bad_updates(store: Store) -> None:
    store.ledger_add(make_fault("f-1"))
    with pytest.raises(StoreError, match="no such fault"):
        store.ledger_update("f-9", state="applied")
    with pytest.raises(StoreError, match="no such fault field"):
        store.ledger_update("f-1", colour="red")
    with pytest.raises(StoreError, match="fault state must be one of"):
        store.ledger_update("f-1", state="gone")
    with pytest.raises(StoreError, match="add fault 'f-1'"):
        store.ledger_add(make_fault("f-1"))


# --------------------------------------------------------------------------- schema and opening


def test_open_twice_keeps_data(store_url: str) -> None:
    with Store.open(store_url) as first:
        first.create_run(make_run())
    with Store.open(store_url) as second:
        assert second.get_run("run-1") == make_run()


def test_schema_version_mismatch_is_refused(store_url: str) -> None:
    Store.open(store_url).close()
    engine = sa.create_engine(resolve_store_url(store_url))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE meta SET value = '99' WHERE key = 'schema_version'"))
    engine.dispose()

    with pytest.raises(IncompatibleSchemaError) as caught:
        Store.open(store_url)
    error = caught.value
    assert isinstance(error, StoreError)
    assert error.expected == f"store schema version {STORE_SCHEMA_VERSION}"
    assert error.found == "schema version 99"
    assert "newer gameday" in error.fix
    assert error.where == redact_url(resolve_store_url(store_url))
    message = str(error)
    assert "incompatible store schema" in message and "fix:" in message
    if "@" in store_url:
        password = store_url.split(":")[2].split("@")[0]
        assert password not in message


def test_a_version_1_store_is_upgraded_in_place(store_url: str) -> None:
    # A store as version 1 wrote it: no windows table, no window_id / objectives columns.
    Store.open(store_url).close()
    engine = sa.create_engine(resolve_store_url(store_url))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE windows"))
        conn.execute(sa.text("DROP INDEX runs_window_idx"))
        conn.execute(sa.text("ALTER TABLE runs DROP COLUMN window_id"))
        conn.execute(sa.text("ALTER TABLE runs DROP COLUMN objectives"))
        drop_version_4_columns(conn)
        conn.execute(sa.text("UPDATE meta SET value = '1' WHERE key = 'schema_version'"))
        conn.execute(sa.text(
            "INSERT INTO runs (run_id, experiment, experiment_path, kind, cell, target, started_utc, "
            "status, figures, criteria, schema_version) VALUES ('old', 'Pod kill', 'x.yaml', "
            "'pod-kill', 'cell-1', 'local', :t, 'completed', '{\"recovery_s\": 1.5}', '[]', 1)"),
            {"t": T0 if "postgresql" in store_url else T0.replace(tzinfo=None)})
    engine.dispose()

    with Store.open(store_url) as store:
        old = store.get_run("old")
        # version-1 figures without an injection time: nothing to derive, marked as upgraded
        assert old is not None and old.figures == {"recovery_s": None, "impact": None,
                                                   "figures_version": 2, "upgraded_from": 1}
        assert old.environment == "sandbox"  # a local cell is always a sandbox
        assert old.window_id is None and old.objectives is None and old.schema_version == 1
        objectives = CellObjectives(1, ("acme",), 99.95, 250.0, 900.0, 60.0)
        store.create_window(WindowRecord("w-1", "saturday", T0))
        store.create_run(dataclasses.replace(make_run("new"), window_id="w-1",
                                             objectives=objectives))
        assert [r.run_id for r in store.list_runs(window_id="w-1")] == ["new"]
        assert store.get_run("new").objectives == objectives  # type: ignore[union-attr]
    with Store.open(store_url) as again:  # upgraded once: opening again changes nothing
        assert again.get_window("w-1") == WindowRecord("w-1", "saturday", T0)
    engine = sa.create_engine(resolve_store_url(store_url))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT value FROM meta")).scalar() == str(STORE_SCHEMA_VERSION)
    engine.dispose()


def test_list_runs_filters_and_leaves_journals_out(store: Store) -> None:
    for i, cell in enumerate(["cell-1", "cell-2", "cell-1"]):
        store.create_run(dataclasses.replace(make_run(f"r{i}"), cell=cell,
                                             started_utc=T0 + timedelta(days=i),
                                             journal={"big": "x" * 1000}))
    assert [r.run_id for r in store.list_runs(limit=None)] == ["r2", "r1", "r0"]
    assert [r.run_id for r in store.list_runs(since=T0 + timedelta(days=1), limit=None)] == ["r2", "r1"]
    assert [r.run_id for r in store.list_runs(until=T0 + timedelta(days=1))] == ["r0"]
    assert [r.run_id for r in store.list_runs(cells=["cell-2"])] == ["r1"]
    light = store.list_runs(with_journal=False)
    assert all(r.journal is None for r in light)
    assert all(r.journal == {"big": "x" * 1000} for r in store.list_runs())


def test_windows_round_trip(store: Store) -> None:
    window = WindowRecord("w-9", "weekly", T0, T0 + timedelta(hours=2), timezone="Europe/London",
                          detail={"cells": ["cell-1"]})
    store.create_window(window)
    assert store.get_window("w-9") == window
    store.update_window("w-9", status="closed", ended_utc=T0 + timedelta(hours=1))
    closed = store.get_window("w-9")
    assert closed is not None and closed.status == "closed"
    assert closed.ended_utc == T0 + timedelta(hours=1)
    assert [w.window_id for w in store.list_windows()] == ["w-9"]
    with pytest.raises(StoreError):
        store.update_window("w-9", status="half-open")
    with pytest.raises(StoreError):
        store.update_window("nope", status="closed")
    assert store.get_window("nope") is None


def test_a_lease_has_one_holder_until_it_expires(store: Store) -> None:
    ttl = timedelta(seconds=15)
    assert store.lease_acquire("faults", "a", ttl, T0)
    assert store.lease_acquire("faults", "a", ttl, T0 + timedelta(seconds=5))  # re-entrant
    assert not store.lease_acquire("faults", "b", ttl, T0 + timedelta(seconds=19))
    lease = store.lease_get("faults")
    assert lease is not None and (lease.holder, lease.acquired_utc) == ("a", T0)
    assert lease.expires_utc == T0 + timedelta(seconds=20)
    assert store.lease_renew("faults", "a", ttl, T0 + timedelta(seconds=10))
    assert not store.lease_acquire("faults", "b", ttl, T0 + timedelta(seconds=24))
    # a's heartbeat stopped: once expired, b takes over, and a learns it lost the lease
    assert store.lease_acquire("faults", "b", ttl, T0 + timedelta(seconds=26))
    assert not store.lease_renew("faults", "a", ttl, T0 + timedelta(seconds=27))
    store.lease_release("faults", "a")  # not a's to release: nothing happens
    assert store.lease_get("faults").holder == "b"  # type: ignore[union-attr]
    store.lease_release("faults", "b")
    assert store.lease_get("faults") is None


LEASE_RACE = textwrap.dedent("""
    import sys, time
    from datetime import UTC, datetime, timedelta
    from gameday.store import Store
    url, me, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    with Store.open(url) as store:
        time.sleep(max(0.0, start - time.time()))
        print(store.lease_acquire("faults", me, timedelta(seconds=30), datetime.now(UTC)))
""")


def test_processes_racing_for_a_lease_get_one_holder(store_url: str) -> None:
    Store.open(store_url).close()
    start = f"{time.time() + 1.5}"
    procs = [python_script(LEASE_RACE, store_url, f"p{i}", start) for i in range(4)]
    outs = [p.communicate(timeout=30) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    assert sorted(o[0].strip() for o in outs) == ["False", "False", "False", "True"]


def test_a_window_is_claimed_once_and_state_is_kept(store: Store) -> None:
    window = WindowRecord("weekly-20260103T0200Z", "weekly", T0)
    assert store.claim_window(window)
    assert not store.claim_window(dataclasses.replace(window, name="other"))
    assert store.get_window(window.window_id) == window
    assert store.state_get("scheduler:weekly:last_seen") is None
    store.state_set("scheduler:weekly:last_seen", "2026-01-03T02:00:00+00:00")
    store.state_set("scheduler:weekly:last_seen", "2026-01-03T02:05:00+00:00")
    assert store.state_get("scheduler:weekly:last_seen") == "2026-01-03T02:05:00+00:00"
    with pytest.raises(StoreError):
        store.state_set("schema_version", "3")


def test_a_window_claim_expires_and_is_taken_over_once(store: Store) -> None:
    window = WindowRecord("weekly-20260103T0200Z", "weekly", T0, T0 + timedelta(hours=2))
    ttl = timedelta(seconds=15)
    assert store.claim_window(window, "a", T0 + ttl)
    assert not store.claim_window(window, "b", T0 + ttl)
    claim = store.window_claim(window.window_id)
    assert claim is not None and (claim.holder, claim.expires_utc) == ("a", T0 + ttl)
    assert store.get_window(window.window_id) == window  # the claim is not part of the record
    # a renews while it runs the window: nobody can take it over meanwhile
    assert store.renew_window(window.window_id, "a", T0 + timedelta(seconds=25))
    assert not store.take_over_window(window.window_id, "b", T0 + timedelta(seconds=39),
                                      T0 + timedelta(seconds=24))
    assert store.orphaned_windows("weekly", T0 + timedelta(seconds=24)) == []
    # a died: once its claim expired the window is an orphan, and one taker wins it
    later = T0 + timedelta(seconds=26)
    assert store.orphaned_windows("weekly", later) == [window]
    assert store.orphaned_windows("other", later) == []
    assert store.take_over_window(window.window_id, "b", later + ttl, later)
    assert not store.take_over_window(window.window_id, "c", later + ttl, later)
    assert not store.renew_window(window.window_id, "a", later + ttl)  # a learns it lost it
    assert not store.close_claimed_window(window.window_id, "a", later)
    assert store.close_claimed_window(window.window_id, "b", later)
    closed = store.get_window(window.window_id)
    assert closed is not None and (closed.status, closed.ended_utc) == ("closed", later)
    # a closed window is nobody's to take over, however old its claim
    assert store.orphaned_windows("weekly", later + timedelta(days=1)) == []
    assert not store.take_over_window(window.window_id, "c", later + timedelta(days=2),
                                      later + timedelta(days=1))
    assert not store.renew_window(window.window_id, "b", later + ttl)


def test_a_window_without_a_holder_never_expires(store: Store) -> None:
    store.create_window(WindowRecord("by-hand", "weekly", T0))  # `gameday window open`
    assert store.claim_window(WindowRecord("missed", "weekly", T0, status="closed"))
    late = T0 + timedelta(days=30)
    assert store.orphaned_windows("weekly", late) == []
    assert not store.take_over_window("by-hand", "b", late + timedelta(seconds=15), late)
    assert store.window_claim("by-hand") == store.window_claim("missed")
    assert store.window_claim("nope") is None


TAKE_OVER_RACE = textwrap.dedent("""
    import sys, time
    from datetime import UTC, datetime, timedelta
    from gameday.store import Store
    url, me, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    with Store.open(url) as store:
        time.sleep(max(0.0, start - time.time()))
        now = datetime.now(UTC)
        print(store.take_over_window("w", me, now + timedelta(seconds=30), now))
""")


STATE_RACE = textwrap.dedent("""
    import sys, time
    from gameday.store import Store
    url, me, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    with Store.open(url) as store:
        for key in range(10):  # ten new keys, each written by every process at the same moment
            time.sleep(max(0.0, start + key * 0.1 - time.time()))
            store.state_set(f"scheduler:s{key}:last_seen", me)
""")


def test_processes_writing_a_new_state_key_at_once_all_succeed(store_url: str) -> None:
    # Replicas of one schedule write their first heartbeat together on a new store.
    Store.open(store_url).close()
    start = f"{time.time() + 1.5}"
    procs = [python_script(STATE_RACE, store_url, f"p{i}", start) for i in range(6)]
    outs = [p.communicate(timeout=30) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    with Store.open(store_url) as store:
        for key in range(10):
            assert store.state_get(f"scheduler:s{key}:last_seen") in {f"p{i}" for i in range(6)}


def test_processes_racing_to_take_over_a_window_get_one_holder(store_url: str) -> None:
    with Store.open(store_url) as store:
        past = datetime.now(UTC) - timedelta(minutes=1)
        assert store.claim_window(WindowRecord("w", "weekly", past), "dead", past)
    start = f"{time.time() + 1.5}"
    procs = [python_script(TAKE_OVER_RACE, store_url, f"p{i}", start) for i in range(4)]
    outs = [p.communicate(timeout=30) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    assert sorted(o[0].strip() for o in outs) == ["False", "False", "False", "True"]


def test_opening_a_store_again_keeps_the_first_ones_locks(tmp_path: Path) -> None:
    """A scheduler holds a store open for its whole life while it opens others on the same file.
    POSIX drops every fcntl lock a process holds on a file when it closes any descriptor of it,
    so opening a store must never open() and close() the database file itself: SQLite would
    lose its locks, and the next process to close believes it was the last and deletes the WAL
    under the first connection ("disk I/O error" later)."""
    path = tmp_path / "gameday.db"
    url = f"sqlite:///{path}"
    with Store.open(url) as first:
        first.state_set("k", "1")
        Store.open(url).close()
        other = python_script("import sys\nfrom gameday.store import Store\n"
                              "Store.open(sys.argv[1]).close()", url)
        _, err = other.communicate(timeout=30)
        assert other.returncode == 0, err
        assert (tmp_path / "gameday.db-wal").exists() and (tmp_path / "gameday.db-shm").exists()
        first.state_set("k", "2")
        with Store.open(url) as third:
            assert third.state_get("k") == "2"


def test_a_version_2_store_is_upgraded_in_place_with_window_claims(store_url: str) -> None:
    # A store as version 2 wrote it: windows without a claim, one of them still open.
    make_version_2(store_url)
    engine = sa.create_engine(resolve_store_url(store_url))
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO windows (window_id, name, started_utc, status, timezone, detail) "
            "VALUES ('old', 'weekly', :t, 'open', 'UTC', '{}')"),
            {"t": T0 if "postgresql" in store_url else T0.replace(tzinfo=None)})
    engine.dispose()
    with Store.open(store_url) as store:
        assert store.get_window("old") == WindowRecord("old", "weekly", T0)
        claim = store.window_claim("old")
        assert claim is not None and claim.holder is None  # never taken over: no lease to expire
        assert store.claim_window(WindowRecord("new", "weekly", T0), "a", T0)
        assert [w.window_id for w in store.orphaned_windows("weekly", T0)] == ["new"]
    engine = sa.create_engine(resolve_store_url(store_url))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT value FROM meta")).scalar() == str(STORE_SCHEMA_VERSION)
    engine.dispose()


def python_script(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", script, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


OPEN_AND_WRITE = textwrap.dedent("""
    import sys
    from datetime import UTC, datetime, timedelta
    from gameday.model.records import LedgerFault
    from gameday.store import Store

    url, name = sys.argv[1], sys.argv[2]
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    with Store.open(url) as store:
        expires = datetime.now(UTC) + timedelta(minutes=1)
        store.ledger_add(LedgerFault(fault_id=name, run_id=None, cell="c", target="local", kind="k",
                                     spec={}, revert={}, expires_utc=expires))
""")


def back_to_version_4(conn: sa.Connection) -> None:
    """The tables as version 4 had them: the journal in runs, no figure columns or outlines."""
    conn.execute(sa.text("DROP TABLE journals"))
    conn.execute(sa.text("ALTER TABLE runs ADD COLUMN journal JSON"))
    for name in FIGURE_COLUMNS:
        conn.execute(sa.text(f"ALTER TABLE runs DROP COLUMN figure_{name}"))
    conn.execute(sa.text("ALTER TABLE runs DROP COLUMN criteria_outline"))


def drop_version_4_columns(conn: sa.Connection) -> None:
    back_to_version_4(conn)
    conn.execute(sa.text("ALTER TABLE runs DROP COLUMN environment"))
    conn.execute(sa.text("ALTER TABLE samples DROP COLUMN timed_out"))


def test_a_version_4_store_gets_its_figure_columns_and_its_journals_moved(store_url: str) -> None:
    """4 -> 5: each run's report figures copied to columns of their own (as a new run's are
    written), each journal moved to the journals table, and the runs' journal column gone; the
    runs read as they did."""
    Store.open(store_url).close()
    engine = sa.create_engine(resolve_store_url(store_url))
    at = T0 if "postgresql" in store_url else T0.replace(tzinfo=None)
    figures = {
        "seen": {"figures_version": 2, "impact": "seen", "recovery_s": 1.25, "adapted": True,
                 "restore_s": 3, "rto_s": 0.5, "rpo_s": 0.0, "rpo_rows": 2, "downtime_s": 1.5,
                 "samples": 120},
        "odd": {"figures_version": 2, "impact": "maybe", "recovery_s": "fast", "adapted": 1,
                "rpo_rows": 2.5, "restore_s": True},
        "bare": {},
    }
    criterion = {"name": "recovery", "expected": "recovery_s <= 5", "actual": "1.25 s", "ok": True}
    with engine.begin() as conn:
        back_to_version_4(conn)
        conn.execute(sa.text("UPDATE meta SET value = '4' WHERE key = 'schema_version'"))
        for i, (run_id, f) in enumerate(figures.items()):
            conn.execute(sa.text(
                "INSERT INTO runs (run_id, experiment, experiment_path, kind, cell, target, "
                "started_utc, status, verdict, figures, criteria, journal, schema_version, environment) "
                "VALUES (:id, 'x', 'x.yaml', 'db-failover', 'cell-1', 'local', :t, 'completed', :v, "
                ":f, :c, :j, 4, 'sandbox')"),
                {"id": run_id, "t": at + timedelta(minutes=i), "f": json.dumps(f),
                 "v": "failed" if run_id == "odd" else "passed", "c": json.dumps([criterion]),
                 "j": None if run_id == "bare" else json.dumps({"title": run_id, "run": [1, 2]})})
    engine.dispose()
    names = sorted(FIGURE_COLUMNS)
    with Store.open(store_url) as store:
        seen, odd, bare = (store.get_run(r) for r in figures)
        assert seen is not None and odd is not None and bare is not None
        assert (seen.figures, odd.figures, bare.figures) == tuple(figures.values())
        assert seen.journal == {"title": "seen", "run": [1, 2]} and bare.journal is None
        assert [r.journal for r in store.list_runs()] == [None, odd.journal, seen.journal]
        lean = {r.run_id: dict(r.figures) for r in store.report_runs(figures=names)}
        assert lean["seen"] == {"impact": "seen", "recovery_s": 1.25, "adapted": True, "restore_s": 3.0,
                                "rto_s": 0.5, "rpo_s": 0.0, "rpo_rows": 2, "downtime_s": 1.5}
        assert lean["odd"] == lean["bare"] == dict.fromkeys(names)  # what reports read as no figure
        # a report reads a passing run's criteria without their actual values, a failed one's whole
        read = {r.run_id: r.criteria for r in store.report_runs(figures=names)}
        assert read["seen"] == read["bare"] == (CriterionResult("recovery", "recovery_s <= 5", "", True),)
        assert read["odd"] == (CriterionResult("recovery", "recovery_s <= 5", "1.25 s", True),)
        assert seen.criteria == [CriterionResult("recovery", "recovery_s <= 5", "1.25 s", True)]
        # and as a run written now
        store.create_run(make_run("now", started=T0 + timedelta(hours=1), figures=figures["seen"],
                                  journal={"title": "now"}))
        assert store.report_runs(figures=names)[0].figures == lean["seen"]
    engine = sa.create_engine(resolve_store_url(store_url))
    with engine.connect() as conn:
        assert "journal" not in {c["name"] for c in sa.inspect(conn).get_columns("runs")}
        assert conn.execute(sa.text("SELECT count(*) FROM journals")).scalar() == 3
        assert conn.execute(sa.text("SELECT value FROM meta")).scalar() == str(STORE_SCHEMA_VERSION)
    engine.dispose()


def test_a_version_3_store_labels_its_runs_and_upgrades_their_figures(store_url: str) -> None:
    Store.open(store_url).close()
    engine = sa.create_engine(resolve_store_url(store_url))
    at = T0 if "postgresql" in store_url else T0.replace(tzinfo=None)
    v1 = {
        # v1 wrote "the probes saw nothing" as a recovery of 0 s
        "quiet": ("pod-kill", "local", {"t_inject": 3.0, "time_to_impact_s": None,
                                         "recovery_s": 0.0}),
        # and a sustained fault's recovery from injection, its own length included
        "slow": ("latency", "local", {"t_inject": 3.0, "time_to_impact_s": 0.1,
                                      "recovery_s": 10.3, "recovery_after_fault_end_s": 0.3}),
        "kill": ("pod-kill", "kubernetes", {"t_inject": 3.0, "time_to_impact_s": 0.05,
                                            "recovery_s": 0.9}),
    }
    with engine.begin() as conn:
        drop_version_4_columns(conn)
        conn.execute(sa.text("UPDATE meta SET value = '3' WHERE key = 'schema_version'"))
        for run_id, (kind, target, figures) in v1.items():
            conn.execute(sa.text(
                "INSERT INTO runs (run_id, experiment, experiment_path, kind, cell, target, "
                "started_utc, status, figures, criteria, schema_version) VALUES (:id, 'x', "
                "'x.yaml', :kind, 'cell-1', :target, :t, 'completed', :f, '[]', 2)"),
                {"id": run_id, "kind": kind, "target": target, "t": at,
                 "f": json.dumps(figures)})
    engine.dispose()
    with Store.open(store_url) as store:
        quiet, slow, kill = (store.get_run(r) for r in v1)
    assert quiet is not None and slow is not None and kill is not None
    assert quiet.figures["impact"] == "none" and quiet.figures["recovery_s"] is None
    assert slow.figures["impact"] == "seen" and slow.figures["recovery_s"] == 0.3
    assert slow.figures["impact_s"] == pytest.approx(10.2)
    assert kill.figures["recovery_s"] == 0.9 and kill.figures["figures_version"] == 2
    assert (quiet.environment, kill.environment) == ("sandbox", "unknown")
    with Store.open(store_url) as store:  # once: a second open changes nothing
        assert store.get_run("slow") == slow
        assert [r.run_id for r in store.list_runs(environment="unknown")] == ["kill"]


def make_version_2(store_url: str) -> None:
    Store.open(store_url).close()
    engine = sa.create_engine(resolve_store_url(store_url))
    with engine.begin() as conn:
        drop_version_4_columns(conn)
        conn.execute(sa.text("ALTER TABLE windows DROP COLUMN claim_holder"))
        conn.execute(sa.text("ALTER TABLE windows DROP COLUMN claim_expires_utc"))
        conn.execute(sa.text("UPDATE meta SET value = '2' WHERE key = 'schema_version'"))
    engine.dispose()


@pytest.mark.parametrize("start", ["new", "version 2"])
def test_processes_opening_a_store_at_once(store_url: str, start: str) -> None:
    """Schedulers started together on a new store (or right after an upgrade) all come up."""
    if start == "version 2":
        make_version_2(store_url)
    procs = [python_script(OPEN_AND_WRITE, store_url, f"f-{i}") for i in range(6)]
    for proc in procs:  # once every interpreter is ready, so they prepare the schema at once
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
    with Store.open(store_url) as store:
        assert sorted(f.fault_id for f in store.ledger_all()) == [f"f-{i}" for i in range(6)]
        assert store.claim_window(WindowRecord("w", "weekly", T0), "a", T0)


def test_openers_racing_on_new_sqlite_files_all_come_up(tmp_path: Path) -> None:
    # Threads line up far closer than processes: they hit the race to switch a new file to WAL
    # (about one round in ten lost it with "database is locked" before the retry).
    failures: list[BaseException] = []

    def open_once(url: str, go: threading.Event) -> None:
        go.wait()
        try:
            Store.open(url).close()
        except BaseException as exc:
            failures.append(exc)

    for i in range(40):
        go = threading.Event()
        url = f"sqlite:///{tmp_path / f'store-{i}.db'}"
        threads = [threading.Thread(target=open_once, args=(url, go)) for _ in range(6)]
        for thread in threads:
            thread.start()
        go.set()
        for thread in threads:
            thread.join(30)
    assert failures == []


WRITE_SAMPLES = textwrap.dedent("""
    import sys
    from datetime import UTC, datetime
    from gameday.model.records import Sample
    from gameday.store import Store

    url, run_id, batches, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    with Store.open(url) as store:
        print("open", flush=True)
        sys.stdin.readline()
        for b in range(batches):
            now = datetime.now(UTC)
            store.add_samples(run_id, [Sample(t=b + i / size, utc=now, ok=True, latency_ms=1.0, status=200)
                                       for i in range(size)])
""")


def test_a_worker_process_writes_samples_while_we_write_the_ledger(store: Store, store_url: str) -> None:
    store.create_run(make_run())
    batches, size = 80, 25
    proc = python_script(WRITE_SAMPLES, store_url, "run-1", str(batches), str(size))
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "open"
        proc.stdin.write("go\n")
        proc.stdin.flush()
        written = 0
        while proc.poll() is None or written < 20:
            store.ledger_add(make_fault(f"f-{written}"))
            store.ledger_update(f"f-{written}", state="applied", applied_utc=datetime.now(UTC))
            store.update_run("run-1", figures={"faults": written})
            written += 1
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "locked" not in err
    assert len(store.samples("run-1")) == batches * size
    assert len(store.ledger_for_run("run-1")) == written
    assert {f.state for f in store.ledger_all()} == {"applied"}


def test_a_forked_child_uses_its_own_connections(store: Store) -> None:
    """A worker forked from a parent holding pooled connections must not share them."""
    store.create_run(make_run())  # leaves a connection in the parent's pool
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code only
        code = 1
        try:
            for i in range(30):
                store.ledger_add(make_fault(f"child-{i}"))
            store.close()
            code = 0
        finally:
            os._exit(code)
    try:
        for i in range(30):  # at the same time as the child
            store.ledger_add(make_fault(f"parent-{i}"))
    finally:
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(store.ledger_all()) == 60


def test_a_file_that_is_not_sqlite_is_an_input_error_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database " * 100)
    with pytest.raises(InputError, match="a file of another kind"):
        Store.open(f"sqlite:///{path}")
    assert path.read_text() == "not a database " * 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_store_that_only_reads_never_creates_one(tmp_path: Path) -> None:
    path = tmp_path / "new" / "gameday.db"
    with pytest.raises(InputError, match="no store at"):
        Store.open(f"sqlite:///{path}", create=False)
    assert not (tmp_path / "new").exists()
    with Store.open(f"sqlite:///{path}") as store:
        store.create_run(make_run())
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    with Store.open(f"sqlite:///{path}", create=False) as store:
        assert len(store.list_runs()) == 1


def test_sqlite_store_uses_wal_and_creates_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "gameday.db"
    with Store.open(f"sqlite:///{path}") as store:
        store.create_run(make_run())
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_default_store_is_a_sqlite_file_in_the_current_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GAMEDAY_STORE", raising=False)
    with Store.open() as store:
        assert store.url == DEFAULT_STORE_URL
        store.create_run(make_run())
    assert (tmp_path / ".gameday" / "gameday.db").is_file()


def test_closed_store_refuses_work(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'x.db'}")
    store.close()
    store.close()  # twice is fine
    with pytest.raises(StoreError, match="closed"):
        store.get_run("run-1")


def test_unreachable_postgres_is_a_store_error() -> None:
    url = f"postgresql://gameday:s3cret-pw@127.0.0.1:{free_port()}/gameday"
    with pytest.raises(StoreError) as caught:
        Store.open(url)
    assert "s3cret-pw" not in str(caught.value)
    assert "gameday:***@127.0.0.1" in str(caught.value)


# --------------------------------------------------------------------------- URLs


def test_resolve_store_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GAMEDAY_STORE", raising=False)
    assert resolve_store_url(None) == DEFAULT_STORE_URL == "sqlite:///.gameday/gameday.db"
    assert resolve_store_url("sqlite:///runs/g.db") == "sqlite:///runs/g.db"
    assert resolve_store_url("sqlite:////var/lib/gameday.db") == "sqlite:////var/lib/gameday.db"
    assert resolve_store_url("postgres://u:p%40ss@db:5432/gd") == "postgresql+psycopg://u:p%40ss@db:5432/gd"
    assert resolve_store_url("postgresql://u:pw@db/gd") == "postgresql+psycopg://u:pw@db/gd"
    assert resolve_store_url("postgresql+psycopg://u@db/gd") == "postgresql+psycopg://u@db/gd"

    monkeypatch.setenv("GAMEDAY_STORE", "postgresql://u:pw@db/from-env")
    assert resolve_store_url(None) == "postgresql+psycopg://u:pw@db/from-env"
    assert resolve_store_url("sqlite:///flag-wins.db") == "sqlite:///flag-wins.db"
    monkeypatch.setenv("GAMEDAY_STORE", "")
    assert resolve_store_url(None) == DEFAULT_STORE_URL


@pytest.mark.parametrize("url", [
    "mysql://root:hunter2@db/gd",
    "postgresql+psycopg2://root:hunter2@db/gd",
    "hunter2",
    "sqlite://",
    "sqlite:///:memory:",
    "host=db password=hunter2",
])
def test_unusable_store_url_is_an_input_error(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GAMEDAY_STORE", raising=False)
    with pytest.raises(InputError) as caught:
        resolve_store_url(url)
    error = caught.value
    assert error.where == "--store"
    assert error.expected.startswith("sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB")
    assert "--store" in error.fix and "GAMEDAY_STORE" in error.fix
    if "hunter2" in url and url != "hunter2":
        assert "hunter2" not in str(error)


def test_bad_url_in_the_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAMEDAY_STORE", "mongodb://u:topsecret@db")
    with pytest.raises(InputError) as caught:
        Store.open()
    assert caught.value.where == "GAMEDAY_STORE (environment)"
    assert "topsecret" not in str(caught.value)


@pytest.mark.parametrize(("url", "redacted"), [
    ("postgresql+psycopg://gameday:s3cret@127.0.0.1:5432/gd", "postgresql+psycopg://gameday:***@127.0.0.1:5432/gd"),
    ("postgres://u:p@ss/w:rd@db/gd", "postgres://u:***@db/gd"),
    ("postgresql://u:%40pw@db/gd?sslmode=require", "postgresql://u:***@db/gd?sslmode=require"),
    ("postgresql://u@db/gd?password=s3cret&sslmode=require", "postgresql://u@db/gd?password=***&sslmode=require"),
    ("postgresql://db/gd", "postgresql://db/gd"),
    ("sqlite:///.gameday/gameday.db", "sqlite:///.gameday/gameday.db"),
])
def test_redact_url_hides_the_password(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_store_url_and_repr_are_redacted(postgres_server: Any) -> None:
    url = postgres_server.new_database_url()
    password = quote(postgres_server.creds.password, safe="")
    with Store.open(url) as store:
        assert password not in store.url and password not in repr(store)
        assert store.url == redact_url(resolve_store_url(url))
        assert store.url.startswith(f"postgresql+psycopg://{postgres_server.creds.user}:***@127.0.0.1:")
