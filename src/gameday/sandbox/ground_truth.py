"""What the sandbox itself saw happen to a fault, read from its ground-truth events (pure).

These are the target's own figures (DESIGN.md "Measurements"): the runner's come from probing
the cell from outside, these from the cell's own components, and reports show both side by
side. Times are the events' ``monotonic`` stamps (the same clock as the runner's on this
machine), in seconds after the runner's ``t_inject``.

    restore_s           full redundancy again: every killed replica ready again; after a
                        failover, a standby streaming again (standby_rebuilt)
    failover_s          standby_promoted - primary_lost
    scale_out_s         the autoscaler's first scale-out after injection
    replica_crashes     replica exits in the span that none of our faults caused
    target_restored_s   the cause of client impact gone: the killed replica out of the
                        balancer, the toxic removed, the burners stopped, the proxy repointed
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Event = dict[str, Any]


@dataclass(frozen=True)
class SandboxObservation:
    figures: dict[str, float | int | None]
    complete: bool  # everything the sandbox will report about these faults has happened
    detail: str


def _named(events: Iterable[Event], name: str, since: float | None = None,
           **match: Any) -> list[Event]:
    return [e for e in events if e.get("event") == name
            and (since is None or float(e.get("monotonic", 0.0)) >= since)
            and all(e.get(k) == v for k, v in match.items())]


def _first(events: Sequence[Event]) -> Event | None:
    return min(events, key=lambda e: float(e["monotonic"]), default=None)


def _last(events: Sequence[Event]) -> Event | None:
    return max(events, key=lambda e: float(e["monotonic"]), default=None)


def _after(t0: float, event: Event | None) -> float | None:
    return None if event is None else round(float(event["monotonic"]) - t0, 4)


def observe(events: Sequence[Event], *, fault_ids: Collection[str], t_inject: float,
            span: tuple[float, float]) -> SandboxObservation:
    """The sandbox's figures for the run whose faults are ``fault_ids``, injected at
    ``t_inject`` (monotonic), over the run's ``span`` (monotonic start, end)."""
    start, end = span
    inside = [e for e in events if start <= float(e.get("monotonic", 0.0)) <= end]
    injected = [e for e in inside if e.get("event") == "fault_injected"
                and e.get("fault_id") in fault_ids]
    ours = {str(t.get("pid")) for e in injected for t in e.get("targets", [])
            if t.get("pid") is not None}
    # A replica the autoscaler retired is no crash either.
    crashes = sum(1 for e in _named(inside, "replica_exit")
                  if str(e.get("pid")) not in ours and e.get("reason") != "scaled_in")
    figures: dict[str, float | int | None] = {
        "restore_s": None, "failover_s": None, "scale_out_s": None,
        "replica_crashes": crashes, "target_restored_s": None}
    scaled = [e for e in _named(inside, "autoscaler_scaled", t_inject)
              if int(e.get("to_replicas", 0)) > int(e.get("from_replicas", 0))]
    figures["scale_out_s"] = _after(t_inject, _first(scaled))
    complete, detail = True, "no fault of this run reached the sandbox"
    for fault in injected:
        kind = fault.get("kind")
        fault_id = fault["fault_id"]
        if kind == "kill-replica":
            restored, back, complete, detail = _replicas(inside, fault, t_inject)
            figures.update(restore_s=back, target_restored_s=restored)
        elif kind == "latency":
            removed = _first(_named(inside, "toxic_removed", fault_id=fault_id))
            figures["target_restored_s"] = _after(t_inject, removed)
            complete = removed is not None
            detail = "latency toxic removed" + (f" ({removed.get('reason')})" if removed
                                                else ": not yet")
        elif kind == "cpu":
            started = _first(_named(inside, "stress_started", fault_id=fault_id))
            expected = len(started.get("pids", [])) if started else 0
            stopped = _named(inside, "stress_stopped", fault_id=fault_id)
            done = len(stopped) >= expected > 0
            figures["target_restored_s"] = _after(t_inject, _last(stopped)) if done else None
            complete = done
            detail = f"{len(stopped)} of {expected} burners stopped"
            if scaled:
                detail += f"; autoscaler scaled {scaled[0].get('from_replicas')} -> " \
                          f"{scaled[0].get('to_replicas')} replicas"
        elif kind == "kill-primary":
            figures_db, complete, detail = _failover(inside, t_inject)
            figures.update(figures_db)
    return SandboxObservation(figures, complete, detail)


def _replicas(events: Sequence[Event], fault: Event,
              t_inject: float) -> tuple[float | None, float | None, bool, str]:
    """(out of the balancer, every killed replica ready again, complete, detail)."""
    targets = fault.get("targets", [])
    removed: list[Event] = []
    ready: list[Event] = []
    for target in targets:
        out = _first(_named(events, "lb_endpoint_removed", t_inject - 1.0, pid=target.get("pid")))
        if out is not None:
            removed.append(out)
        # The replica's index comes back with a new process: ready after the kill.
        again = [e for e in _named(events, "replica_ready", t_inject, replica=target.get("replica"))
                 if e.get("pid") != target.get("pid")]
        if again:
            ready.append(min(again, key=lambda e: float(e["monotonic"])))
    complete = bool(targets) and len(ready) == len(targets)
    restored = _after(t_inject, _last(removed)) if len(removed) == len(targets) and targets \
        else None
    back = _after(t_inject, _last(ready)) if complete else None
    return restored, back, complete, f"{len(ready)} of {len(targets)} replicas ready again"


def _failover(events: Sequence[Event],
              t_inject: float) -> tuple[dict[str, float | int | None], bool, str]:
    lost = _first(_named(events, "primary_lost", t_inject - 1.0))
    promoted = _first(_named(events, "standby_promoted", t_inject - 1.0))
    repointed = _first(_named(events, "proxy_repointed", t_inject - 1.0))
    rebuilt = _first(_named(events, "standby_rebuilt", t_inject - 1.0))
    failover = None if lost is None or promoted is None else \
        round(float(promoted["monotonic"]) - float(lost["monotonic"]), 4)
    detail = (f"promoted {promoted.get('node')} {failover} s after the primary was lost"
              if promoted else "no promotion seen")
    if rebuilt is not None:
        detail += f"; standby rebuilt after {_after(t_inject, rebuilt)} s"
    return ({"failover_s": failover, "target_restored_s": _after(t_inject, repointed),
             "restore_s": _after(t_inject, rebuilt)}, rebuilt is not None, detail)
