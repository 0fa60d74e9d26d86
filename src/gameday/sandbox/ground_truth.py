"""Recovery of a sandbox fault read from ground-truth events (pure functions).

These are what the sandbox itself saw happen, so they are the yardstick for the runner's own
figures, which come from probing the cell from outside.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

Event = dict[str, Any]


@dataclass(frozen=True)
class FaultRecovery:
    fault_id: str
    kind: str
    injected_monotonic: float
    impact_s: float | None  # injection -> the cell noticed (endpoint out, primary lost, ...)
    recovered_s: float | None  # injection -> service restored; None while not yet
    redundancy_s: float | None  # injection -> back to full redundancy (standby rebuilt)
    detail: str

    @property
    def complete(self) -> bool:
        return self.recovered_s is not None and (
            self.kind != "kill-primary" or self.redundancy_s is not None)


def _after(events: Iterable[Event], t: float, name: str, **match: Any) -> list[Event]:
    return [e for e in events if e["event"] == name and e["monotonic"] >= t
            and all(e.get(k) == v for k, v in match.items())]


def _of_fault(events: Iterable[Event], fault_id: str, name: str) -> list[Event]:
    # Events that name the fault belong to it whenever they were logged: the injection
    # itself (toxic_added, stress_started) is logged just before fault_injected.
    return [e for e in events if e["event"] == name and e.get("fault_id") == fault_id]


def _first(events: list[Event]) -> Event | None:
    return min(events, key=lambda e: e["monotonic"], default=None)


def _since(t0: float, event: Event | None) -> float | None:
    return None if event is None else round(max(0.0, event["monotonic"] - t0), 3)


def recovery_of(injected: Event, events: list[Event]) -> FaultRecovery:
    """Figures for the fault whose ``fault_injected`` event is ``injected``."""
    t0 = injected["monotonic"]
    fault_id = injected["fault_id"]
    kind = injected["kind"]
    if kind == "kill-replica":
        return _replica_recovery(injected, events)
    if kind == "latency":
        added = _first(_of_fault(events, fault_id, "toxic_added"))
        removed = _first(_of_fault(events, fault_id, "toxic_removed"))
        detail = "latency toxic removed " + (
            f"({removed.get('reason')})" if removed else "(not yet)")
        return FaultRecovery(fault_id, kind, t0, _since(t0, added), _since(t0, removed), None,
                             detail)
    if kind == "cpu":
        started = _first(_of_fault(events, fault_id, "stress_started"))
        expected = len(started.get("pids", [])) if started else 0
        stopped = _of_fault(events, fault_id, "stress_stopped")
        last = max(stopped, key=lambda e: e["monotonic"]) if len(stopped) >= expected > 0 \
            else None
        return FaultRecovery(fault_id, kind, t0, _since(t0, started), _since(t0, last), None,
                             f"{len(stopped)} of {expected} burners stopped")
    lost = _first(_after(events, t0, "primary_lost"))
    repointed = _first(_after(events, t0, "proxy_repointed"))
    rebuilt = _first(_after(events, t0, "standby_rebuilt"))
    promoted = _first(_after(events, t0, "standby_promoted"))
    detail = (f"promoted {promoted['node']} in {promoted['took_s']} s" if promoted
              else "no promotion yet")
    return FaultRecovery(fault_id, kind, t0, _since(t0, lost), _since(t0, repointed),
                         _since(t0, rebuilt), detail)


def _replica_recovery(injected: Event, events: list[Event]) -> FaultRecovery:
    t0 = injected["monotonic"]
    targets = injected.get("targets", [])
    removed_at: list[Event] = []
    back_at: list[Event] = []
    for target in targets:
        removed = _first(_after(events, t0, "lb_endpoint_removed", pid=target["pid"]))
        if removed is not None:
            removed_at.append(removed)
        restarted = _first(_after(events, t0, "replica_ready", replica=target["replica"]))
        if restarted is not None:
            # The new process is back in rotation when the balancer adds its pid.
            added = _first(_after(events, t0, "lb_endpoint_added", pid=restarted["pid"]))
            if added is not None:
                back_at.append(added)
    impact = _first(removed_at)
    recovered = max(back_at, key=lambda e: e["monotonic"]) if len(back_at) == len(targets) \
        and targets else None
    return FaultRecovery(injected["fault_id"], "kill-replica", t0, _since(t0, impact),
                         _since(t0, recovered), None,
                         f"{len(back_at)} of {len(targets)} replicas back in rotation")


def injections(events: list[Event]) -> list[Event]:
    return [e for e in events if e["event"] == "fault_injected"]


def service_restored_s(events: list[Event], fault_id: str) -> float | None:
    """When the cause of a fault's impact on clients was gone, in seconds after injection.

    A killed replica stops causing errors once the balancer takes it out; a latency toxic or a
    CPU burner once removed; a lost primary once the proxy points at the promoted standby.
    """
    injected = next((e for e in injections(events) if e["fault_id"] == fault_id), None)
    if injected is None:
        return None
    truth = recovery_of(injected, events)
    return truth.impact_s if truth.kind == "kill-replica" else truth.recovered_s
