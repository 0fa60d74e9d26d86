"""Gates and the webhook against real HTTP servers on loopback (Alertmanager-, Prometheus- and
Slack-compatible), plus the alerts file. Nothing of ours is mocked; every wait is bounded."""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from gameday.sandbox.replicas import free_port
from gameday.scheduler.gates import (
    GateError,
    error_budget_gate,
    fetch_alertmanager_alerts,
    incident_gate,
    prometheus_budget_pct,
    read_alerts_file,
)
from gameday.scheduler.notify import Notifier, notification_body

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

MATCHERS = {"cell": "$cell", "severity": "critical"}
AT = datetime(2026, 3, 7, 2, 14, 3, tzinfo=UTC)


# -- a recording HTTP server -------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


Reply = tuple[int, Any]  # status and a JSON-able body (bytes are sent as they are)


@dataclass
class Server:
    reply: Callable[[Seen], Reply]
    seen: list[Seen] = field(default_factory=list)
    httpd: ThreadingHTTPServer | None = None
    thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self.httpd is not None
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> Server:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, parts.path, parse_qs(parts.query), dict(self.headers.items()),
                            self.rfile.read(length))
                server.seen.append(seen)  # before answering: the client returns only after this
                status, body = server.reply(seen)
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                if 300 <= status < 400 and isinstance(body, bytes):
                    self.send_header("Location", body.decode())
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = _handle

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.httpd is not None and self.thread is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(5)


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[Seen], Reply]], Server]]:
    servers: list[Server] = []

    def start(reply: Callable[[Seen], Reply]) -> Server:
        server = Server(reply).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A server that accepts connections (the kernel's backlog does) and never answers."""
    sock = socket.create_server(("127.0.0.1", 0), backlog=16)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def refused_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


def alert(name: str, cell: str, state: str = "active", severity: str = "critical") -> dict[str, Any]:
    return {"labels": {"alertname": name, "cell": cell, "severity": severity},
            "annotations": {"summary": f"{name} on {cell}"},
            "startsAt": "2026-03-07T01:50:00.000Z", "endsAt": "2026-03-07T02:20:00.000Z",
            "updatedAt": "2026-03-07T02:00:00.000Z", "fingerprint": "f00d",
            "receivers": [{"name": "oncall"}],
            "status": {"state": state, "silencedBy": [], "inhibitedBy": []}}


def check_alerts(url: str, cell: str = "cell-1", timeout_s: float = 2.0) -> Any:
    """The scheduler's way: fetch, and hand a failure to the gate, which fails closed."""
    try:
        alerts: list[dict[str, Any]] | None = fetch_alertmanager_alerts(url, timeout_s)
        error = None
    except GateError as exc:
        alerts, error = None, str(exc)
    return incident_gate(cell, alerts, MATCHERS, error)


# -- Alertmanager --------------------------------------------------------------------------------


def test_a_firing_alert_blocks_and_the_query_asks_for_unsuppressed_active_alerts(serve: Any) -> None:
    am = serve(lambda seen: (200, [alert("HighErrorRate", "cell-1"), alert("DiskFull", "cell-2")]))
    gate = check_alerts(am.url)
    assert gate.blocked
    assert gate.reason == "incidents: HighErrorRate firing"
    [seen] = am.seen
    assert seen.method == "GET"
    assert seen.path == "/api/v2/alerts"
    assert seen.query == {"active": ["true"], "silenced": ["false"], "inhibited": ["false"]}
    assert seen.headers["User-Agent"] == "gameday-runner"
    assert not check_alerts(am.url, cell="cell-3").blocked


def test_resolved_silenced_or_no_alerts_pass(serve: Any) -> None:
    empty = serve(lambda seen: (200, []))
    assert not check_alerts(empty.url).blocked
    suppressed = serve(lambda seen: (200, [alert("HighErrorRate", "cell-1", state="suppressed"),
                                           alert("Slow", "cell-1", severity="warning")]))
    assert not check_alerts(suppressed.url).blocked


def test_alertmanager_behind_a_path_prefix(serve: Any) -> None:
    am = serve(lambda seen: (200, []))
    assert fetch_alertmanager_alerts(am.url + "/alertmanager/", 2.0) == []
    assert am.seen[0].path == "/alertmanager/api/v2/alerts"


def test_a_500_blocks_fail_closed(serve: Any) -> None:
    am = serve(lambda seen: (500, b"internal error"))
    gate = check_alerts(am.url)
    assert gate.blocked
    assert gate.reason is not None
    assert gate.reason.startswith(f"incidents: could not check alerts (Alertmanager at {am.url}: HTTP 500")
    assert gate.reason.endswith(") - no chaos while blind")


def test_an_alertmanager_that_never_answers_blocks_within_the_timeout(silent_url: str) -> None:
    started = time.monotonic()
    gate = check_alerts(silent_url, timeout_s=0.5)
    assert time.monotonic() - started < 3
    assert gate.blocked
    assert gate.reason == (f"incidents: could not check alerts (Alertmanager at {silent_url}: no answer "
                           "within 0.5 s) - no chaos while blind")


def test_an_unreachable_alertmanager_blocks() -> None:
    url = refused_url()
    gate = check_alerts(url)
    assert gate.blocked
    assert f"Alertmanager at {url}: cannot connect" in (gate.reason or "")


@pytest.mark.parametrize("body", [b"not json", {"alerts": []}, [1, 2], [{"labels": ["a"]}]])
def test_an_invalid_answer_is_a_gate_error(serve: Any, body: Any) -> None:
    am = serve(lambda seen: (200, body))
    with pytest.raises(GateError, match="Alertmanager at"):
        fetch_alertmanager_alerts(am.url, 2.0)


def test_basic_auth_from_the_url_is_sent_and_never_shown(serve: Any) -> None:
    am = serve(lambda seen: (503, {"error": "overloaded"}))
    url = am.url.replace("http://", "http://gameday:s3cret-pw@")
    with pytest.raises(GateError) as raised:
        fetch_alertmanager_alerts(url, 2.0)
    message = str(raised.value)
    assert "s3cret-pw" not in message
    assert "gameday:***@127.0.0.1" in message
    assert "HTTP 503" in message and "overloaded" in message
    expected = base64.b64encode(b"gameday:s3cret-pw").decode()
    assert am.seen[0].headers["Authorization"] == f"Basic {expected}"
    assert "s3cret-pw" not in (check_alerts(url).reason or "")


@pytest.mark.parametrize("scheme", ["file", "ftp"])
def test_a_redirect_to_a_non_http_scheme_is_refused(serve: Any, tmp_path: Path, scheme: str) -> None:
    target = tmp_path / "alerts.json"
    target.write_text("[]")
    # urllib itself refuses file://; ftp:// it would follow, we do not
    location = target.as_uri() if scheme == "file" else "ftp://127.0.0.1/alerts.json"
    am = serve(lambda seen: (302, location.encode()))
    with pytest.raises(GateError, match="HTTP 302"):
        fetch_alertmanager_alerts(am.url, 2.0)


def test_a_redirect_to_http_is_followed(serve: Any) -> None:
    real = serve(lambda seen: (200, [alert("HighErrorRate", "cell-1")]))
    moved = serve(lambda seen: (307, f"{real.url}/api/v2/alerts?active=true".encode()))
    assert len(fetch_alertmanager_alerts(moved.url, 2.0)) == 1


def test_a_non_http_url_is_a_gate_error() -> None:
    with pytest.raises(GateError, match="expected an http"):
        fetch_alertmanager_alerts("file:///etc/passwd", 2.0)


# -- the alerts file -----------------------------------------------------------------------------


def test_a_missing_alerts_file_means_no_incident(tmp_path: Path) -> None:
    assert read_alerts_file(tmp_path / "incident.yaml") == []


def test_alerts_file_in_yaml_and_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "incident.yaml"
    yaml_file.write_text("- labels: {alertname: PaymentsDown, cell: cell-1, severity: critical}\n"
                         "  status: {state: active}\n")
    alerts = read_alerts_file(yaml_file)
    assert incident_gate("cell-1", alerts, MATCHERS).reason == "incidents: PaymentsDown firing"
    json_file = tmp_path / "incident.json"
    json_file.write_text(json.dumps([alert("HighErrorRate", "cell-2")]))
    assert incident_gate("cell-2", read_alerts_file(json_file), MATCHERS).reason == \
        "incidents: HighErrorRate firing"
    json_file.write_text("[]")
    assert read_alerts_file(json_file) == []


@pytest.mark.parametrize(("name", "content", "message"), [
    ("a.json", "[{", "neither valid JSON nor YAML"),
    ("a.yaml", "alerts: []", "expected a list of alerts, found dict"),
    ("a.yaml", "", "is empty"),
    ("a.yaml", "- just a string", "alert 0 is a str"),
])
def test_invalid_alerts_files_are_gate_errors(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(GateError, match=message):
        read_alerts_file(path)


def test_an_alerts_path_that_is_a_directory_is_a_gate_error(tmp_path: Path) -> None:
    with pytest.raises(GateError, match="cannot be read"):
        read_alerts_file(tmp_path)


# -- Prometheus ----------------------------------------------------------------------------------

QUERY = 'slo:error_budget_consumed:ratio_30d{cell="$cell"}'


def prom_vector(*values: str) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"__name__": "slo:error_budget_consumed:ratio_30d", "cell": "cell-1"},
         "value": [1772849643.123, value]} for value in values]}}


def test_prometheus_vector_answer_is_a_fraction_turned_into_a_percent(serve: Any) -> None:
    prom = serve(lambda seen: (200, prom_vector("0.852", "0.1")))
    pct = prometheus_budget_pct(prom.url, QUERY, "cell-1", 2.0)
    assert pct == pytest.approx(85.2)
    [seen] = prom.seen
    assert seen.path == "/api/v1/query"
    assert seen.query == {"query": ['slo:error_budget_consumed:ratio_30d{cell="cell-1"}']}
    assert seen.headers["User-Agent"] == "gameday-runner"
    gate = error_budget_gate("cell-1", pct, 80.0, 30, "prometheus")
    assert gate.reason == "error_budget: 85.2 % of the 30-day budget consumed (limit 80 %)"


def test_prometheus_scalar_answer(serve: Any) -> None:
    prom = serve(lambda seen: (200, {"status": "success",
                                     "data": {"resultType": "scalar", "result": [1772849643.1, "0.25"]}}))
    pct = prometheus_budget_pct(prom.url + "/prometheus", "scalar(0.25)", "cell-1", 2.0)
    assert pct == pytest.approx(25.0)
    assert prom.seen[0].path == "/prometheus/api/v1/query"


def test_prometheus_infinity_is_an_exhausted_budget(serve: Any) -> None:
    prom = serve(lambda seen: (200, prom_vector("+Inf")))
    assert error_budget_gate("cell-1", prometheus_budget_pct(prom.url, QUERY, "cell-1", 2.0), 80.0, 30,
                             "prometheus").blocked


@pytest.mark.parametrize(("status", "body", "message"), [
    (200, prom_vector(), "returned no sample"),
    (200, prom_vector("abc"), "non-numeric value 'abc'"),
    (200, prom_vector("NaN"), "non-numeric value 'NaN'"),
    (200, {"status": "success", "data": {"resultType": "matrix", "result": []}}, "'matrix' result"),
    (200, {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}}, "malformed"),
    (200, b"<html>proxy login</html>", "not JSON"),
    (400, {"status": "error", "errorType": "bad_data", "error": "1:9: parse error: unexpected '{'"},
     "HTTP 400 Bad Request: 1:9: parse error"),
    (503, {"status": "error", "errorType": "unavailable", "error": "not ready"}, "HTTP 503"),
])
def test_unusable_prometheus_answers_are_gate_errors(serve: Any, status: int, body: Any,
                                                     message: str) -> None:
    prom = serve(lambda seen: (status, body))
    with pytest.raises(GateError, match=re.escape(message)) as raised:
        prometheus_budget_pct(prom.url, QUERY, "cell-1", 2.0)
    assert str(raised.value).startswith(f"Prometheus at {prom.url}: ")
    # what the scheduler records: blocked, fail closed, with the why
    gate = error_budget_gate("cell-1", None, 80.0, 30, "prometheus", error=str(raised.value))
    assert gate.reason == f"error_budget: could not read the budget ({raised.value})"


def test_a_prometheus_that_never_answers_is_a_gate_error_within_the_timeout(silent_url: str) -> None:
    started = time.monotonic()
    with pytest.raises(GateError, match=r"no answer within 0\.5 s"):
        prometheus_budget_pct(silent_url, QUERY, "cell-1", 0.5)
    assert time.monotonic() - started < 3


# -- the webhook ---------------------------------------------------------------------------------


def statuses(*codes: int) -> Callable[[Seen], Reply]:
    """Answers with ``codes`` in turn, then 200."""
    remaining = list(codes)
    return lambda seen: (remaining.pop(0) if remaining else 200, {"ok": True})


def test_notifier_posts_the_documented_json(serve: Any) -> None:
    hook = serve(statuses())
    fields = {"schedule": "weekly-chaos", "window_id": "win-1", "cell": "cell-1", "experiment": "pod-kill",
              "run_id": "run-1", "verdict": "failed", "reason": "missed: error rate < 1 % during recovery"}
    notifier = Notifier(hook.url + "/services/T000/B000/XXXX")
    notifier.send("run_failed", AT, **fields)
    notifier.close(timeout_s=10)
    [seen] = hook.seen
    assert seen.method == "POST"
    assert seen.path == "/services/T000/B000/XXXX"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["User-Agent"] == "gameday-runner"
    body = json.loads(seen.body)
    assert body == notification_body("run_failed", fields, AT)
    assert body["gameday"]["event"] == "run_failed"
    assert body["gameday"]["reason"] == fields["reason"]
    assert body["text"].startswith(":red_circle: gameday: run failed - pod-kill on cell-1")


def test_unsubscribed_events_are_not_sent(serve: Any) -> None:
    hook = serve(statuses())
    with Notifier(hook.url, events=("run_failed", "run_aborted")) as notifier:
        notifier.send("window_start", AT, schedule="weekly-chaos", window_id="w")
        notifier.send("run_skipped", AT, cell="cell-1", reason="min_interval: cell-1 last ran 3.0 h ago")
        notifier.send("run_aborted", AT, cell="cell-1", experiment="latency", run_id="r-2")
    assert [json.loads(seen.body)["gameday"]["event"] for seen in hook.seen] == ["run_aborted"]


def test_without_a_url_nothing_happens() -> None:
    notifier = Notifier(None)
    notifier.send("run_failed", AT, cell="cell-1")
    notifier.close()
    with pytest.raises(ValueError, match="unknown notification event"):
        notifier.send("run_exploded", AT)


def test_a_500_is_retried_then_given_up_without_raising(serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    hook = serve(statuses(500, 500, 500, 500))
    caplog.set_level(logging.INFO, logger="gameday.scheduler.notify")
    notifier = Notifier(hook.url + "/hooks/secret-token-xyz")
    started = time.monotonic()
    notifier.send("run_failed", AT, cell="cell-1")
    assert time.monotonic() - started < 0.5  # send only queues
    notifier.close(timeout_s=10)
    assert len(hook.seen) == 3
    assert 1.4 < time.monotonic() - started < 8  # back-off 0.5 s then 1 s
    assert "failed after 3 attempt(s): HTTP 500" in caplog.text
    assert "secret-token-xyz" not in caplog.text


def test_a_5xx_then_success_is_delivered_once(serve: Any) -> None:
    hook = serve(statuses(502))
    with Notifier(hook.url) as notifier:
        notifier.send("window_end", AT, schedule="weekly-chaos", window_id="w", runs=4)
    assert len(hook.seen) == 2
    assert json.loads(hook.seen[1].body)["gameday"]["runs"] == 4


def test_a_4xx_is_not_retried(serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    hook = serve(statuses(400))
    caplog.set_level(logging.WARNING, logger="gameday.scheduler.notify")
    with Notifier(hook.url) as notifier:
        notifier.send("run_failed", AT, cell="cell-1")
    assert len(hook.seen) == 1
    assert "failed after 1 attempt(s): HTTP 400" in caplog.text


def test_a_refused_webhook_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gameday.scheduler.notify")
    with Notifier(refused_url()) as notifier:
        notifier.send("run_failed", AT, cell="cell-1")
    assert "failed after 3 attempt(s): cannot connect" in caplog.text


def test_close_drains_the_queue_in_order(serve: Any) -> None:
    def slow(seen: Seen) -> Reply:
        time.sleep(0.05)
        return 200, {}

    hook = serve(slow)
    notifier = Notifier(hook.url)
    for index in range(5):
        notifier.send("run_skipped", AT, cell=f"cell-{index}", reason="freeze: change freeze")
    notifier.close(timeout_s=10)
    assert [json.loads(seen.body)["gameday"]["cell"] for seen in hook.seen] == [f"cell-{i}" for i in range(5)]
    notifier.send("run_failed", AT, cell="cell-9")  # after close: dropped, not raised
    assert len(hook.seen) == 5


def test_close_gives_up_on_a_webhook_that_never_answers(silent_url: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gameday.scheduler.notify")
    notifier = Notifier(silent_url, timeout_s=0.5)
    started = time.monotonic()
    for _ in range(3):
        notifier.send("run_failed", AT, cell="cell-1")
    assert time.monotonic() - started < 0.5  # a slow webhook never delays the caller
    notifier.close(timeout_s=1.0)
    assert time.monotonic() - started < 3
    assert "gave up on" in caplog.text
