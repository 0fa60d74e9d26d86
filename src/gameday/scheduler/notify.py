"""An optional webhook told about windows and about runs that did not pass.

The documented JSON, POSTed with ``Content-Type: application/json``::

    {
      "text": ":red_circle: gameday: run failed - pod-kill on cell-1 (missed: error rate &lt; 1 %) run-...",
      "gameday": {
        "event": "run_failed",          # one of EVENTS
        "at": "2026-03-07T02:14:03.120000+00:00",   # ISO 8601, UTC
        "schedule": "weekly-chaos",     # these seven keys are always present, null when unknown
        "window_id": "...",
        "cell": "cell-1",
        "experiment": "pod-kill",
        "run_id": "...",
        "verdict": "failed",
        "reason": "missed: error rate < 1 % during recovery",
        ...                             # any extra fields the caller gave (e.g. counts at window_end)
      }
    }

``text`` is one line for people: Slack incoming webhooks read it, and so do Mattermost,
Rocket.Chat and Teams through a connector; it is escaped the way Slack asks (``&``, ``<``, ``>``).
The structured ``gameday`` object holds the values unescaped and is what other tools read; chat tools
ignore top-level keys they do not know. Passwords in URLs and conninfo strings among the values,
and the secrets the Notifier was given (the cells' ``secrets``), are masked (engine.redact)
before they leave; run reasons are masked where they are made, before they are stored.

Posting happens in a background thread, so a slow webhook never delays a fault revert: ``send``
only queues (a full queue drops the notification with a warning). Failures are logged, never
raised; connection errors, timeouts and 5xx answers are retried (3 attempts, 0.5 s then 1 s
apart), 4xx answers are not.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.parse
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from gameday.engine.redact import Redactor
from gameday.scheduler.gates import describe_http_error, http_fetch

log = logging.getLogger(__name__)

EVENTS = ("window_start", "window_end", "run_failed", "run_aborted", "run_skipped")
STANDARD_FIELDS = ("schedule", "window_id", "cell", "experiment", "run_id", "verdict", "reason")
ATTEMPTS = 3
BACKOFF_S = (0.5, 1.0)  # before the 2nd and the 3rd attempt
QUEUE_SIZE = 100

_TITLES: Mapping[str, tuple[str, str]] = {
    "window_start": (":arrow_forward:", "window started"),
    "window_end": (":checkered_flag:", "window ended"),
    "run_failed": (":red_circle:", "run failed"),
    "run_aborted": (":octagonal_sign:", "run aborted"),
    "run_skipped": (":fast_forward:", "run skipped"),
}


def notification_body(event: str, fields: Mapping[str, Any], at: datetime,
                      redactor: Redactor | None = None) -> dict[str, Any]:
    """The documented JSON for ``event`` (see the module docstring); ``at`` naive means UTC.
    Strings are masked by ``redactor`` (URL and conninfo passwords when it is None)."""
    if event not in _TITLES:
        raise ValueError(f"unknown notification event {event!r}: expected one of {EVENTS}")
    clash = {"event", "at"} & set(fields)
    if clash:
        raise ValueError(f"notification fields may not set {sorted(clash)}: they are set from the arguments")
    structured: dict[str, Any] = {"event": event, "at": _iso(at)}
    structured.update({name: None for name in STANDARD_FIELDS})
    redactor = redactor or Redactor()
    structured.update({name: _jsonable(value, redactor) for name, value in fields.items()})
    return {"text": _text(event, structured), "gameday": structured}


def _text(event: str, f: Mapping[str, Any]) -> str:
    emoji, title = _TITLES[event]
    if event.startswith("run_"):
        subject = f"{f['experiment'] or 'an experiment'} on {f['cell'] or 'an unknown cell'}"
        ref = f["run_id"]
    else:
        subject = str(f["schedule"] or "a window")
        ref = f["window_id"]
    parts = [f"{emoji} gameday: {title} - {subject}"]
    if f["reason"]:
        parts.append(f"({f['reason']})")
    if ref:
        parts.append(str(ref))
    # one line, escaped as Slack requires (a bare "<" could start a link)
    line = " ".join(" ".join(str(part).split()) for part in parts)
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _iso(moment: datetime) -> str:
    return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)).isoformat()


def _jsonable(value: Any, redactor: Redactor) -> Any:
    """``value`` with datetimes as ISO 8601 UTC and secrets masked in strings.

    Strings only: engine.redact's secret-named keys would also mask a count named "passed".
    """
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, str):
        return redactor.text(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, redactor) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v, redactor) for v in value]
    return value


class Notifier:
    """Posts notifications to ``url`` in a background thread; no-op without a URL.

    ``close`` waits (bounded) for what is queued to be sent; a Notifier is also a context manager.
    ``secrets`` (the cells' secret values, say) are masked in every payload.
    """

    def __init__(self, url: str | None, events: Collection[str] = EVENTS, timeout_s: float = 5.0,
                 secrets: Iterable[str] = ()) -> None:
        unknown = sorted(set(events) - set(EVENTS))
        if unknown:
            raise ValueError(f"unknown notification events {unknown}: expected some of {EVENTS}")
        if url is not None and urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
            raise ValueError(f"the webhook URL must be http(s), got {_origin(url)!r}")
        self.url = url
        self.events = frozenset(events)
        self.timeout_s = timeout_s
        self._redactor = Redactor(secrets)
        # (event, JSON body); None tells the worker to stop
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(maxsize=QUEUE_SIZE)
        self._abandon = threading.Event()  # close() timed out: stop retrying, drop the rest
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def send(self, event: str, at: datetime, **fields: Any) -> None:
        """Queue ``event``; never blocks and never raises for delivery problems."""
        if event not in _TITLES:
            # a typo in our own code: fail loudly even when no webhook is configured
            raise ValueError(f"unknown notification event {event!r}: expected one of {EVENTS}")
        if self.url is None or event not in self.events:
            return
        payload = json.dumps(notification_body(event, fields, at, self._redactor), default=str).encode()
        with self._lock:
            if self._closed:
                log.warning("gameday notify: %s not sent, the notifier is closed", event)
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="gameday-notify", daemon=True)
                self._thread.start()
            try:
                self._queue.put_nowait((event, payload))
            except queue.Full:
                log.warning("gameday notify: %s dropped, %d notifications already wait for %s",
                            event, QUEUE_SIZE, _origin(self.url))

    def close(self, timeout_s: float = 10.0) -> None:
        """Send what is queued, waiting at most ``timeout_s``; then give up on the rest."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is None:
            return
        deadline = time.monotonic() + timeout_s
        with contextlib.suppress(queue.Full):
            # behind everything queued, so the worker drains first
            self._queue.put(None, timeout=timeout_s)
        thread.join(max(deadline - time.monotonic(), 0.0))
        if thread.is_alive():
            self._abandon.set()
            log.warning("gameday notify: gave up on %d notification(s) to %s after %g s",
                        self._queue.qsize(), _origin(self.url or ""), timeout_s)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if not self._abandon.is_set():
                self._post(*item)

    def _post(self, event: str, payload: bytes) -> None:
        url = self.url
        assert url is not None  # nothing is queued without one
        for attempt in range(1, ATTEMPTS + 1):
            try:
                http_fetch(url, self.timeout_s, data=payload, headers={"Content-Type": "application/json"})
            except (OSError, ValueError, http.client.HTTPException) as exc:
                why = describe_http_error(exc, self.timeout_s)
                # 4xx: the webhook refuses this body (or the URL is wrong); sending it again won't help
                final = (isinstance(exc, urllib.error.HTTPError) and exc.code < 500) or isinstance(
                    exc, ValueError) or attempt == ATTEMPTS
                if final:
                    log.warning("gameday notify: %s to %s failed after %d attempt(s): %s",
                                event, _origin(url), attempt, why)
                    return
                log.info("gameday notify: %s to %s failed (%s), attempt %d of %d",
                         event, _origin(url), why, attempt, ATTEMPTS)
                if self._abandon.wait(BACKOFF_S[attempt - 1]):
                    return
            else:
                log.debug("gameday notify: %s sent to %s", event, _origin(url))
                return


def _origin(url: str) -> str:
    # Webhook URLs carry their secret in the path (Slack: /services/T…/B…/<token>), so logs show
    # only where they go: scheme and host.
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable URL>"
    return f"{parts.scheme}://{host}{port}/..."
