"""How numbers read in every report: one formatter for HTML, Markdown and summary sentences."""

from __future__ import annotations

import math
from typing import Any

NO_VALUE = "\u2013"  # an en dash: a figure that does not exist (no impact, no failover)
TIMES = "\u00d7"
MINUS = "\u2212"  # a difference below zero: never an ASCII hyphen, which Markdown can read as a list
# Words for a figure that has no number: a report never writes "no impact" as 0 s.
NO_IMPACT = "no impact seen"
NOT_MEASURED = "not measured"
NOT_RECOVERED = "not recovered"


def fmt(value: Any, unit: str = "") -> str:
    """How a number reads in every report (the same for HTML and Markdown)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NO_VALUE
    if unit == "+s":  # a signed difference of seconds
        v = float(value)
        shown = fmt(abs(v), "s")
        return ("+" if v >= 0 or shown == fmt(0.0, "s") else MINUS) + shown
    if unit == "s":
        v = float(value)
        if v < 10:
            return f"{v:.2f} s"
        return f"{v:.1f} s" if v < 120 else f"{v / 60:.1f} min"
    if unit == "min":
        return f"{float(value):.2f} min"
    if unit == "ms":
        return f"{float(value):.1f} ms"
    if unit == "ratio":  # 0..1 shown as a percentage
        return f"{float(value) * 100:.1f} %"
    if unit == "pct":  # already 0..100
        return f"{float(value):.1f} %"
    if unit == "score":
        return f"{float(value):.0f}"
    if unit == "x":
        return f"{float(value):.2f}{TIMES}"
    if unit == "days":
        return f"{float(value):.0f} days"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
