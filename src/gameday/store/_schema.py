"""The store's tables, one definition for SQLite and PostgreSQL.

Bump STORE_SCHEMA_VERSION on any change to these tables: ``Store.open`` upgrades a database
of an older version it knows (MIGRATIONS) and refuses any other, rather than misreading it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect

STORE_SCHEMA_VERSION = 5


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, with microseconds, on both backends.

    SQLite has no time zones: it stores naive UTC text ("2025-01-04 02:00:00.123456", which
    sorts as time does); PostgreSQL stores timestamptz and answers in the session's zone.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise ValueError(f"expected a timezone-aware datetime, found {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            # A naive time is ambiguous; guessing its zone would shift recovery figures silently.
            raise ValueError(f"expected a timezone-aware datetime, found naive {value.isoformat()}")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise ValueError(f"stored time is not a datetime: {value!r}")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def json_dumps(value: Any) -> str:
    """JSON for both backends: NaN and infinities become null, as JSON.stringify does.

    PostgreSQL rejects NaN in json while SQLite would keep it, so one run (a mean over no
    samples) could be stored on one backend and lost on the other.
    """
    return json.dumps(_finite(value), allow_nan=False, ensure_ascii=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


metadata = MetaData()

# "schema_version", and small state (a scheduler's last heartbeat): a key/value table survives
# later additions unchanged.
meta = Table(
    "meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

runs = Table(
    "runs", metadata,
    Column("run_id", String(128), primary_key=True),
    Column("experiment", Text, nullable=False),
    Column("experiment_path", Text, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("cell", String(255), nullable=False),
    Column("target", String(64), nullable=False),
    Column("started_utc", UtcDateTime, nullable=False),
    Column("status", String(32), nullable=False),
    Column("ended_utc", UtcDateTime),
    Column("verdict", String(32)),
    Column("reason", Text),
    Column("figures", JSON, nullable=False),
    Column("criteria", JSON, nullable=False),  # [{name, expected, actual, ok}, ...]
    Column("runner_pid", Integer),
    Column("runner_start_ticks", BigInteger),
    Column("schema_version", Integer, nullable=False),
    Column("window_id", String(128)),  # v2
    Column("objectives", JSON(none_as_null=True)),  # v2: the cell's objectives at run time
    Column("environment", String(32)),  # v4: sandbox | staging | production (unknown: older)
    # v5: the figures reports over many runs read, each a copy of its value in figures as they
    # read it (figure_columns): a fleet's year of runs is read without parsing 100,000 documents.
    Column("figure_impact", String(16)),
    Column("figure_adapted", Boolean),
    *(Column(f"figure_{name}", Double)
      for name in ("recovery_s", "restore_s", "rto_s", "rpo_s", "downtime_s")),
    Column("figure_rpo_rows", BigInteger),  # a count of writes
    # v5: the criteria without their actual values (criteria_outline): what a report reads of a
    # run that passed, the same run after run, so read and parsed once
    Column("criteria_outline", JSON(none_as_null=True)),
)
Index("runs_cell_started_idx", runs.c.cell, runs.c.started_utc)
Index("runs_window_idx", runs.c.window_id)
Index("runs_started_idx", runs.c.started_utc)
Index("runs_status_idx", runs.c.status)


# v5: the journal, the bulk of a run (a few KB), in a table of its own: reading runs without it
# never walks past it (SQLite reads a row's columns in order, a journal over many pages).
journals = Table(
    "journals", metadata,
    Column("run_id", String(128), ForeignKey("runs.run_id"), primary_key=True),
    Column("journal", JSON, nullable=False),
)

IMPACTS: Final = ("none", "seen")
FIGURE_COLUMNS: Final = {name: runs.c[f"figure_{name}"] for name in (
    "impact", "adapted", "recovery_s", "restore_s", "rto_s", "rpo_s", "rpo_rows", "downtime_s")}


def figure_columns(figures: Mapping[str, Any]) -> dict[str, Any]:
    """The figure columns of a run with these figures: each value as a report reads it (the
    impact when "none" or "seen", adapted when a bool, a number as a float when finite, the
    writes lost as a whole number), None for anything else, as for a figure not there."""
    out: dict[str, Any] = {}
    for name, column in FIGURE_COLUMNS.items():
        value = figures.get(name)
        if name == "impact":
            value = value if value in IMPACTS else None
        elif name == "adapted":
            value = value if isinstance(value, bool) else None
        elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            value = None
        elif name == "rpo_rows":
            value = int(value) if value == int(value) else None
        else:
            value = float(value)
        out[column.name] = value
    return out


def criteria_outline(criteria: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Stored criteria (name, expected, actual, ok) without their actual values."""
    return [{"name": c["name"], "expected": c["expected"], "ok": c["ok"]} for c in criteria]


def _row_id() -> Column[int]:
    # SQLite auto-increments only an INTEGER PRIMARY KEY; PostgreSQL gets a bigint identity.
    return Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)


samples = Table(
    "samples", metadata,
    _row_id(),
    Column("run_id", String(128), ForeignKey("runs.run_id"), nullable=False),
    Column("t", Double, nullable=False),
    Column("utc", UtcDateTime, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("latency_ms", Double, nullable=False),
    Column("status", Integer, nullable=False),
    Column("error", Text),
    Column("write_seq", BigInteger),
    Column("payment_id", BigInteger),
    Column("timed_out", Boolean),  # v4: the probe's own client timeout gave up
)
Index("samples_run_t_idx", samples.c.run_id, samples.c.t)

events = Table(
    "events", metadata,
    _row_id(),
    Column("run_id", String(128), ForeignKey("runs.run_id"), nullable=False),
    Column("t", Double, nullable=False),
    Column("utc", UtcDateTime, nullable=False),
    Column("source", String(64), nullable=False),
    Column("name", Text, nullable=False),
    Column("detail", JSON, nullable=False),
)
Index("events_run_t_idx", events.c.run_id, events.c.t)

windows = Table(
    "windows", metadata,
    Column("window_id", String(128), primary_key=True),
    Column("name", Text, nullable=False),
    Column("started_utc", UtcDateTime, nullable=False),
    Column("planned_end_utc", UtcDateTime),
    Column("ended_utc", UtcDateTime),
    Column("status", String(32), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("detail", JSON, nullable=False),
    # v3: the scheduler running the window and until when its claim holds (renewed while it
    # runs); once it expires, another scheduler takes the window over. None: never expires (a
    # window opened by hand, or recorded closed at once).
    Column("claim_holder", Text),
    Column("claim_expires_utc", UtcDateTime),
)
Index("windows_started_idx", windows.c.started_utc)

# Leases: a named lock with a holder and an expiry, renewed by its holder's heartbeat. The
# "faults" lease is held by every run: one cell under fault at a time, across processes.
leases = Table(
    "leases", metadata,
    Column("name", String(128), primary_key=True),
    Column("holder", Text, nullable=False),
    Column("acquired_utc", UtcDateTime, nullable=False),
    Column("expires_utc", UtcDateTime, nullable=False),
)

# No foreign key to runs: the sandbox CLI injects faults outside any run, and a ledger write
# must never fail for want of a parent row.
faults = Table(
    "faults", metadata,
    Column("fault_id", String(128), primary_key=True),
    Column("run_id", String(128)),
    Column("cell", String(255), nullable=False),
    Column("target", String(64), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("revert", JSON, nullable=False),
    Column("expires_utc", UtcDateTime, nullable=False),
    Column("state", String(32), nullable=False),
    Column("owner_pid", Integer),
    Column("owner_start_ticks", BigInteger),
    Column("created_utc", UtcDateTime, nullable=False),
    Column("applied_utc", UtcDateTime),
    Column("reverted_utc", UtcDateTime),
    Column("revert_reason", Text),
)
Index("faults_run_idx", faults.c.run_id)
Index("faults_reverted_idx", faults.c.reverted_utc)


# Upgrades from older schema versions: the "table.column"s that version N + 1 added to version
# N's tables, each added with its type as defined above (per backend), then the indexes of those
# tables. A table missing altogether is created whole by Store.open, so its columns are skipped.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: ("runs.window_id", "runs.objectives"),
    2: ("windows.claim_holder", "windows.claim_expires_utc"),
    3: ("runs.environment", "samples.timed_out"),
    4: (*(f"runs.{column.name}" for column in FIGURE_COLUMNS.values()), "runs.criteria_outline"),
}
# And what a step does to the data once its columns exist: 3 -> 4 labels every run's evidence
# and upgrades its figures to version 2 (gameday.model.figures.upgrade_v1); 4 -> 5 fills the
# figure columns and the criteria outlines, and moves every journal to the journals table.
