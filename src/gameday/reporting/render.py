"""Render report data (from ``context``) as HTML, Markdown, JSON and PDF; write them to a folder.

Rendering only: no figure is computed here. HTML escapes everything (Jinja autoescape) and is
self-contained (inline CSS and SVG, nothing fetched). Markdown escapes every expression it
prints (``finalize``), so a pod name or an error text cannot inject markup either way.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from gameday.analytics.timeline import Bucket
from gameday.errors import InputError
from gameday.reporting import charts
from gameday.reporting.numbers import NO_VALUE, fmt

HTML_TEMPLATES = {"run": "run.html.j2", "window": "window.html.j2",
                  "resilience": "resilience.html.j2"}
MD_TEMPLATES = {"run": "run.md.j2", "window": "window.md.j2", "resilience": "resilience.md.j2"}
# Inline markup of CommonMark/GFM (emphasis, code, links, images, tables, strikethrough). Every
# expression stands mid-line in our templates, so line-start markup (#, -, 1.) cannot form.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def _number_html(key: str, value: Any, unit: str = "") -> Markup:
    """A figure with its exact value beside the shown text, for readers' tools and our tests."""
    raw = json.dumps(value if not (isinstance(value, float) and not math.isfinite(value)) else None)
    return Markup('<span class="gd-num" data-key="{}" data-value="{}" data-unit="{}">{}</span>'
                  ).format(key, raw, unit, fmt(value, unit))


def _number_md(key: str, value: Any, unit: str = "") -> str:
    return fmt(value, unit)


def md_escape(value: Any) -> str:
    """Text safe in Markdown, tables included: HTML entities, markup characters escaped,
    one line."""
    if value is None:
        return ""
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = " ".join(text.split())
    return _MD_SPECIAL.sub(r"\\\1", text)


def _md_finalize(value: Any) -> Any:
    return md_escape(value)


def _short_time(value: str | None) -> str:
    return NO_VALUE if not value else value.replace("T", " ")[:19] + " UTC"


def _environment(markdown: bool) -> Environment:
    env = Environment(
        loader=PackageLoader("gameday.reporting", "templates"),
        autoescape=False if markdown else select_autoescape(["j2", "html"], default=True),
        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        finalize=_md_finalize if markdown else None, keep_trailing_newline=True,
    )
    env.globals["n"] = _number_md if markdown else _number_html
    env.globals["fmt"] = fmt
    env.filters["when"] = _short_time
    return env


_HTML = _environment(markdown=False)
_MD = _environment(markdown=True)


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
            tolerance_ms=context["figures"]["latency_tolerance_ms"],
            title="Success ratio and p95 latency over the run"))
    elif kind == "resilience":
        trend = context["mttr_trend"]
        out["mttr_trend"] = Markup(charts.line_chart_svg(
            trend["weeks"], [(s["name"], s["values"]) for s in trend["series"]],
            y_label="MTTR (s)", title="Mean time to recover per week"))
        rates = context["pass_rate"]
        values = {(r["cell"], r["kind"]): r["rate"] for r in rates["by_cell_kind"]}
        counts = {(r["cell"], r["kind"]): r["evidence"] for r in rates["by_cell_kind"]}
        out["pass_heatmap"] = Markup(charts.heatmap_svg(
            rates["cells"], rates["kinds"], values, counts=counts,
            title="Pass rate per cell and experiment kind"))
    return out


def render_html(context: dict[str, Any]) -> str:
    template = _HTML.get_template(HTML_TEMPLATES[context["report"]])
    return template.render(report=context, charts=_charts(context))


def render_markdown(context: dict[str, Any]) -> str:
    return _MD.get_template(MD_TEMPLATES[context["report"]]).render(report=context)


def render_json(context: dict[str, Any]) -> str:
    return json.dumps(context, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def pdf_available() -> bool:
    try:
        import weasyprint  # type: ignore[import-not-found,import-untyped,unused-ignore]  # noqa: F401
    except (ImportError, OSError):  # OSError: the wheel is there but Pango is not
        return False
    return True


def require_pdf() -> None:
    """Before anything is written: --pdf needs the optional extra."""
    if not pdf_available():
        raise InputError("--pdf", "WeasyPrint, the optional PDF renderer",
                         "it is not installed (or its Pango libraries are missing)",
                         "pip install 'gameday-runner[pdf]' (Debian: apt-get install "
                         "libpango-1.0-0 libpangoft2-1.0-0), or leave out --pdf")


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


def write_report(context: dict[str, Any], folder: Path, pdf: bool = False) -> ReportFiles:
    """Write index.html, report.md, report.json (and report.pdf) into ``folder``."""
    if pdf:
        require_pdf()
    check_folder(folder)
    html = render_html(context)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError, PermissionError) as exc:
        raise InputError("--out", "a folder gameday may create", f"{folder}: {exc.strerror}",
                         "pass a folder path to --out") from exc
    files = ReportFiles(folder, folder / "index.html", folder / "report.md", folder / "report.json")
    files.html.write_text(html, encoding="utf-8")
    files.markdown.write_text(render_markdown(context), encoding="utf-8")
    files.json.write_text(render_json(context), encoding="utf-8")
    if not pdf:
        return files
    import weasyprint

    target = folder / "report.pdf"
    weasyprint.HTML(string=html, base_url=str(folder)).write_pdf(str(target))
    return ReportFiles(files.folder, files.html, files.markdown, files.json, target)


__all__ = ["ReportFiles", "check_folder", "escape", "fmt", "md_escape", "render_html", "render_json",
           "render_markdown", "require_pdf", "write_report"]
