"""The target interface and the fault kinds every target implements."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from gameday.model.faults import FAULT_KINDS, FaultKind

__all__ = ["FAULT_KINDS", "FaultKind", "Observation", "ObservedSpan", "Probe", "Target",
           "TargetEvent"]

# Capabilities a target may declare (Target.capabilities).
WRITE_LEDGER = "write_ledger"  # missing_writes(): RTO and RPO from sequence-numbered writes
OBSERVES = "observes"  # observe(): the target's own figures and events


@dataclass(frozen=True)
class Probe:
    ok: bool
    status: int
    latency_ms: float
    error: str | None = None
    write_seq: int | None = None
    payment_id: int | None = None
    # The probe gave up at its own client timeout: the cell may merely be slow, so the sample
    # breaches on latency but is not counted as an error the cell returned.
    timed_out: bool = False


@dataclass(frozen=True)
class TargetEvent:
    """Something the target itself saw happen (a replica ready, a standby promoted, ...)."""

    monotonic: float  # this machine's monotonic clock, like the runner's
    utc: datetime
    name: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ObservedSpan:
    """What the engine asks a target about: the run's faults, when they landed, its span."""

    fault_ids: Collection[str]
    t_inject: float  # monotonic
    start: float  # monotonic
    end: float  # monotonic


@dataclass(frozen=True)
class Observation:
    """The target's own figures for a run (named as in analytics.criteria.TARGET_FIGURES; None
    where it saw nothing) and its events in the run's span."""

    observed_by: str
    figures: dict[str, float | int | None]
    events: tuple[TargetEvent, ...]
    complete: bool  # nothing more will come (every replica back, the standby rebuilt, ...)
    detail: str = ""


class Target(Protocol):
    name: str
    capabilities: frozenset[str]

    def check(self, kind: FaultKind, spec: dict[str, Any]) -> None: ...

    def revert_spec(self, fault_id: str, kind: FaultKind) -> dict[str, Any]: ...

    def inject(self, fault_id: str, kind: FaultKind, spec: dict[str, Any]) -> dict[str, Any]: ...

    def probe(self, seq: int, tag: str) -> Probe: ...

    def reachable(self) -> str | None:
        """None when the cell answers, else why not."""
        ...

    def missing_writes(self, tag: str, seqs: list[int]) -> list[int]: ...

    def observe(self, span: ObservedSpan) -> Observation: ...
