"""Render report data (from ``context``) as HTML, Markdown, JSON and PDF; write them to a folder.

Rendering only: no figure is computed here. HTML escapes everything (Jinja autoescape) and is
self-contained (inline CSS and SVG, nothing fetched). Markdown escapes every expression it
prints (``finalize``), so a pod name or an error text cannot inject markup either way.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemBytecodeCache, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from gameday import __version__
from gameday.analytics.timeline import Bucket
from gameday.collections_paused import no_collections
from gameday.errors import GamedayError, InputError
from gameday.files import private_dirs
from gameday.forked import Forked, ForkedError, cpus, may_fork
from gameday.reporting import charts, links
from gameday.reporting.context import REPORT_SCHEMA_VERSION
from gameday.reporting.numbers import NO_VALUE, fmt
from gameday.reporting.planned import BuildReports, PlannedReport

HTML_TEMPLATES = {"run": "run.html.j2", "window": "window.html.j2",
                  "resilience": "resilience.html.j2"}
MD_TEMPLATES = {"run": "run.md.j2", "window": "window.md.j2", "resilience": "resilience.md.j2"}
# Inline markup of CommonMark/GFM (emphasis, code, links, images, tables, strikethrough). Every
# expression stands mid-line in our templates, so line-start markup (#, -, 1.) cannot form.
_MD_SPECIAL = re.compile(r"([\\`*\[\]|~])")
# An underscore opens or closes emphasis only at a word's edge: cell_serves stays as it is.
_MD_EDGE_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")
# What a Markdown renderer would take as raw HTML, an autolink or a character reference. Only a
# text holding one of these is written with entities; plain words (a & b, p95 < 250 ms) stay plain.
_MD_HTML_LIKE = re.compile(r"<[A-Za-z/!?]|&(?:#[0-9]+|#[xX][0-9A-Fa-f]+|[A-Za-z][A-Za-z0-9]*);")
# Block markup a value could start if a template ever printed it at the start of a line.
_MD_LINE_START = re.compile(r"^(?:#{1,6}(?=\s|$)|>|[-+](?=\s|$)|=+$|-+$|\d+[.)](?=\s|$))")


def _number_html(key: str, value: Any, unit: str = "") -> Markup:
    """A figure with its exact value beside the shown text, for readers' tools and our tests."""
    kind = type(value)
    if kind is float:  # json.dumps, without its encoder made anew for every number
        raw = float.__repr__(value) if math.isfinite(value) else "null"
    elif kind is int:
        raw = int.__repr__(value)
    else:
        raw = json.dumps(value if not (isinstance(value, float) and not math.isfinite(value)) else None)
    # escape() each part, as Markup.format would, at a tenth of its cost: a fleet's report
    # prints some 25,000 of these
    return Markup(f'<span class="gd-num" data-key="{escape(str(key))}" data-value="{escape(raw)}" '
                  f'data-unit="{escape(str(unit))}">{escape(fmt(value, unit))}</span>')


def _number_md(key: str, value: Any, unit: str = "") -> str:
    return fmt(value, unit)


def md_escape(value: Any) -> str:
    """Text safe in Markdown, tables included, that still reads as plain text: one line;
    inline markup characters escaped only where they could form markup; HTML entities only for
    a text that holds something a renderer would take as HTML (a tag, a reference)."""
    if value is None:
        return ""
    raw = str(value)
    escaped = _MD_ESCAPED.get(raw)
    if escaped is None:  # a report repeats its words (cells, kinds, verdicts): escape each once
        if len(_MD_ESCAPED) >= 65536:
            _MD_ESCAPED.clear()
        escaped = _MD_ESCAPED[raw] = _md_escape(raw)
    return escaped


_MD_ESCAPED: dict[str, str] = {}


def _md_escape(raw: str) -> str:
    text = " ".join(raw.split())
    if _MD_HTML_LIKE.search(text):
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = _MD_EDGE_UNDERSCORE.sub(r"\\_", text)
    return _MD_LINE_START.sub(_escape_line_start, text)


def _escape_line_start(match: re.Match[str]) -> str:
    mark = match.group(0)
    return mark[:-1] + "\\" + mark[-1] if mark[0].isdigit() else "\\" + mark


def _md_finalize(value: Any) -> Any:
    return md_escape(value)


def _short_time(value: str | None) -> str:
    return NO_VALUE if not value else value.replace("T", " ")[:19] + " UTC"


TEMPLATE_CACHE_ENV = "GAMEDAY_TEMPLATE_CACHE"  # a folder for compiled templates, or "off"


def _template_cache(kind: str) -> FileSystemBytecodeCache | None:
    """Where compiled templates are kept between processes: each `gameday report` would compile
    its templates again, a tenth of a second of every call. $GAMEDAY_TEMPLATE_CACHE, else
    $XDG_CACHE_HOME/gameday (~/.cache/gameday), in a folder per environment's settings (Jinja
    keys a compiled template by its name and source only). Compiled templates are code: the
    folder must be this user's alone (0700, theirs), else none is used."""
    chosen = os.environ.get(TEMPLATE_CACHE_ENV, "")
    if chosen == "off":
        return None
    root = Path(chosen) if chosen else \
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gameday"
    folder = root / f"templates-{__version__}-{kind}"
    try:
        private_dirs(folder)
        found = folder.stat()
    except (OSError, RuntimeError):  # RuntimeError: no home directory
        return None
    if found.st_uid != os.getuid() or found.st_mode & 0o077:
        return None
    return FileSystemBytecodeCache(str(folder))


def _environment(markdown: bool) -> Environment:
    settings: dict[str, Any] = {
        "autoescape": False if markdown else select_autoescape(["j2", "html"], default=True),
        "trim_blocks": True, "lstrip_blocks": True,
        "finalize": _md_finalize if markdown else None, "keep_trailing_newline": True}
    # what the compiled code depends on, in the cache folder's name
    digest = hashlib.sha256(repr(sorted((k, getattr(v, "__name__", v)) for k, v in settings.items()))
                            .encode()).hexdigest()[:12]
    env = Environment(loader=PackageLoader("gameday.reporting", "templates"), undefined=StrictUndefined,
                      bytecode_cache=_template_cache(f"{'md' if markdown else 'html'}-{digest}"), **settings)
    env.globals["n"] = _number_md if markdown else _number_html
    env.globals["fmt"] = fmt
    env.filters["when"] = _short_time
    return env


_HTML = _environment(markdown=False)
_MD = _environment(markdown=True)


def _timeline_events(context: dict[str, Any]) -> list[tuple[float, str]]:
    """The target's own events for the run's timeline: ``timeline.events`` ({t, label}) when the
    run context has them, else its ground-truth (target) events ({t, name})."""
    tl = context["timeline"]
    rows = tl.get("events")
    if rows is None:
        rows = (context.get("ground_truth") or {}).get("events") or []
    out = []
    for row in rows:
        t, label = row.get("t"), row.get("label") or row.get("name")
        if isinstance(t, int | float) and not isinstance(t, bool) and label:
            out.append((float(t), str(label).replace("_", " ")))
    return out


def _target(value: Any, unit: str) -> tuple[float, str] | None:
    """A chart's target line from report data: {value, label}, or a bare number."""
    if isinstance(value, dict) and isinstance(value.get("value"), int | float):
        return float(value["value"]), str(value.get("label") or f"target {fmt(value['value'], unit)}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value), f"target {fmt(value, unit)}"
    return None


def _heatmap_marks(context: dict[str, Any]) -> dict[tuple[str, str], str]:
    """Cells the resilience data marks (e.g. excluded): ``pass_rate.by_cell_kind[].mark``, or a
    coverage row ({cell, kind, status}) whose status is "excluded"."""
    marks: dict[tuple[str, str], str] = {}
    for row in context["pass_rate"]["by_cell_kind"]:
        if row.get("mark"):
            marks[(row["cell"], row["kind"])] = str(row["mark"])
    coverage = context.get("coverage")
    rows = coverage.get("cells") if isinstance(coverage, dict) else coverage
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and row.get("status") == "excluded":
            marks.setdefault((str(row.get("cell")), str(row.get("kind"))), "excluded")
    return marks


def _charts(context: dict[str, Any]) -> dict[str, Markup]:
    """The report's charts as inline SVG (escaped inside by the chart functions)."""
    kind = context["report"]
    out: dict[str, Markup] = {}
    if kind == "run":
        tl = context["timeline"]
        buckets = [Bucket(**b) for b in tl["buckets"]]
        fault = (float(tl["fault"][0]), float(tl["fault"][1])) if tl["fault"] else None
        out["timeline"] = Markup(charts.timeline_svg(
            buckets, fault=fault,
            markers=[(m["t"], m["label"]) for m in tl["markers"]],
            tolerance_ms=context["figures"].get("latency_tolerance_ms"),
            events=_timeline_events(context),
            title="Success ratio and p95 latency over the run"))
    elif kind == "resilience":
        trend = context["mttr_trend"]
        out["mttr_trend"] = Markup(charts.line_chart_svg(
            trend["weeks"], [(s["name"], s["values"]) for s in trend["series"]],
            y_label="MTTR (s)", title="Mean time to recover per week",
            target=_target(trend.get("target"), "s")))
        rates = context["pass_rate"]
        values = {(r["cell"], r["kind"]): r["rate"] for r in rates["by_cell_kind"]}
        counts = {(r["cell"], r["kind"]): r["evidence"] for r in rates["by_cell_kind"]}
        out["pass_heatmap"] = Markup(charts.heatmap_svg(
            rates["cells"], rates["kinds"], values, counts=counts, marks=_heatmap_marks(context),
            title="Pass rate per cell and experiment kind"))
    return out


def render_html(context: dict[str, Any]) -> str:
    template = _HTML.get_template(HTML_TEMPLATES[context["report"]])
    return template.render(report=context, charts=_charts(context))


def render_markdown(context: dict[str, Any]) -> str:
    return _MD.get_template(MD_TEMPLATES[context["report"]]).render(report=context)


def render_json(context: dict[str, Any]) -> str:
    """One top-level key a line, its value on that line: json's C encoder writes the values
    (with ``indent`` it falls back to pure Python, several times slower on a fleet's report)."""
    lines = [f"  {json.dumps(str(key), ensure_ascii=False)}: "
             f"{json.dumps(value, ensure_ascii=False, allow_nan=False)}"
             for key, value in context.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


# Chromium prints the HTML exactly as a reader's browser shows it (print CSS in base.html.j2).
BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
BROWSER_ENV = "GAMEDAY_CHROMIUM"  # the browser to print with, when it is not on PATH
PDF_TIMEOUT_S = 120.0


class PdfError(GamedayError):
    """The browser could not print the report (exit 3)."""


def find_browser() -> str | None:
    """The headless Chromium that prints PDFs: $GAMEDAY_CHROMIUM, else the first on PATH."""
    chosen = os.environ.get(BROWSER_ENV)
    if chosen:
        return shutil.which(chosen)
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def pdf_available() -> bool:
    return find_browser() is not None


def require_pdf() -> None:
    """Before anything is written: --pdf needs a headless Chromium."""
    if not pdf_available():
        chosen = os.environ.get(BROWSER_ENV)
        raise InputError("--pdf", "a headless Chromium to print the PDF with",
                         f"{BROWSER_ENV}={chosen} is not an executable" if chosen else
                         "none of " + ", ".join(BROWSERS) + " on PATH",
                         "`make browser` (Debian, as root: apt-get install "
                         f"chromium-headless-shell), set {BROWSER_ENV} to the browser, "
                         "or leave out --pdf")


def print_pdf(html: Path, target: Path, timeout_s: float = PDF_TIMEOUT_S) -> Path:
    """Print ``html`` (a written report, so its relative links resolve) to ``target``.

    The browser's own output is captured, never shown; a failure is a PdfError that says why.
    """
    browser = find_browser()
    if browser is None:
        require_pdf()
    assert browser is not None
    partial = target.with_name(f".{target.name}.partial")
    with tempfile.TemporaryDirectory(prefix="gameday-chromium-") as profile:
        command = [browser, "--headless", "--disable-gpu", "--no-first-run",
                   "--no-default-browser-check", "--disable-extensions", "--disable-sync",
                   "--disable-background-networking", "--disable-breakpad",
                   f"--user-data-dir={profile}", "--no-pdf-header-footer",
                   f"--print-to-pdf={partial}", html.resolve().as_uri()]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.insert(1, "--no-sandbox")  # Chromium refuses root without it
        try:
            result = subprocess.run(command, capture_output=True, text=True, errors="replace",
                                    timeout=timeout_s, stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired as exc:
            partial.unlink(missing_ok=True)
            raise PdfError(f"--pdf: {browser} did not print {html} within {timeout_s:g} s; "
                           "the HTML and Markdown reports are written") from exc
        except OSError as exc:
            raise PdfError(f"--pdf: {browser} could not start: {exc.strerror}") from exc
    try:
        printed = partial.read_bytes()[:5] == b"%PDF-"
    except OSError:
        printed = False
    if result.returncode != 0 or not printed:
        partial.unlink(missing_ok=True)
        lines = [x for x in (result.stderr + result.stdout).splitlines() if x.strip()]
        why = lines[-1].strip()[:300] if lines else f"exit status {result.returncode}"
        raise PdfError(f"--pdf: {browser} did not print {html} (exit {result.returncode}: "
                       f"{why}); the HTML and Markdown reports are written")
    partial.replace(target)
    return target


@dataclass(frozen=True)
class ReportFiles:
    folder: Path
    html: Path
    markdown: Path
    json: Path
    pdf: Path | None = None


def check_folder(folder: Path) -> None:
    """Refuse, before anything is read, an --out that cannot hold a report."""
    parent = folder
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError("--out", "a folder (new, or one to write the report into)",
                         f"{parent} is a file", "pass a folder path to --out")


def render_index(listing: links.Listing, now: datetime) -> str:
    """``<root>/index.html``: every report in the root (kind, title, id, generated, link)."""
    # From the loader, so it is compiled once a process (from_string compiled it every call).
    html = _HTML.get_template("index.html.j2").render(report={
        "title": "Reports", "generated_at": now.isoformat(), "schema_version": REPORT_SCHEMA_VERSION,
        "links": {"index": None}, "entries": [asdict(e) for e in listing.entries],
        "count": len(listing.entries), "unreadable": listing.unreadable,
        "not_listed": listing.not_listed, "limit": links.MAX_INDEXED}, charts={})
    return html.replace("<head>\n", "<head>\n" + links.INDEX_MARK + "\n", 1)


def _markdown_and_json(context: dict[str, Any]) -> tuple[str, str]:
    return render_markdown(context), render_json(context)


def _write_files(context: dict[str, Any], folder: Path) -> ReportFiles:
    check_folder(folder)
    if context.get("report") == "resilience" and may_fork():
        # A fleet's report is megabytes of each: a forked child renders two while this renders
        # the page, and nothing is written before all three are rendered.
        with Forked(_markdown_and_json, context, name="gameday-render") as other:
            html = render_html(context)
            try:
                markdown, data = other.result()
            except ForkedError as exc:
                raise RuntimeError(f"rendering the Markdown and JSON reports failed: {exc.message}") from None
    else:
        html = render_html(context)
        markdown, data = _markdown_and_json(context)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError, PermissionError) as exc:
        raise InputError("--out", "a folder gameday may create", f"{folder}: {exc.strerror}",
                         "pass a folder path to --out") from exc
    files = ReportFiles(folder, folder / "index.html", folder / "report.md", folder / "report.json")
    files.html.write_text(html, encoding="utf-8")
    files.markdown.write_text(markdown, encoding="utf-8")
    files.json.write_text(data, encoding="utf-8")
    return files


# Below this many reports one process is done before a forked child has started.
MIN_FORKED_REPORTS = 8
BUILD_CHUNK = 16  # reports whose data is read and held at once (a run's timeline can be MBs)


def write_reports(planned: Sequence[PlannedReport], build: BuildReports, pdf: bool = False,
                  in_root: bool = True) -> list[ReportFiles]:
    """Write several reports into one root folder, each as ``write_report`` writes one, each
    linking to the others, and the root's index once. ``build`` makes their data, BUILD_CHUNK
    at a time; one process per CPU builds and renders a share (a forked child each, from
    MIN_FORKED_REPORTS reports and with no other thread here). The reports are written without
    companions: run reports have none."""
    roots = {p.folder.parent for p in planned}
    if len(roots) > 1:
        raise ValueError(f"write_reports writes into one root folder, not {sorted(roots)}")
    if pdf:
        require_pdf()
    for p in planned:
        check_folder(p.folder)
    if not planned:
        return []
    root = roots.pop()
    rendered = {(p.kind, p.ident): p.folder for p in planned}
    index = _index_wanted(root, in_root)

    def write(part: Sequence[PlannedReport]) -> list[ReportFiles]:
        written = []
        for i in range(0, len(part), BUILD_CHUNK):
            chunk = part[i:i + BUILD_CHUNK]
            for p, context in zip(chunk, build(chunk), strict=True):
                written.append(_write_files(links.attach_links(context, p.folder, rendered, index),
                                            p.folder))
        return written

    shares = cpus() if len(planned) >= MIN_FORKED_REPORTS and may_fork() else 1
    parts = [planned[i::shares] for i in range(shares)]  # alike reports, alike shares
    with no_collections(), ExitStack() as children:
        others = [children.enter_context(Forked(write, part, name="gameday-render"))
                  for part in parts[1:]]
        try:
            written = [write(parts[0])]
            for other in others:
                try:
                    written.append(other.result())
                except ForkedError as exc:
                    raise RenderError(f"writing {len(planned)} reports: {exc.kind}: "
                                      f"{exc.message}") from None
            by_folder = {files.folder: files for part in written for files in part}
            files = [by_folder[p.folder] for p in planned]
            if pdf:
                files = [_with_pdf(f) for f in files]
        finally:  # the index lists whatever was written, even when a report failed
            if index:
                _write_index(root)
    return files


class RenderError(GamedayError):
    """A forked renderer failed (exit 3): what it raised, and why."""


def write_report(context: dict[str, Any], folder: Path, pdf: bool = False,
                 related: links.Builder | None = None, in_root: bool = True) -> ReportFiles:
    """Write index.html, report.md, report.json (and report.pdf) into ``folder``.

    Links to the other reports in the reports root (``folder``'s parent) are added here, and
    with ``related`` (links.store_builder) the missing reports this one names are written with
    it (links.plan_companions). ``<root>/index.html`` is rewritten to list every report there.
    Without ``in_root`` (a folder the user named: its parent is not ours) nothing is written
    beside the report, and an index there is updated only if it is one of ours already.
    """
    with no_collections():  # rendering makes no cycles that outlive it; a fleet's report is large
        return _write_report(context, folder, pdf, related, in_root)


def _write_report(context: dict[str, Any], folder: Path, pdf: bool, related: links.Builder | None,
                  in_root: bool) -> ReportFiles:
    if pdf:
        require_pdf()
    check_folder(folder)
    root = folder.parent
    companions = links.plan_companions(context, folder, related) if related and in_root \
        else links.Companions((), 0)
    rendered = {ident: target for target, other in companions.reports
                if (ident := links.identity(other)) is not None}
    if (own := links.identity(context)) is not None:
        rendered[own] = folder
    index = _index_wanted(root, in_root)
    for target, other in companions.reports:
        _write_files(links.attach_links(other, target, rendered, index), target)
    files = _write_files(links.attach_links(context, folder, rendered, index,
                                            companions.not_rendered), folder)
    try:
        if pdf:
            files = _with_pdf(files)
    finally:  # the index lists the report (and its PDF, when printed) even if printing failed
        if index:
            _write_index(root)
    return files


def _index_wanted(root: Path, in_root: bool) -> bool:
    """Whether ``<root>/index.html`` is (re)written: ours to write, and in a reports root or
    already there."""
    return links.index_writable(root) and (in_root or (root / "index.html").is_file())


def _write_index(root: Path) -> None:
    links.write_atomic(root / "index.html", render_index(links.scan_reports(root), datetime.now(UTC)))


def _with_pdf(files: ReportFiles) -> ReportFiles:
    return ReportFiles(files.folder, files.html, files.markdown, files.json,
                       print_pdf(files.html, files.folder / "report.pdf"))


__all__ = ["PdfError", "PlannedReport", "RenderError", "ReportFiles", "check_folder", "escape", "fmt",
           "md_escape", "print_pdf", "render_html", "render_index", "render_json", "render_markdown",
           "require_pdf", "write_report", "write_reports"]
