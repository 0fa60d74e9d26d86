"""Records stored for every run: the run itself, its timeline samples, its events, its faults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple

RUN_SCHEMA_VERSION = 2

Verdict = Literal["passed", "failed", "aborted", "not_recovered", "skipped"]
RunStatus = Literal["running", "completed", "interrupted"]
FaultState = Literal["pending", "applied", "reverted", "failed"]
WindowStatus = Literal["open", "closed"]


@dataclass(frozen=True)
class Sample:
    """One probe of the cell on the run's timeline."""

    t: float  # seconds since the run's time origin (monotonic based)
    utc: datetime
    ok: bool  # the probe's request succeeded (2xx)
    latency_ms: float
    status: int  # HTTP status, 0 when no answer
    error: str | None = None
    write_seq: int | None = None  # the write ledger's sequence number, when the probe wrote
    payment_id: int | None = None
    timed_out: bool = False  # the probe's own client timeout, not an error the cell returned


@dataclass(frozen=True)
class RunEvent:
    """Something that happened during a run: a phase, an activity, a halt, a ground-truth event."""

    t: float
    utc: datetime
    source: str  # "engine", "worker", "sandbox", "operator"
    name: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CriterionResult:
    name: str
    expected: str
    actual: str
    ok: bool


@dataclass(frozen=True)
class LedgerFault:
    """One fault in the ledger: written before it is applied, with its expiry and its revert."""

    fault_id: str
    run_id: str | None
    cell: str
    target: str  # "local" or "kubernetes"
    kind: str
    spec: dict[str, Any]  # what was asked (validated arguments)
    revert: dict[str, Any]  # how to revert it, enough for another process to do it
    expires_utc: datetime
    state: FaultState = "pending"
    owner_pid: int | None = None
    owner_start_ticks: int | None = None
    created_utc: datetime | None = None
    applied_utc: datetime | None = None
    reverted_utc: datetime | None = None
    revert_reason: str | None = None


@dataclass(frozen=True)
class CellObjectives:
    """The cell's objectives when the run started: reports judge a run by these, not by
    whatever the cells file says later."""

    tier: int  # 1 = most critical
    tenants: tuple[str, ...]
    availability_slo: float  # percent, e.g. 99.95
    p95_latency_slo_ms: float
    rto_s: float
    rpo_s: float


@dataclass(frozen=True)
class WindowRecord:
    """A chaos window (scheduled, or opened by hand for a game day): runs happen inside it."""

    window_id: str
    name: str
    started_utc: datetime
    planned_end_utc: datetime | None = None
    ended_utc: datetime | None = None
    status: WindowStatus = "open"
    timezone: str = "UTC"
    detail: dict[str, Any] = field(default_factory=dict)  # planned cells and experiments


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    experiment: str  # title
    experiment_path: str
    kind: str  # pod-kill, latency, cpu-stress, db-failover
    cell: str
    target: str
    started_utc: datetime
    status: RunStatus = "running"
    ended_utc: datetime | None = None
    verdict: Verdict | None = None
    reason: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    criteria: list[CriterionResult] = field(default_factory=list)
    journal: dict[str, Any] | None = None
    runner_pid: int | None = None
    runner_start_ticks: int | None = None
    window_id: str | None = None
    objectives: CellObjectives | None = None
    schema_version: int = RUN_SCHEMA_VERSION
    # Where the evidence came from: a local cell is always "sandbox" (runs stored before
    # environments existed are labelled by their target: local -> sandbox, else "unknown").
    environment: str = "sandbox"


@dataclass(frozen=True)
class RunDetail:
    """A run with everything its report is built from: its timeline, its events and the
    faults of the ledger it injected (each in the order they happened)."""

    record: RunRecord
    samples: list[Sample]
    events: list[RunEvent]
    faults: list[LedgerFault]


class ReportRun(NamedTuple):
    """A run as a report over many runs reads it (``Store.report_runs``): what the fleet
    figures read of a RunRecord, and nothing else (no journal, no experiment, no times but the
    start, only the figures asked for). Cheap to make by the hundred thousand; reports and
    analytics take it wherever they take a RunRecord (``analytics.fleet.RunLike``).

    ``started_utc`` is timezone-aware UTC. ``figures`` holds the names asked for, None for
    those not stored. ``criteria`` holds every criterion's name, expected and ok; its actual
    value only in runs that did not pass ("" in those that did: a report shows the actual
    value of what went wrong). Repeated values (cells, objectives, criteria) are shared.
    """

    run_id: str
    cell: str
    kind: str
    target: str
    environment: str  # "unknown" for runs stored before environments existed
    started_utc: datetime
    verdict: Verdict | None
    reason: str | None
    window_id: str | None
    objectives: CellObjectives | None
    figures: Mapping[str, Any]
    criteria: tuple[CriterionResult, ...]
