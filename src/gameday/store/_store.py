"""The store: runs, their timelines and events, and the fault ledger, in SQLite or PostgreSQL.

One code path (SQLAlchemy Core) for both backends. Every write is its own short transaction,
committed before the method returns: a run's parent, its worker and other ``gameday``
commands write the same database at once, and a ledger row must be durable before the fault
it describes is applied (safety invariant 2).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import time
import weakref
from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from types import TracebackType
from typing import Any, Final, get_args

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Engine,
    RowMapping,
    Select,
    Text,
    bindparam,
    case,
    cast,
    column,
    create_engine,
    event,
    func,
    inspect,
    literal,
    literal_column,
    or_,
    select,
    text,
    true,
    type_coerce,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlalchemy.sql.elements import ColumnElement

from gameday.collections_paused import no_collections
from gameday.errors import InputError
from gameday.files import open_private, private_dirs
from gameday.model.records import (
    CellObjectives,
    CriterionResult,
    FaultState,
    LedgerFault,
    ReportRun,
    RunDetail,
    RunEvent,
    RunRecord,
    RunStatus,
    Sample,
    Verdict,
    WindowRecord,
    WindowStatus,
)
from gameday.store import _schema as schema
from gameday.store._errors import IncompatibleSchemaError, StoreError
from gameday.store._schema import STORE_SCHEMA_VERSION, json_dumps
from gameday.store._url import mask_password, redact_url, resolve_store_url

SQLITE_BUSY_TIMEOUT_MS: Final = 10_000
PG_CONNECT_TIMEOUT_S: Final = 10
# Any constant works: it only has to be the same in every process creating the tables.
_PG_SCHEMA_LOCK: Final = 0x6761_6D65_6461_79  # "gameday"
_WRITE_OPTION: Final = "gameday_write"

_RUN_FIELDS: Final = frozenset(f.name for f in dataclasses.fields(RunRecord)) - {"run_id"}
_FAULT_FIELDS: Final = frozenset(f.name for f in dataclasses.fields(LedgerFault)) - {"fault_id"}
_RUN_STATUSES: Final = frozenset(get_args(RunStatus))
_VERDICTS: Final = frozenset(get_args(Verdict))
_FAULT_STATES: Final = frozenset(get_args(FaultState))
_WINDOW_FIELDS: Final = frozenset(f.name for f in dataclasses.fields(WindowRecord)) - {"window_id"}
_WINDOW_STATUSES: Final = frozenset(get_args(WindowStatus))

# Engines of this process, so a forked child can drop the parent's pooled connections
# (a SQLite or PostgreSQL connection used from two processes corrupts its state).
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def _forget_inherited_connections() -> None:
    for engine in list(_ENGINES):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_inherited_connections)


@dataclasses.dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    acquired_utc: datetime
    expires_utc: datetime


@dataclasses.dataclass(frozen=True)
class WindowClaim:
    holder: str | None  # None: a claim that never expires (opened by hand, recorded closed)
    expires_utc: datetime | None


class Store:
    """Where runs, samples, events and the fault ledger persist. Open with ``Store.open(url)``."""

    def __init__(self, engine: Engine, url: str) -> None:
        self._engine = engine
        # SQLite: writes take the write lock at BEGIN (see _sqlite_begin).
        self._writer = engine.execution_options(**{_WRITE_OPTION: True})
        self.url = url  # redacted
        self._closed = False

    @classmethod
    def open(cls, url: str | None = None, *, create: bool = True) -> Store:
        """Open (creating tables if missing) the store at ``url``, ``$GAMEDAY_STORE`` or the default.

        ``create=False`` (commands that only read): a SQLite store that does not exist is an
        InputError, and nothing is created. Raises InputError for a URL or a path we cannot
        use (a directory, a file that is no SQLite database, a place we may not write),
        IncompatibleSchemaError when the database was written by another store schema
        version, StoreError when it cannot be reached.
        """
        resolved = resolve_store_url(url)
        redacted = redact_url(resolved)
        engine = _create_engine(resolved, redacted, create)
        store = cls(engine, redacted)
        try:
            store._prepare_schema()
        except StoreError as exc:
            engine.dispose()
            if "file is not a database" in str(exc.__cause__):
                raise InputError("--store", "a SQLite database file", f"{redacted}: a file of "
                                 "another kind", _STORE_FIX) from exc
            raise
        except BaseException:
            engine.dispose()
            raise
        return store

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # ------------------------------------------------------------------ runs

    def create_run(self, run: RunRecord) -> None:
        values = _columns(run)
        _check_run_values(values)
        journal = values.pop("journal")
        values["criteria"] = _criteria_to_json(run.criteria)
        values["criteria_outline"] = schema.criteria_outline(values["criteria"])
        values["objectives"] = _objectives_to_json(run.objectives)
        values.update(schema.figure_columns(run.figures))
        with self._write(f"create run {run.run_id!r}") as conn:
            conn.execute(schema.runs.insert().values(values))
            if journal is not None:
                conn.execute(schema.journals.insert().values(run_id=run.run_id, journal=journal))

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set ``fields`` (any RunRecord field but run_id) of an existing run."""
        unknown = sorted(set(fields) - _RUN_FIELDS)
        if unknown:
            raise StoreError(f"update_run({run_id!r}): no such run field(s) {', '.join(unknown)}; "
                             f"expected some of {', '.join(sorted(_RUN_FIELDS))}")
        if not fields:
            return
        _check_run_values(fields)
        values = dict(fields)
        journal = values.pop("journal", _MISSING)
        if "criteria" in values:
            values["criteria"] = _criteria_to_json(values["criteria"])
            values["criteria_outline"] = schema.criteria_outline(values["criteria"])
        if "objectives" in values:
            values["objectives"] = _objectives_to_json(values["objectives"])
        if "figures" in values:
            values.update(schema.figure_columns(values["figures"]))
        with self._write(f"update run {run_id!r}") as conn:
            runs, journals = schema.runs, schema.journals
            # SET run_id = run_id: an UPDATE that only counts the row, when only the journal changes
            result = conn.execute(runs.update().where(runs.c.run_id == run_id).values(
                values or {"run_id": run_id}))
            if result.rowcount == 0:
                raise StoreError(f"update run {run_id!r}: no such run in {self.url}")
            if journal is not _MISSING:
                conn.execute(journals.delete().where(journals.c.run_id == run_id))
                if journal is not None:
                    conn.execute(journals.insert().values(run_id=run_id, journal=journal))

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._read(f"read run {run_id!r}") as conn:
            row = conn.execute(_with_journal(select(schema.runs)).where(schema.runs.c.run_id == run_id)
                               ).mappings().first()
        return None if row is None else _run_from(row)

    def list_runs(self, *, cell: str | None = None, limit: int | None = 100,
                  since: datetime | None = None, until: datetime | None = None,
                  cells: Sequence[str] | None = None, window_id: str | None = None,
                  kind: str | None = None, verdict: str | None = None,
                  environment: str | None = None,
                  with_journal: bool = True) -> list[RunRecord]:
        """Runs newest (by started_utc) first: of one cell, of some ``cells``, of one window,
        started in [since, until); at most ``limit`` (None: all). Without ``with_journal`` the
        journals (the bulk of a row) are not read."""
        if limit is not None and limit < 0:
            raise StoreError(f"list_runs: limit must be 0 or more, found {limit}")
        runs = schema.runs
        query = select(runs).order_by(runs.c.started_utc.desc(), runs.c.run_id.desc())
        if with_journal:
            query = _with_journal(query)
        if limit is not None:
            query = query.limit(limit)
        if cell is not None:
            query = query.where(runs.c.cell == cell)
        if cells is not None:
            query = query.where(runs.c.cell.in_(list(cells)))
        if window_id is not None:
            query = query.where(runs.c.window_id == window_id)
        if kind is not None:
            query = query.where(runs.c.kind == kind)
        if verdict is not None:
            query = query.where(runs.c.verdict == verdict)
        if environment is not None:
            query = query.where(runs.c.environment == environment)
        if since is not None:
            query = query.where(runs.c.started_utc >= since)
        if until is not None:
            query = query.where(runs.c.started_utc < until)
        with self._read("list runs") as conn:
            rows = conn.execute(query).mappings().all()
        return [_run_from(row) for row in rows]

    def report_runs(self, *, since: datetime | None = None, until: datetime | None = None,
                    cells: Sequence[str] | None = None,
                    environments: Sequence[str] | None = None,
                    figures: Collection[str] | None = None) -> list[ReportRun]:
        """Runs started in [since, until), of some ``cells`` and ``environments`` (None: all),
        newest first as ``list_runs`` orders them, as reports over many runs read them
        (ReportRun: what the fleet figures read of a run, never the journal), read through the
        driver's own values (no per-value SQLAlchemy processing), so a fleet's year reads in a
        fraction of the time.

        With ``figures`` (names) a run's figures hold only those (None where not stored);
        without, all of them. Criteria come without the actual values of runs that passed,
        which the database leaves out, so the many repeated criteria of passing runs are read
        once. Repeated values (cells, kinds, objectives, criteria) are shared between runs.
        """
        runs = self.stream_report_runs(since=since, until=until, cells=cells, environments=environments,
                                       figures=figures)
        with no_collections():  # the runs hold no cycles: collections while they pile up only walk them
            return list(runs)

    def stream_report_runs(self, *, since: datetime | None = None, until: datetime | None = None,
                           cells: Sequence[str] | None = None,
                           environments: Sequence[str] | None = None,
                           figures: Collection[str] | None = None,
                           readers: int = 1, by_cell: bool = False) -> Iterator[ReportRun]:
        """``report_runs`` one run at a time, as the database answers them: a report tallies
        them as they come, holding only what it keeps, while PostgreSQL goes on answering. The
        read holds its connection until the last run is read, or the iterator is closed.

        ``readers``: how many such reads run at once (a report's shards, each its own cells).
        Alone, PostgreSQL is asked to share the read among its parallel workers; beside others,
        not (their processes take the CPUs). ``by_cell``: cell by cell (names descending), each
        cell's runs newest first, as the (cell, start) index holds them: the cheapest order to
        read many cells in, for a tally whose figures do not depend on the order across cells.
        """
        names = sorted(set(figures)) if figures is not None else None
        for bound in (since, until):  # as UtcDateTime checks what it binds (PostgreSQL's rows bypass it)
            if bound is not None and (bound.tzinfo is None or bound.utcoffset() is None):
                raise StoreError(f"list runs for a report in {self.url}: expected a timezone-aware "
                                 f"datetime, found naive {bound.isoformat()}")
        self._check_open("list runs for a report")
        return self._report_runs(since, until, cells, environments, names, readers, by_cell)

    def _report_runs(self, since: datetime | None, until: datetime | None, cells: Sequence[str] | None,
                     environments: Sequence[str] | None, names: Sequence[str] | None,
                     readers: int, by_cell: bool) -> Iterator[ReportRun]:
        runs = schema.runs
        with self._read("list runs for a report") as conn:
            sqlite = conn.dialect.name == "sqlite"
            # The figures with a column of their own are read from it; any other from the JSON.
            native = [] if names is None else [n for n in names if n in schema.FIGURE_COLUMNS]
            others = None if names is None else [n for n in names if n not in schema.FIGURE_COLUMNS]
            figure_column: Any
            source: Any = None
            if others is None:
                figure_column = cast(runs.c.figures, Text)
            elif not others:
                figure_column = literal("[]", Text)
            elif sqlite:
                # json_extract of two paths or more parses the document once and answers a JSON
                # array of the values (null for a missing one); one name is asked for twice.
                paths = [_json_path(n) for n in (others if len(others) > 1 else others * 2)]
                figure_column = type_coerce(func.json_extract(runs.c.figures, *map(literal, paths)), Text)
            else:
                # json_to_record parses the document once; figures -> 'name' would parse it again
                # for every name
                record = func.json_to_record(runs.c.figures).table_valued(
                    *(column(n, JSON) for n in others)).render_derived(name="f", with_types=True)
                source = runs.join(record, true())
                figure_column = cast(func.json_build_array(*(record.c[n] for n in others)), Text)
            query = select(type_coerce(runs.c.started_utc, Text),
                           runs.c.run_id, runs.c.cell, runs.c.kind, runs.c.target, runs.c.environment,
                           runs.c.verdict, runs.c.reason, runs.c.window_id,
                           cast(runs.c.objectives, Text), _CRITERIA,
                           figure_column, *(schema.FIGURE_COLUMNS[n] for n in native))
            if source is not None:
                query = query.select_from(source)
            if by_cell:  # along the (cell, start) index, backwards: no sort of the rows read
                query = query.order_by(runs.c.cell.desc(), runs.c.started_utc.desc(), runs.c.run_id.desc())
            else:
                query = query.order_by(runs.c.started_utc.desc(), runs.c.run_id.desc())
            if cells is not None:
                # Many cells, newest first: SQLite would look them up in the cell index and then
                # sort them all by start; it is faster along the start index, which an
                # expression on the cell keeps it to.
                many = sqlite and len(cells) > _FEW_CELLS and not by_cell
                query = query.where((runs.c.cell.concat("") if many else runs.c.cell).in_(list(cells)))
            if environments is not None:
                wanted: ColumnElement[bool] = runs.c.environment.in_(list(environments))
                if "unknown" in environments:  # what a run stored before environments reads as
                    wanted = or_(wanted, runs.c.environment.is_(None), runs.c.environment == "")
                query = query.where(wanted)
            if since is not None:
                query = query.where(runs.c.started_utc >= since)
            if until is not None:
                query = query.where(runs.c.started_utc < until)
            rows: Generator[Any, None, None]
            if sqlite:
                rows = _fetched(conn, query)
            else:
                _prefer_parallel(conn, readers <= 1)
                # psycopg answers rows by the chunk from libpq 17 on; before, the whole result at once
                streams = conn.dialect.loaded_dbapi.pq.version() >= 170000
                rows = _streamed(conn, query) if streams else _fetched(conn, query)
            try:
                yield from _report_rows(rows, others, native, sqlite)
            except conn.dialect.loaded_dbapi.Error as exc:  # psycopg's own, from a stream
                raise StoreError(f"list runs for a report in {self.url} failed: "
                                 f"{self._short(exc)}") from exc
            finally:
                rows.close()  # read to its end or not, a stream ends before its transaction

    def run_cells(self) -> list[str]:
        """Every cell that has a stored run, by name."""
        runs = schema.runs
        with self._read("list the cells of the runs") as conn:
            rows = conn.execute(select(runs.c.cell).distinct().order_by(runs.c.cell)).all()
        return [str(r[0]) for r in rows]

    def stored_run_ids(self, run_ids: Sequence[str]) -> set[str]:
        """Which of ``run_ids`` are stored runs."""
        runs = schema.runs
        found: set[str] = set()
        with self._read("look up runs by id") as conn:
            for chunk in _in_chunks(run_ids):
                found.update(str(r[0]) for r in conn.execute(
                    select(runs.c.run_id).where(runs.c.run_id.in_(chunk))))
        return found

    def run_counts(self, *, since: datetime | None = None, until: datetime | None = None) -> dict[str, int]:
        """The number of runs started in [since, until) per cell that has any, by cell name."""
        runs = schema.runs
        with self._read("count the runs of each cell") as conn:
            started: Any = runs.c.started_utc
            if conn.dialect.name == "sqlite":
                # "+started_utc" keeps SQLite off the start index, which would have it read every
                # run's row for its cell: the (cell, start) index alone answers, 40 times faster.
                started = type_coerce(literal_column("+runs.started_utc"), schema.UtcDateTime())
            query = select(runs.c.cell, func.count()).group_by(runs.c.cell).order_by(runs.c.cell)
            if since is not None:
                query = query.where(started >= since)
            if until is not None:
                query = query.where(started < until)
            rows = conn.execute(query).all()
        return {str(cell): int(count) for cell, count in rows}

    # ------------------------------------------------------------------ windows

    def create_window(self, window: WindowRecord) -> None:
        values = _columns(window)
        _check_window_values(values)
        with self._write(f"create window {window.window_id!r}") as conn:
            conn.execute(schema.windows.insert().values(values))

    def update_window(self, window_id: str, **fields: Any) -> None:
        """Set ``fields`` (any WindowRecord field but window_id) of an existing window."""
        unknown = sorted(set(fields) - _WINDOW_FIELDS)
        if unknown:
            raise StoreError(f"update_window({window_id!r}): no such window field(s) "
                             f"{', '.join(unknown)}; expected some of {', '.join(sorted(_WINDOW_FIELDS))}")
        if not fields:
            return
        _check_window_values(fields)
        with self._write(f"update window {window_id!r}") as conn:
            windows = schema.windows
            result = conn.execute(windows.update().where(windows.c.window_id == window_id).values(fields))
            if result.rowcount == 0:
                raise StoreError(f"update window {window_id!r}: no such window in {self.url}")

    def claim_window(self, window: WindowRecord, holder: str | None = None,
                     until: datetime | None = None) -> bool:
        """Create ``window`` unless a window with its id exists: True when this call created it.

        Window ids are deterministic (schedule + start), so a claim is how a restarted or a
        second scheduler learns the window ran already. A claim with ``holder`` holds until
        ``until`` (renew it with renew_window); without one it never expires."""
        values = _columns(window)
        _check_window_values(values)
        values.update(claim_holder=holder, claim_expires_utc=until)
        try:
            with self._write(f"claim window {window.window_id!r}") as conn:
                conn.execute(schema.windows.insert().values(values))
        except StoreError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                return False
            raise
        return True

    def take_over_window(self, window_id: str, holder: str, until: datetime, now: datetime) -> bool:
        """Claim the open window ``window_id`` for ``holder`` until ``until`` if its claim
        expired before ``now`` (its holder died or stalled): True for the one caller that won."""
        windows = schema.windows
        # One conditional UPDATE: the row lock makes it atomic on both backends (PostgreSQL
        # re-checks the WHERE after waiting for a concurrent taker).
        query = windows.update().where(
            windows.c.window_id == window_id, windows.c.status == "open",
            windows.c.claim_expires_utc.is_not(None), windows.c.claim_expires_utc <= now,
        ).values(claim_holder=holder, claim_expires_utc=until)
        with self._write(f"take over window {window_id!r}") as conn:
            return bool(conn.execute(query).rowcount)

    def renew_window(self, window_id: str, holder: str, until: datetime) -> bool:
        """Extend ``holder``'s claim on the open window; False when it is no longer theirs
        (taken over after it expired, or closed): the holder must start nothing more in it."""
        windows = schema.windows
        query = windows.update().where(
            windows.c.window_id == window_id, windows.c.status == "open",
            windows.c.claim_holder == holder).values(claim_expires_utc=until)
        with self._write(f"renew the claim on window {window_id!r}") as conn:
            return bool(conn.execute(query).rowcount)

    def close_claimed_window(self, window_id: str, holder: str, ended: datetime) -> bool:
        """Close the open window ``holder`` has claimed; False when the claim is not theirs."""
        windows = schema.windows
        query = windows.update().where(
            windows.c.window_id == window_id, windows.c.status == "open",
            windows.c.claim_holder == holder).values(status="closed", ended_utc=ended)
        with self._write(f"close window {window_id!r}") as conn:
            return bool(conn.execute(query).rowcount)

    def window_claim(self, window_id: str) -> WindowClaim | None:
        """Who claimed the window and until when; None when there is no such window."""
        windows = schema.windows
        query = select(windows.c.claim_holder, windows.c.claim_expires_utc).where(
            windows.c.window_id == window_id)
        with self._read(f"read the claim on window {window_id!r}") as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else WindowClaim(row["claim_holder"], row["claim_expires_utc"])

    def orphaned_windows(self, name: str, now: datetime) -> list[WindowRecord]:
        """Open windows named ``name`` whose claim expired before ``now``: their runner died."""
        windows = schema.windows
        query = select(windows).where(
            windows.c.name == name, windows.c.status == "open",
            windows.c.claim_expires_utc.is_not(None), windows.c.claim_expires_utc <= now,
        ).order_by(windows.c.started_utc, windows.c.window_id)
        with self._read(f"list orphaned windows of {name!r}") as conn:
            rows = conn.execute(query).mappings().all()
        return [_window_from(row) for row in rows]

    def get_window(self, window_id: str) -> WindowRecord | None:
        windows = schema.windows
        with self._read(f"read window {window_id!r}") as conn:
            row = conn.execute(select(windows).where(windows.c.window_id == window_id)).mappings().first()
        return None if row is None else _window_from(row)

    def list_windows(self, *, limit: int | None = 100) -> list[WindowRecord]:
        """Windows, newest first."""
        windows = schema.windows
        query = select(windows).order_by(windows.c.started_utc.desc(), windows.c.window_id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self._read("list windows") as conn:
            rows = conn.execute(query).mappings().all()
        return [_window_from(row) for row in rows]

    def runs_with_status(self, status: str) -> list[RunRecord]:
        """Every run with ``status``, oldest first."""
        runs = schema.runs
        query = select(runs).where(runs.c.status == status).order_by(runs.c.started_utc, runs.c.run_id)
        with self._read(f"list {status} runs") as conn:
            rows = conn.execute(query).mappings().all()
        return [_run_from(row) for row in rows]

    # ------------------------------------------------------------------ timeline

    def add_samples(self, run_id: str, samples: Sequence[Sample]) -> None:
        """Append timeline samples of a run, in one statement (executemany)."""
        if not samples:
            return
        rows = [{"run_id": run_id, "t": s.t, "utc": s.utc, "ok": s.ok, "latency_ms": s.latency_ms,
                 "status": s.status, "error": s.error, "write_seq": s.write_seq,
                 "payment_id": s.payment_id, "timed_out": s.timed_out} for s in samples]
        with self._write(f"add {len(rows)} samples to run {run_id!r}") as conn:
            conn.execute(schema.samples.insert(), rows)

    def samples(self, run_id: str) -> list[Sample]:
        """The run's timeline, ordered by t (then by insertion)."""
        with self._read(f"read samples of run {run_id!r}") as conn:
            return _samples_of(conn, [run_id]).get(run_id, [])

    def add_events(self, run_id: str, events: Sequence[RunEvent]) -> None:
        if not events:
            return
        rows = [{"run_id": run_id, "t": e.t, "utc": e.utc, "source": e.source, "name": e.name,
                 "detail": e.detail} for e in events]
        with self._write(f"add {len(rows)} events to run {run_id!r}") as conn:
            conn.execute(schema.events.insert(), rows)

    def events(self, run_id: str) -> list[RunEvent]:
        """The run's events, ordered by t (then by insertion)."""
        with self._read(f"read events of run {run_id!r}") as conn:
            return _events_of(conn, [run_id]).get(run_id, [])

    def run_details(self, run_ids: Sequence[str]) -> dict[str, RunDetail]:
        """The stored ones of these runs, each with its samples, events and ledger faults, by
        run id: what ``get_run``, ``samples``, ``events`` and ``ledger_for_run`` read for one,
        in four queries for them all (reports of many runs: a query's own cost was most of
        each run's read)."""
        details: dict[str, RunDetail] = {}
        with self._read(f"read {len(run_ids)} runs with their timelines") as conn:
            for chunk in _in_chunks(run_ids):
                rows = conn.execute(_with_journal(select(schema.runs)).where(
                    schema.runs.c.run_id.in_(chunk))).mappings().all()
                samples, events = _samples_of(conn, chunk), _events_of(conn, chunk)
                faults: dict[str, list[LedgerFault]] = {}
                for row in conn.execute(_ledger_query(schema.faults.c.run_id.in_(chunk))).mappings():
                    faults.setdefault(row["run_id"], []).append(_fault_from(row))
                for row in rows:
                    run_id = row["run_id"]
                    details[run_id] = RunDetail(_run_from(row), samples.get(run_id, []),
                                                events.get(run_id, []), faults.get(run_id, []))
        return details

    # ------------------------------------------------------------------ fault ledger

    def ledger_add(self, fault: LedgerFault) -> None:
        """Record a fault before it is applied; committed (durable) when this returns.

        ``created_utc`` defaults to now when the fault has none.
        """
        values = _columns(fault)
        _check_fault_values(values)
        if values["created_utc"] is None:
            values["created_utc"] = datetime.now(UTC)
        with self._write(f"add fault {fault.fault_id!r} to the ledger") as conn:
            conn.execute(schema.faults.insert().values(values))

    def ledger_update(self, fault_id: str, **fields: Any) -> None:
        """Set ``fields`` (any LedgerFault field but fault_id) of a ledger row; committed on return."""
        unknown = sorted(set(fields) - _FAULT_FIELDS)
        if unknown:
            raise StoreError(f"ledger_update({fault_id!r}): no such fault field(s) {', '.join(unknown)}; "
                             f"expected some of {', '.join(sorted(_FAULT_FIELDS))}")
        if not fields:
            return
        _check_fault_values(fields)
        if "created_utc" in fields and fields["created_utc"] is None:
            raise StoreError(f"ledger_update({fault_id!r}): created_utc cannot be cleared")
        with self._write(f"update fault {fault_id!r} in the ledger") as conn:
            faults = schema.faults
            result = conn.execute(faults.update().where(faults.c.fault_id == fault_id).values(fields))
            if result.rowcount == 0:
                raise StoreError(f"update fault {fault_id!r}: no such fault in the ledger of {self.url}")

    def ledger_get(self, fault_id: str) -> LedgerFault | None:
        with self._read(f"read fault {fault_id!r}") as conn:
            query = select(schema.faults).where(schema.faults.c.fault_id == fault_id)
            row = conn.execute(query).mappings().first()
        return None if row is None else _fault_from(row)

    def ledger_unreverted(self) -> list[LedgerFault]:
        """Faults not known to be reverted (reverted_utc unset), whatever their state, oldest first.

        ``failed`` counts: a fault that failed to apply may be half applied, and one that failed
        to revert is still there.
        """
        return self._ledger("read unreverted faults", schema.faults.c.reverted_utc.is_(None))

    def ledger_for_run(self, run_id: str) -> list[LedgerFault]:
        return self._ledger(f"read faults of run {run_id!r}", schema.faults.c.run_id == run_id)

    def ledger_all(self) -> list[LedgerFault]:
        return self._ledger("read the fault ledger", None)

    def _ledger(self, what: str, where: Any) -> list[LedgerFault]:
        with self._read(what) as conn:
            rows = conn.execute(_ledger_query(where)).mappings().all()
        return [_fault_from(row) for row in rows]

    # ------------------------------------------------------------------ leases

    def lease_acquire(self, name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
        """Take (or renew) lease ``name`` for ``holder`` until now + ttl; False when another
        holder has it and it has not expired."""
        leases = schema.leases
        expires = now + ttl
        try:
            with self._write(f"acquire lease {name!r}") as conn:
                row = conn.execute(select(leases).where(leases.c.name == name)
                                   .with_for_update()).mappings().first()
                if row is None:
                    conn.execute(leases.insert().values(name=name, holder=holder, acquired_utc=now,
                                                        expires_utc=expires))
                    return True
                if row["holder"] != holder and row["expires_utc"] > now:
                    return False
                acquired = row["acquired_utc"] if row["holder"] == holder else now
                conn.execute(leases.update().where(leases.c.name == name).values(
                    holder=holder, acquired_utc=acquired, expires_utc=expires))
                return True
        except StoreError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                return False  # another process inserted it first (PostgreSQL)
            raise

    def lease_renew(self, name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
        """Extend ``holder``'s lease; False when it is no longer theirs (taken over after it
        expired): the holder must stop what the lease protects at once."""
        leases = schema.leases
        with self._write(f"renew lease {name!r}") as conn:
            result = conn.execute(leases.update().where(leases.c.name == name)
                                  .where(leases.c.holder == holder).values(expires_utc=now + ttl))
            return bool(result.rowcount)

    def lease_release(self, name: str, holder: str) -> None:
        leases = schema.leases
        with self._write(f"release lease {name!r}") as conn:
            conn.execute(leases.delete().where(leases.c.name == name).where(leases.c.holder == holder))

    def lease_get(self, name: str) -> Lease | None:
        leases = schema.leases
        with self._read(f"read lease {name!r}") as conn:
            row = conn.execute(select(leases).where(leases.c.name == name)).mappings().first()
        return None if row is None else Lease(row["name"], row["holder"], row["acquired_utc"],
                                              row["expires_utc"])

    # ------------------------------------------------------------------ small state

    def state_get(self, key: str) -> str | None:
        meta = schema.meta
        with self._read(f"read state {key!r}") as conn:
            value = conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()
        return None if value is None else str(value)

    def state_set(self, key: str, value: str) -> None:
        if key == "schema_version":
            raise StoreError("state_set: schema_version is the store's own")
        meta = schema.meta
        update = meta.update().where(meta.c.key == key).values(value=value)
        try:
            with self._write(f"write state {key!r}") as conn:
                if not conn.execute(update).rowcount:
                    conn.execute(meta.insert().values(key=key, value=value))
        except StoreError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
            # Another process inserted the key in the meantime (PostgreSQL: scheduler replicas
            # writing their first heartbeat at once): the row exists now, so update it.
            with self._write(f"write state {key!r}") as conn:
                conn.execute(update)

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _write(self, what: str) -> Iterator[Connection]:
        """One transaction, committed on leaving (rolled back on an exception)."""
        self._check_open(what)
        try:
            with self._writer.begin() as conn:
                yield conn
        # TypeError/ValueError: a value we cannot store (naive time, not JSON); psycopg raises
        # them bare from its JSON dumper, where SQLite's path wraps them in a StatementError.
        except (SQLAlchemyError, TypeError, ValueError) as exc:
            raise StoreError(f"{what} in {self.url} failed: {self._short(exc)}") from exc

    @contextmanager
    def _read(self, what: str) -> Iterator[Connection]:
        self._check_open(what)
        try:
            with self._engine.connect() as conn:
                yield conn
        except (SQLAlchemyError, ValueError) as exc:  # ValueError: a stored value we cannot read
            raise StoreError(f"{what} in {self.url} failed: {self._short(exc)}") from exc

    def _short(self, exc: BaseException) -> str:
        return _short(exc, self._engine.url.password)

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise StoreError(f"{what}: the store {self.url} is closed")

    def _first_look(self) -> tuple[str | None, set[str]]:
        """The schema state, on the store's first connection. Processes opening a new SQLite
        file at once race to switch it to WAL (on connect); the loser gets "database is locked"
        at once, without waiting for the busy timeout, so it tries again until then."""
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                with self._read("check the store's tables") as conn:
                    return _schema_state(conn)
            except StoreError as exc:
                cause = exc.__cause__
                locked = isinstance(cause, OperationalError) and "database is locked" in str(cause)
                if not locked or time.monotonic() >= deadline:
                    raise
            time.sleep(0.05)

    def _prepare_schema(self) -> None:
        """Check the schema version, create missing tables and upgrade an older schema we know,
        serialised across processes."""
        current = str(STORE_SCHEMA_VERSION)
        version, missing = self._first_look()
        if version is not None:
            _check_version(self.url, version)
            if not missing and version == current:
                return  # the usual case: no DDL, so no lock on tables other processes write
        with self._write("create the store's tables") as conn:
            if conn.dialect.name == "postgresql":
                # CREATE TABLE IF NOT EXISTS races in PostgreSQL (duplicate pg_type rows); SQLite
                # is serialised already by BEGIN IMMEDIATE.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_SCHEMA_LOCK})
            version, missing = _schema_state(conn)  # again: another process may have been first
            if version is not None:
                _check_version(self.url, version)
                _migrate(conn, int(version), missing)
            for table in schema.metadata.sorted_tables:
                if table.name in missing:
                    conn.execute(CreateTable(table, if_not_exists=True))
                    for index in sorted(table.indexes, key=lambda ix: str(ix.name)):
                        conn.execute(CreateIndex(index, if_not_exists=True))
            if version is None:
                conn.execute(schema.meta.insert().values(key="schema_version", value=current))
            elif version != current:
                meta = schema.meta
                conn.execute(meta.update().where(meta.c.key == "schema_version").values(value=current))


def _migrate(conn: Connection, version: int, missing: set[str]) -> None:
    """Take the existing tables from ``version`` to the current one, step by step (tables in
    ``missing`` are left to be created whole)."""
    altered: set[str] = set()
    for step in range(version, STORE_SCHEMA_VERSION):
        for name in schema.MIGRATIONS[step]:
            table_name, column_name = name.split(".")
            if table_name in missing:
                continue
            column = schema.metadata.tables[table_name].c[column_name]
            kind = column.type.compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE {table_name} ADD COLUMN {column_name} {kind}"))
            altered.add(table_name)
        if step == 3 and "runs" not in missing:
            _label_and_upgrade_runs(conn)
        if step == 4 and "runs" not in missing:
            _fill_figure_columns_and_move_journals(conn)
            missing.discard(schema.journals.name)
    for table_name in sorted(altered):
        table = schema.metadata.tables[table_name]
        for index in sorted(table.indexes, key=lambda ix: str(ix.name)):
            conn.execute(CreateIndex(index, if_not_exists=True))


def _label_and_upgrade_runs(conn: Connection) -> None:
    """Store schema 3 -> 4: every run's environment from its target (a local cell is always a
    sandbox; what else ran before environments existed is "unknown"), figures to version 2."""
    from gameday.model.figures import upgrade_v1

    runs = schema.runs
    rows = conn.execute(select(runs.c.run_id, runs.c.kind, runs.c.target, runs.c.figures)).all()
    for run_id, kind, target, figures in rows:
        conn.execute(runs.update().where(runs.c.run_id == run_id).values(
            environment="sandbox" if target == "local" else "unknown",
            figures=upgrade_v1(kind, dict(figures or {}))))


_MIGRATION_PART: Final = 5000  # runs upgraded at a time: memory stays flat over a fleet's years


def _fill_figure_columns_and_move_journals(conn: Connection) -> None:
    """Store schema 4 -> 5: every run's figure columns and criteria outline from its figures
    and criteria (as a new run's are written), its journal moved to the journals table, and
    the runs' journal column dropped."""
    runs = schema.runs
    conn.execute(CreateTable(schema.journals, if_not_exists=True))
    last = ""
    while True:
        rows = conn.execute(select(runs.c.run_id, runs.c.figures, runs.c.criteria)
                            .where(runs.c.run_id > last).order_by(runs.c.run_id).limit(_MIGRATION_PART)).all()
        if not rows:
            break
        conn.execute(runs.update().where(runs.c.run_id == bindparam("id")), [
            {"id": run_id, **schema.figure_columns(figures or {}),
             "criteria_outline": schema.criteria_outline(criteria or [])}
            for run_id, figures, criteria in rows])
        last = rows[-1][0]
    conn.execute(text("INSERT INTO journals (run_id, journal) SELECT run_id, journal FROM runs "
                      "WHERE journal IS NOT NULL AND CAST(journal AS TEXT) <> 'null'"))
    conn.execute(text("ALTER TABLE runs DROP COLUMN journal"))


def _schema_state(conn: Connection) -> tuple[str | None, set[str]]:
    """The stored schema version (None when there is none yet) and the names of missing tables."""
    existing = set(inspect(conn).get_table_names())
    missing = set(schema.metadata.tables) - existing
    if schema.meta.name in missing:
        return None, missing
    meta = schema.meta
    version = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
    return version, missing


def _check_version(url: str, found: str) -> None:
    if found == str(STORE_SCHEMA_VERSION) or (found.isdigit() and int(found) in schema.MIGRATIONS):
        return
    newer = found.isdigit() and int(found) > STORE_SCHEMA_VERSION
    fix = ("this database was written by a newer gameday: upgrade gameday" if newer else
           "this database was written by another gameday version: use a new store file or database")
    raise IncompatibleSchemaError(
        where=url, expected=f"store schema version {STORE_SCHEMA_VERSION}",
        found=f"schema version {found}",
        fix=f"{fix}, or point --store / GAMEDAY_STORE at another database")


# ---------------------------------------------------------------------- engine


_STORE_FIX = "pass --store sqlite:///PATH of a store gameday made (or a new path), or postgresql://..."


def _check_sqlite_path(path: Path, create: bool, redacted: str) -> None:
    """Refuse, touching nothing, a SQLite path that cannot be a store we may use."""
    if path.exists():
        # No open() of the file here: closing any descriptor of a SQLite file drops the POSIX
        # locks this process's open connections hold on it (a store already open in this
        # process would then lose its WAL locks). A file of another kind is SQLite's to find.
        if not path.is_file():
            raise InputError("--store", "a SQLite database file", f"{path} is not a regular file",
                             _STORE_FIX)
        if not os.access(path, os.R_OK):
            raise InputError("--store", "a readable SQLite database file",
                             f"{path} is not readable", _STORE_FIX)
        if create and not os.access(path, os.W_OK):
            raise InputError("--store", "a SQLite file gameday may write", f"{path} is read-only",
                             "make it writable, or pass another --store")
        return
    if not create:
        raise InputError("--store", "an existing store", f"no store at {path} ({redacted})",
                         "pass the --store that holds the runs (a run creates its store), or "
                         "set GAMEDAY_STORE")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise InputError("--store", "a path in a directory gameday may write",
                         f"{parent} is not a writable directory", _STORE_FIX)


def _create_engine(url: str, redacted: str, create: bool = True) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        _check_sqlite_path(Path(database), create, redacted)
        try:
            private_dirs(Path(database).parent)
            if not Path(database).exists():  # SQLite would create it with the umask's mode
                with contextlib.suppress(FileExistsError), open_private(Path(database),
                                                                        exclusive=True):
                    pass
        except OSError as exc:
            raise StoreError(f"cannot create the directory of the store {redacted}: {exc}") from exc
        engine = create_engine(url, json_serializer=json_dumps, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    else:
        engine = create_engine(url, json_serializer=json_dumps, hide_parameters=True, pool_pre_ping=True,
                               connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S,
                                             "application_name": "gameday-store"})
    _ENGINES.add(engine)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # We emit BEGIN ourselves (_sqlite_begin): sqlite3's own would begin a write lazily, and a
    # read lock that turns into a write lock fails at once with "database is locked".
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first: switching to WAL itself needs a lock another process may hold.
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        # WAL lets readers and one writer work at once (parent, worker, CLI on one file).
        cursor.execute("PRAGMA journal_mode = WAL")
        # FULL: a committed ledger row survives power loss, not only a killed process.
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # IMMEDIATE takes the write lock up front, where busy_timeout waits for it.
    mode = "IMMEDIATE" if conn.get_execution_options().get(_WRITE_OPTION) else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


def _short(exc: BaseException, password: str | None) -> str:
    # SQLAlchemy appends a "Background on this error" link on a second line; a driver's text
    # may quote the connection parameters, so the password is masked in it.
    first = str(exc).strip().splitlines()
    return mask_password(first[0], password) if first else type(exc).__name__


# ---------------------------------------------------------------------- rows <-> records


def _check_run_values(values: Mapping[str, Any]) -> None:
    if "status" in values and values["status"] not in _RUN_STATUSES:
        raise StoreError(f"run status must be one of {sorted(_RUN_STATUSES)}, found {values['status']!r}")
    verdict = values.get("verdict")
    if verdict is not None and verdict not in _VERDICTS:
        raise StoreError(f"run verdict must be one of {sorted(_VERDICTS)} or None, found {verdict!r}")


def _check_fault_values(values: Mapping[str, Any]) -> None:
    if "state" in values and values["state"] not in _FAULT_STATES:
        raise StoreError(f"fault state must be one of {sorted(_FAULT_STATES)}, found {values['state']!r}")


def _check_window_values(values: Mapping[str, Any]) -> None:
    if "status" in values and values["status"] not in _WINDOW_STATUSES:
        raise StoreError(f"window status must be one of {sorted(_WINDOW_STATUSES)}, "
                         f"found {values['status']!r}")


def _objectives_to_json(objectives: CellObjectives | None) -> dict[str, Any] | None:
    return None if objectives is None else dataclasses.asdict(objectives)


def _objectives_from(value: Mapping[str, Any] | None) -> CellObjectives | None:
    if value is None:
        return None
    return CellObjectives(tier=int(value["tier"]), tenants=tuple(value["tenants"]),
                          availability_slo=float(value["availability_slo"]),
                          p95_latency_slo_ms=float(value["p95_latency_slo_ms"]),
                          rto_s=float(value["rto_s"]), rpo_s=float(value["rpo_s"]))


def _criteria_to_json(criteria: Sequence[CriterionResult]) -> list[dict[str, Any]]:
    return [{"name": c.name, "expected": c.expected, "actual": c.actual, "ok": c.ok} for c in criteria]


def _columns(record: RunRecord | LedgerFault | WindowRecord) -> dict[str, Any]:
    # Not dataclasses.asdict: it would deep-copy the journal, which can be large.
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


_IN_CHUNK = 500  # ids bound in one IN (...): well under any driver's bound-parameter limit


def _in_chunks(values: Sequence[str]) -> Iterator[list[str]]:
    """``values``, each once, in parts of at most _IN_CHUNK."""
    unique = list(dict.fromkeys(values))
    for i in range(0, len(unique), _IN_CHUNK):
        yield unique[i:i + _IN_CHUNK]


def _samples_of(conn: Connection, run_ids: Sequence[str]) -> dict[str, list[Sample]]:
    """The timelines of these runs, each ordered by t (then by insertion)."""
    table = schema.samples
    sqlite = conn.dialect.name == "sqlite"
    # A run is thousands of samples: their times are parsed here, without SQLAlchemy's
    # per-value processing (as report_runs reads)
    query = select(table.c.run_id, table.c.t, _driver_value(table.c.utc, sqlite), table.c.ok,
                   table.c.latency_ms, table.c.status, table.c.error, table.c.write_seq,
                   table.c.payment_id, table.c.timed_out).where(
        table.c.run_id.in_(run_ids)).order_by(table.c.run_id, table.c.t, table.c.id)
    when = _sqlite_time if sqlite else _driver_time
    out: dict[str, list[Sample]] = {}
    for run_id, rows in itertools.groupby(conn.execute(query).all(), key=itemgetter(0)):
        out[run_id] = [Sample(t, when(utc), bool(ok), latency, status, error, seq, payment,
                              bool(timed_out))
                       for _, t, utc, ok, latency, status, error, seq, payment, timed_out in rows]
    return out


def _events_of(conn: Connection, run_ids: Sequence[str]) -> dict[str, list[RunEvent]]:
    """The events of these runs, each ordered by t (then by insertion)."""
    table = schema.events
    sqlite = conn.dialect.name == "sqlite"
    query = select(table.c.run_id, table.c.t, _driver_value(table.c.utc, sqlite), table.c.source,
                   table.c.name, table.c.detail).where(
        table.c.run_id.in_(run_ids)).order_by(table.c.run_id, table.c.t, table.c.id)
    when = _sqlite_time if sqlite else _driver_time
    out: dict[str, list[RunEvent]] = {}
    for run_id, rows in itertools.groupby(conn.execute(query).all(), key=itemgetter(0)):
        out[run_id] = [RunEvent(t, when(utc), source, name, dict(detail))
                       for _, t, utc, source, name, detail in rows]
    return out


def _ledger_query(where: Any) -> Select[Any]:
    query = select(schema.faults).order_by(schema.faults.c.created_utc, schema.faults.c.fault_id)
    return query if where is None else query.where(where)


def _with_journal(query: Select[Any]) -> Select[Any]:
    """``query`` of runs with each run's journal (None when it has none)."""
    journals = schema.journals
    return query.add_columns(journals.c.journal).outerjoin(
        journals, journals.c.run_id == schema.runs.c.run_id)


def _run_from(row: RowMapping) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"], experiment=row["experiment"], experiment_path=row["experiment_path"],
        kind=row["kind"], cell=row["cell"], target=row["target"], started_utc=row["started_utc"],
        status=row["status"], ended_utc=row["ended_utc"], verdict=row["verdict"], reason=row["reason"],
        figures=dict(row["figures"]),
        criteria=[CriterionResult(name=c["name"], expected=c["expected"], actual=c["actual"],
                                  ok=bool(c["ok"])) for c in row["criteria"]],
        journal=row.get("journal"), runner_pid=row["runner_pid"],
        runner_start_ticks=row["runner_start_ticks"], window_id=row["window_id"],
        objectives=_objectives_from(row["objectives"]), schema_version=row["schema_version"],
        environment=row["environment"] or "unknown",
    )


_MISSING: Final[Any] = object()
_DECODER: Final = json.JSONDecoder()
_FEW_CELLS: Final = 32
_REPORT_FIXED: Final = 12  # columns of the report read before the figure columns
_REPORT_PART: Final = 2000  # rows fetched at a time: each part is made into runs before the next
# The criteria of a run that passed come without their actual values (a report shows only
# those of runs that did not): they then repeat run after run, and are parsed once.
_CRITERIA: Final = case(
    (schema.runs.c.verdict == "passed",
     func.coalesce(cast(schema.runs.c.criteria_outline, Text), cast(schema.runs.c.criteria, Text))),
    else_=cast(schema.runs.c.criteria, Text))


def _prefer_parallel(conn: Connection, parallel: bool) -> None:
    """PostgreSQL, for the report read's transaction: times in UTC (they come as datetime.UTC);
    and, when ``parallel``, let its parallel workers share the read (the JSON read row by row
    is what costs)."""
    if parallel:
        conn.exec_driver_sql("SET LOCAL parallel_setup_cost = 0")
        conn.exec_driver_sql("SET LOCAL parallel_tuple_cost = 0")
    conn.exec_driver_sql("SET LOCAL TimeZone = 'UTC'")


def _fetched(conn: Connection, query: Any) -> Generator[Any, None, None]:
    """The rows of ``query``, fetched _REPORT_PART at a time through SQLAlchemy."""
    for part in conn.execute(query).partitions(_REPORT_PART):
        yield from part


def _streamed(conn: Connection, query: Any) -> Generator[tuple[Any, ...], None, None]:
    """PostgreSQL's rows as it sends them (psycopg's stream), read while the query runs on, in
    parallel where it plans so. SQLAlchemy's stream_results would open a cursor instead: FETCH
    after FETCH, never in parallel, and every row held until the last has come."""
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        # In binary: the server sends times and numbers as they are stored, not formatted as
        # text for psycopg to parse back (both ends' CPU; text and JSON come the same way).
        yield from cursor.stream(compiled.string, compiled.params, size=_REPORT_PART, binary=True)
    finally:
        cursor.close()


def _report_rows(rows: Iterable[Any], others: Sequence[str] | None, native: Sequence[str],
                 sqlite: bool) -> Iterator[ReportRun]:
    """The report read's rows as ReportRuns (Store.report_runs): the figures ``native`` from
    their columns, ``others`` from the JSON array read (None: every figure, the document)."""
    when = _sqlite_time if sqlite else _driver_time
    seen: dict[str, str] = {}  # one object per cell, kind and environment: keys of the report's tallies
    intern: Callable[[str, str], str] = seen.setdefault
    decode = _DECODER.raw_decode
    objectives: dict[str | None, CellObjectives | None] = {None: None}
    criteria: dict[tuple[str | None, bool], tuple[CriterionResult, ...]] = {}
    # SQLite answers a boolean as 0 or 1
    adapted = "adapted" if sqlite and "adapted" in native else None
    for row in rows:
        (started, run_id, cell, kind, target, env, verdict, reason, window_id, objectives_text,
         criteria_text, figure_text) = row[:_REPORT_FIXED]
        values = dict(zip(native, row[_REPORT_FIXED:], strict=True))
        if adapted is not None and values[adapted] is not None:
            values[adapted] = values[adapted] == 1
        if others is None:
            values = decode(figure_text)[0]
        elif others:
            values.update(zip(others, decode(figure_text)[0], strict=False))
        goals = objectives.get(objectives_text, _MISSING)
        if goals is _MISSING:
            parsed = decode(objectives_text)[0]
            goals = objectives[objectives_text] = None if parsed is None else _objectives_from(parsed)
        key = (criteria_text, verdict == "passed")
        checked = criteria.get(key)
        if checked is None:
            checked = criteria[key] = _report_criteria(*key)
        yield ReportRun(run_id, intern(cell, cell), intern(kind, kind), target,
                        intern(env, env) if env else "unknown", when(started), verdict, reason,
                        window_id, goals, values, checked)


def _report_criteria(text: str | None, passed: bool) -> tuple[CriterionResult, ...]:
    """A run's criteria as the report read answers them: without the actual values when the
    run passed (PostgreSQL answers null for none)."""
    stored = [] if text is None else _DECODER.raw_decode(text)[0]
    return tuple(CriterionResult(c["name"], c["expected"], "" if passed else c["actual"], bool(c["ok"]))
                 for c in stored)


def _json_path(name: str) -> str:
    """A SQLite JSON path to the top-level key ``name`` (quoted: any key, dots included)."""
    return "$." + json.dumps(name)


def _driver_value(time_column: Any, sqlite: bool) -> Any:
    """A UtcDateTime column as the driver answers it, for _sqlite_time or _driver_time: SQLite's
    text, PostgreSQL's datetime in the session's zone."""
    return type_coerce(time_column, Text) if sqlite else type_coerce(time_column, DateTime(timezone=True))


def _sqlite_time(value: str) -> datetime:
    # What UtcDateTime stored: naive UTC text ("2025-01-04 02:00:00.123456"); with the offset
    # appended it parses straight to UTC (datetime.UTC itself), faster than replace() after.
    try:
        return datetime.fromisoformat(value + "+00:00")
    except ValueError:  # text with an offset of its own
        return datetime.fromisoformat(value).astimezone(UTC)


def _driver_time(value: datetime) -> datetime:
    # PostgreSQL's timestamptz comes in the session's zone: the same instant, in UTC.
    if value.tzinfo is UTC:
        return value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _window_from(row: RowMapping) -> WindowRecord:
    return WindowRecord(
        window_id=row["window_id"], name=row["name"], started_utc=row["started_utc"],
        planned_end_utc=row["planned_end_utc"], ended_utc=row["ended_utc"], status=row["status"],
        timezone=row["timezone"], detail=dict(row["detail"]),
    )


def _fault_from(row: RowMapping) -> LedgerFault:
    return LedgerFault(
        fault_id=row["fault_id"], run_id=row["run_id"], cell=row["cell"], target=row["target"],
        kind=row["kind"], spec=dict(row["spec"]), revert=dict(row["revert"]),
        expires_utc=row["expires_utc"], state=row["state"], owner_pid=row["owner_pid"],
        owner_start_ticks=row["owner_start_ticks"], created_utc=row["created_utc"],
        applied_utc=row["applied_utc"], reverted_utc=row["reverted_utc"],
        revert_reason=row["revert_reason"],
    )
