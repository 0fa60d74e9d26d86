"""Fault requests for the sandbox: their validation (pure) and their records.

The same validator runs in the CLI, before anything is touched, and again in the cell
controller's admin API, so a request that reaches a cell by another route is held to the same
rules.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from gameday.errors import InputError
from gameday.sandbox.state import decode_json

FaultKind = Literal["kill-replica", "latency", "cpu", "kill-primary"]
FAULT_KINDS: tuple[FaultKind, ...] = ("kill-replica", "latency", "cpu", "kill-primary")

# A sandbox fault never outlives this, whatever is asked: a forgotten fault expires by itself.
MAX_DURATION_S = 3600.0
MAX_LATENCY_MS = 60_000.0
MAX_WORKERS_PER_CPU = 64
MAX_WORKERS = 1024  # whatever the cell: a flag's own bound, before the cell's is known
# A fault id is part of admin API paths.
FAULT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class FaultSpec:
    kind: FaultKind
    count: int = 1
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    duration_s: float = 0.0
    workers: int = 1
    load_pct: int = 100

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FaultRecord:
    """One injected fault: what it is, when it expires and how it is reverted."""

    id: str
    cell: str
    spec: FaultSpec
    injected_utc: str
    expires_utc: str
    expires_monotonic: float
    revert: dict[str, Any]
    targets: list[dict[str, Any]] = field(default_factory=list)
    reverted_utc: str | None = None
    revert_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["spec"] = self.spec.to_json()
        return data


def new_fault_id(kind: str) -> str:
    return f"{kind}-{secrets.token_hex(4)}"


def _number(where: str, value: Any, fix: str) -> float:
    """A finite number: NaN and infinity pass every range comparison, so refuse them first."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(where, "a finite number", value, fix)
    try:
        number = float(value)
    except OverflowError:  # an int beyond any float
        number = math.inf
    if not math.isfinite(number):
        raise InputError(where, "a finite number", value, fix)
    return number


def _duration(where: str, value: Any) -> float:
    fix = f"pass a duration in seconds greater than 0 and at most {MAX_DURATION_S:.0f}"
    seconds = _number(where, value, fix)
    if not 0 < seconds <= MAX_DURATION_S:
        raise InputError(where, f"a duration in seconds in (0, {MAX_DURATION_S:.0f}]", value, fix)
    return seconds


def _whole(where: str, value: Any, low: int, high: int, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(where, f"a whole number from {low} to {high}", value, fix)
    return value


def validate_fault(kind: Any, params: Any, replicas: int, cpus: int) -> FaultSpec:
    """Check a fault request against the cell it targets; raise InputError naming the field."""
    if kind not in FAULT_KINDS:
        raise InputError("fault kind", "one of " + ", ".join(FAULT_KINDS), kind,
                         "choose a kind the sandbox knows")
    if not isinstance(params, dict):
        raise InputError("params", "an object of the fault's options", params,
                         'send e.g. {"ms": 200, "duration": 10}')
    if kind == "kill-replica":
        count = params.get("count", 1)
        count = _whole("--count", count, 1, replicas,
                       f"kill between 1 and {replicas} replicas (the cell has {replicas})")
        return FaultSpec(kind="kill-replica", count=count)
    if kind == "latency":
        ms = _number("--ms", params.get("ms"), "pass the added latency in milliseconds, e.g. --ms 200")
        if ms < 0 or ms > MAX_LATENCY_MS:
            raise InputError("--ms", f"a latency from 0 to {MAX_LATENCY_MS:.0f} ms", params.get("ms"),
                             "pass a latency that is not negative, e.g. --ms 200")
        jitter = _number("--jitter", params.get("jitter", 0), "pass the jitter in ms, e.g. --jitter 10")
        if jitter < 0 or jitter > ms:
            raise InputError("--jitter", f"a jitter from 0 to the latency ({ms:g} ms)",
                             params.get("jitter"), "pass a jitter no larger than --ms")
        return FaultSpec(kind="latency", latency_ms=ms, jitter_ms=jitter,
                         duration_s=_duration("--duration", params.get("duration")))
    if kind == "cpu":
        workers = _whole("--workers", params.get("workers", 1), 1,
                         min(MAX_WORKERS, MAX_WORKERS_PER_CPU * max(cpus, 1)),
                         "pass how many burner processes to start, e.g. --workers 1")
        load = _whole("--load", params.get("load", 100), 1, 100,
                      "pass the load of each burner in percent of one CPU, from 1 to 100")
        return FaultSpec(kind="cpu", workers=workers, load_pct=load,
                         duration_s=_duration("--duration", params.get("duration")))
    return FaultSpec(kind="kill-primary")


def parse_fault_request(raw: bytes | str) -> tuple[Any, Any, Any]:
    """Kind, params and id of an admin API fault request; strict JSON (no NaN, no Infinity)."""
    body = decode_json(raw, "request body", "a JSON object with finite numbers",
                       'send {"kind": ..., "params": {...}} with finite numbers')
    if not isinstance(body, dict):
        raise InputError("request body", "a JSON object", body, 'send {"kind": ...}')
    return body.get("kind"), body.get("params", {}), body.get("id")
