"""Recovery read from ground-truth events, on hand-made event lists."""

from gameday.sandbox.ground_truth import recovery_of


def ev(name, t, **details):
    return {"cell": "cell-1", "event": name, "monotonic": t, "utc": "", **details}


def test_replica_recovery_is_back_in_rotation():
    injected = ev("fault_injected", 100.0, fault_id="f1", kind="kill-replica",
                  targets=[{"replica": 2, "pid": 11}])
    events = [
        injected,
        ev("lb_endpoint_added", 99.0, replica=2, pid=11),  # before injection: ignored
        ev("replica_exit", 100.01, replica=2, pid=11),
        ev("lb_endpoint_removed", 100.08, replica=2, pid=11),
        ev("replica_started", 100.6, replica=2, pid=12),
        # The balancer logs the endpoint a hair before the replica's readiness.
        ev("lb_endpoint_added", 101.2, replica=2, pid=12),
        ev("replica_ready", 101.2001, replica=2, pid=12),
    ]
    r = recovery_of(injected, events)
    assert r.impact_s == 0.08
    assert r.recovered_s == 1.2
    assert r.complete


def test_replica_not_yet_back_is_incomplete():
    injected = ev("fault_injected", 0.0, fault_id="f1", kind="kill-replica",
                  targets=[{"replica": 1, "pid": 5}, {"replica": 2, "pid": 6}])
    events = [injected, ev("replica_ready", 1.0, replica=1, pid=7),
              ev("lb_endpoint_added", 1.1, replica=1, pid=7)]
    r = recovery_of(injected, events)
    assert r.recovered_s is None and not r.complete
    assert r.detail == "1 of 2 replicas back in rotation"


def test_latency_recovers_when_the_toxic_is_removed():
    injected = ev("fault_injected", 10.0, fault_id="lat", kind="latency")
    events = [injected, ev("toxic_added", 10.0, fault_id="lat"),
              ev("toxic_removed", 15.004, fault_id="lat", reason="expired"),
              ev("toxic_removed", 30.0, fault_id="other", reason="expired")]
    r = recovery_of(injected, events)
    assert (r.impact_s, r.recovered_s) == (0.0, 5.004)
    assert "expired" in r.detail


def test_cpu_waits_for_every_burner():
    injected = ev("fault_injected", 0.01, fault_id="c", kind="cpu")
    # stress_started is logged just before fault_injected: it still belongs to the fault.
    events = [ev("stress_started", 0.0, fault_id="c", pids=[1, 2]), injected,
              ev("stress_stopped", 4.0, fault_id="c", pid=1)]
    assert recovery_of(injected, events).recovered_s is None
    events.append(ev("stress_stopped", 4.02, fault_id="c", pid=2))
    r = recovery_of(injected, events)
    assert (r.impact_s, r.recovered_s) == (0.0, 4.01)


def test_failover_service_then_redundancy():
    injected = ev("fault_injected", 50.0, fault_id="p", kind="kill-primary")
    events = [injected, ev("primary_lost", 50.1, node="pg-1"),
              ev("standby_promoted", 50.25, node="pg-2", took_s=0.15),
              ev("proxy_repointed", 50.26, old_port=1, new_port=2)]
    r = recovery_of(injected, events)
    assert (r.impact_s, r.recovered_s) == (0.1, 0.26)
    assert not r.complete  # the standby is not rebuilt yet
    events.append(ev("standby_rebuilt", 52.0, node="pg-3", took_s=1.7))
    r = recovery_of(injected, events)
    assert r.redundancy_s == 2.0 and r.complete
