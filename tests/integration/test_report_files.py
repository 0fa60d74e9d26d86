"""The files `gameday report` writes, as a reader gets them: the PDF (printed by headless
Chromium, rasterised and read back with poppler's tools) and the links between the HTML reports
and the reports root's index.html."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from test_reports import TIER2, make_run

from gameday.model import CriterionResult, RunEvent, Sample, WindowRecord
from gameday.store import Store
from helpers import ROOT, run_cli

pytestmark = pytest.mark.integration

A4_PT = (595.28, 841.89)  # 210 x 297 mm
TOOLS = ("pdftoppm", "pdftotext", "pdfinfo")


def _need(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        message = f"missing {', '.join(missing)}: `make browser` (as root) installs them"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _chromium() -> None:
    if not (shutil.which("chromium-headless-shell") or shutil.which("chromium")):
        _need("chromium-headless-shell")


class _Page(HTMLParser):
    """Every href/src and every table header text of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.headers: list[str] = []
        self._th: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls.extend(v for k, v in attrs if k in ("href", "src") and v is not None)
        if tag == "th":
            self._th = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "th" and self._th is not None:
            text = " ".join("".join(self._th).split())
            if text:
                self.headers.append(text)
            self._th = None

    def handle_data(self, data: str) -> None:
        if self._th is not None:
            self._th.append(data)


def page(path: Path) -> _Page:
    parser = _Page()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@dataclass(frozen=True)
class Rendered:
    root: Path
    folders: dict[str, Path]  # report kind -> the folder written with --pdf
    results: dict[str, subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Rendered:
    """The reports, rendered once per test session: under pytest-xdist the first worker to get
    here renders them into the session's shared temp folder, the others wait and read them
    (each render starts Chromium three times; twice would only cost time)."""
    _chromium()
    if worker_id == "master":
        return _render(tmp_path_factory.mktemp("reports"))
    shared = tmp_path_factory.getbasetemp().parent  # this session's, common to its workers
    with (shared / "report-files.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = shared / "report-files" / "results.json"
        if not done.is_file():
            made = _render(done.parent)
            done.write_text(json.dumps({k: [r.returncode, r.stdout, r.stderr]
                                        for k, r in made.results.items()}))
        results = {k: subprocess.CompletedProcess([], code, out, err)
                   for k, (code, out, err) in json.loads(done.read_text()).items()}
    return Rendered(done.parent / "reports", _folders(done.parent / "reports"), results)


def _folders(root: Path) -> dict[str, Path]:
    return {"window": root / "window-win-1", "resilience": root / "resilience-now",
            "run": root / "run-w-1"}


def _render(tmp: Path) -> Rendered:
    """A store with a window of runs (one failed, one skipped) and a few more cells; the window,
    resilience and run reports rendered with --pdf through the CLI into one reports root."""
    tmp.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{tmp / 'gameday.db'}"
    now = datetime.now(UTC)
    long_cell = "cell-with-a-rather-long-name-eu-west-1"
    with Store.open(url) as store:
        store.create_window(WindowRecord("win-1", "saturday game day", now - timedelta(hours=2),
                                         now + timedelta(hours=1)))
        # a window whose report nobody renders: the runs in it name it as plain text
        store.create_window(WindowRecord("win-2", "last week", now - timedelta(days=3, hours=1),
                                         now - timedelta(days=3) + timedelta(hours=1)))
        runs = [
            make_run("w-1", now - timedelta(minutes=90), window_id="win-1"),
            make_run("w-2", now - timedelta(minutes=60), cell="cell-b", kind="db-failover",
                     window_id="win-1", verdict="failed", reason="missed: no data loss (RPO)",
                     rto_s=0.4, rpo_rows=3, rpo_s=0.2, objectives=TIER2,
                     criteria=[CriterionResult("no data loss (RPO)", "rpo_rows <= 0", "3", False)]),
            make_run("w-3", now - timedelta(minutes=30), cell="cell-c", window_id="win-1",
                     verdict="skipped", reason="error budget: 85 % consumed", recovery_s=None),
            make_run("x-1", now - timedelta(days=3), cell=long_cell, kind="latency",
                     window_id="win-2", verdict="failed", reason="missed: p95 < 2x", objectives=TIER2,
                     criteria=[CriterionResult("latency < 2x normal", "p95_ratio_during <= 2",
                                               "3.4", False)]),
            make_run("x-2", now - timedelta(days=9), cell=long_cell, kind="cpu-stress"),
        ]
        for run in runs:
            store.create_run(run)
        store.add_samples("w-1", [Sample(t=i / 10, utc=now, ok=not 31 <= i < 34,
                                         latency_ms=5.0 + i % 3, status=200)
                                  for i in range(150)])
        store.add_events("w-1", [RunEvent(t=t, utc=now, source="sandbox", name=name, detail={})
                                 for t, name in ((3.0, "fault_injected"), (3.05, "replica_exit"),
                                                 (3.1, "lb_endpoint_removed"),
                                                 (3.9, "replica_ready"),
                                                 (4.0, "lb_endpoint_added"))])
    root = tmp / "reports"
    broken = root / "broken-report"  # the index skips it and says so
    broken.mkdir(parents=True)
    (broken / "report.json").write_text("{not json")
    folders = _folders(root)
    # First, alone: run x-1's report, while no report of its window (win-2) exists.
    run_cli("report", "run", "x-1", "--store", url, "--out", str(root / "run-x-1"), check=True)
    results = {}
    for kind, args in (("window", ["window", "win-1"]), ("resilience", ["resilience"]),
                       ("run", ["run", "w-1"])):
        results[kind] = run_cli("report", *args, "--store", url, "--out", str(folders[kind]),
                                "--pdf", timeout=180)
    return Rendered(root, folders, results)


def _page_sizes(pdf: Path) -> list[tuple[float, float]]:
    out = subprocess.run(["pdfinfo", "-f", "1", "-l", "999", str(pdf)], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    return [(float(w), float(h)) for w, h in
            re.findall(r"^Page\s+\d+ size:\s+([\d.]+) x ([\d.]+) pts", out, re.MULTILINE)]


def test_the_pdf_prints_every_table_on_a4_and_nothing_on_the_terminal(rendered: Rendered,
                                                                     tmp_path: Path) -> None:
    _need(*TOOLS)
    from PIL import Image

    for kind, folder in rendered.folders.items():
        result = rendered.results[kind]
        assert result.returncode == 0, (kind, result.stderr)
        assert result.stderr == "", (kind, result.stderr)  # no renderer warnings, no progress
        assert result.stdout.split() == [str(folder / n) for n in
                                         ("index.html", "report.md", "report.json", "report.pdf")]
        pdf = folder / "report.pdf"
        assert pdf.read_bytes().startswith(b"%PDF-")
        sizes = _page_sizes(pdf)
        assert sizes, kind
        for width, height in sizes:  # A4 portrait, never wider
            assert width <= A4_PT[0] + 1 and height <= A4_PT[1] + 1, (kind, width, height)
        # Rasterised: every page renders, none blank.
        prefix = tmp_path / kind
        subprocess.run(["pdftoppm", "-r", "30", "-png", str(pdf), str(prefix)], check=True,
                       capture_output=True, timeout=120)
        pngs = sorted(tmp_path.glob(f"{kind}-*.png"))
        assert len(pngs) == len(sizes), kind
        with Image.open(pngs[0]) as image:
            colours = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
        assert len(colours) > 20, f"{kind}: the first page is (almost) blank"
        # Every table's header text is on the page: no column was cut at the A4 edge.
        text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                              text=True, check=True, timeout=60).stdout
        headers = page(folder / "index.html").headers
        assert headers, kind
        words = set(text.split())
        flat = " ".join(text.split())
        for header in headers:
            # A narrow column wraps its header over two lines; its words are all there, and
            # the ones a cut-off table loses first (the last columns) are checked per table.
            assert header in flat or set(header.split()) <= words, (kind, header)
        # ... and at print size: Chromium shrinks a page whose content is wider than A4
        # instead of cutting it, and every word then gets smaller (9 pt text: about 9.4 pt
        # boxes; shrunk to fit a table that does not wrap, 6.3 pt).
        assert _median_word_height(pdf) >= 8.0, f"{kind}: the page was shrunk to fit"
        last_columns = _last_headers(folder / "index.html")
        for header in last_columns:
            assert header.split()[-1] in words, (kind, "last column", header)


def _median_word_height(pdf: Path) -> float:
    boxes = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True,
                           check=True, timeout=60).stdout
    heights = [float(y1) - float(y0) for y0, y1 in
               re.findall(r'yMin="([\d.]+)" xMax="[\d.]+" yMax="([\d.]+)"', boxes)]
    assert len(heights) > 50, pdf
    return statistics.median(heights)


def _last_headers(html: Path) -> list[str]:
    """The header of each table's last column: the first thing a too-wide table loses."""
    source = html.read_text(encoding="utf-8")
    out = []
    for row in re.findall(r"<thead><tr>(.*?)</tr>", source, re.DOTALL):
        cells = re.findall(r"<th[^>]*>(.*?)</th>", row, re.DOTALL)
        if cells:
            out.append(" ".join(re.sub(r"<[^>]+>", "", cells[-1]).split()))
    return [h for h in out if h]


def _targets(html: Path) -> list[tuple[str, Path]]:
    out = []
    for url in page(html).urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, (html, url)  # self-contained: no URL out
        if not parts.path:
            continue  # a fragment on the same page
        out.append((url, (html.parent / unquote(parts.path)).resolve()))
    return out


def test_every_link_in_every_report_points_to_a_file_that_exists(rendered: Rendered) -> None:
    root = rendered.root
    pages = [*sorted(root.glob("*/index.html")), root / "index.html"]
    assert len(pages) >= 6  # window, resilience, its runs and the root index
    seen = 0
    for html in pages:
        for url, target in _targets(html):
            assert target.is_file(), f"{html.relative_to(root)}: {url} -> {target} is missing"
            assert root.resolve() in target.parents, (html, url)
            seen += 1
    assert seen >= 12
    # The window report links its runs: rendered with it when missing, skipped runs too.
    window = json.loads((rendered.folders["window"] / "report.json").read_text())
    assert window["links"] == {"runs": {"w-1": "../run-w-1/index.html",
                                        "w-2": "../run-w-2/index.html",
                                        "w-3": "../run-w-3/index.html"},
                               "windows": {}, "index": "../index.html"}
    urls = page(rendered.folders["window"] / "index.html").urls
    assert {"../run-w-1/index.html", "../run-w-2/index.html", "../index.html"} <= set(urls)
    # ... and a run report rendered with it links back to its window.
    run = json.loads((root / "run-w-2" / "report.json").read_text())
    assert run["links"]["windows"] == {"win-1": "../window-win-1/index.html"}
    # The resilience report's runs (its findings) were rendered for it, or linked.
    resilience = json.loads((rendered.folders["resilience"] / "report.json").read_text())
    assert {"w-2", "x-1"} <= set(resilience["links"]["runs"])
    # A report links only to reports that exist when it is written: x-1's was written first.
    assert json.loads((root / "run-x-1" / "report.json").read_text())["links"]["windows"] == {}
    # Every href in every report's links, rendered in its HTML or not, names a file.
    for data in root.glob("*/report.json"):
        if data.parent.name == "broken-report":
            continue
        links = json.loads(data.read_text())["links"]
        assert links["index"] == "../index.html"
        for href in [*links["runs"].values(), *links["windows"].values()]:
            assert (data.parent / href).resolve().is_file(), (data, href)


def test_the_index_lists_every_report_newest_first(rendered: Rendered) -> None:
    index = root_index = rendered.root / "index.html"
    text = index.read_text()
    assert '<meta name="gameday-index" content="1">' in text
    assert "1 folder(s) whose report.json could not be read" in " ".join(text.split())
    rows = re.findall(r'<tr><td>(run|window|resilience)</td>\s*<td><a href="([^"]+)">', text)
    hrefs = [href for _, href in rows]
    folders = sorted(p.parent.name for p in rendered.root.glob("*/index.html"))
    assert sorted(h.split("/")[0] for h in hrefs) == folders
    # newest first: the run report was written last, the window report first
    assert hrefs[0] == "run-w-1/index.html"
    assert hrefs.index("resilience-now/index.html") < hrefs.index("window-win-1/index.html")
    assert {kind for kind, _ in rows} == {"run", "window", "resilience"}
    assert 'href="run-w-1/report.pdf"' in text
    assert root_index.is_file()


def test_a_missing_or_failing_browser_is_a_clear_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gameday.db'}"
    with Store.open(url) as store:
        store.create_run(make_run("r-1", datetime.now(UTC) - timedelta(hours=1)))
    out = tmp_path / "reports" / "nopdf"
    env = {"GAMEDAY_CHROMIUM": str(tmp_path / "no-such-browser")}
    result = _cli_env(env, "report", "run", "r-1", "--store", url, "--out", str(out), "--pdf")
    assert result.returncode == 2, result.stderr
    assert "--pdf" in result.stderr and "GAMEDAY_CHROMIUM" in result.stderr
    assert "fix:" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
    # A browser that fails: exit 3, one clear line, its own output not shown; HTML kept.
    fake = tmp_path / "fake-chromium"
    fake.write_text("#!/bin/sh\necho 'noise the user must not see' >&2\n"
                    "echo 'ERROR: could not print' >&2\nexit 1\n")
    fake.chmod(0o755)
    result = _cli_env({"GAMEDAY_CHROMIUM": str(fake)}, "report", "run", "r-1", "--store", url,
                      "--out", str(out), "--pdf")
    assert result.returncode == 3, result.stderr
    assert "did not print" in result.stderr and "ERROR: could not print" in result.stderr
    assert "noise the user must not see" not in result.stderr and "Traceback" not in result.stderr
    assert (out / "index.html").is_file() and not (out / "report.pdf").exists()
    assert not list(out.glob(".*partial"))


def _cli_env(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gameday", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env={**os.environ, **env})


def test_a_report_written_into_a_folder_of_the_users_writes_nothing_beside_it(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gameday.db'}"
    with Store.open(url) as store:
        store.create_window(WindowRecord("win-9", "w", datetime.now(UTC) - timedelta(hours=1)))
        store.create_run(make_run("r-9", datetime.now(UTC) - timedelta(hours=1),
                                  window_id="win-9"))
    home = tmp_path / "home"  # a folder with the user's own things in it
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    result = run_cli("report", "window", "win-9", "--store", url, "--out",
                     str(home / "window"), check=True)
    assert result.returncode == 0
    assert sorted(p.name for p in home.iterdir()) == ["notes.txt", "window"]
    # In a reports root (nothing but reports in it) the run's report and the index come along.
    root = tmp_path / "reports"
    run_cli("report", "window", "win-9", "--store", url, "--out", str(root / "w"), check=True)
    assert sorted(p.name for p in root.iterdir()) == ["index.html", "run-r-9", "w"]
