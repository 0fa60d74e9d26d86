"""A horizontal autoscaler per sandbox cell, modelled on Kubernetes' HorizontalPodAutoscaler.

What is measured (the cell's "CPU utilisation"):
    Every replica and every CPU burner of a cell is pinned to the cell's CPUs (replica.py and
    burner.py call ``sched_setaffinity`` with the cell's CPU list), so the cell's CPUs are its
    node, and each replica "requests" an equal share of them at the cell's configured size:
    ``request = len(cpus) / min_replicas`` CPUs (1 CPU, 3 replicas: 333 millicores). Over each
    sync period the loop reads the CPU time (utime + stime, ``/proc/PID/stat``, plus the time spent
    runnable but waiting for a CPU for burners, ``/proc/PID/schedstat``: ``_waited_ticks``) of the cell's
    *ready* replicas and of its running burners, and

        utilisation = CPU seconds used / (period x current replicas x request)

    averaged as a ratio of sums over the samples of the last ``metric_window_s``. Burners count
    because Chaos Mesh's StressChaos runs its stressors inside the target pods' containers, so
    under a real CPU stress the pods' own CPU usage (what metrics-server reports and the HPA
    reads) rises; the controller (balancer, proxy, health checks) and PostgreSQL are not pods of
    the deployment and do not count. Replicas that are not ready (starting, or restarting after
    a kill) are counted at 0 % but stay in the denominator, as the HPA treats unready pods on a
    scale-up. Other processes on the same CPUs (other cells, the test runner) do not count,
    though they can starve a niced burner. At ``min_replicas`` the cell's processes cannot use
    more than its CPUs, so utilisation there is at most 100 % and, at the default target of
    50 %, the cell asks for at most ``2 x min_replicas``: the default maximum.

How the desired count is decided (``decide``, a pure function; Kubernetes' algorithm):
    1. ``ratio = utilisation / target``; within ``tolerance`` (0.1) of 1 nothing changes, else
       ``recommendation = ceil(current x ratio)``. No sample yet: nothing changes.
    2. Stabilization: a scale-down goes only to the highest recommendation of the last
       ``scale_down_window_s`` (Kubernetes' default 300 s; the sandbox's 30 s, since its faults
       last seconds to minutes and a test must see the cell come back in one); a scale-up is
       not stabilized (Kubernetes' default window for scale-up is 0 s).
    3. Scale-up rate: at most ``max(scale_up_pods, scale_up_percent %)`` replicas added per
       ``scale_up_period_s``, counted from the replica count at the start of that period
       (Kubernetes' default policy: 4 pods or 100 % per 15 s, whichever allows more; kept).
       A scale-down is not rate limited (Kubernetes' default: 100 % per 15 s).
    4. Bounds: ``min_replicas`` (the cell's configured replicas) .. ``max_replicas``.

Defaults and why: target 50 % (a common HPA target); sync period 1 s (Kubernetes' 15 s would
miss most of the 10 s stress of the week-3 experiment; at 100 Hz clock ticks one second still
resolves 1 % of a CPU); metric window 2 s (two samples, so one GC pause or a replica's start
does not scale the cell; metrics-server's window is 15-30 s); scale-down window 30 s.

The loop (``Autoscaler.run``) is thin: measure, decide, ask the cell to scale, remember the
recommendation and the scale event.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from gameday.errors import InputError
from gameday.sandbox.procs import ProcessId
from gameday.sandbox.state import MAX_REPLICAS, MAX_SCALED_REPLICAS

DEFAULT_TARGET_CPU_PCT = 50.0
DEFAULT_TOLERANCE = 0.1
DEFAULT_SYNC_PERIOD_S = 1.0
DEFAULT_METRIC_WINDOW_S = 2.0
DEFAULT_SCALE_UP_PODS = 4
DEFAULT_SCALE_UP_PERCENT = 100.0
DEFAULT_SCALE_UP_PERIOD_S = 15.0
DEFAULT_SCALE_DOWN_WINDOW_S = 30.0

# Every number's bounds: (low, high) inclusive, with the flag that sets it.
BOUNDS: dict[str, tuple[float, float, str]] = {
    "target_cpu_pct": (1.0, 100.0, "--cpu-percent"),
    "tolerance": (0.0, 0.5, "tolerance"),
    "sync_period_s": (0.2, 60.0, "--sync-period"),
    "metric_window_s": (0.2, 300.0, "metric_window_s"),
    "scale_up_pods": (1, MAX_SCALED_REPLICAS, "--scale-up-pods"),
    "scale_up_percent": (1.0, 1000.0, "--scale-up-percent"),
    "scale_up_period_s": (1.0, 1800.0, "--scale-up-period"),
    "scale_down_window_s": (0.0, 3600.0, "--scale-down-window"),
}
WHOLE_FIELDS = frozenset({"min_replicas", "max_replicas", "scale_up_pods"})


def default_max_replicas(min_replicas: int) -> int:
    return min(MAX_SCALED_REPLICAS, max(2 * min_replicas, min_replicas + 1))


@dataclass(frozen=True)
class AutoscalerConfig:
    """One cell's autoscaler; every field is checked by ``autoscaler_config``/``from_json``."""

    min_replicas: int
    max_replicas: int
    enabled: bool = True
    target_cpu_pct: float = DEFAULT_TARGET_CPU_PCT
    tolerance: float = DEFAULT_TOLERANCE
    sync_period_s: float = DEFAULT_SYNC_PERIOD_S
    metric_window_s: float = DEFAULT_METRIC_WINDOW_S
    scale_up_pods: int = DEFAULT_SCALE_UP_PODS
    scale_up_percent: float = DEFAULT_SCALE_UP_PERCENT
    scale_up_period_s: float = DEFAULT_SCALE_UP_PERIOD_S
    scale_down_window_s: float = DEFAULT_SCALE_DOWN_WINDOW_S

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any, where: str = "autoscaler") -> AutoscalerConfig:
        """A config as ``to_json`` wrote it, every number finite and inside its bounds."""
        fix = "start the sandbox with `gameday sandbox up`, which writes this"
        if not isinstance(data, dict) or set(data) != set(cls.__dataclass_fields__):
            raise InputError(where, "an object with the fields " +
                             ", ".join(sorted(cls.__dataclass_fields__)), data, fix)
        if not isinstance(data["enabled"], bool):
            raise InputError(f"{where}: enabled", "true or false", data["enabled"], fix)
        values: dict[str, Any] = {"enabled": data["enabled"]}
        for name in cls.__dataclass_fields__:
            if name == "enabled":
                continue
            value = data[name]
            whole = name in WHOLE_FIELDS
            if isinstance(value, bool) or not isinstance(value, int if whole else int | float) \
                    or not math.isfinite(value):
                raise InputError(f"{where}: {name}",
                                 "a whole number" if whole else "a finite number", value, fix)
            values[name] = value if whole else float(value)
        return _checked(cls(**values), lambda name: f"{where}: {name}")


def _checked(config: AutoscalerConfig, where: Callable[[str], str]) -> AutoscalerConfig:
    if not 1 <= config.min_replicas <= MAX_REPLICAS:
        raise InputError(where("min_replicas"), f"a whole number from 1 to {MAX_REPLICAS}",
                         config.min_replicas, "pass --replicas from 1 to 10")
    if not config.min_replicas <= config.max_replicas <= MAX_SCALED_REPLICAS:
        raise InputError(where("max_replicas"),
                         f"a whole number from {config.min_replicas} (--replicas) to "
                         f"{MAX_SCALED_REPLICAS}", config.max_replicas,
                         f"pass --max-replicas from {config.min_replicas} to "
                         f"{MAX_SCALED_REPLICAS}, or leave it out for "
                         f"{default_max_replicas(config.min_replicas)} (twice --replicas)")
    for name, (low, high, _) in BOUNDS.items():
        value = getattr(config, name)
        if not low <= value <= high:
            raise InputError(where(name), f"a number from {low:g} to {high:g}", value,
                             f"pass a value from {low:g} to {high:g}")
    return config


def autoscaler_config(min_replicas: int, *, enabled: bool = True,
                      max_replicas: int | None = None, **settings: Any) -> AutoscalerConfig:
    """The config ``sandbox up`` asks for; InputError names the flag of a value out of bounds."""
    config = AutoscalerConfig(
        min_replicas=min_replicas,
        max_replicas=default_max_replicas(min_replicas) if max_replicas is None else max_replicas,
        enabled=enabled, **{k: v for k, v in settings.items() if v is not None})
    flags = {name: flag for name, (_, _, flag) in BOUNDS.items()}
    flags.update(min_replicas="--replicas", max_replicas="--max-replicas")
    return _checked(config, lambda name: flags[name])


# --------------------------------------------------------------------------- the decision


@dataclass(frozen=True)
class CpuSample:
    """One sync period: CPU seconds the cell's pods used, and the CPU seconds they requested."""

    t: float  # monotonic time at the end of the period
    cpu_s: float
    requested_s: float


@dataclass(frozen=True)
class Recommendation:
    t: float
    replicas: int


@dataclass(frozen=True)
class ScaleEvent:
    t: float
    from_replicas: int
    to_replicas: int


@dataclass(frozen=True)
class Decision:
    desired: int
    recommendation: int | None  # the raw proposal to remember (None: no measurement)
    cpu_pct: float | None
    reason: str


def utilisation(samples: Sequence[CpuSample], now: float, window_s: float) -> float | None:
    """CPU used / CPU requested over the samples of the last ``window_s`` (the newest always)."""
    recent = [s for s in samples if s.t > now - window_s]
    if not recent and samples:
        recent = [samples[-1]]
    requested = sum(s.requested_s for s in recent)
    return None if requested <= 0 else sum(s.cpu_s for s in recent) / requested


def decide(current: int, samples: Sequence[CpuSample], config: AutoscalerConfig,
           recommendations: Sequence[Recommendation], scale_events: Sequence[ScaleEvent],
           now: float) -> Decision:
    """How many replicas the cell should run now (module docstring: the steps and defaults)."""
    low, high = config.min_replicas, config.max_replicas
    util = utilisation(samples, now, config.metric_window_s)
    target = config.target_cpu_pct
    if util is None:
        desired = min(max(current, low), high)
        return Decision(desired, None, None, "no CPU measurement yet"
                        if desired == current else f"bounds {low}..{high}")
    pct = round(util * 100, 1)
    ratio = util * 100 / target
    # ceil(5 x 1.2) must be 6, though in floats 5 x 1.2 is 6.000000000000001
    recommendation = current if abs(ratio - 1.0) <= config.tolerance + 1e-9 \
        else math.ceil(current * ratio - 1e-9)
    # Stabilization: down only to the highest recommendation of the window (this one included).
    cutoff = now - config.scale_down_window_s
    down = max([recommendation, *(r.replicas for r in recommendations if r.t > cutoff)])
    desired = current
    if recommendation > current:
        desired = recommendation
    elif down < current:
        desired = down
    # Scale-up rate, from the count at the start of the current period.
    limit = None
    if desired > current:
        period_start = now - config.scale_up_period_s
        added = sum(e.to_replicas - e.from_replicas for e in scale_events
                    if e.t > period_start and e.to_replicas > e.from_replicas)
        start = current - added
        limit = max(start + config.scale_up_pods,
                    math.ceil(start * (1 + config.scale_up_percent / 100) - 1e-9))
    above = "above" if util * 100 > target else "below"
    reason = f"cpu {pct:g}% {above} target {target:g}%"
    if limit is not None and desired > limit:
        desired = max(limit, current)
        reason += (f"; scale-up limited to {desired} (max({config.scale_up_pods} pods, "
                   f"{config.scale_up_percent:g}%) per {config.scale_up_period_s:g} s)")
    if desired > high:
        desired = high
        reason += f"; capped at max {high}"
    elif desired < low:
        desired = low
        reason += f"; held at min {low}"
    if desired < current:
        reason += f"; scale-down stabilized over {config.scale_down_window_s:g} s"
    return Decision(desired, recommendation, pct, reason)


# --------------------------------------------------------------------------- measuring

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(proc: ProcessId, waited: bool = False) -> int | None:
    """utime + stime of ``proc`` (all its threads) in clock ticks; None once it is gone."""
    try:
        with open(f"/proc/{proc.pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # fields[0] is field 3 (state)
    if int(fields[19]) != proc.start_ticks:
        return None  # the pid was recycled
    return int(fields[11]) + int(fields[12]) + (_waited_ticks(proc) if waited else 0)


def _waited_ticks(proc: ProcessId) -> int:
    """Clock ticks ``proc`` spent runnable but waiting for a CPU (``/proc/PID/schedstat``).

    A pod's CPU request is guaranteed by its cgroup; the sandbox's processes have none, and on
    a host busy with other sessions (each its own autogroup, so nice does not hold them back) a
    burner gets only part of the CPU it asks for. Counting the time a burner waited makes the
    stress what it asked for, as it would be with its pod's request held. Only burners: an idle
    replica's waits on a busy host are that host's load, not the cell's, and would scale it.
    """
    try:
        with open(f"/proc/{proc.pid}/schedstat", encoding="ascii") as fh:
            waited_ns = int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return int(waited_ns * CLK_TCK // 1_000_000_000)


def _boot_ticks() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME) * CLK_TCK


@dataclass
class CpuMeter:
    """CPU seconds a changing set of processes used between two reads."""

    seen: dict[ProcessId, int] = field(default_factory=dict)
    last_read_ticks: float | None = None

    def read(self, counted: Sequence[ProcessId], watched: Sequence[ProcessId],
             demand: Sequence[ProcessId] = ()) -> float:
        """CPU seconds ``counted`` used since the last read; ``watched`` are remembered so a
        replica that becomes ready counts from then on. A process first seen counts in full
        when it started after the last read (a burner started mid-period), else from now."""
        now: dict[ProcessId, int] = {}
        waits = set(demand)
        for proc in {*counted, *watched}:
            ticks = cpu_ticks(proc, waited=proc in waits)
            if ticks is not None:
                now[proc] = ticks
        used = 0
        for proc in set(counted):
            if proc not in now:
                continue
            before = self.seen.get(proc)
            if before is None:
                # Start times are whole ticks: one of the last read's tick counts as after it.
                new = (self.last_read_ticks is not None
                       and proc.start_ticks >= math.floor(self.last_read_ticks))
                before = 0 if new else now[proc]
            used += max(0, now[proc] - before)
        self.seen = now
        self.last_read_ticks = _boot_ticks()
        return used / CLK_TCK


# --------------------------------------------------------------------------- the loop


@dataclass
class Pods:
    """What the loop measures: the ready replicas and burners (counted), every replica."""

    counted: list[ProcessId]
    watched: list[ProcessId]
    current: int
    demand: list[ProcessId] = field(default_factory=list)  # burners: their waits count too


class Autoscaler:
    def __init__(self, config: AutoscalerConfig, cpus: int,
                 pods: Callable[[], Pods],
                 scale: Callable[[int, Decision], Awaitable[None]]) -> None:
        self.config = config
        self.request_cpus = cpus / config.min_replicas
        self.pods = pods
        self.scale = scale
        self.desired = config.min_replicas
        self.cpu_pct: float | None = None
        self.samples: list[CpuSample] = []
        self.recommendations: list[Recommendation] = []
        self.scale_events: list[ScaleEvent] = []

    def status(self) -> dict[str, Any]:
        return {**self.config.to_json(),
                "cpu_request_millicores": round(self.request_cpus * 1000),
                "cpu_pct": self.cpu_pct, "desired_replicas": self.desired}

    async def run(self) -> None:
        meter = CpuMeter()
        pods = self.pods()
        meter.read(pods.counted, pods.watched, pods.demand)
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.config.sync_period_s)
            pods = self.pods()
            used = meter.read(pods.counted, pods.watched, pods.demand)
            now = time.monotonic()
            self.samples.append(CpuSample(now, used, (now - last) * pods.current
                                          * self.request_cpus))
            last = now
            await self.step(pods.current, now)

    async def step(self, current: int, now: float) -> None:
        keep = max(self.config.metric_window_s, self.config.sync_period_s) * 2
        self.samples = [s for s in self.samples if s.t > now - keep]
        decision = decide(current, self.samples, self.config, self.recommendations,
                          self.scale_events, now)
        self.cpu_pct = decision.cpu_pct
        if decision.recommendation is not None:
            self.recommendations.append(Recommendation(now, decision.recommendation))
        cutoff = now - max(self.config.scale_down_window_s, self.config.scale_up_period_s)
        self.recommendations = [r for r in self.recommendations if r.t > cutoff]
        self.scale_events = [e for e in self.scale_events if e.t > cutoff]
        self.desired = decision.desired
        if decision.desired != current:
            self.scale_events.append(ScaleEvent(now, current, decision.desired))
            await self.scale(decision.desired, decision)
