"""Links between reports, decided when a report is written (never by the pure context builders).

Reports live side by side in one reports root: ``<root>/<kind>-<id>/index.html``. A report
links to another only when that one's file exists in the same root, or is written with it:

    plan_companions(context, folder, build)  -> the missing reports to render with this one
    attach_links(context, folder, rendered)  -> context + {"links": {"runs": {id: href},
                                                "windows": {id: href}, "index": href}}
    scan_reports(root)                       -> what ``<root>/index.html`` lists, newest first

A window report brings the run reports of its runs that are missing (at most MAX_COMPANIONS); a
resilience report the first RESILIENCE_COMPANIONS run reports it names, and links to window
reports that exist. The rest stay plain ids, and ``links["not_rendered"]`` says how many.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from gameday.errors import InputError
from gameday.reporting.reports import default_folder, run_report, window_report

if TYPE_CHECKING:
    from gameday.store import Store

MAX_COMPANIONS = 200
RESILIENCE_COMPANIONS = 10
MAX_INDEXED = 1000  # the newest report folders the index reads; older ones are counted
INDEX_MARK = '<meta name="gameday-index" content="1">'
KINDS = ("run", "window", "resilience")
_GROUP = {"run": "runs", "window": "windows"}
# The keys that name another report anywhere in a context: run_id, last_run_id, run_ids ...
_ID_KEY = re.compile(r"(?:^|_)(run|window)_ids?$")

Builder = Callable[[str, str], dict[str, Any] | None]
"""Build the context of another report, ``(kind, id) -> context``, or None when unknown."""


def store_builder(store: Store, now: datetime) -> Builder:
    """A Builder over an open store: run and window reports as ``gameday report`` writes them."""
    def build(kind: str, ident: str) -> dict[str, Any] | None:
        try:
            if kind == "run":
                return run_report(store, ident, now)
            if kind == "window":
                return window_report(store, ident, now)
        except InputError:  # an id the report names that is not (or no longer) in the store
            return None
        return None
    return build


def identity(context: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, id) of a run or window report; None for a resilience report."""
    kind = context.get("report")
    if kind == "run":
        return "run", str((context.get("run") or {}).get("run_id"))
    if kind == "window":
        return "window", str((context.get("window") or {}).get("window_id"))
    return None


_ID_KINDS: dict[str, str | None] = {}  # key -> what it names: a report's few keys, matched once


def _id_kind(key: str) -> str | None:
    """"run" or "window" when ``key`` names report ids (run_id, last_run_id, run_ids ...)."""
    if key in _ID_KINDS:
        return _ID_KINDS[key]
    if len(_ID_KINDS) > 4096:
        _ID_KINDS.clear()
    match = _ID_KEY.search(key)
    found = _ID_KINDS[key] = match.group(1) if match else None
    return found


_SCALARS: frozenset[type] = frozenset({int, float, bool, type(None)})


def _collect(value: Any, kind: str | None, out: list[tuple[str, str]]) -> None:
    """The (kind, id) pairs under ``value`` in document order, appended to ``out``; ``kind``:
    what the key holding ``value`` names (its strings are ids, and those of lists in it).
    A fleet's report holds some 200,000 values: the plain types are told by type first."""
    if type(value) is dict or isinstance(value, Mapping):
        for k, v in value.items():
            if k == "links":
                continue
            named = _id_kind(str(k))
            vtype = type(v)
            if vtype is str:  # most values of a report: no call for them
                if named is not None and v:
                    out.append((named, v))
            elif vtype in _SCALARS:
                continue
            elif vtype is dict or vtype is list or isinstance(v, Mapping | list):
                _collect(v, named, out)
    elif isinstance(value, list):
        for item in value:
            itype = type(item)
            if itype is str:
                if kind is not None and item:
                    out.append((kind, item))
            elif itype in _SCALARS:
                continue
            elif itype is dict or itype is list or isinstance(item, Mapping | list):
                _collect(item, kind, out)


def mentioned(context: Mapping[str, Any]) -> dict[str, list[str]]:
    """Every run and window id the report names, in the order it first names them."""
    out: dict[str, list[str]] = {"run": [], "window": []}
    seen: set[tuple[str, str]] = {identity(context) or ("", "")}
    found: list[tuple[str, str]] = []
    _collect(context, None, found)
    for pair in found:
        if pair not in seen:
            seen.add(pair)
            out[pair[0]].append(pair[1])
    return out


def _has_report(folder: Path) -> bool:
    return (folder / "index.html").is_file()


def _folders(root: Path) -> frozenset[str] | None:
    """The names of the folders in ``root`` (None when it cannot be listed): a report is
    looked for only where one may be, not once per id a report names."""
    try:
        with os.scandir(root) as entries:
            return frozenset(e.name for e in entries if e.is_dir())
    except OSError:
        return None


def _report_in(root_folders: frozenset[str] | None, folder: Path) -> bool:
    if root_folders is not None and folder.name not in root_folders:
        return False
    return _has_report(folder)


@dataclass(frozen=True)
class Companions:
    """The reports to write beside one report, and how many it names were left out."""

    reports: tuple[tuple[Path, dict[str, Any]], ...]
    not_rendered: int


def plan_companions(context: Mapping[str, Any], folder: Path, build: Builder,
                    limit: int = MAX_COMPANIONS) -> Companions:
    """The missing reports that come with this one: a window's runs (at most ``limit``); the
    runs a resilience report names (at most RESILIENCE_COMPANIONS, in the order named: its
    findings first). A resilience report links to window reports only when they exist: the
    window runner writes each one as its window ends, and at fleet scale a window holds
    hundreds of runs, too many to render on the side."""
    kind = context.get("report")
    if kind not in ("window", "resilience"):
        return Companions((), 0)
    root = folder.parent
    named = mentioned(context)
    wanted = [("run", r) for r in named["run"]]
    if kind == "resilience":
        limit = min(limit, RESILIENCE_COMPANIONS)
    folders = _folders(root)
    own = folder.resolve()
    reports: list[tuple[Path, dict[str, Any]]] = []
    skipped = 0
    for other, ident in wanted:
        target = default_folder(other, ident, root)
        if target.name == folder.name or _report_in(folders, target) or (
                (folders is None or target.name in folders) and target.resolve() == own):
            continue
        if len(reports) >= limit:
            skipped += 1
            continue
        built = build(other, ident)
        if built is not None:
            reports.append((target, built))
    return Companions(tuple(reports), skipped)


def href(to_folder: Path) -> str:
    """A relative link from a report folder to a sibling report's index.html (one root)."""
    return f"../{quote(to_folder.name)}/index.html"


def attach_links(context: Mapping[str, Any], folder: Path,
                 rendered: Mapping[tuple[str, str], Path], index: bool,
                 not_rendered: int = 0) -> dict[str, Any]:
    """The context with ``links``: an href for every run and window it names whose report is
    written with it (``rendered``: (kind, id) -> folder) or exists in the root already."""
    root = folder.parent
    named = mentioned(context)
    folders = _folders(root)
    links: dict[str, Any] = {"runs": {}, "windows": {}, "index": "../index.html" if index else None}
    for kind, idents in named.items():
        for ident in idents:
            target = rendered.get((kind, ident)) or default_folder(kind, ident, root)
            if (kind, ident) in rendered or _report_in(folders, target):
                links[_GROUP[kind]][ident] = href(target)
    if not_rendered:
        links["not_rendered"] = not_rendered
    return {**context, "links": links}


# --- the reports root's index -------------------------------------------------------------


@dataclass(frozen=True)
class IndexEntry:
    kind: str
    ident: str
    title: str
    generated_at: str
    href: str | None
    pdf_href: str | None


@dataclass(frozen=True)
class Listing:
    entries: tuple[IndexEntry, ...]
    unreadable: int  # report.json files that are not a report (broken, foreign): skipped
    not_listed: int  # folders beyond MAX_INDEXED, the oldest


def index_writable(root: Path) -> bool:
    """True when ``<root>/index.html`` is ours to write: absent, or written by us."""
    path = root / "index.html"
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            return INDEX_MARK in fh.read(4096)
    except FileNotFoundError:
        return True
    except OSError:
        return False


def is_reports_root(root: Path, folder: Path) -> bool:
    """May gameday fill ``root`` (the parent of ``folder``, a report being written) with other
    reports and an index? Yes when our index is there, or when it holds nothing but report
    folders; never a folder of the user's such as /tmp or a home directory."""
    if (root / "index.html").exists():
        return index_writable(root)
    try:
        entries = [e for e in itertools.islice(root.iterdir(), MAX_INDEXED + 1) if e != folder]
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return len(entries) <= MAX_INDEXED and all(
        e.name == ".gitkeep" or (e.is_dir() and (e / "report.json").is_file()) for e in entries)


# What each report.json said, by (path, size, mtime): writing many reports in one process
# (the window runner, a loop of run reports) rewrites the index each time, and must not read
# every report again for it.
_ENTRIES: dict[tuple[str, int, int, bool, bool], IndexEntry | None] = {}


def _entry(folder: Path) -> IndexEntry | None:
    path = folder / "report.json"
    try:
        stat = path.stat()
    except OSError:
        return None
    # The PDF and the page are written after report.json: their presence is part of the entry.
    key = (str(path), stat.st_size, stat.st_mtime_ns, (folder / "report.pdf").is_file(),
           _has_report(folder))
    if key not in _ENTRIES:
        if len(_ENTRIES) > 4 * MAX_INDEXED:
            _ENTRIES.clear()
        _ENTRIES[key] = _read_entry(folder)
    return _ENTRIES[key]


def _read_entry(folder: Path) -> IndexEntry | None:
    try:
        data = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("report") not in KINDS:
        return None
    generated, title = data.get("generated_at"), data.get("title")
    if not isinstance(generated, str) or not isinstance(title, str):
        return None
    try:
        datetime.fromisoformat(generated)
    except ValueError:
        return None
    ident = identity(data)
    if ident is None:
        period = data["period"] if isinstance(data.get("period"), dict) else {}
        since, until = str(period.get("since") or "")[:10], str(period.get("until") or "")[:10]
        name = f"{since} to {until}" if since and until else folder.name
    else:
        name = ident[1]
    link = f"{quote(folder.name)}/index.html"
    return IndexEntry(data["report"], name, title, generated,
                      link if _has_report(folder) else None,
                      f"{quote(folder.name)}/report.pdf" if (folder / "report.pdf").is_file()
                      else None)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return -math.inf


def scan_reports(root: Path, limit: int = MAX_INDEXED) -> Listing:
    """Every report folder under ``root`` (one level), newest first by generation time."""
    try:
        folders = [d for d in root.iterdir() if (d / "report.json").is_file()]
    except OSError:
        folders = []
    folders.sort(key=lambda d: _mtime(d / "report.json"), reverse=True)
    entries: list[IndexEntry] = []
    unreadable = 0
    for folder in folders[:limit]:
        entry = _entry(folder)
        if entry is None:
            unreadable += 1
        else:
            entries.append(entry)
    entries.sort(key=lambda e: (_utc_key(e.generated_at), e.kind, e.ident), reverse=True)
    return Listing(tuple(entries), unreadable, max(0, len(folders) - limit))


def _utc_key(text: str) -> float:
    parsed = datetime.fromisoformat(text)
    return parsed.timestamp() if parsed.tzinfo else parsed.replace(tzinfo=None).timestamp()


def write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


__all__: Sequence[str] = ("MAX_COMPANIONS", "MAX_INDEXED", "Builder", "Companions", "IndexEntry",
                          "Listing", "attach_links", "href", "identity", "index_writable", "is_reports_root",
                          "mentioned", "plan_companions", "scan_reports", "store_builder")
