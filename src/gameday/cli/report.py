"""``gameday report run | window | resilience``: HTML, Markdown, JSON (and PDF) reports."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gameday.cli.output import exit_codes, literal, print_json
from gameday.cli.stores import open_store, store_option

if TYPE_CHECKING:
    from gameday.analytics.coverage import ScheduleOutlook
    from gameday.reporting.render import ReportFiles

out_option = click.option("--out", type=click.Path(path_type=Path),
                          help="Folder to write into (default reports/<kind>-<id or date>/).")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print the written files as one JSON object.")
pdf_option = click.option("--pdf", is_flag=True,
                          help="Also write report.pdf, printed by headless Chromium "
                               "(`make browser` installs it; or set GAMEDAY_CHROMIUM).")


def _files_json(files: ReportFiles) -> dict[str, str | None]:
    return {"html": str(files.html), "markdown": str(files.markdown), "json": str(files.json),
            "pdf": str(files.pdf) if files.pdf else None}


def _echo_files(files: ReportFiles) -> None:
    click.echo(literal(files.html))
    for extra in (files.markdown, files.json, files.pdf):
        if extra is not None:
            click.echo(literal(extra))


def _written(store_url: str | None, folder: Callable[[datetime], Path], pdf: bool,
             write: Callable[[Any, datetime], list[ReportFiles]]) -> list[ReportFiles]:
    """Open the store and ``write(store, now)`` the reports into ``folder(now)``, bad input
    refused first (exit 2, nothing written). The store stays open while they are written: the
    reports they link to are written with it."""
    from gameday.reporting.render import check_folder, require_pdf

    now = datetime.now(UTC)
    with exit_codes():
        if pdf:
            require_pdf()  # before anything is read or written
        check_folder(folder(now))
        store = open_store(store_url, create=False)
        try:
            return write(store, now)
        finally:
            store.close()


def _write(build: Callable[[Any, datetime], dict[str, Any]], store_url: str | None,
           out: Path | None, default: Callable[[datetime], Path], pdf: bool,
           as_json: bool) -> None:
    from gameday.reporting.links import is_reports_root, store_builder
    from gameday.reporting.render import write_report

    def write(store: Any, now: datetime) -> list[ReportFiles]:
        # --out in a folder of the user's (not a reports root): nothing is written beside it.
        folder = out or default(now)
        return [write_report(build(store, now), folder, pdf=pdf, related=store_builder(store, now),
                             in_root=out is None or is_reports_root(folder.parent, folder))]

    files = _written(store_url, lambda now: out or default(now), pdf, write)[0]
    if as_json:
        print_json(_files_json(files))
        return
    _echo_files(files)


@click.group()
def report() -> None:
    """Render reports: one run, one chaos window, or resilience over a period."""


@report.command("run")
@click.argument("run_ids", metavar="RUN_ID...", nargs=-1, required=True)
@store_option
@click.option("--out", type=click.Path(path_type=Path),
              help="Folder to write into (default reports/run-<id>/); with several RUN_IDs, "
                   "the folder that gets a run-<id> folder for each (default reports/).")
@pdf_option
@json_option
def run_(run_ids: tuple[str, ...], store_url: str | None, out: Path | None, pdf: bool,
         as_json: bool) -> None:
    """The report of a run: verdict, criteria, timeline, figures, journal, reverts. Several
    RUN_IDs: one report each, written side by side by one process per CPU, the index once."""
    from gameday.reporting.reports import default_folder, run_report

    if len(run_ids) == 1:
        run_id = run_ids[0]
        _write(lambda store, now: run_report(store, run_id, now), store_url, out,
               lambda now: default_folder("run", run_id), pdf, as_json)
        return
    _write_runs(run_ids, store_url, out, pdf, as_json)


def _write_runs(run_ids: Sequence[str], store_url: str | None, root: Path | None, pdf: bool,
                as_json: bool) -> None:
    from gameday.reporting.links import is_reports_root
    from gameday.reporting.render import write_reports
    from gameday.reporting.reports import DEFAULT_REPORTS_DIR, planned_run_reports

    def write(store: Any, now: datetime) -> list[ReportFiles]:
        planned, build = planned_run_reports(store, run_ids, now, root)
        # --out names the folder that holds them: it gets an index only if it is new or holds
        # nothing but reports (never a folder of the user's such as /tmp).
        return write_reports(planned, build, pdf=pdf,
                             in_root=root is None or is_reports_root(root, root))

    written = _written(store_url, lambda _now: root or DEFAULT_REPORTS_DIR, pdf, write)
    if as_json:
        print_json([_files_json(files) for files in written])
        return
    for files in written:
        _echo_files(files)


@report.command()
@click.argument("window_id")
@store_option
@out_option
@pdf_option
@json_option
def window(window_id: str, store_url: str | None, out: Path | None, pdf: bool,
           as_json: bool) -> None:
    """The report of one chaos window: every run, every skipped cell and why."""
    from gameday.reporting.reports import default_folder, window_report

    _write(lambda store, now: window_report(store, window_id, now), store_url, out,
           lambda now: default_folder("window", window_id), pdf, as_json)


@report.command()
@click.option("--since", default="90d", show_default=True,
              help="Start of the period: a span (90d, 12w, 36h) or an ISO date.")
@click.option("--cells", multiple=True, help="Only these cells (repeat, or comma-separated).")
@click.option("--environment", "environments", multiple=True,
              type=click.Choice(["sandbox", "staging", "production", "unknown"]),
              help="Only runs from this environment (repeat for several; default all, each "
                   "figure labelled with where its evidence came from).")
@click.option("--schedule", "schedule_file", type=click.Path(path_type=Path),
              help="The schedule whose next 4 weeks the coverage shows (default "
                   "schedules/weekly.yaml when it exists).")
@click.option("--no-schedule", is_flag=True,
              help="Coverage from the runs alone (what ran, what was skipped), no plan.")
@store_option
@out_option
@pdf_option
@json_option
def resilience(since: str, cells: tuple[str, ...], environments: tuple[str, ...],
               schedule_file: Path | None, no_schedule: bool, store_url: str | None,
               out: Path | None, pdf: bool, as_json: bool) -> None:
    """The resilience report for leadership over a period (default the last 90 days)."""
    from gameday.config import DEFAULT_SCHEDULE_FILE
    from gameday.reporting.reports import default_folder, parse_since, resilience_report

    names = [c.strip() for value in cells for c in value.split(",") if c.strip()]
    now = datetime.now(UTC)
    with exit_codes():
        start = parse_since(since, now)  # bad input: exit 2 before the store is opened
        path = schedule_file if schedule_file is not None else (
            DEFAULT_SCHEDULE_FILE if DEFAULT_SCHEDULE_FILE.is_file() and not no_schedule
            else None)
        outlook: Callable[[datetime], ScheduleOutlook] | None = None
        if path is not None:  # the schedule's parsing and the scheduler only when there is one
            from gameday.config.schedule import load_schedule
            from gameday.scheduler.outlook import schedule_outlook

            outlook = partial(schedule_outlook, load_schedule(path))  # a bad file: exit 2
    _write(lambda store, at: resilience_report(
        store, at, start, None, names or None, outlook(at) if outlook is not None else None,
        list(environments) or None),
        store_url, out, lambda at: default_folder("resilience", f"{at:%Y-%m-%d}"), pdf,
        as_json)
