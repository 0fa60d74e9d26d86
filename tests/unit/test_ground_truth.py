"""The sandbox's own figures for a run, read from hand-made ground-truth event lists."""

import pytest

from gameday.sandbox.ground_truth import observe


def ev(name, t, **details):
    return {"cell": "cell-1", "event": name, "monotonic": t, "utc": "", **details}


def seen(events, t_inject, fault="f1", span=(0.0, 1000.0)):
    return observe(events, fault_ids={fault}, t_inject=t_inject, span=span)


def test_pod_kill_restore_is_later_than_the_users_recovery():
    events = [
        ev("lb_endpoint_added", 99.0, replica=2, pid=11),  # before injection: ignored
        ev("fault_injected", 100.0, fault_id="f1", kind="kill-replica",
           targets=[{"replica": 2, "pid": 11}]),
        ev("replica_exit", 100.01, replica=2, pid=11),
        # users stop seeing errors once the balancer takes the replica out ...
        ev("lb_endpoint_removed", 100.08, replica=2, pid=11),
        ev("replica_started", 100.6, replica=2, pid=12),
        # ... but the cell is back at full redundancy only when the new replica is ready
        ev("lb_endpoint_added", 101.2, replica=2, pid=12),
        ev("replica_ready", 101.2001, replica=2, pid=12),
    ]
    o = seen(events, 100.0)
    assert o.figures["target_restored_s"] == pytest.approx(0.08)
    assert o.figures["restore_s"] == pytest.approx(1.2001)
    assert o.figures["replica_crashes"] == 0  # the exit was our own kill
    assert o.complete and o.detail == "1 of 1 replicas ready again"


def test_a_replica_not_yet_back_is_incomplete_and_unmeasured():
    events = [ev("fault_injected", 0.0, fault_id="f1", kind="kill-replica",
                 targets=[{"replica": 1, "pid": 5}, {"replica": 2, "pid": 6}]),
              ev("replica_ready", 1.0, replica=1, pid=7)]
    o = seen(events, 0.0)
    assert o.figures["restore_s"] is None and not o.complete
    assert o.detail == "1 of 2 replicas ready again"


def test_latency_cause_ends_when_the_toxic_is_removed():
    events = [ev("toxic_added", 10.0, fault_id="lat"),
              ev("fault_injected", 10.0, fault_id="lat", kind="latency"),
              ev("toxic_removed", 15.004, fault_id="lat", reason="expired"),
              ev("toxic_removed", 30.0, fault_id="other", reason="expired")]
    o = seen(events, 10.0, fault="lat")
    assert o.figures["target_restored_s"] == pytest.approx(5.004)
    assert o.figures["restore_s"] is None  # redundancy was never lost
    assert o.complete and "expired" in o.detail


def test_cpu_waits_for_every_burner_and_reads_the_autoscaler():
    # stress_started is logged just before fault_injected: it still belongs to the fault.
    events = [ev("stress_started", 0.0, fault_id="c", pids=[1, 2]),
              ev("fault_injected", 0.01, fault_id="c", kind="cpu"),
              ev("autoscaler_scaled", 2.5, from_replicas=3, to_replicas=5, cpu_pct=93,
                 reason="cpu 93% above target 50%"),
              ev("stress_stopped", 4.0, fault_id="c", pid=1)]
    o = seen(events, 0.01, fault="c")
    assert o.figures["target_restored_s"] is None and not o.complete
    assert o.figures["scale_out_s"] == pytest.approx(2.49)
    events.append(ev("stress_stopped", 4.02, fault_id="c", pid=2))
    events.append(ev("replica_exit", 4.5, replica=3, pid=40, returncode=-9))
    events.append(ev("replica_exit", 40.0, replica=5, pid=41, reason="scaled_in"))
    o = seen(events, 0.01, fault="c")
    assert o.figures["target_restored_s"] == pytest.approx(4.01) and o.complete
    assert o.figures["replica_crashes"] == 1  # not the one the autoscaler retired


def test_failover_then_full_redundancy_when_the_standby_is_rebuilt():
    events = [ev("fault_injected", 50.0, fault_id="p", kind="kill-primary"),
              ev("primary_lost", 50.1, node="pg-1"),
              ev("standby_promoted", 50.25, node="pg-2", took_s=0.15),
              ev("proxy_repointed", 50.26, old_port=1, new_port=2)]
    o = seen(events, 50.0, fault="p")
    assert o.figures["failover_s"] == pytest.approx(0.15)
    assert o.figures["target_restored_s"] == pytest.approx(0.26)
    assert o.figures["restore_s"] is None and not o.complete  # no standby yet
    events.append(ev("standby_rebuilt", 52.0, node="pg-3", took_s=1.7))
    o = seen(events, 50.0, fault="p")
    assert o.figures["restore_s"] == pytest.approx(2.0) and o.complete


def test_events_outside_the_runs_span_or_of_other_faults_do_not_count():
    events = [ev("fault_injected", 5.0, fault_id="other", kind="kill-replica",
                 targets=[{"replica": 1, "pid": 5}]),
              ev("replica_exit", 5.01, replica=1, pid=5)]
    o = seen(events, 20.0, span=(10.0, 30.0))
    assert o.figures["replica_crashes"] == 0 and o.figures["restore_s"] is None
