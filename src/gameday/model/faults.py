"""Fault kinds and their arguments: the domain's words, checked without touching anything.

    kind -> {argument: (type, low, high)}; every argument optional unless listed in REQUIRED
"""

from __future__ import annotations

import math
from typing import Any, Literal

from gameday.errors import InputError

FaultKind = Literal["pod-kill", "latency", "cpu-stress", "db-failover"]
FAULT_KINDS: tuple[FaultKind, ...] = ("pod-kill", "latency", "cpu-stress", "db-failover")

MAX_DURATION_S = 3600.0

# kind -> {argument: (type, low, high)}; every argument is optional unless listed in REQUIRED.
ARGUMENTS: dict[FaultKind, dict[str, tuple[type, float, float]]] = {
    "pod-kill": {"count": (int, 1, 100)},
    "latency": {"latency_ms": (float, 0, 60_000), "jitter_ms": (float, 0, 60_000),
                "duration_s": (float, 0, MAX_DURATION_S)},
    "cpu-stress": {"workers": (int, 1, 256), "load_pct": (int, 1, 100),
                   "duration_s": (float, 0, MAX_DURATION_S)},
    "db-failover": {},
}
REQUIRED: dict[FaultKind, tuple[str, ...]] = {
    "pod-kill": (), "latency": ("latency_ms", "duration_s"),
    "cpu-stress": ("duration_s",), "db-failover": (),
}


def validate_spec(kind: Any, spec: dict[str, Any], where: str) -> dict[str, Any]:
    """Check a fault's arguments without touching anything; return them normalised."""
    if kind not in FAULT_KINDS:
        raise InputError(f"{where}.kind", "one of " + ", ".join(FAULT_KINDS), kind,
                         "use a fault kind gameday knows")
    allowed = ARGUMENTS[kind]
    out: dict[str, Any] = {}
    for name, value in spec.items():
        if name not in allowed:
            raise InputError(f"{where}.{name}", "arguments of " + kind + ": "
                             + (", ".join(allowed) or "none"), name, f"remove {name}")
        typ, low, high = allowed[name]
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool) \
            and math.isfinite(value)
        whole = isinstance(value, int) and not isinstance(value, bool)
        if not numeric or (typ is int and not whole):
            raise InputError(f"{where}.{name}", "a whole number" if typ is int else "a number",
                             value, f"give {name} as a number")
        positive = name == "duration_s"
        if value < low or value > high or (positive and value <= 0):
            lower = f"above {low:g}" if positive else f"at least {low:g}"
            raise InputError(f"{where}.{name}", f"a value {lower} and at most {high:g}", value,
                             f"set {name} within that range")
        out[name] = typ(value)
    for name in REQUIRED[kind]:
        if name not in out:
            raise InputError(f"{where}.{name}", f"{name} for a {kind} fault", "nothing",
                             f"add {name}")
    if kind == "latency" and out.get("jitter_ms", 0) > out["latency_ms"]:
        raise InputError(f"{where}.jitter_ms", "a jitter no larger than latency_ms",
                         out["jitter_ms"], "lower jitter_ms")
    return out


__all__ = ["ARGUMENTS", "FAULT_KINDS", "MAX_DURATION_S", "REQUIRED", "FaultKind", "validate_spec"]
