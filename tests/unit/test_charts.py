"""Charts: well-formed, self-contained, escaped, deterministic SVG that says what the data says."""

import math
import re
import xml.etree.ElementTree as ET

import pytest

from gameday.analytics.timeline import Bucket
from gameday.reporting.charts import (
    SVG_NS,
    _diverging,
    _nice_ticks,
    _rgb,
    _text_on,
    heatmap_svg,
    line_chart_svg,
    timeline_svg,
)

NS = {"s": SVG_NS}
SCRIPT = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=alert(1)>'
AMP = "R&D & ops"
HOSTILE = (SCRIPT, BREAKOUT, AMP)
MARKERS = [(10.0, "inject"), (10.5, "first impact"), (24.0, "recovered")]


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{{{SVG_NS}}}svg"
    assert root.get("role") == "img"
    assert root.get("aria-label")
    assert root.get("width") == "100%"
    assert re.fullmatch(r"0 0 [\d.]+ [\d.]+", root.get("viewBox", ""))
    assert root.get("font-family") == "system-ui, sans-serif"
    assert root.find("s:title", NS) is not None and root.find("s:title", NS).text
    assert root.find("s:desc", NS) is not None and root.find("s:desc", NS).text
    return root


def texts(root: ET.Element, cls: str | None = None) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{{{SVG_NS}}}text")
            if cls is None or t.get("class") == cls]


def assert_self_contained(svg: str) -> None:
    assert set(re.findall(r"https?://[^\s\"'<>)]*", svg)) <= {SVG_NS}
    lowered = svg.lower()
    for forbidden in ("<script", "javascript:", "<foreignobject", "<img", "@import", "<style", "href="):
        assert forbidden not in lowered
    root = ET.fromstring(svg)
    for element in root.iter():
        assert not any(name.lower().startswith("on") for name in element.attrib)
        for value in element.attrib.values():
            assert "url(" not in value or re.fullmatch(r"url\(#[\w-]+\)", value)


def assert_escaped(svg: str) -> None:
    assert SCRIPT not in svg and "&lt;script&gt;" in svg
    assert BREAKOUT not in svg and "&quot;&gt;&lt;img" in svg
    assert "R&D" not in svg and "R&amp;D &amp; ops" in svg


def buckets(n: int = 30, start: float = 0.0) -> list[Bucket]:
    out = []
    for k in range(n):
        bad = 10 <= k < 14
        out.append(Bucket(start + k, start + k + 1, samples=10, ok=4 if bad else 10,
                          success_ratio=0.4 if bad else 1.0, p95_ms=300.0 if bad else 20.0 + k % 3,
                          max_ms=400.0 if bad else 30.0))
    return out


def gap(bucket: Bucket) -> Bucket:
    return Bucket(bucket.t_start, bucket.t_end, 0, 0, None, None, None)


# --- helpers ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("low", "high", "target", "expected"), [
    (0, 100, 5, [0, 20, 40, 60, 80, 100]),
    (0, 108, 5, [0, 20, 40, 60, 80, 100, 120]),
    (0, 0.37, 4, [0, 0.1, 0.2, 0.3, 0.4]),
    (0, 1, 4, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    (12, 57, 10, [10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60]),
    (5, 5, 5, [5, 6, 7, 8, 9, 10]),
])
def test_nice_ticks(low, high, target, expected):
    ticks = _nice_ticks(low, high, target)
    assert ticks == pytest.approx(expected)
    step = ticks[1] - ticks[0]
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in (1, 2, 5)


def _hue(colour: str) -> tuple[float, float]:
    """(hue in degrees, saturation) of a #RRGGBB colour."""
    import colorsys

    r, g, b = (c / 255 for c in _rgb(colour))
    h, _, sat = colorsys.rgb_to_hls(r, g, b)
    return h * 360, sat


def test_pass_rate_scale_is_blue_when_good_orange_when_bad_never_yellow():
    assert _diverging(-3) == _diverging(0) and _diverging(7) == _diverging(1)
    for good in (1.0, 0.97, 0.95):
        hue, sat = _hue(_diverging(good))
        assert 190 <= hue <= 230 and sat > 0.3, (good, _diverging(good))  # blue
    for bad in (0.0, 0.25, 0.5):
        hue, sat = _hue(_diverging(bad))
        assert 20 <= hue <= 40 and sat > 0.5, (bad, _diverging(bad))  # orange, not yellow (50-65)
    for step in range(11):  # nowhere on the scale a saturated yellow
        hue, sat = _hue(_diverging(step / 10))
        assert not (45 <= hue <= 70 and sat > 0.3), (step, _diverging(step / 10))
    assert _text_on(_diverging(0.0)) == "#FFFFFF"
    assert _text_on(_diverging(1.0)) == "#FFFFFF"
    assert _text_on(_diverging(0.75)) == "#000000"


# --- timeline ---------------------------------------------------------------------------------

def test_timeline_is_wellformed_and_shows_fault_markers_and_tolerance():
    svg = timeline_svg(buckets(), fault=(10.0, 14.0), markers=MARKERS, tolerance_ms=150.0, title="Run 42")
    root = parse(svg)
    assert_self_contained(svg)
    labels = texts(root)
    for needed in ("inject", "first impact", "recovered", "Run 42"):
        assert needed in labels
    assert labels.count("fault") == 2  # one in each panel
    assert any(t.startswith("tolerance") for t in labels)
    faults = [e for e in root.iter() if e.get("class") == "gd-fault"]
    assert len(faults) == 2 and all(e.tag == f"{{{SVG_NS}}}rect" for e in faults)
    pattern = root.find(".//s:defs/s:pattern", NS)
    assert pattern is not None and faults[0].get("fill") == f"url(#{pattern.get('id')})"
    markers = [e for e in root.iter() if e.get("class") == "gd-marker"]
    assert len(markers) == 3
    assert len({m.get("stroke-dasharray", "") for m in markers}) == 3  # told apart by dash pattern
    tolerance = [e for e in root.iter() if e.get("class") == "gd-tolerance"]
    assert len(tolerance) == 1 and tolerance[0].get("stroke-dasharray")
    assert {e.get("class") for e in root.iter(f"{{{SVG_NS}}}path")} >= {"gd-series gd-success",
                                                                        "gd-series gd-latency"}


def test_close_marker_labels_are_staggered_and_do_not_overlap():
    close = [(10.0, "inject"), (10.2, "first impact"), (10.4, "recovered"), (25.0, "end")]
    root = parse(timeline_svg(buckets(), fault=None, markers=close))
    rows: dict[float, list[float]] = {}
    for text in root.iter(f"{{{SVG_NS}}}text"):
        if text.get("class") == "gd-marker-label":
            rows.setdefault(float(text.get("y")), []).append(float(text.get("x")))
    assert sum(len(xs) for xs in rows.values()) == 4
    assert len(rows) >= 3  # the three close labels sit on three rows


def test_timeline_escapes_hostile_labels():
    svg = timeline_svg(buckets(), fault=(10.0, 14.0), markers=[(5.0, SCRIPT), (15.0, BREAKOUT), (20.0, AMP)],
                       title=AMP)
    root = parse(svg)
    assert_escaped(svg)
    assert_self_contained(svg)
    assert {SCRIPT, BREAKOUT, AMP} <= set(texts(root))  # shown as text, exactly as given


def test_gaps_break_the_lines():
    data = buckets()
    data[5] = gap(data[5])
    data[20] = Bucket(20, 21, samples=10, ok=0, success_ratio=0.0, p95_ms=None, max_ms=None)
    root = parse(timeline_svg(data, fault=None, markers=[]))
    paths = {e.get("class"): e.get("d") for e in root.iter(f"{{{SVG_NS}}}path")}
    assert paths["gd-series gd-success"].count("M") == 2
    assert paths["gd-series gd-latency"].count("M") == 3


def test_fault_without_length_is_a_line_and_clipped_fault_still_shows():
    root = parse(timeline_svg(buckets(), fault=(12.0, 12.0), markers=[]))
    faults = [e for e in root.iter() if e.get("class") == "gd-fault"]
    assert len(faults) == 2 and all(e.tag == f"{{{SVG_NS}}}line" for e in faults)
    root = parse(timeline_svg(buckets(), fault=(25.0, 90.0), markers=[]))
    rects = [e for e in root.iter(f"{{{SVG_NS}}}rect") if e.get("class") == "gd-fault"]
    assert len(rects) == 2
    assert float(rects[0].get("x")) + float(rects[0].get("width")) <= 900
    root = parse(timeline_svg(buckets(), fault=(100.0, 120.0), markers=[]))
    assert not [e for e in root.iter() if e.get("class") == "gd-fault"]


def test_markers_outside_the_timeline_and_bad_numbers_are_skipped():
    svg = timeline_svg(buckets(), fault=(math.nan, 3.0), markers=[(-50.0, "before"), (500.0, "after"),
                       (math.inf, "never"), (3.0, "inside")], tolerance_ms=math.inf)
    labels = texts(parse(svg))
    assert "inside" in labels
    assert not {"before", "after", "never", "fault"} & set(labels)
    assert not any(t.startswith("tolerance") for t in labels)


@pytest.mark.parametrize("data", [
    [],
    [Bucket(0, 1, 1, 1, 1.0, 12.0, 12.0)],
    [Bucket(0, 1, 0, 0, None, None, None), Bucket(1, 2, 0, 0, None, None, None)],
    [Bucket(3, 4, 4, 0, 0.0, None, None)],
    [Bucket(0, 0, 1, 1, 1.0, 5.0, 5.0)],
])
def test_timeline_edge_cases(data):
    svg = timeline_svg(data, fault=(0.0, 1.0), markers=[(0.5, "inject")], tolerance_ms=100.0)
    root = parse(svg)
    assert_self_contained(svg)
    if not data:
        assert "no samples" in texts(root)
    if data and all(b.p95_ms is None for b in data):
        assert "no successful probes" in texts(root)


def test_two_timelines_on_one_page_do_not_share_pattern_ids():
    one = parse(timeline_svg(buckets(), fault=(10.0, 14.0), markers=[]))
    two = parse(timeline_svg(buckets(40), fault=(10.0, 14.0), markers=[]))
    ids = [r.find(".//s:pattern", NS).get("id") for r in (one, two)]
    assert ids[0] != ids[1]


# --- line chart -------------------------------------------------------------------------------

WEEKS = [f"2026-W{w:02d}" for w in range(1, 53)]


def test_line_chart_52_weeks_50_series():
    series = [(f"cell-{k}", [float((k * 7 + w * 3) % 40 + 5) for w in range(52)]) for k in range(50)]
    svg = line_chart_svg(WEEKS, series, y_label="MTTR (s)", title="MTTR per week")
    root = parse(svg)
    assert_self_contained(svg)
    groups = [g for g in root.iter(f"{{{SVG_NS}}}g") if g.get("class") == "gd-series"]
    assert len(groups) == 50
    assert all(len([p for p in g.iter(f"{{{SVG_NS}}}path") if p.get("class") == "gd-line"]) == 1
               for g in groups)
    styles = {(p.get("stroke"), p.get("stroke-dasharray", ""))
              for g in groups for p in g.iter(f"{{{SVG_NS}}}path") if p.get("class") == "gd-line"}
    assert len(styles) == 24  # 8 colours x 3 dash patterns (and 7 marker shapes on top)
    week_labels = [t for t in texts(root, "gd-tick") if t.startswith("2026-W")]
    assert 10 <= len(week_labels) < 52  # thinned, still plenty
    assert "2026-W01" in week_labels
    legend = texts(root, "gd-legend")
    assert legend == [f"cell-{k}" for k in range(50)]


def test_line_chart_gap_and_markers():
    svg = line_chart_svg(["a", "b", "c", "d", "e"], [("all cells", [1.0, 2.0, None, 4.0, 5.0]),
                                                      ("short", [3.0])], y_label="s", title="t")
    root = parse(svg)
    groups = [g for g in root.iter(f"{{{SVG_NS}}}g") if g.get("class") == "gd-series"]
    first = next(p for p in groups[0].iter(f"{{{SVG_NS}}}path") if p.get("class") == "gd-line")
    assert first.get("d").count("M") == 2
    assert len(list(groups[0].iter(f"{{{SVG_NS}}}circle"))) == 4  # a marker per value
    assert len(list(groups[1].iter(f"{{{SVG_NS}}}rect"))) == 1  # second series: squares
    assert texts(root, "gd-tick")[-5:] == ["a", "b", "c", "d", "e"]  # few categories: all shown


def test_line_chart_escapes_hostile_labels():
    svg = line_chart_svg([SCRIPT, BREAKOUT, AMP], [(SCRIPT, [1.0, 2.0, 3.0]), (AMP, [None, 1.0, 1.0]),
                                                   (BREAKOUT, [2.0, 2.0, 2.0])],
                         y_label=AMP, title=SCRIPT)
    parse(svg)
    assert_escaped(svg)
    assert_self_contained(svg)


@pytest.mark.parametrize(("categories", "series"), [
    ([], []),
    (["2026-W01"], []),
    ([], [("a", [1.0])]),
    (["2026-W01"], [("a", [None])]),
    (["2026-W01"], [("a", [3.0])]),
    (["x", "y"], [("a", [math.nan, math.inf]), ("b", [])]),
    (["x", "y"], [("neg", [-5.0, 2.0])]),
])
def test_line_chart_edge_cases(categories, series):
    svg = line_chart_svg(categories, series, y_label="MTTR (s)", title="MTTR")
    parse(svg)
    assert_self_contained(svg)


# --- heat map ---------------------------------------------------------------------------------

KINDS = ["pod-kill", "latency", "cpu-stress", "db-failover"]


def cells_of(root: ET.Element) -> dict[str, tuple[str, list[str]]]:
    """Tooltip -> (fill, texts) for every cell."""
    out = {}
    for g in root.iter(f"{{{SVG_NS}}}g"):
        if g.get("class", "").startswith("gd-cell"):
            rect = g.find("s:rect", NS)
            out[g.find("s:title", NS).text] = (rect.get("fill"), texts(g))
    return out


def test_heatmap_values_counts_and_no_runs():
    values = {("eu-1", "pod-kill"): 0.75, ("eu-1", "latency"): 1.0, ("us-2", "pod-kill"): 0.0,
              ("us-2", "latency"): None}
    counts = {("eu-1", "pod-kill"): 4, ("eu-1", "latency"): 2, ("us-2", "pod-kill"): 3}
    svg = heatmap_svg(["eu-1", "us-2"], ["pod-kill", "latency"], values, title="Pass rate", counts=counts)
    root = parse(svg)
    assert_self_contained(svg)
    cells = cells_of(root)
    assert cells["eu-1 \u00d7 pod-kill: 75% (n=4)"][1] == ["75%", "n=4"]
    fill, shown = cells["eu-1 \u00d7 latency: 100% (n=2)"]
    assert shown == ["100%", "n=2"] and fill == "#2166AC"
    assert cells["us-2 \u00d7 pod-kill: 0% (n=3)"][0] == "#B35806"
    fill, shown = cells["us-2 \u00d7 latency: untested"]
    assert fill.startswith("url(#gd-untested-") and shown == ["untested"]
    # text colour follows the background: white on dark, black on light
    inks = {g.find("s:title", NS).text: g.find("s:text", NS).get("fill")
            for g in root.iter(f"{{{SVG_NS}}}g") if g.get("class", "").startswith("gd-cell")}
    assert inks["us-2 \u00d7 pod-kill: 0% (n=3)"] == "#FFFFFF"
    assert inks["eu-1 \u00d7 pod-kill: 75% (n=4)"] == "#000000"
    legend = texts(root, "gd-legend")
    assert "0% worse" in legend and "better 100%" in legend and "untested" in legend


def test_heatmap_value_format_and_missing_keys():
    root = parse(heatmap_svg(["a"], ["k1", "k2"], {("a", "k1"): 0.123}, title="t", value_format="{:.2f}"))
    values = texts(root, "gd-value")
    assert values == ["0.12", "untested"]
    assert "n=" not in " ".join(texts(root))


def test_heatmap_fifty_rows_and_hostile_labels():
    rows = [f"cell-{k:02d}" for k in range(47)] + list(HOSTILE)
    values = {(r, k): (i * 7 + j) % 11 / 10 for i, r in enumerate(rows) for j, k in enumerate(KINDS)}
    values[(SCRIPT, "latency")] = None
    svg = heatmap_svg(rows, [*KINDS[:3], BREAKOUT], values, title=AMP, counts={(r, k): 1 for r in rows
                                                                              for k in KINDS})
    root = parse(svg)
    assert_escaped(svg)
    assert_self_contained(svg)
    assert len(cells_of(root)) == 50 * 4
    assert len(texts(root, "gd-value")) == 200
    assert {SCRIPT, BREAKOUT, AMP} <= set(texts(root, "gd-row"))


@pytest.mark.parametrize(("rows", "columns"), [([], []), (["a"], []), ([], ["k"]), (["a"], ["k"])])
def test_heatmap_edge_cases(rows, columns):
    svg = heatmap_svg(rows, columns, {("a", "k"): math.nan}, title="Pass rate")
    root = parse(svg)
    assert_self_contained(svg)
    if rows and columns:
        assert texts(root, "gd-value") == ["untested"]
    else:
        assert "no data" in texts(root)


def test_heatmap_writes_every_value_flags_untested_and_marks_excluded():
    rows, columns = ["cell-1", "cell-2"], KINDS
    values = {("cell-1", k): 1.0 for k in KINDS} | {("cell-2", "pod-kill"): 0.5,
                                                    ("cell-2", "latency"): 0.96}
    marks = {("cell-2", "db-failover"): "excluded", ("cell-2", "latency"): "excluded"}
    svg = heatmap_svg(rows, columns, values, title="Pass rate", marks=marks,
                      counts={key: 2 for key in values})
    root = parse(svg)
    assert_self_contained(svg)
    cells = cells_of(root)
    assert len(cells) == 8
    for tooltip, (_, shown) in cells.items():
        assert shown and shown[0], tooltip  # never blank
    assert cells["cell-1 \u00d7 db-failover: 100% (n=2)"][1] == ["100%", "n=2"]
    assert cells["cell-2 \u00d7 pod-kill: 50% (n=2)"][1] == ["50%", "n=2"]
    fill, shown = cells["cell-2 \u00d7 cpu-stress: untested"]
    assert shown == ["untested"] and fill.startswith("url(#gd-untested-")
    fill, shown = cells["cell-2 \u00d7 db-failover: excluded"]
    assert shown == ["excluded"] and fill.startswith("url(#gd-marked-")
    fill, shown = cells["cell-2 \u00d7 latency: 96% (n=2), excluded"]  # a value and a mark
    assert shown == ["96%", "excluded"] and fill.startswith("#")
    # each pattern a fill points at is defined in the chart
    ids = {pattern.get("id") for pattern in root.iter(f"{{{SVG_NS}}}pattern")}
    assert {fill[5:-1] for fill, _ in cells.values() if fill.startswith("url(")} <= ids
    legend = texts(root, "gd-legend")
    assert "untested" in legend and "excluded" in legend
    assert "1 cells untested, 2 marked (excluded)" in root.find("s:desc", NS).text
    # 100 % is the scale's blue, not yellow
    assert cells["cell-1 \u00d7 pod-kill: 100% (n=2)"][0] == _diverging(1.0) == "#2166AC"


def _latency_axis(root: ET.Element) -> tuple[float, float, float, float]:
    """(top tick value, its y, zero's y) of the latency panel, from its tick labels."""
    ticks = [t for t in root.iter(f"{{{SVG_NS}}}text") if t.get("class") == "gd-tick"
             and t.get("text-anchor") == "end"]
    # the first panel's ticks are 0..100 %, then the latency panel's
    latency = ticks[6:]
    values = [float("".join(t.itertext())) for t in latency]
    ys = [float(t.get("y")) - 4 for t in latency]
    return values[0], ys[0], values[-1], ys[-1]


def _flat(n: int, p95: float) -> list[Bucket]:
    return [Bucket(k, k + 1, 10, 10, 1.0, p95 + k % 2, p95 + 2) for k in range(n)]


def test_latency_axis_follows_the_data_and_the_tolerance_is_a_line_at_its_value():
    root = parse(timeline_svg(_flat(20, 5.0), fault=None, markers=[], tolerance_ms=12.0))
    low, y_low, high, y_high = _latency_axis(root)
    assert low == 0 and 12 <= high <= 20  # scaled to 6 ms of data and the 12 ms tolerance
    line = next(e for e in root.iter() if e.get("class") == "gd-tolerance")
    expected = y_low + (y_high - y_low) * 12.0 / high
    assert float(line.get("y1")) == pytest.approx(expected, abs=0.2) == float(line.get("y2"))
    assert "tolerance 12 ms" in texts(root, "gd-tolerance-label")
    # 5 ms of data under a 250 ms tolerance: the axis stays on the data, the tolerance is noted
    root = parse(timeline_svg(_flat(20, 5.0), fault=None, markers=[], tolerance_ms=250.0))
    low, _, high, _ = _latency_axis(root)
    assert high <= 10
    assert not [e for e in root.iter() if e.get("class") == "gd-tolerance"]
    note = texts(root, "gd-tolerance-label gd-off-scale")
    assert note == ["\u2191 tolerance 250 ms, above this scale"]
    # 300 ms of data: the axis reaches it
    root = parse(timeline_svg(_flat(20, 300.0), fault=None, markers=[], tolerance_ms=250.0))
    assert 300 <= _latency_axis(root)[2] <= 400


def _label_boxes(root: ET.Element, cls: str) -> list[tuple[float, float, float]]:
    """(y, left, right) of each label, from its anchor and an estimate of its width."""
    out = []
    for t in root.iter(f"{{{SVG_NS}}}text"):
        if t.get("class") != cls:
            continue
        x, y, size = float(t.get("x")), float(t.get("y")), float(t.get("font-size"))
        w = len("".join(t.itertext())) * size * 0.6
        out.append((y, x - w, x) if t.get("text-anchor") == "end" else (y, x, x + w))
    return out


def test_target_events_are_labelled_markers_that_do_not_overlap():
    events = [(10.2, "replica_exit"), (10.3, "lb endpoint removed"), (10.5, "fault injected"),
              (11.0, "replica ready"), (11.1, "lb endpoint added"), (28.9, "toxic removed"),
              (-4.0, "before the run"), (math.nan, "never")]
    svg = timeline_svg(buckets(), fault=(10.0, 14.0), markers=MARKERS, events=events,
                       tolerance_ms=150.0, title="Run")
    root = parse(svg)
    assert_self_contained(svg)
    labels = texts(root, "gd-event-label")
    assert sorted(labels) == sorted(label for t, label in events[:6])
    lines = [e for e in root.iter() if e.get("class") == "gd-event"]
    assert len(lines) == 6
    xs = sorted(float(e.get("x1")) for e in lines)
    assert xs == sorted(xs) and xs[0] < xs[-1]
    boxes = _label_boxes(root, "gd-event-label")
    assert len({y for y, _, _ in boxes}) >= 3  # close events: staggered over rows
    for i, (y1, l1, r1) in enumerate(boxes):
        for y2, l2, r2 in boxes[i + 1:]:
            assert y1 != y2 or r1 <= l2 or r2 <= l1, "two event labels overlap"
    # event labels sit below the chart, marker labels above: they never collide
    bottom = max(float(e.get("y2")) for e in lines)
    assert all(y > bottom for y, _, _ in boxes)
    top = min(float(e.get("y1")) for e in lines)
    assert all(y < top for y, _, _ in _label_boxes(root, "gd-marker-label"))
    assert "target events: replica_exit at 10.2 s" in root.find("s:desc", NS).text
    # the chart grows to hold the rows
    plain = parse(timeline_svg(buckets(), fault=(10.0, 14.0), markers=MARKERS))
    assert float(root.get("viewBox").split()[3]) > float(plain.get("viewBox").split()[3])


def test_halo_labels_paint_their_outline_under_the_text():
    svg = timeline_svg(buckets(), fault=(10.0, 14.0), markers=MARKERS, events=[(11.0, "ready")],
                       tolerance_ms=150.0)
    haloed = [t for t in parse(svg).iter(f"{{{SVG_NS}}}text") if t.get("stroke")]
    assert haloed
    assert all(t.get("paint-order") == "stroke" for t in haloed)


def test_line_chart_draws_the_target_line_inside_the_range():
    svg = line_chart_svg(["w1", "w2", "w3"], [("all cells", [2.0, 3.0, 1.0])], y_label="MTTR (s)",
                         title="MTTR", target=(30.0, "target 30 s"))
    root = parse(svg)
    assert_self_contained(svg)
    line = next(e for e in root.iter() if e.get("class") == "gd-target")
    assert line.get("stroke-dasharray") and line.get("y1") == line.get("y2")
    assert texts(root, "gd-target-label") == ["target 30 s"]
    ticks = [float(t) for t in texts(root, "gd-tick") if t.replace(".", "").isdigit()]
    assert max(ticks) >= 30  # the range reaches the target
    zero = next(float(t.get("y")) - 4 for t in root.iter(f"{{{SVG_NS}}}text")
                if t.get("class") == "gd-tick" and "".join(t.itertext()) == "0")
    top_tick = max(ticks)
    top_y = next(float(t.get("y")) - 4 for t in root.iter(f"{{{SVG_NS}}}text")
                 if t.get("class") == "gd-tick" and t.get("text-anchor") == "end"
                 and float("".join(t.itertext())) == top_tick)
    assert float(line.get("y1")) == pytest.approx(zero + (top_y - zero) * 30 / top_tick, abs=0.2)
    assert "target 30 s at 30" in root.find("s:desc", NS).text
    # no target, or a target that is not a number: no line
    for target in (None, (math.nan, "x")):
        root = parse(line_chart_svg(["w1"], [("a", [1.0])], y_label="s", title="t", target=target))
        assert not [e for e in root.iter() if e.get("class") == "gd-target"]


# --- all charts -------------------------------------------------------------------------------

def test_output_is_deterministic():
    def render() -> list[str]:
        return [
            timeline_svg(buckets(), fault=(10.0, 14.0), markers=MARKERS, tolerance_ms=150.0),
            line_chart_svg(WEEKS[:10], [("a", [1.5] * 10), ("b", [None, 2.25] * 5)], y_label="s", title="t"),
            heatmap_svg(["a", "b"], KINDS, {("a", "latency"): 1 / 3}, title="t",
                        counts={("a", "latency"): 3}),
        ]
    assert render() == render()
    # limited decimals: no long float reprs
    assert not re.search(r"\d\.\d{3,}", "".join(render()))


def test_control_characters_do_not_break_the_xml():
    svg = heatmap_svg(["bad\x00row\x1b"], ["k"], {("bad\x00row\x1b", "k"): 0.5}, title="t\x07")
    parse(svg)
    assert "\x00" not in svg and "\x1b" not in svg
