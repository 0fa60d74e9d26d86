"""Gates checked right before each run: a blocked gate turns the run into a skipped one.

Each gate answers with a GateResult whose ``reason`` starts with the gate's name and becomes the
skip reason recorded on the run. Pure decisions (``*_gate``, ``budget_consumed_pct``,
``firing_alerts``) are separate from the I/O that feeds them (``prometheus_budget_pct``,
``fetch_alertmanager_alerts``, ``read_alerts_file``), so the decisions are unit-tested on
hand-made values. They take primitives and run records, never schedule config objects.

Safety first: a gate whose source cannot answer blocks (fail closed) - no chaos while blind.

HTTP uses the standard library only (``http_fetch``): a short timeout, the User-Agent
"gameday-runner", redirects only to http(s), basic-auth credentials taken out of the URL and sent
as a header, and never shown: every URL in a message goes through ``display_url``.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

# Private helpers of the report's analytics, reused so that the gate and the report agree on
# which runs count and on how a downtime figure is read.
from gameday.analytics.fleet import as_utc, figure, select_runs
from gameday.engine.redact import MASK, redact_text
from gameday.errors import GamedayError
from gameday.model import RunRecord

GATES = ("freeze", "error_budget", "incidents", "min_interval")
BUDGET_SOURCES = ("store", "prometheus")
CELL_PLACEHOLDER = "$cell"
USER_AGENT = "gameday-runner"
# Bounds what a misbehaving endpoint can make us hold in memory.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
_ERROR_SNIPPET = 200


class GateError(GamedayError):
    """A gate's source could not answer (HTTP error, timeout, invalid content)."""


@dataclass(frozen=True)
class GateResult:
    gate: str  # one of GATES
    blocked: bool
    reason: str | None  # the run's skip reason, starting with "<gate>: "; None when not blocked
    detail: Mapping[str, Any] = field(default_factory=dict)  # figures behind the decision

    def __post_init__(self) -> None:
        # The reason is recorded on the run and read by people: keep its shape a guarantee.
        if self.gate not in GATES:
            raise ValueError(f"unknown gate {self.gate!r}: expected one of {GATES}")
        if self.blocked != (self.reason is not None):
            raise ValueError(f"gate {self.gate}: a reason is given exactly when the gate blocks")
        if self.reason is not None and not self.reason.startswith(f"{self.gate}: "):
            raise ValueError(f"gate {self.gate}: the reason must start with {self.gate + ': '!r}")


def passed(gate: str) -> GateResult:
    return GateResult(gate, False, None)


# -- min interval ----------------------------------------------------------------------------


def min_interval_gate(cell: str, runs: Sequence[RunRecord], now: datetime,
                      min_interval: timedelta) -> GateResult:
    """Blocked when the newest run of ``cell`` that actually ran started less than
    ``min_interval`` before ``now``. Skipped runs and runs without a verdict do not count."""
    gate = "min_interval"
    if min_interval <= timedelta(0):
        return passed(gate)
    now = as_utc(now)
    ran = [run for run in select_runs(runs, cells=(cell,)) if run.verdict not in (None, "skipped")]
    if not ran:
        return passed(gate)
    last = max(ran, key=lambda run: (as_utc(run.started_utc), run.run_id))
    age = now - as_utc(last.started_utc)
    detail = {"last_run_id": last.run_id, "last_started_utc": as_utc(last.started_utc).isoformat(),
              "age_s": age.total_seconds(), "min_interval_s": min_interval.total_seconds()}
    if age >= min_interval:
        return GateResult(gate, False, None, detail)
    # A run dated after now (clock skew between hosts) is as recent as it gets: shown as 0 h ago.
    hours = max(age, timedelta(0)) / timedelta(hours=1)
    return GateResult(gate, True, f"{gate}: {cell} last ran {hours:.1f} h ago "
                                  f"(minimum {min_interval / timedelta(hours=1):g} h)", detail)


# -- error budget ----------------------------------------------------------------------------


def budget_consumed_pct(cell: str, runs: Sequence[RunRecord], now: datetime, period: timedelta,
                        availability_slo: float) -> float:
    """Percent of the error budget of ``period`` consumed by the downtime of ``cell``'s runs.

    Downtime is the runs' ``downtime_s`` figure (what the probes saw), summed over the cell's runs
    started in [now - period, now) that were not skipped; the budget is (100 % - SLO) of the
    period. 99.95 % over 30 days allows 21.6 minutes. A 100 % SLO allows nothing: any downtime is
    an infinite share, none is 0.

    Why not ``analytics.fleet.error_budget``: the report groups by calendar month against an
    average month (so the figure resets on the 1st), while the gate must look at a rolling period
    ending now - otherwise a cell that burnt its budget on the 31st would be fair game on the 1st.
    """
    if period <= timedelta(0):
        raise ValueError(f"budget_consumed_pct: period must be positive, got {period}")
    if not 0 <= availability_slo <= 100:
        raise ValueError(f"budget_consumed_pct: availability SLO is a percent in [0, 100], "
                         f"got {availability_slo}")
    now = as_utc(now)
    inside = select_runs(runs, since=now - period, until=now, cells=(cell,))
    downtime_s = sum(figure(run, "downtime_s") or 0.0 for run in inside if run.verdict != "skipped")
    budget_s = (1 - availability_slo / 100) * period.total_seconds()
    if budget_s <= 0:
        return math.inf if downtime_s > 0 else 0.0
    return 100 * downtime_s / budget_s


def error_budget_gate(cell: str, consumed_pct: float | None, max_consumed_pct: float, period_days: float,
                      source: str, error: str | None = None) -> GateResult:
    """Blocked when more than ``max_consumed_pct`` of the budget is consumed, and - fail closed -
    when ``consumed_pct`` is None (the source could not answer; ``error`` says why) or NaN.

    Exactly at the limit passes: the policy freezes *above* 80 % consumed.
    """
    gate = "error_budget"
    if source not in BUDGET_SOURCES:
        raise ValueError(f"unknown error budget source {source!r}: expected one of {BUDGET_SOURCES}")
    detail: dict[str, Any] = {"cell": cell, "source": source, "consumed_pct": consumed_pct,
                              "max_consumed_pct": max_consumed_pct, "period_days": period_days}
    if consumed_pct is None or math.isnan(consumed_pct):
        why = error or ("no figure" if consumed_pct is None else "the figure is not a number")
        return GateResult(gate, True, f"{gate}: could not read the budget ({why})", detail)
    if consumed_pct <= max_consumed_pct:
        return GateResult(gate, False, None, detail)
    if math.isinf(consumed_pct):
        # a 100 % SLO (no budget at all) with some downtime
        text = f"the {period_days:g}-day budget is exhausted (it allows no downtime; "
    else:
        text = f"{consumed_pct:.1f} % of the {period_days:g}-day budget consumed ("
    return GateResult(gate, True, f"{gate}: {text}limit {max_consumed_pct:g} %)", detail)


def prometheus_budget_pct(url: str, query: str, cell: str, timeout_s: float) -> float:
    """Percent of the error budget consumed, asked from Prometheus (HTTP API, instant query).

    ``query`` must return the consumed FRACTION of the budget, 0..1 (1 = all of it, above 1 when
    overspent), as an instant vector or a scalar; "$cell" in it is replaced by the cell's name,
    e.g. ``slo:error_budget_consumed:ratio_30d{cell="$cell"}``. The first sample is used and
    returned times 100. Raises GateError when Prometheus cannot answer or the answer is unusable.
    """
    promql = query.replace(CELL_PLACEHOLDER, cell)
    where = f"Prometheus at {display_url(url)}"
    target = _join(url, "/api/v1/query") + "?" + urllib.parse.urlencode({"query": promql})
    data = _get_json(target, timeout_s, where, secrets=_url_secrets(url))
    if not isinstance(data, dict) or data.get("status") != "success":
        error = data.get("error") if isinstance(data, dict) else None
        raise GateError(f"{where}: the query {promql!r} did not succeed ({_snippet(error or data)})")
    result_type, result = _dig(data, "resultType"), _dig(data, "result")
    if result_type == "scalar":
        sample = result
    elif result_type == "vector":
        if not isinstance(result, list) or not result:
            raise GateError(f"{where}: the query {promql!r} returned no sample (is the cell's budget "
                            "recorded? the query must return one series per cell)")
        first = result[0]
        sample = first.get("value") if isinstance(first, dict) else None
    else:
        raise GateError(f"{where}: the query {promql!r} returned a {result_type!r} result; expected an "
                        "instant vector or a scalar")
    if not isinstance(sample, list) or len(sample) != 2:
        raise GateError(f"{where}: the query {promql!r} returned a malformed sample {_snippet(sample)}")
    try:
        # Prometheus sends the value as a string ("0.42", "+Inf", "NaN"); NaN is no answer
        fraction = math.nan if isinstance(sample[1], bool) else float(sample[1])
    except (TypeError, ValueError):
        fraction = math.nan
    if math.isnan(fraction):
        raise GateError(f"{where}: the query {promql!r} returned a non-numeric value "
                        f"{_snippet(repr(sample[1]))}")
    return 100 * fraction


# -- incidents -------------------------------------------------------------------------------


def firing_alerts(alerts: Sequence[Mapping[str, Any]], matchers: Mapping[str, str], cell: str) -> list[str]:
    """Sorted, distinct names (``labels.alertname``, else "unnamed") of the active alerts whose
    labels equal every matcher; "$cell" in a matcher value stands for the cell's name.

    Alerts are Alertmanager API v2 objects. Only ``status.state == "active"`` counts: a suppressed
    alert is silenced or inhibited by people who know about it, an unprocessed one has not been
    routed yet. An alert without any ``status`` (a hand-written alerts file) counts as active:
    when in doubt, block. No matchers: every active alert matches.
    """
    wanted = {name: value.replace(CELL_PLACEHOLDER, cell) for name, value in matchers.items()}
    names: set[str] = set()
    for alert in alerts:
        status = alert.get("status")
        state = status.get("state") if isinstance(status, Mapping) else None
        if status is not None and state != "active":
            continue
        labels = alert.get("labels")
        labels = labels if isinstance(labels, Mapping) else {}
        if all(name in labels and str(labels[name]) == value for name, value in wanted.items()):
            names.add(str(labels.get("alertname") or "unnamed"))
    return sorted(names)


def fetch_alertmanager_alerts(url: str, timeout_s: float) -> list[dict[str, Any]]:
    """The active, neither silenced nor inhibited alerts from Alertmanager's API v2."""
    where = f"Alertmanager at {display_url(url)}"
    target = _join(url, "/api/v2/alerts") + "?" + urllib.parse.urlencode(
        {"active": "true", "silenced": "false", "inhibited": "false"})
    return _alert_list(_get_json(target, timeout_s, where, secrets=_url_secrets(url)), where)


def read_alerts_file(path: Path) -> list[dict[str, Any]]:
    """Alerts from a JSON or YAML file holding a list in Alertmanager's API v2 shape.

    For teams without Alertmanager: their on-call tool writes the file while an incident is open
    and removes it when the incident closes, so a missing file means no incident. Anything else
    that cannot be read - including an empty file, which may be caught mid-write - is a GateError
    (write ``[]`` for "no alerts").
    """
    where = f"alerts file {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise GateError(f"{where}: cannot be read ({exc})") from exc
    if not text.strip():
        raise GateError(f"{where}: is empty; expected a list of alerts ([] for none)")
    try:
        # YAML is a superset of JSON, but a .json file is parsed as JSON so its errors read as such.
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise GateError(f"{where}: is neither valid JSON nor YAML ({_snippet(str(exc))})") from exc
    return _alert_list(data, where)


def incident_gate(cell: str, alerts: Sequence[Mapping[str, Any]] | None, matchers: Mapping[str, str],
                  error: str | None = None) -> GateResult:
    """Blocked when a matching alert fires, and - fail closed - when the alerts could not be read
    (``alerts`` None; ``error`` says why)."""
    gate = "incidents"
    if alerts is None:
        why = error or "no alerts were read"
        return GateResult(gate, True, f"{gate}: could not check alerts ({why}) - no chaos while blind",
                          {"cell": cell, "error": why})
    firing = firing_alerts(alerts, matchers, cell)
    detail = {"cell": cell, "firing": firing, "matchers": dict(matchers)}
    if not firing:
        return GateResult(gate, False, None, detail)
    return GateResult(gate, True, f"{gate}: {', '.join(firing)} firing", detail)


# -- HTTP (standard library only) ------------------------------------------------------------


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    # urllib would also follow a redirect to ftp://; we follow http(s) only. The Authorization
    # header is added as "unredirected", so it is never replayed to wherever a redirect points.
    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        if urllib.parse.urlsplit(newurl).scheme.lower() not in ("http", "https"):
            raise urllib.error.HTTPError(req.full_url, code, "redirect to a non-http(s) URL refused",
                                         headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpOnlyRedirects)


def http_fetch(url: str, timeout_s: float, data: bytes | None = None,
               headers: Mapping[str, str] | None = None) -> bytes:
    """GET ``url`` (POST when ``data`` is given) and return the body of a 2xx answer.

    Basic-auth credentials in the URL are sent as an Authorization header. ``timeout_s`` bounds
    the connection and every read. Raises ValueError for a URL that is not http(s),
    urllib.error.HTTPError for an answer >= 400, urllib.error.URLError or OSError (TimeoutError
    included) when the server cannot be reached or does not answer in time, and
    http.client.HTTPException for a broken answer.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http(s):// URL, got {display_url(url)!r}")
    netloc = parts.netloc.rpartition("@")[2]
    request = urllib.request.Request(urllib.parse.urlunsplit(parts._replace(netloc=netloc)), data=data,
                                     method="POST" if data is not None else "GET")
    request.add_header("User-Agent", USER_AGENT)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        request.add_unredirected_header("Authorization", f"Basic {token}")
    with _OPENER.open(request, timeout=timeout_s) as response:
        body: bytes = response.read(MAX_RESPONSE_BYTES + 1)
    if len(body) > MAX_RESPONSE_BYTES:
        raise ValueError(f"the answer is larger than {MAX_RESPONSE_BYTES} bytes")
    return body


def display_url(url: str) -> str:
    """``url`` fit for messages and logs: scheme, host, port and path; a password is masked, the
    query and fragment (where tokens hide) are left out."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        user = f"{parts.username}:{MASK}@" if parts.password is not None else (
            f"{parts.username}@" if parts.username is not None else "")
        return urllib.parse.urlunsplit((parts.scheme, user + host, parts.path, "", ""))
    except ValueError:  # a URL that does not parse (e.g. a bad port): mask what we can
        return redact_text(url.split("?", 1)[0], ())


def describe_http_error(exc: BaseException, timeout_s: float) -> str:
    """A short, secret-free description of what ``http_fetch`` raised."""
    if isinstance(exc, urllib.error.HTTPError):
        detail = ""
        try:
            payload = exc.read(_ERROR_SNIPPET * 4)
            parsed = json.loads(payload) if payload else None
            text = parsed.get("error") if isinstance(parsed, dict) else payload.decode(errors="replace")
            detail = f": {_snippet(text)}" if text else ""
        except (OSError, ValueError, http.client.HTTPException):
            pass
        return f"HTTP {exc.code} {exc.reason}{detail}"
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot connect: {reason}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _get_json(url: str, timeout_s: float, where: str, secrets: Sequence[str]) -> Any:
    try:
        body = http_fetch(url, timeout_s, headers={"Accept": "application/json"})
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise GateError(redact_text(f"{where}: {describe_http_error(exc, timeout_s)}", secrets)) from exc
    try:
        return json.loads(body)
    except ValueError as exc:
        raise GateError(f"{where}: the answer is not JSON ({_snippet(body.decode(errors='replace'))})") \
            from exc


def _alert_list(data: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(data, list):
        raise GateError(f"{where}: expected a list of alerts, found {type(data).__name__}")
    for index, alert in enumerate(data):
        if not isinstance(alert, dict):
            raise GateError(f"{where}: alert {index} is a {type(alert).__name__}, expected an object")
        if not isinstance(alert.get("labels", {}), dict):
            raise GateError(f"{where}: alert {index} has labels that are not an object")
        if not isinstance(alert.get("status", {}), dict):
            raise GateError(f"{where}: alert {index} has a status that is not an object")
    return data


def _join(base: str, path: str) -> str:
    # keeps a path prefix (Prometheus behind /prometheus) and drops a query given with the base
    return base.split("?", 1)[0].rstrip("/") + path


def _url_secrets(url: str) -> list[str]:
    try:
        password = urllib.parse.urlsplit(url).password
    except ValueError:
        return []
    # as engine.redact does, too short a "secret" would mask innocent text, not protect anything
    return [s for s in {password, urllib.parse.unquote(password)} if len(s) >= 4] if password else []


def _dig(data: Mapping[str, Any], key: str) -> Any:
    inner = data.get("data")
    return inner.get(key) if isinstance(inner, dict) else None


def _snippet(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= _ERROR_SNIPPET else text[:_ERROR_SNIPPET] + "..."
