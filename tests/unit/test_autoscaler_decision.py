"""The autoscaler's decision (pure) and its config: Kubernetes' HPA algorithm and bounds."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys

import pytest

from gameday.errors import InputError
from gameday.sandbox.autoscaler import (
    Autoscaler,
    AutoscalerConfig,
    CpuMeter,
    CpuSample,
    Decision,
    Pods,
    Recommendation,
    ScaleEvent,
    autoscaler_config,
    decide,
    utilisation,
)
from gameday.sandbox.procs import identify


def config(**fields: object) -> AutoscalerConfig:
    return autoscaler_config(fields.pop("min_replicas", 3), **fields)  # type: ignore[arg-type]


def at(pct: float, replicas: int, t: float = 100.0) -> list[CpuSample]:
    """A window of samples at ``pct`` % of what ``replicas`` request."""
    return [CpuSample(t - 1, pct / 100 * replicas, replicas), CpuSample(t, pct / 100 * replicas,
                                                                        replicas)]


def test_defaults_follow_kubernetes_where_they_fit_the_sandbox():
    c = config()
    assert (c.min_replicas, c.max_replicas, c.target_cpu_pct, c.tolerance) == (3, 6, 50.0, 0.1)
    assert (c.scale_up_pods, c.scale_up_percent, c.scale_up_period_s) == (4, 100.0, 15.0)
    assert (c.sync_period_s, c.scale_down_window_s) == (1.0, 30.0)
    assert config(min_replicas=1).max_replicas == 2
    assert config(min_replicas=10).max_replicas == 20


def test_desired_is_ceil_of_current_times_the_ratio():
    d = decide(3, at(90, 3), config(max_replicas=10), [], [], 100.0)
    assert d.desired == math.ceil(3 * 90 / 50) == 6
    assert d.cpu_pct == 90.0 and d.reason.startswith("cpu 90% above target 50%")
    # 5 x 60/50 is 6.000000000000001 in floats: still 6
    assert decide(5, at(60, 5), config(max_replicas=10), [], [], 100.0).desired == 6


@pytest.mark.parametrize(("pct", "desired"), [(55, 10), (54, 10), (56, 12), (45, 10), (46, 10),
                                               (44, 9), (50, 10)])
def test_no_change_within_the_tolerance(pct, desired):
    # 45..55 % is within 10 % of the 50 % target: 10 replicas stay; outside, ceil(10 x ratio).
    c = config(min_replicas=2, max_replicas=20, scale_down_window_s=0)
    d = decide(10, at(pct, 10), c, [], [], 100.0)
    assert d.desired == desired
    assert d.recommendation == desired  # what the stabilization window remembers


def test_no_measurement_changes_nothing():
    d = decide(4, [], config(), [], [], 100.0)
    assert d == Decision(4, None, None, "no CPU measurement yet")


def test_bounds_min_and_max():
    assert decide(3, at(100, 3), config(), [], [], 100.0).desired == 6  # max = 2 x 3
    capped = decide(4, at(100, 4), config(max_replicas=5), [], [], 100.0)
    assert capped.desired == 5 and "capped at max 5" in capped.reason
    low = decide(3, at(1, 3), config(scale_down_window_s=0), [], [], 100.0)
    assert low.desired == 3
    held = decide(5, at(1, 5), config(scale_down_window_s=0, max_replicas=6), [], [], 100.0)
    assert held.desired == 3 and "held at min 3" in held.reason


def test_scale_up_step_is_max_of_pods_and_percent_per_period():
    c = config(min_replicas=2, max_replicas=20)
    # 2 replicas at 100 %: ceil(4) = 4 asked; limit max(2 + 4, 2 x 2) = 6: not limited.
    assert decide(2, at(100, 2), c, [], [], 100.0).desired == 4
    # 10 at 100 %: 20 asked; limit max(10 + 4, 10 x 2) = 20.
    assert decide(10, at(100, 10), c, [], [], 100.0).desired == 20
    # With 1 pod or 50 % per period: 10 -> max(11, 15) = 15.
    half = config(min_replicas=2, max_replicas=20, scale_up_pods=1, scale_up_percent=50)
    limited = decide(10, at(100, 10), half, [], [], 100.0)
    assert limited.desired == 15 and "scale-up limited to 15" in limited.reason
    # 4 pods or 10 %: 3 -> max(7, ceil(3.3)) = 7.
    pods = config(min_replicas=3, max_replicas=20, scale_up_percent=10)
    assert decide(3, at(100, 3), pods, [], [], 100.0).desired == 6
    assert decide(5, at(100, 5), pods, [], [], 100.0).desired == 9


def test_scale_up_limit_counts_from_the_start_of_the_period():
    c = config(min_replicas=2, max_replicas=20, scale_up_pods=2, scale_up_percent=10)
    # Scaled 2 -> 4 five seconds ago: the period started at 2, so at most 2 + 2 = 4 now.
    recent = [ScaleEvent(95.0, 2, 4)]
    held = decide(4, at(100, 4), c, [], recent, 100.0)
    assert held.desired == 4 and "limited" in held.reason
    # Once that scale-up is older than the period (15 s), 4 may grow by 2 again.
    assert decide(4, at(100, 4), c, [], [ScaleEvent(84.0, 2, 4)], 100.0).desired == 6
    # A scale-down in the period does not raise the limit.
    assert decide(4, at(100, 4), c, [], [ScaleEvent(95.0, 6, 4)], 100.0).desired == 6


def test_scale_down_waits_for_the_stabilization_window():
    c = config(scale_down_window_s=30)
    # At 6 replicas, the load is gone (ceil(6 x 0.1) = 1) but 20 s ago the cell wanted 6.
    recs = [Recommendation(80.0, 6), Recommendation(90.0, 1)]
    d = decide(6, at(5, 6), c, recs, [], 100.0)
    assert d.desired == 6 and d.recommendation == 1
    # The highest recommendation of the window wins: 4 of 25 s ago.
    recs = [Recommendation(75.0, 4), Recommendation(90.0, 1)]
    assert decide(6, at(5, 6), c, recs, [], 100.0).desired == 4
    # Once every high recommendation is older than the window: down to the minimum.
    recs = [Recommendation(69.0, 6), Recommendation(90.0, 1)]
    down = decide(6, at(5, 6), c, recs, [], 100.0)
    assert down.desired == 3
    assert down.reason.startswith("cpu 5% below target 50%")
    assert "stabilized over 30 s" in down.reason


def test_scale_up_is_not_stabilized():
    recs = [Recommendation(99.0, 3), Recommendation(99.5, 3)]
    assert decide(3, at(100, 3), config(), recs, [], 100.0).desired == 6


def test_utilisation_is_a_ratio_of_sums_over_the_window():
    samples = [CpuSample(90.0, 3.0, 3.0), CpuSample(99.0, 0.5, 1.0), CpuSample(100.0, 1.5, 3.0)]
    assert utilisation(samples, 100.0, 2.0) == pytest.approx(2.0 / 4.0)
    assert utilisation(samples, 100.0, 20.0) == pytest.approx(5.0 / 7.0)
    # A window shorter than the sync period still holds the newest sample.
    assert utilisation(samples, 105.0, 2.0) == pytest.approx(0.5)
    assert utilisation([], 100.0, 2.0) is None


# ------------------------------------------------------------------ config


@pytest.mark.parametrize(("fields", "where"), [
    ({"max_replicas": 2}, "--max-replicas"),
    ({"max_replicas": 21}, "--max-replicas"),
    ({"target_cpu_pct": 0.5}, "--cpu-percent"),
    ({"target_cpu_pct": 101}, "--cpu-percent"),
    ({"sync_period_s": 0.1}, "--sync-period"),
    ({"sync_period_s": math.nan}, "--sync-period"),
    ({"scale_up_pods": 0}, "--scale-up-pods"),
    ({"scale_up_percent": math.inf}, "--scale-up-percent"),
    ({"scale_up_period_s": 1801}, "--scale-up-period"),
    ({"scale_down_window_s": -1}, "--scale-down-window"),
    ({"scale_down_window_s": 3601}, "--scale-down-window"),
])
def test_config_out_of_bounds_names_the_flag(fields, where):
    with pytest.raises(InputError) as err:
        config(**fields)
    assert err.value.where == where and err.value.fix


@pytest.mark.parametrize("change", [
    {"target_cpu_pct": "50"}, {"target_cpu_pct": True}, {"max_replicas": 4.0},
    {"enabled": 1}, {"tolerance": 0.9}, {"metric_window_s": 1e9}, {"extra": 1},
])
def test_config_from_json_checks_every_field(change):
    data = config().to_json()
    data.update(change)
    with pytest.raises(InputError) as err:
        AutoscalerConfig.from_json(data, "--autoscaler")
    assert err.value.where.startswith("--autoscaler")


def test_config_round_trips_through_json():
    c = config(max_replicas=5, target_cpu_pct=70, scale_down_window_s=3)
    assert AutoscalerConfig.from_json(c.to_json()) == c


# ------------------------------------------------------------------ measuring, the loop


def test_cpu_meter_counts_a_process_started_within_the_period_in_full():
    meter = CpuMeter()
    me = identify(os.getpid())
    assert me is not None
    meter.read([me], [])
    # Spins 0.3 s of CPU time, says so, then sleeps: however busy the machine, once it has
    # said so it has used at least 0.3 s since it started, all after the read above.
    spin = subprocess.Popen([sys.executable, "-c",
                             "import time\nt = time.process_time() + 0.3\n"
                             "while time.process_time() < t: pass\nprint(flush=True)\n"
                             "time.sleep(30)"], stdout=subprocess.PIPE)
    try:
        child = identify(spin.pid)
        assert child is not None
        assert spin.stdout is not None and spin.stdout.readline() == b"\n"
        assert meter.read([child], []) >= 0.25
        assert meter.read([child], []) < 0.05  # then only what it used since
    finally:
        spin.kill()
        spin.wait()
    assert meter.read([child], []) == 0.0  # gone: counts nothing


def test_loop_scales_once_and_remembers_the_decision():
    scaled: list[tuple[int, Decision]] = []
    c = config(sync_period_s=0.2)
    replicas = 3

    async def scale(desired: int, decision: Decision) -> None:
        nonlocal replicas
        scaled.append((desired, decision))
        replicas = desired

    hpa = Autoscaler(c, 1, lambda: Pods([], [], replicas), scale)
    hpa.samples = at(100, 3, t=10.0)
    asyncio.run(hpa.step(3, 10.0))
    assert [d for d, _ in scaled] == [6] and hpa.desired == 6
    assert hpa.scale_events == [ScaleEvent(10.0, 3, 6)]
    hpa.samples = at(50, 6, t=11.0)
    asyncio.run(hpa.step(6, 11.0))
    assert len(scaled) == 1 and hpa.status()["cpu_pct"] == 50.0
    assert hpa.status()["cpu_request_millicores"] == 333
