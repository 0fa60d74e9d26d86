"""Fault requests are checked before anything is touched, and the message names the field."""

import pytest

from gameday.errors import InputError
from gameday.sandbox.faults import FaultSpec, parse_fault_request, validate_fault


@pytest.mark.parametrize(
    ("kind", "params", "where", "found"),
    [
        ("latency", {"ms": -1, "duration": 5}, "--ms", -1),
        ("latency", {"ms": 200, "duration": 0}, "--duration", 0),
        ("latency", {"ms": 200, "duration": -3}, "--duration", -3),
        ("latency", {"ms": 200, "jitter": 300, "duration": 5}, "--jitter", 300),
        ("cpu", {"workers": 1, "load": 0, "duration": 5}, "--load", 0),
        ("cpu", {"workers": 1, "load": 101, "duration": 5}, "--load", 101),
        ("cpu", {"workers": 0, "load": 50, "duration": 5}, "--workers", 0),
        ("cpu", {"workers": 1, "load": 50, "duration": -1}, "--duration", -1),
        ("kill-replica", {"count": 4}, "--count", 4),
        ("kill-replica", {"count": 0}, "--count", 0),
        ("explode", {}, "fault kind", "explode"),
    ],
)
def test_bad_fault_names_field_expected_and_found(kind, params, where, found):
    with pytest.raises(InputError) as caught:
        validate_fault(kind, params, replicas=3, cpus=1)
    error = caught.value
    assert error.where == where
    assert error.found == found
    message = error.message()
    assert where in message and repr(found) in message and "fix:" in message
    assert error.expected in message


def test_good_faults_become_specs():
    assert validate_fault("kill-replica", {"count": 3}, 3, 1) == FaultSpec("kill-replica", count=3)
    spec = validate_fault("latency", {"ms": 200, "jitter": 10, "duration": 5}, 3, 1)
    assert (spec.latency_ms, spec.jitter_ms, spec.duration_s) == (200.0, 10.0, 5.0)
    spec = validate_fault("cpu", {"workers": 2, "load": 80, "duration": 1.5}, 3, 1)
    assert (spec.workers, spec.load_pct, spec.duration_s) == (2, 80, 1.5)
    assert validate_fault("kill-primary", {}, 3, 1).kind == "kill-primary"


def test_booleans_are_not_numbers():
    with pytest.raises(InputError):
        validate_fault("kill-replica", {"count": True}, 3, 1)


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("kind", "params", "where"),
    [
        ("latency", {"ms": NAN, "duration": 5}, "--ms"),
        ("latency", {"ms": INF, "duration": 5}, "--ms"),
        ("latency", {"ms": -INF, "duration": 5}, "--ms"),
        ("latency", {"ms": 200, "jitter": NAN, "duration": 5}, "--jitter"),
        ("latency", {"ms": 200, "duration": NAN}, "--duration"),
        ("latency", {"ms": 200, "duration": INF}, "--duration"),
        ("latency", {"ms": 10**400, "duration": 5}, "--ms"),
        ("cpu", {"workers": 1, "load": 50, "duration": NAN}, "--duration"),
        ("latency", [200, 5], "params"),
    ],
)
def test_non_finite_numbers_are_refused(kind, params, where):
    """NaN passes every range comparison (nan < 0 and nan > 60000 are both False)."""
    with pytest.raises(InputError) as caught:
        validate_fault(kind, params, replicas=3, cpus=1)
    assert caught.value.where == where
    assert "fix:" in caught.value.message()


@pytest.mark.parametrize("body", [
    '{"kind": "latency", "params": {"ms": NaN, "duration": 5}}',
    '{"kind": "latency", "params": {"ms": Infinity, "duration": 5}}',
    '{"kind": "latency", "params": {"ms": -Infinity, "duration": 5}}',
    '[1, 2]',
    '{"kind": ',
    b'\xff\xfe\x00',
])
def test_admin_requests_are_strict_json_objects(body):
    with pytest.raises(InputError) as caught:
        parse_fault_request(body)
    assert caught.value.where == "request body"


def test_a_good_request_is_parsed():
    assert parse_fault_request('{"kind": "latency", "params": {"ms": 1}, "id": "x"}') == \
        ("latency", {"ms": 1}, "x")
