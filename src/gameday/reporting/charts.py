"""Charts for self-contained HTML reports: data in, inline SVG text out (pure, deterministic).

Nothing is fetched and nothing runs: no script, no external font, style sheet or image; the
only URL is the SVG namespace. Charts are drawn on white and print well: meaning never rests
on a background colour alone. Series use the Okabe-Ito palette and are told apart by marker
shape and dash pattern as well; the heat map uses a diverging orange (bad) to blue (good) scale,
writes every value in its cell and hatches the cells without one ("untested", or a mark such as
"excluded"). Label halos are painted under the text (``paint-order="stroke"``). Every text
that comes from outside is XML-escaped (``_esc``), through ``_text``.

Sizes are in viewBox units with ``width="100%"``, so the charts scale with the page; class
names start with ``gd-`` for the report's style sheet.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from gameday.analytics.timeline import Bucket

SVG_NS = "http://www.w3.org/2000/svg"
FONT = "system-ui, sans-serif"
# Okabe-Ito, yellow last: it is the colour hardest to see on white.
SERIES_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442")
# 7 shapes and 3 dash patterns against 8 colours: the first 168 series all look different.
SHAPES = ("circle", "square", "triangle", "diamond", "triangle-down", "plus", "cross")
SERIES_DASHES = ("", "7 3", "2 2")
MARKER_DASHES = ("", "7 3", "2 3", "9 3 2 3", "1 3", "12 4 4 4")
# A diverging, colour-blind-safe scale for "higher is better" ratios (pass rate): orange (bad,
# ColorBrewer PuOr's orange arm) through a neutral near-white to blue (good, ColorBrewer RdBu's
# blue arm). Good is blue, never yellow; the neutral sits at 75 %, so anything short of the
# seed's 95 % target leans pale or orange.
DIVERGING = ((0.0, "#B35806"), (0.5, "#F1A340"), (0.75, "#F7F7F7"), (0.9, "#92C5DE"),
             (1.0, "#2166AC"))
UNTESTED_FILL = "#F2F2F2"
INK = "#222222"
MUTED = "#555555"
GRID = "#DDDDDD"
NO_VALUE = "\u2013"  # en dash

WIDTH = 900.0
_CHAR_W = 0.6  # average glyph width, in em, for a sans-serif: enough to lay labels out
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


# --- text and numbers -------------------------------------------------------------------------

def _esc(text: object) -> str:
    """XML-escaped text, safe in element content and in double- or single-quoted attributes.

    Characters XML 1.0 does not allow (controls, lone surrogates) become U+FFFD.
    """
    cleaned = _INVALID_XML.sub("\ufffd", str(text))
    return escape(cleaned, {'"': "&quot;", "'": "&#39;"})


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _width(text: str, size: float) -> float:
    return len(text) * size * _CHAR_W


def _n(value: float) -> str:
    """A coordinate: at most one decimal, no "-0"."""
    out = f"{value:.1f}"
    out = out[:-2] if out.endswith(".0") else out
    return "0" if out == "-0" else out


def _finite(value: float | None) -> float | None:
    """The value, or None when it is missing, not a number, or not finite."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _text(x: float, y: float, text: str, *, cls: str, size: float = 12, anchor: str = "start",
          fill: str = INK, weight: str | None = None, rotate: float | None = None,
          halo: bool = False) -> str:
    """A <text> element; ``text`` is escaped here, so every label goes through one door."""
    attrs = [f'class="{cls}"']
    if rotate is None:
        attrs.append(f'x="{_n(x)}" y="{_n(y)}"')
    else:
        attrs.append(f'transform="translate({_n(x)} {_n(y)}) rotate({_n(rotate)})"')
    attrs.append(f'font-size="{_n(size)}"')
    if anchor != "start":
        attrs.append(f'text-anchor="{anchor}"')
    attrs.append(f'fill="{fill}"')
    if weight:
        attrs.append(f'font-weight="{weight}"')
    if halo:
        attrs.append('stroke="#FFFFFF" stroke-width="3" stroke-linejoin="round" paint-order="stroke"')
    return f"<text {' '.join(attrs)}>{_esc(text)}</text>"


def _line(x1: float, y1: float, x2: float, y2: float, *, cls: str, stroke: str, width: float = 1,
          dash: str = "") -> str:
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    return (f'<line class="{cls}" x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" '
            f'stroke="{stroke}" stroke-width="{_n(width)}"{dash_attr}/>')


def _uid(prefix: str, *parts: object) -> str:
    """An id that is the same for the same chart and differs between charts on one page."""
    return f"{prefix}-{hashlib.sha256(repr(parts).encode('utf-8', 'replace')).hexdigest()[:10]}"


def _svg(kind: str, width: float, height: float, title: str, desc: str, body: Sequence[str]) -> str:
    head = (f'<svg xmlns="{SVG_NS}" class="gd-chart gd-{kind}" viewBox="0 0 {_n(width)} {_n(height)}" '
            f'width="100%" role="img" aria-label="{_esc(title)}" font-family="{FONT}">')
    return "\n".join([
        head, f"<title>{_esc(title)}</title>", f"<desc>{_esc(desc)}</desc>",
        f'<rect class="gd-bg" width="{_n(width)}" height="{_n(height)}" fill="#FFFFFF"/>',
        *body, "</svg>",
    ]) + "\n"


def _empty_svg(kind: str, title: str, message: str) -> str:
    width, height = WIDTH, 110.0
    return _svg(kind, width, height, title, f"{title}: {message}.", [
        _text(16, 26, title, cls="gd-title", size=15, weight="600"),
        _text(width / 2, 70, message, cls="gd-empty", size=14, anchor="middle", fill=MUTED),
    ])


# --- scales -----------------------------------------------------------------------------------

def _nice_ticks(low: float, high: float, target: int = 5) -> list[float]:
    """Ticks at a 1, 2 or 5 x 10^n step covering low..high (the last tick is the nice max).

    The step is the nice one nearest (on a log scale) to range / target, so there are about
    ``target`` intervals, a few more or fewer.
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"ticks need a finite range, got {low!r}..{high!r}")
    if high < low:
        low, high = high, low
    if high == low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(1, target)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    error = raw / magnitude  # the nice step nearest to raw, on a log scale
    step = magnitude * (10 if error >= 7.07 else 5 if error >= 3.16 else 2 if error >= 1.41 else 1)
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    return [round(k * step, 10) for k in range(first, last + 1)]


def _tick_label(value: float, ticks: Sequence[float]) -> str:
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    out = f"{value:.{decimals}f}"
    return "0" if out.strip("-0.") == "" else out


@dataclass(frozen=True)
class _Linear:
    d0: float
    d1: float
    r0: float
    r1: float

    def __call__(self, value: float) -> float:
        span = self.d1 - self.d0
        return self.r0 if span == 0 else self.r0 + (value - self.d0) * (self.r1 - self.r0) / span


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _diverging(value: float) -> str:
    """The scale's colour for a value in 0..1 (clamped), interpolated between stops."""
    v = min(1.0, max(0.0, value))
    for (p0, c0), (p1, c1) in itertools.pairwise(DIVERGING):
        if v <= p1:
            f = (v - p0) / (p1 - p0)
            mixed = (round(a + (b - a) * f) for a, b in zip(_rgb(c0), _rgb(c1), strict=True))
            return "#" + "".join(f"{c:02X}" for c in mixed)
    return DIVERGING[-1][1]


def _luminance(colour: str) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(c) for c in _rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _text_on(background: str) -> str:
    """Black or white, whichever contrasts more with the background (WCAG contrast ratio)."""
    lum = _luminance(background)
    return "#000000" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "#FFFFFF"


def _stagger(labels: Sequence[tuple[float, float, float]], gap: float = 6.0) -> list[int]:
    """A row (0 = lowest) for each label (x of its line, left, right of its text).

    A label's line runs from its row down to the plot, so a label must overlap neither another
    label in its row nor the line of a label placed higher; and its own line must not cross a
    lower label. Labels are placed right to left (lines then pass left of the labels already
    placed), each in the lowest row that works; when none does, above every label it overlaps.
    """
    rows = [0] * len(labels)
    done: list[int] = []
    for i in sorted(range(len(labels)), key=lambda k: (-labels[k][0], k)):
        placed = [(labels[k], rows[k]) for k in done]
        row = next((r for r in range(len(done) + 1) if _fits(labels[i], r, placed, gap, own_line=True)),
                   None)
        if row is None:
            row = next(r for r in range(len(done) + 2) if _fits(labels[i], r, placed, gap, own_line=False))
        rows[i] = row
        done.append(i)
    return rows


def _fits(label: tuple[float, float, float], row: int,
          placed: Sequence[tuple[tuple[float, float, float], int]], gap: float, *, own_line: bool) -> bool:
    x, left, right = label
    for (kx, kleft, kright), krow in placed:
        if krow == row and right + gap > kleft and left < kright + gap:
            return False  # label over label
        if krow >= row and left - gap < kx < right + gap:
            return False  # this label over the line of a label placed as high or higher
        if own_line and krow < row and kleft - gap < x < kright + gap:
            return False  # this label's line through a lower label
    return True


def _marker(shape: str, x: float, y: float, colour: str, size: float = 3.6) -> str:
    s = size
    common = f'fill="{colour}" stroke="#FFFFFF" stroke-width="0.8"'
    if shape == "circle":
        return f'<circle cx="{_n(x)}" cy="{_n(y)}" r="{_n(s)}" {common}/>'
    if shape == "square":
        return (f'<rect x="{_n(x - s * 0.9)}" y="{_n(y - s * 0.9)}" width="{_n(s * 1.8)}" '
                f'height="{_n(s * 1.8)}" {common}/>')
    if shape in ("plus", "cross"):
        d = s * 1.1
        if shape == "plus":
            path = f"M{_n(x - d)} {_n(y)}H{_n(x + d)}M{_n(x)} {_n(y - d)}V{_n(y + d)}"
        else:
            path = (f"M{_n(x - d)} {_n(y - d)}L{_n(x + d)} {_n(y + d)}"
                    f"M{_n(x - d)} {_n(y + d)}L{_n(x + d)} {_n(y - d)}")
        return f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
    points = {
        "triangle": ((0, -1.2), (1.1, 0.8), (-1.1, 0.8)),
        "triangle-down": ((0, 1.2), (1.1, -0.8), (-1.1, -0.8)),
        "diamond": ((0, -1.3), (1.1, 0), (0, 1.3), (-1.1, 0)),
    }[shape]
    coords = " ".join(f"{_n(x + dx * s)},{_n(y + dy * s)}" for dx, dy in points)
    return f'<polygon points="{coords}" {common}/>'


def _runs(points: Sequence[tuple[float, float] | None]) -> list[list[tuple[float, float]]]:
    """Consecutive non-None points, split at every None (a gap)."""
    runs: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for point in points:
        if point is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(point)
    if current:
        runs.append(current)
    return runs


def _polyline_d(runs: Sequence[Sequence[tuple[float, float]]]) -> str:
    return " ".join("M" + "L".join(f"{_n(x)} {_n(y)}" for x, y in run) for run in runs)


# --- timeline ---------------------------------------------------------------------------------

MAX_EVENTS = 40  # target events drawn on one timeline; the description counts the rest
_ROW_H = 14.0


def _label_extents(xs: _Linear, items: Sequence[tuple[float, str, int]], size: float,
                   ) -> tuple[list[tuple[float, str, int, str, float]], list[tuple[float, float, float]]]:
    """Each label beside its line (right of it, or left when it would leave the chart)."""
    placed: list[tuple[float, str, int, str, float]] = []  # x, label, index, anchor, text x
    extents: list[tuple[float, float, float]] = []
    for t, label, index in items:
        x = xs(t)
        text = _clip(label, 40)
        w = _width(text, size)
        if x + 4 + w <= WIDTH - 4:
            placed.append((x, text, index, "start", x + 4))
            extents.append((x, x, x + 4 + w))
        else:
            placed.append((x, text, index, "end", x - 4))
            extents.append((x, x - 4 - w, x))
    return placed, extents


def timeline_svg(buckets: Sequence[Bucket], *, fault: tuple[float, float] | None,
                 markers: Sequence[tuple[float, str]], tolerance_ms: float | None = None,
                 events: Sequence[tuple[float, str]] = (), title: str = "Timeline") -> str:
    """A run's timeline: success ratio (top) and p95 latency (bottom) on one x axis of seconds.

    The fault interval is hatched in both panels (a line when it has no length); markers (the
    runner's: inject, first impact, recovered) are vertical lines told apart by dash pattern,
    labelled above the chart; ``events`` (the target's own observations, t on the run's axis)
    are dotted green lines labelled below it. Both sets of labels are staggered in rows so they
    do not overlap. The latency axis is scaled to the data; the latency tolerance is a labelled
    dashed line, or, when it is far above the data (it would flatten it), a note at the top of
    the panel. Markers and events outside the timeline are skipped, a fault interval is clipped
    to it. None values (empty buckets, buckets without a successful probe) break the lines.
    """
    shown = [b for b in buckets if _finite(b.t_start) is not None and _finite(b.t_end) is not None]
    if not shown:
        return _empty_svg("timeline", title, "no samples")
    x0 = min(b.t_start for b in shown)
    x1 = max(b.t_end for b in shown)
    if x1 <= x0:
        x1 = x0 + 1.0
    left, right = 64.0, 28.0
    xs = _Linear(x0, x1, left, WIDTH - right)
    tolerance = _finite(tolerance_ms)
    tolerance = tolerance if tolerance is not None and tolerance >= 0 else None

    # Marker labels: above the top panel, in as many rows as it takes not to overlap.
    label_size = 11.0
    visible = sorted(((t, str(label), i) for i, (t, label) in enumerate(markers)
                      if _finite(t) is not None and x0 <= t <= x1), key=lambda m: (m[0], m[1], m[2]))
    placed, extents = _label_extents(xs, visible, label_size)
    rows = _stagger(extents)
    row_count = max(rows, default=-1) + 1
    # Target events: labelled below the x axis, rows growing downwards.
    in_range = sorted(((t, str(label), i) for i, (t, label) in enumerate(events)
                       if _finite(t) is not None and x0 <= t <= x1), key=lambda m: (m[0], m[1], m[2]))
    drawn_events = in_range[:MAX_EVENTS]
    event_placed, event_extents = _label_extents(xs, drawn_events, label_size)
    event_rows = _stagger(event_extents)
    event_row_count = max(event_rows, default=-1) + 1

    top1 = 56.0 + row_count * _ROW_H
    panel_h = 140.0
    top2 = top1 + panel_h + 40
    bottom = top2 + panel_h
    events_top = bottom + 62  # below the tick labels and the axis title
    height = bottom + 48 + (event_row_count * _ROW_H + 22 if event_row_count else 0)
    panels = ((top1, "success"), (top2, "latency"))

    success = [None if (r := _finite(b.success_ratio)) is None else 100 * r for b in shown]
    latency = [_finite(b.p95_ms) for b in shown]
    data_max = max((v for v in latency if v is not None), default=0.0)
    # The tolerance joins the scale only when that does not flatten the data (at most 2.5x its
    # peak); otherwise the panel says where it is.
    on_scale = tolerance is not None and (data_max <= 0 or tolerance <= 2.5 * data_max)
    lat_max = max(data_max * 1.1, tolerance if on_scale and tolerance is not None else 0.0)
    y1_ticks = _nice_ticks(0, 100, 5)
    y2_ticks = _nice_ticks(0, lat_max if lat_max > 0 else 1.0, 4)
    ys1 = _Linear(0, 100, top1 + panel_h, top1)
    ys2 = _Linear(0, y2_ticks[-1], bottom, top2)

    hatch = _uid("gd-hatch", title, shown, fault, markers, tolerance, events)
    body: list[str] = [
        "<defs>",
        f'<pattern id="{hatch}" patternUnits="userSpaceOnUse" width="7" height="7" '
        'patternTransform="rotate(45)">',
        '<rect width="7" height="7" fill="#EEEEEE"/>',
        '<line x1="0" y1="0" x2="0" y2="7" stroke="#9A9A9A" stroke-width="2"/>',
        "</pattern>",
        "</defs>",
        _text(left - 48, 24, title, cls="gd-title", size=15, weight="600"),
        _text(left, 44, "Success ratio (%)", cls="gd-panel-title", size=12, weight="600"),
        _text(left, top2 - 10, "p95 latency (ms), successful probes", cls="gd-panel-title", size=12,
              weight="600"),
    ]

    # Grid, y ticks and axes.
    x_ticks = [t for t in _nice_ticks(x0, x1, 10) if x0 - 1e-9 <= t <= x1 + 1e-9]
    for top, _ in panels:
        body.extend(_line(xs(t), top, xs(t), top + panel_h, cls="gd-grid", stroke=GRID) for t in x_ticks)
    for ticks, ys in ((y1_ticks, ys1), (y2_ticks, ys2)):
        for tick in ticks:
            y = ys(tick)
            body.append(_line(left, y, WIDTH - right, y, cls="gd-grid", stroke=GRID))
            body.append(_text(left - 6, y + 4, _tick_label(tick, ticks), cls="gd-tick", size=11,
                              anchor="end", fill=MUTED))
    for tick in x_ticks:
        body.append(_line(xs(tick), bottom, xs(tick), bottom + 4, cls="gd-axis", stroke=INK))
        body.append(_text(xs(tick), bottom + 17, _tick_label(tick, x_ticks), cls="gd-tick", size=11,
                          anchor="middle", fill=MUTED))
    body.append(_text((left + WIDTH - right) / 2, bottom + 38, "seconds of the run", cls="gd-axis-title",
                      size=12, anchor="middle", fill=MUTED))

    # Fault: hatched interval, or a line when it has no length; clipped to the timeline.
    fault_desc = "no fault interval"
    ends = [_finite(v) for v in fault] if fault is not None else []
    if len(ends) == 2 and ends[0] is not None and ends[1] is not None:
        f0, f1 = min(ends[0], ends[1]), max(ends[0], ends[1])
        if f1 >= x0 and f0 <= x1:
            fault_desc = f"fault from {f0:.1f} s to {f1:.1f} s"
            c0, c1 = xs(max(f0, x0)), xs(min(f1, x1))
            for top, _ in panels:
                if f1 > f0 and c1 - c0 >= 1:
                    body.append(f'<rect class="gd-fault" x="{_n(c0)}" y="{_n(top)}" width="{_n(c1 - c0)}" '
                                f'height="{_n(panel_h)}" fill="url(#{hatch})" stroke="#9A9A9A" '
                                'stroke-width="0.8"/>')
                    body.append(_text((c0 + c1) / 2, top + 14, "fault", cls="gd-fault-label", size=11,
                                      anchor="middle", fill=INK, halo=True))
                else:  # no length: a line, labelled beside it
                    body.append(_line(c0, top, c0, top + panel_h, cls="gd-fault", stroke="#8A8A8A",
                                      width=3))
                    beside_left = c0 - left > 40
                    body.append(_text(c0 - 5 if beside_left else c0 + 5, top + 14, "fault",
                                      cls="gd-fault-label", size=11, anchor="end" if beside_left else "start",
                                      fill=INK, halo=True))

    # Success ratio: a step line, each bucket's value across its width.
    steps: list[str] = []
    previous_end: float | None = None
    for bucket, value in zip(shown, success, strict=True):
        if value is None:
            previous_end = None
            continue
        x_start, x_end, y = xs(bucket.t_start), xs(bucket.t_end), ys1(value)
        if previous_end is None or abs(bucket.t_start - previous_end) > 1e-6:
            steps.append(f"M{_n(x_start)} {_n(y)}H{_n(x_end)}")
        else:
            steps.append(f"V{_n(y)}H{_n(x_end)}")
        previous_end = bucket.t_end
    if steps:
        body.append(f'<path class="gd-series gd-success" d="{"".join(steps)}" fill="none" '
                    f'stroke="{SERIES_COLOURS[0]}" stroke-width="2" stroke-linejoin="round"/>')
    else:
        body.append(_text((left + WIDTH - right) / 2, top1 + panel_h / 2, "no samples", cls="gd-empty",
                          size=13, anchor="middle", fill=MUTED, halo=True))

    # p95 latency: a line through bucket midpoints, broken at gaps; lone points get a dot.
    points: list[tuple[float, float] | None] = []
    previous: Bucket | None = None
    for bucket, value in zip(shown, latency, strict=True):
        if previous is not None and abs(bucket.t_start - previous.t_end) > 1e-6:
            points.append(None)
        points.append(None if value is None else (xs((bucket.t_start + bucket.t_end) / 2), ys2(value)))
        previous = bucket
    runs = _runs(points)
    colour = SERIES_COLOURS[5]
    if runs:
        body.append(f'<path class="gd-series gd-latency" d="{_polyline_d(runs)}" fill="none" '
                    f'stroke="{colour}" stroke-width="2" stroke-linejoin="round"/>')
        body.extend(f'<circle class="gd-point" cx="{_n(run[0][0])}" cy="{_n(run[0][1])}" r="2.5" '
                    f'fill="{colour}"/>' for run in runs if len(run) == 1)
    else:
        body.append(_text((left + WIDTH - right) / 2, top2 + panel_h / 2, "no successful probes",
                          cls="gd-empty", size=13, anchor="middle", fill=MUTED, halo=True))
    if tolerance is not None and on_scale:
        y = ys2(tolerance)
        body.append(_line(left, y, WIDTH - right, y, cls="gd-tolerance", stroke=INK, width=1.2, dash="6 4"))
        body.append(_text(WIDTH - right - 2, y - 4, f"tolerance {tolerance:g} ms", cls="gd-tolerance-label",
                          size=11, anchor="end", fill=INK, halo=True))
    elif tolerance is not None:
        body.append(_text(WIDTH - right - 2, top2 + 12,
                          f"\u2191 tolerance {tolerance:g} ms, above this scale",
                          cls="gd-tolerance-label gd-off-scale", size=11, anchor="end", fill=INK, halo=True))

    # Axes on top of the data.
    for top, _ in panels:
        body.append(_line(left, top, left, top + panel_h, cls="gd-axis", stroke=INK))
        body.append(_line(left, top + panel_h, WIDTH - right, top + panel_h, cls="gd-axis", stroke=INK))

    # Markers: a line through both panels up to the label's row.
    for (x, text, index, anchor, text_x), row in zip(placed, rows, strict=True):
        baseline = top1 - 6 - row * 14
        dash = MARKER_DASHES[index % len(MARKER_DASHES)]
        body.append(_line(x, baseline - 9, x, bottom, cls="gd-marker", stroke=INK, width=1.3, dash=dash))
        body.append(_text(text_x, baseline, text, cls="gd-marker-label", size=label_size, anchor=anchor,
                          fill=INK, halo=True))
    marker_desc = [f"{label} at {t:.1f} s" for t, label, _ in visible]

    # Target events: a dotted line through both panels down to the label's row below the axis.
    if drawn_events:
        body.append(_text(left, events_top - 8, "Target events", cls="gd-panel-title", size=12,
                          weight="600"))
    event_colour = SERIES_COLOURS[2]
    for (x, text, _, anchor, text_x), row in zip(event_placed, event_rows, strict=True):
        baseline = events_top + 12 + row * _ROW_H
        body.append(_line(x, top1, x, bottom, cls="gd-event", stroke=event_colour, width=1.4, dash="2 2"))
        body.append(_line(x, bottom, x, baseline - 9, cls="gd-event-lead", stroke=event_colour, width=0.8,
                          dash="1 2"))
        body.append(f'<circle class="gd-event-dot" cx="{_n(x)}" cy="{_n(baseline - 4)}" r="2.5" '
                    f'fill="{event_colour}"/>')
        body.append(_text(text_x, baseline, text, cls="gd-event-label", size=label_size, anchor=anchor,
                          fill=INK, halo=True))
    event_desc = [f"{label} at {t:.1f} s" for t, label, _ in drawn_events]
    if len(in_range) > len(drawn_events):
        event_desc.append(f"{len(in_range) - len(drawn_events)} more not drawn")

    width_s = shown[0].t_end - shown[0].t_start
    desc = (f"{title}: success ratio and p95 latency per {width_s:g} s bucket, from {x0:g} s to {x1:g} s; "
            f"{fault_desc}; markers: {', '.join(marker_desc) or 'none'}; "
            f"target events: {', '.join(event_desc) or 'none'}"
            + (f"; latency tolerance {tolerance:g} ms" if tolerance is not None else "")
            + ("" if on_scale or tolerance is None else ", above the latency scale") + ".")
    return _svg("timeline", WIDTH, height, title, desc, body)


# --- line chart -------------------------------------------------------------------------------

def line_chart_svg(categories: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]], *,
                   y_label: str, title: str, target: tuple[float, str] | None = None) -> str:
    """One line per series over categorical x (e.g. ISO weeks); None (or a missing value) is a gap.

    Series differ by colour, marker shape and dash pattern; x labels are rotated and thinned
    when they would not fit; the legend wraps into columns. ``target`` (value, label) is a
    dashed horizontal line with its label, inside the y range.
    """
    n = len(categories)
    if n == 0 or not series:
        return _empty_svg("line", title, "no data")
    data = [(name, [_finite(v) for v in list(values)[:n]] + [None] * max(0, n - len(values)))
            for name, values in series]
    everything = [v for _, values in data for v in values if v is not None]
    goal = _finite(target[0]) if target is not None else None
    bounds = everything + ([goal] if goal is not None else [])
    low = min([0.0, *bounds])
    high = max(bounds, default=1.0)
    ticks = _nice_ticks(low, high if high > low else low + 1, 5)

    left, right, top, plot_h = 72.0, 24.0, 48.0, 280.0
    plot_w = WIDTH - left - right
    band = plot_w / n
    xs = [left + (i + 0.5) * band for i in range(n)]
    ys = _Linear(ticks[0], ticks[-1], top + plot_h, top)
    bottom = top + plot_h

    label_size = 11.0
    labels = [_clip(str(c), 16) for c in categories]
    widest = max(_width(text, label_size) for text in labels)
    if widest + 8 <= band:
        every, rotated, labels_h = 1, False, 20.0
    else:
        # Rotated 45 degrees, labels 20 units apart horizontally are 14 apart across their lines.
        every, rotated = max(1, math.ceil(20 / band)), True
        labels_h = widest * math.sin(math.radians(45)) + 18

    body: list[str] = [_text(16, 26, title, cls="gd-title", size=15, weight="600")]
    for tick in ticks:
        y = ys(tick)
        body.append(_line(left, y, WIDTH - right, y, cls="gd-grid", stroke=GRID))
        body.append(_text(left - 6, y + 4, _tick_label(tick, ticks), cls="gd-tick", size=11, anchor="end",
                          fill=MUTED))
    for i, (x, text) in enumerate(zip(xs, labels, strict=True)):
        if i % every:
            body.append(_line(x, bottom, x, bottom + 2, cls="gd-axis", stroke=INK))
            continue
        body.append(_line(x, bottom, x, bottom + 5, cls="gd-axis", stroke=INK))
        if rotated:
            body.append(_text(x + 3, bottom + 10, text, cls="gd-tick", size=label_size, anchor="end",
                              fill=MUTED, rotate=-45))
        else:
            body.append(_text(x, bottom + 16, text, cls="gd-tick", size=label_size, anchor="middle",
                              fill=MUTED))
    body.append(_line(left, top, left, bottom, cls="gd-axis", stroke=INK))
    body.append(_line(left, ys(0) if ticks[0] <= 0 <= ticks[-1] else bottom, WIDTH - right,
                      ys(0) if ticks[0] <= 0 <= ticks[-1] else bottom, cls="gd-axis", stroke=INK))
    body.append(_text(18, top + plot_h / 2, _clip(y_label, 50), cls="gd-axis-title", size=12,
                      anchor="middle", fill=MUTED, rotate=-90))

    if goal is not None and target is not None:
        y = ys(goal)
        body.append(_line(left, y, WIDTH - right, y, cls="gd-target", stroke=INK, width=1.4, dash="8 4"))
        body.append(_text(WIDTH - right - 2, y - 5, _clip(str(target[1]), 60), cls="gd-target-label",
                          size=11, anchor="end", fill=INK, halo=True))

    stroke_w = 1.8 if len(data) <= 8 else 1.3
    for i, (name, values) in enumerate(data):
        colour, shape, dash = _style(i)
        points = [None if v is None else (xs[j], ys(v)) for j, v in enumerate(values)]
        runs = _runs(points)
        body.append(f'<g class="gd-series" data-series="{i}">')
        body.append(f"<title>{_esc(name)}</title>")
        if runs:
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            body.append(f'<path class="gd-line" d="{_polyline_d(runs)}" fill="none" stroke="{colour}" '
                        f'stroke-width="{_n(stroke_w)}" stroke-linejoin="round"{dash_attr}/>')
        body.extend(_marker(shape, x, y, colour) for run in runs for x, y in run)
        body.append("</g>")

    # Legend: columns as wide as the widest entry, as many as fit, filled row by row.
    legend_top = bottom + labels_h + 16
    names = [_clip(str(name), 28) for name, _ in data]
    column_w = max(_width(name, label_size) for name in names) + 46
    columns = max(1, int((WIDTH - 32) // column_w))
    for i, name in enumerate(names):
        colour, shape, dash = _style(i)
        x = 16 + (i % columns) * column_w
        y = legend_top + (i // columns) * 18
        body.append(_line(x, y, x + 26, y, cls="gd-legend-line", stroke=colour, width=stroke_w, dash=dash))
        body.append(_marker(shape, x + 13, y, colour))
        body.append(_text(x + 32, y + 4, name, cls="gd-legend", size=label_size, fill=INK))
    height = legend_top + math.ceil(len(names) / columns) * 18 + 8

    desc = (f"{title}: {len(data)} series over {n} categories from {categories[0]} to {categories[-1]}; "
            f"y axis: {y_label}; gaps where there is no value"
            + (f"; {target[1]} at {goal:g}." if goal is not None and target is not None else "."))
    return _svg("line", WIDTH, height, title, desc, body)


def _style(index: int) -> tuple[str, str, str]:
    return (SERIES_COLOURS[index % len(SERIES_COLOURS)], SHAPES[index % len(SHAPES)],
            SERIES_DASHES[index % len(SERIES_DASHES)])


# --- heat map ---------------------------------------------------------------------------------

def _hatch(pattern_id: str, ink: str, *, cross: bool = False) -> str:
    """A diagonal hatch (crossed for marked cells) on a light grey: "not a value", in any print."""
    lines = f'<line x1="0" y1="0" x2="0" y2="8" stroke="{ink}" stroke-width="1.2"/>'
    if cross:
        lines += f'<line x1="0" y1="4" x2="8" y2="4" stroke="{ink}" stroke-width="1.2"/>'
    return (f'<pattern id="{pattern_id}" patternUnits="userSpaceOnUse" width="8" height="8" '
            f'patternTransform="rotate(45)"><rect width="8" height="8" fill="{UNTESTED_FILL}"/>'
            f"{lines}</pattern>")


def heatmap_svg(rows: Sequence[str], columns: Sequence[str], values: Mapping[tuple[str, str], float | None],
                *, title: str, value_format: str = "{:.0%}",
                counts: Mapping[tuple[str, str], int] | None = None,
                marks: Mapping[tuple[str, str], str] | None = None) -> str:
    """Rows x columns of values in 0..1 (e.g. pass rate per cell and kind), each written in its cell.

    Colour from a diverging orange (low, bad) to blue (high, good) scale (values clamped to 0..1
    for the colour only), text black or white for contrast. A cell without a value is hatched and
    says "untested"; a cell in ``marks`` (e.g. "excluded") is cross-hatched and says its mark
    (under its value, when it has one). With counts, "n=3" under the value.
    """
    if not rows or not columns:
        return _empty_svg("heatmap", title, "no data")
    marks = marks or {}
    label_size = 11.0
    row_labels = [_clip(str(r), 30) for r in rows]
    column_labels = [_clip(str(c), 24) for c in columns]
    left = 16 + min(220.0, max(_width(text, 12) for text in row_labels) + 10)
    cell_w = min(140.0, max(64.0, (WIDTH - left - 24) / len(columns)))
    cell_h = 38.0
    widest = max(_width(text, label_size) for text in column_labels)
    rotated = widest + 8 > cell_w
    header_h = widest * math.sin(math.radians(45)) + 14 if rotated else 20.0
    extra_right = widest * math.cos(math.radians(45)) if rotated else 0.0
    # At least as wide as the other charts, so text is the same size in all of a report's charts.
    width = max(WIDTH, left + len(columns) * cell_w + 24 + extra_right)
    top = 44 + header_h
    untested_id = _uid("gd-untested", title, rows, columns)
    marked_id = _uid("gd-marked", title, rows, columns)

    body: list[str] = ["<defs>", _hatch(untested_id, "#B0B0B0"), _hatch(marked_id, "#8A8A8A", cross=True),
                       "</defs>", _text(16, 26, title, cls="gd-title", size=15, weight="600")]
    for j, text in enumerate(column_labels):
        x = left + (j + 0.5) * cell_w
        if rotated:
            body.append(_text(x - 2, top - 6, text, cls="gd-column", size=label_size, fill=INK, rotate=-45))
        else:
            body.append(_text(x, top - 8, text, cls="gd-column", size=label_size, anchor="middle", fill=INK))
    for i, text in enumerate(row_labels):
        body.append(_text(left - 8, top + (i + 0.5) * cell_h + 4, text, cls="gd-row", size=12, anchor="end",
                          fill=INK))

    untested = marked = 0
    mark_names: list[str] = []
    for i, row in enumerate(rows):
        for j, column in enumerate(columns):
            x, y = left + j * cell_w, top + i * cell_h
            cx, cy = x + cell_w / 2, y + cell_h / 2
            value = _finite(values.get((row, column)))
            count = counts.get((row, column)) if counts is not None else None
            mark = marks.get((row, column))
            mark = _clip(str(mark), 14) if mark else None
            marked += bool(mark)
            if mark and mark not in mark_names:
                mark_names.append(mark)
            if value is None:
                shown = mark or "untested"
                fill = f"url(#{marked_id if mark else untested_id})"
                ink = INK
                tooltip = f"{row} \u00d7 {column}: {shown}"
                untested += not mark
            else:
                shown = value_format.format(value)
                fill = _diverging(value)
                ink = _text_on(fill)
                tooltip = (f"{row} \u00d7 {column}: {shown}" + ("" if count is None else f" (n={count})")
                           + (f", {mark}" if mark else ""))
            body.append(f'<g class="gd-cell{"" if value is not None else " gd-novalue"}">')
            body.append(f"<title>{_esc(tooltip)}</title>")
            body.append(f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(cell_w)}" height="{_n(cell_h)}" '
                        f'fill="{fill}" stroke="#FFFFFF" stroke-width="1.5"/>')
            size = 13 if value is not None else 11
            under = mark if value is not None and mark else (f"n={count}" if count is not None else None)
            if value is None:
                body.append(_text(cx, cy + 4, shown, cls="gd-value", size=size, anchor="middle",
                                  fill=ink, weight="600", halo=True))
            elif under is not None:
                body.append(_text(cx, cy + 1, shown, cls="gd-value", size=size, anchor="middle", fill=ink))
                body.append(_text(cx, cy + 13, under, cls="gd-count", size=9, anchor="middle", fill=ink))
            else:
                body.append(_text(cx, cy + 5, shown, cls="gd-value", size=size, anchor="middle", fill=ink))
            body.append("</g>")

    # Legend: the scale in ten steps, its ends labelled with what they mean, then the swatches.
    legend_top = top + len(rows) * cell_h + 18
    step_w = 22.0
    for k in range(10):
        colour = _diverging((k + 0.5) / 10)
        body.append(f'<rect class="gd-scale" x="{_n(left + k * step_w)}" y="{_n(legend_top)}" '
                    f'width="{_n(step_w)}" height="12" fill="{colour}"/>')
    body.append(_text(left, legend_top + 26, f"{value_format.format(0.0)} worse", cls="gd-legend",
                      size=label_size, fill=INK))
    body.append(_text(left + 10 * step_w, legend_top + 26, f"better {value_format.format(1.0)}",
                      cls="gd-legend", size=label_size, anchor="end", fill=INK))
    swatch_x = left + 10 * step_w + 30
    swatches = [("untested", untested_id), *((name, marked_id) for name in mark_names)]
    for name, pattern in swatches:
        body.append(f'<rect class="gd-scale" x="{_n(swatch_x)}" y="{_n(legend_top)}" width="{_n(step_w)}" '
                    f'height="12" fill="url(#{pattern})" stroke="#8A8A8A"/>')
        body.append(_text(swatch_x + step_w + 6, legend_top + 10, name, cls="gd-legend", size=label_size,
                          fill=INK))
        swatch_x += step_w + 18 + _width(name, label_size)
    height = legend_top + 40

    desc = (f"{title}: {len(rows)} rows by {len(columns)} columns; each cell's value is written in it, "
            f"orange is lower (worse), blue is higher (better); {untested} cells untested"
            + (f", {marked} marked ({', '.join(mark_names)})" if marked else "") + ".")
    return _svg("heatmap", width, height, title, desc, body)
