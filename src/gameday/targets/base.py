"""The target interface and the fault kinds every target implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from gameday.model.faults import FAULT_KINDS, FaultKind

__all__ = ["FAULT_KINDS", "FaultKind", "Probe", "Target"]


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


class Target(Protocol):
    name: str

    def check(self, kind: FaultKind, spec: dict[str, Any]) -> None: ...

    def revert_spec(self, fault_id: str, kind: FaultKind) -> dict[str, Any]: ...

    def inject(self, fault_id: str, kind: FaultKind, spec: dict[str, Any]) -> dict[str, Any]: ...

    def probe(self, seq: int, tag: str) -> Probe: ...

    def reachable(self) -> str | None:
        """None when the cell answers, else why not."""
        ...

    def missing_writes(self, tag: str, seqs: list[int]) -> list[int]: ...

    def ground_truth(self) -> list[dict[str, Any]]: ...
