"""``gameday validate | run | runs | show | recover``: experiments and their stored runs."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from gameday.cli.output import (
    EXIT_FAILED,
    EXIT_INPUT,
    EXIT_OK,
    exit_codes,
    fail,
    literal,
    literal_lines,
    print_json,
    progress_console,
)
from gameday.cli.params import finite, whole
from gameday.cli.stores import cells_option, open_store, store_option
from gameday.errors import InputError
from gameday.model import RunRecord

if TYPE_CHECKING:
    from gameday.engine.runner import Progress

# The engine, chaoslib and SQLAlchemy are imported by the commands that use them: `--help` and
# the sandbox commands stay quick to start.

@click.command()
@click.argument("experiments", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--cell", help="Check the experiments against this cell too (its provider "
              "policy, its target, and each fault against the live cell).")
@cells_option
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON list: path, valid, kind, cell, error, unchecked.")
def validate(experiments: tuple[Path, ...], cell: str | None, cells_file: Path,
             as_json: bool) -> None:
    """Check experiment files completely, touching nothing. Every file is reported; exit 2
    when any is invalid."""
    from gameday.config.cells import find_cell, load_cells
    from gameday.config.experiments import configured_cell, load_experiment
    from gameday.engine.checks import check_for_cell

    with exit_codes():
        cells = load_cells(cells_file) if cell or cells_file.exists() else {}
        if cell is not None:
            find_cell(cells, cell, str(cells_file))
    results: list[dict[str, Any]] = []
    for path in experiments:
        result: dict[str, Any] = {"path": str(path), "valid": False, "kind": None,
                                  "cell": None, "error": None, "unchecked": None}
        try:
            name = cell or (configured_cell(path) if cells else None)
            result["cell"] = name
            if name is not None and cells:
                check = check_for_cell(path, find_cell(cells, name, str(cells_file)))
                experiment, result["unchecked"] = check.experiment, check.unchecked
            else:
                experiment = load_experiment(path)
            result.update(valid=True, kind=experiment.settings.kind)
        except InputError as exc:
            result["error"] = {"where": exc.where, "expected": exc.expected,
                               "found": str(exc.found), "fix": exc.fix, "message": exc.message()}
        results.append(result)
        if not as_json:
            _print_validation(result)
    invalid = sum(1 for r in results if not r["valid"])
    if as_json:
        print_json(results)
    if invalid:
        fail(EXIT_INPUT, f"{invalid} of {len(experiments)} experiment files invalid")


def _print_validation(result: dict[str, Any]) -> None:
    if result["error"] is not None:
        click.echo(literal(f"{result['path']}: invalid"), err=True)
        click.echo(literal_lines(f"error: {result['error']['message']}"), err=True)
        return
    note = "" if result["unchecked"] is None else \
        f"; faults not checked against the live cell: {result['unchecked']}"
    click.echo(literal(f"{result['path']}: valid ({result['kind']}"
                       + (f", cell {result['cell']}" if result["cell"] else "") + note + ")"))


def run_json(record: RunRecord) -> dict[str, Any]:
    f = record.figures
    return {
        "run_id": record.run_id, "experiment": record.experiment, "kind": record.kind,
        "cell": record.cell, "target": record.target, "environment": record.environment,
        "started_at": record.started_utc.isoformat(),
        "ended_at": record.ended_utc.isoformat() if record.ended_utc else None,
        "status": record.status, "verdict": record.verdict, "reason": record.reason,
        **{k: f.get(k) for k in ("impact", "time_to_impact_s", "impact_s", "recovery_s",
                                 "adapted", "restore_s", "failover_s", "scale_out_s",
                                 "replica_crashes", "rto_s", "rpo_rows", "rpo_s",
                                 "error_rate", "error_span_s", "peak_error_rate",
                                 "error_rate_during_recovery", "p95_ms_baseline",
                                 "p95_ms_during", "samples", "detection_floor_ms")},
        "criteria": [asdict(c) for c in record.criteria],
    }


def _progress_renderer(console: Console) -> tuple[Any, Any]:
    """A live line on a terminal; plain phase lines otherwise."""
    last_phase: list[str] = []
    live = Live(console=console, transient=True, auto_refresh=False) if console.is_terminal \
        else None

    def show(p: Progress) -> None:
        ratio = "-" if p.success_ratio is None else f"{p.success_ratio:.0%}"
        p95 = "-" if p.p95_ms is None else f"{p.p95_ms:.0f} ms"
        line = f"{p.phase:<10} {p.elapsed_s:6.1f} s  samples {p.samples:<5} success {ratio:<5} " \
               f"p95 {p95}"
        if live is not None:
            live.update(line, refresh=True)
        elif not last_phase or last_phase[-1] != p.phase:
            last_phase.append(p.phase)
            console.print(line, markup=False, highlight=False)

    return live, show


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}{unit}"
    return f"{value}{unit}"


def _pct(ratio: Any) -> str:
    """A ratio as the HTML report shows it: a percentage."""
    return "-" if ratio is None else f"{100 * float(ratio):.1f} %"


def _seconds_or_none(figures: dict[str, Any], key: str) -> str:
    if figures.get("impact") == "none":
        return "no impact seen"
    return _fmt(figures.get(key), " s") + (" (adapted)" if figures.get("adapted") else "")


def impact_words(f: dict[str, Any]) -> str:
    """What the probes saw, in words, with the rate that bounds what they could miss."""
    floor = f.get("detection_floor_ms")
    unseen = f" (an impact shorter than {floor:.0f} ms could go unseen)" \
        if isinstance(floor, (int, float)) else ""
    impact = f.get("impact")
    if impact == "none":
        return f"impact: none seen by the probes{unseen}"
    if impact == "seen":
        when = _fmt(f.get("time_to_impact_s"), " s")
        if f.get("impact_s") is None:
            return f"impact: seen {when} after injection; the cell did not recover"
        return f"impact: seen {when} after injection, users affected for " \
               f"{_fmt(f.get('impact_s'), ' s')}{unseen}"
    return "impact: no fault was injected"


def print_summary(record: RunRecord, console: Console) -> None:
    f = record.figures
    colour = "green" if record.verdict == "passed" else "red"
    # Titles and reasons come from files and targets: Text, never markup.
    console.print(Text.assemble((literal(record.experiment), "bold"),
                                f" on {literal(record.cell)} ({record.target} target, "
                                f"evidence: {record.environment})"))
    console.print(Text.assemble("verdict: ", (str(record.verdict), colour),
                                f" - {literal(record.reason)}"))
    ended = f"{record.ended_utc:%Y-%m-%d %H:%M:%S} UTC" if record.ended_utc else "not yet"
    console.print(Text(f"started {record.started_utc:%Y-%m-%d %H:%M:%S} UTC, ended {ended}"))
    if record.window_id:
        console.print(Text(f"in window {literal(record.window_id)}"))
    if record.verdict != "skipped":
        console.print(Text(impact_words(f)))
        table = Table(show_header=True, box=None)
        columns = [("recovery", _seconds_or_none(f, "recovery_s")),
                   ("full redundancy", _fmt(f.get("restore_s"), " s")),
                   ("errors", _pct(f.get("error_rate"))
                    + (f" over {f['error_span_s']:g} s" if f.get("error_span_s") else "")),
                   ("peak errors", _pct(f.get("peak_error_rate"))),
                   ("p95 before", _fmt(f.get("p95_ms_baseline"), " ms")),
                   ("p95 during", _fmt(f.get("p95_ms_during"), " ms")),
                   ("samples", _fmt(f.get("samples")))]
        if record.kind == "db-failover":
            columns[2:2] = [("failover", _fmt(f.get("failover_s"), " s")),
                            ("RTO", _fmt(f.get("rto_s"), " s")),
                            ("RPO rows", _fmt(f.get("rpo_rows"))), ("RPO", _fmt(f.get("rpo_s"), " s"))]
        if record.kind == "cpu-stress":
            columns[2:2] = [("scale-out", _fmt(f.get("scale_out_s"), " s")),
                            ("replica crashes", _fmt(f.get("replica_crashes")))]
        # One figure a line: readable at 80 columns whatever the kind.
        table.add_column("figure", no_wrap=True)
        table.add_column("value")
        for name, value in columns:
            table.add_row(name, value)
        console.print(table)
    if record.criteria:
        crit = Table(show_header=True, box=None)
        for col in ("criterion", "expected", "actual", "ok"):
            crit.add_column(col)
        for c in record.criteria:
            crit.add_row(Text(literal(c.name)), Text(literal(c.expected)),
                         Text(literal(c.actual)), "yes" if c.ok else "NO")
        console.print(crit)
    console.print(f"run id: {record.run_id}", highlight=False)


@click.command()
@click.argument("experiment", type=click.Path(path_type=Path))
@click.option("--cell", help="The one cell to run against.")
@cells_option
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the result.")
@click.option("--probe-hz", type=finite(0, 50, low_open=True),
              help="Override the probe rate (above 0, at most 50).")
@click.option("--baseline", "baseline_s", type=finite(0.5, 600),
              help="Override the baseline seconds (0.5 to 600).")
@click.option("--stability-window", "stability_window_s", type=finite(0, 600, low_open=True),
              help="Override the stability window (s, above 0, at most 600).")
@click.option("--recovery-timeout", "recovery_timeout_s", type=finite(0, 3600, low_open=True),
              help="Override the recovery timeout (s, above 0, at most 3600).")
@click.option("--error-span", "error_span_s", type=finite(1, 600),
              help="Override the span (s, from injection) of the error rate (1 to 600).")
@click.option("--window", "window_id", help="Record the run in this open chaos window.")
def run(experiment: Path, cell: str | None, cells_file: Path, store_url: str | None,
        as_json: bool, window_id: str | None, probe_hz: float | None, baseline_s: float | None,
        stability_window_s: float | None, recovery_timeout_s: float | None,
        error_span_s: float | None) -> None:
    """Run EXPERIMENT against one cell and measure its recovery.

    Exit 0 passed; 1 failed, aborted, not recovered or skipped; 2 invalid input; 3 internal.
    """
    from gameday.engine.runner import RunRequest, prepare, run_experiment

    request = RunRequest(experiment=experiment, cell=cell, cells_file=cells_file,
                         store_url=store_url, probe_hz=probe_hz, baseline_s=baseline_s,
                         stability_window_s=stability_window_s,
                         recovery_timeout_s=recovery_timeout_s, error_span_s=error_span_s,
                         window_id=window_id)
    stop = threading.Event()
    # Ctrl-C or SIGTERM: the run halts, reverts within a second, and is still recorded.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    live, show = _progress_renderer(progress_console())
    with exit_codes():
        prepared = prepare(request)  # bad input: exit 2 before the store is even opened
        open_store(store_url).close()
        if live is not None:
            with live:
                record = run_experiment(request, show, stop, prepared=prepared)
        else:
            record = run_experiment(request, show, stop, prepared=prepared)
    if as_json:
        print_json(run_json(record))
    else:
        print_summary(record, Console())
    sys.exit(EXIT_OK if record.verdict == "passed" else EXIT_FAILED)


VERDICTS = ("passed", "failed", "aborted", "not_recovered", "skipped")
VERDICT_COLOURS = {"passed": "green", "failed": "red", "aborted": "red",
                   "not_recovered": "red", "skipped": "yellow"}


def _one_of(option: str, value: str | None, known: Sequence[str], fix: str) -> None:
    if value is not None and value not in known:
        raise InputError(option, "one of " + (", ".join(known) or "(none yet)"), value, fix)


@click.command()
@store_option
@click.option("--cell", help="Only runs of this cell.")
@click.option("--kind", help="Only runs of this fault kind.")
@click.option("--verdict", help="Only runs with this verdict.")
@click.option("--since", help="Only runs started since: a span (90d, 12w, 36h) or an ISO date.")
@click.option("--window", "window_id", help="Only runs of this chaos window.")
@click.option("--environment", help="Only runs whose evidence came from this environment "
                                    "(sandbox, staging, production).")
@cells_option
@click.option("--limit", type=whole(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def runs(store_url: str | None, cell: str | None, kind: str | None, verdict: str | None,
         since: str | None, window_id: str | None, environment: str | None, cells_file: Path,
         limit: int, as_json: bool) -> None:
    """List stored runs, newest first. An unknown cell, kind, verdict or environment is
    exit 2."""
    from datetime import UTC, datetime

    from gameday.model.faults import FAULT_KINDS
    from gameday.model.figures import ENVIRONMENTS
    from gameday.reporting.reports import parse_since

    with exit_codes():
        _one_of("--kind", kind, FAULT_KINDS, "pass a fault kind gameday runs")
        _one_of("--verdict", verdict, VERDICTS, "pass a verdict a run can have")
        _one_of("--environment", environment, [*ENVIRONMENTS, "unknown"],
                "pass the environment the runs' evidence came from")
        start = None if since is None else parse_since(since, datetime.now(UTC))
        store = open_store(store_url, create=False)
        try:
            if cell is not None:
                known = set(store.run_cells())
                if cells_file.exists():
                    from gameday.config.cells import load_cells

                    known |= set(load_cells(cells_file))
                _one_of("--cell", cell, sorted(known),
                        "pass a cell with runs in this store or in the cells file")
            records = store.list_runs(cell=cell, kind=kind, verdict=verdict, since=start,
                                      window_id=window_id, environment=environment,
                                      limit=limit, with_journal=False)
        finally:
            store.close()
    if as_json:
        print_json([run_json(r) for r in records])
        return
    # Ids stay whole whatever the width: the other columns give way.
    table = Table(box=None)
    table.add_column("run id", no_wrap=True,
                     min_width=max((len(r.run_id) for r in records), default=6))
    for col in ("started (UTC)", "cell", "env", "kind", "verdict", "recovery"):
        table.add_column(col, no_wrap=True, overflow="ellipsis")
    table.add_column("reason", no_wrap=True, overflow="ellipsis", ratio=1)
    for r in records:
        outcome = r.verdict or r.status
        recovery = "-" if r.verdict == "skipped" or r.figures.get("impact") is None else \
            _seconds_or_none(r.figures, "recovery_s")
        table.add_row(r.run_id, f"{r.started_utc:%Y-%m-%d %H:%M:%S}", Text(literal(r.cell)),
                      r.environment, r.kind,
                      Text(outcome, style=VERDICT_COLOURS.get(outcome, "")), recovery,
                      Text(literal(r.reason or "")))
    Console().print(table)


@click.command()
@click.argument("run_id")
@store_option
@click.option("--json", "as_json", is_flag=True)
def show(run_id: str, store_url: str | None, as_json: bool) -> None:
    """Show one stored run: verdict, figures, criteria."""
    with exit_codes():
        store = open_store(store_url, create=False)
        record = store.get_run(run_id)
        faults = store.ledger_for_run(run_id)
        store.close()
        if record is None:
            raise InputError("RUN_ID", "the id of a stored run", run_id,
                             "`gameday runs` lists the stored runs")
    if as_json:
        data = run_json(record)
        data["figures"] = record.figures
        data["faults"] = [{"fault_id": f.fault_id, "kind": f.kind, "state": f.state,
                           "applied_utc": f.applied_utc, "reverted_utc": f.reverted_utc,
                           "revert_reason": f.revert_reason} for f in faults]
        print_json(data)
        return
    print_summary(record, Console())
    for f in faults:
        click.echo(literal(f"fault {f.fault_id} {f.kind}: {f.state}"
                           + (f" ({f.revert_reason})" if f.revert_reason else "")))


@click.command()
@store_option
@click.option("--json", "as_json", is_flag=True)
def recover(store_url: str | None, as_json: bool) -> None:
    """Revert every fault in the ledger that is not reverted (what a crash left behind)."""
    from gameday.engine.reconcile import reconcile
    from gameday.store import Store, resolve_store_url

    with exit_codes():
        store = Store.open(resolve_store_url(store_url))
        result = reconcile(store)
        left = store.ledger_unreverted()
        store.close()
    if as_json:
        print_json({"reverted": [f.fault_id for f in result.faults],
                    "interrupted_runs": result.runs,
                    "lease_released": result.lease_released,
                    "still_active": [f.fault_id for f in left]})
        return
    for fault in result.faults:
        click.echo(f"reverted {fault.fault_id} ({fault.kind} on {fault.cell})")
    for run_id in result.runs:
        click.echo(f"marked run {run_id} interrupted")
    if result.lease_released:
        click.echo(f"released the fault lease of a dead process ({result.lease_released})")
    for fault in left:
        click.echo(f"still active (its run is going on): {fault.fault_id}")
    if not result.faults and not result.runs and not result.lease_released:
        click.echo("nothing to recover: every fault in the ledger is reverted")


__all__ = ["recover", "run", "runs", "show", "validate"]
