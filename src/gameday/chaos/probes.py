"""Probes for the steady-state hypothesis: does the cell serve, can it write?"""

from __future__ import annotations

from typing import Any

from gameday.engine.context import run_context

__all__ = ["cell_serves", "database_writable"]

# Steady-state writes are told apart from the timeline's by their reference.
TAG = "steady-state"


def cell_serves(probes: int = 10, configuration: dict[str, Any] | None = None,
                secrets: dict[str, Any] | None = None) -> float:
    """Share of ``probes`` requests through the cell's front door that succeed (0..1)."""
    target = run_context(configuration).target
    results = [target.probe(-(i + 1), TAG) for i in range(max(1, probes))]
    return sum(1 for r in results if r.ok) / len(results)


def database_writable(configuration: dict[str, Any] | None = None,
                      secrets: dict[str, Any] | None = None) -> bool:
    """One write through the service reaches the database and is acknowledged."""
    return run_context(configuration).target.probe(0, TAG).ok
