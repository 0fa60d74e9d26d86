"""Secrets never reach the store, journals, logs, reports or webhooks: mask them first.

Masked: every known secret value (an experiment's and a cell's ``secrets``, the store URL's
password) in each form it takes in text (as is, percent-encoded, JSON- and HTML-escaped); the
value of any secret-named mapping key; passwords in URLs and in libpq conninfo strings.

A ``Redactor`` holds the known values and can learn more while a run goes (the values chaoslib
resolves); ``RedactingFormatter`` and ``RedactingStream`` put it in front of log handlers and
of a process's stdout / stderr.
"""

from __future__ import annotations

import html
import io
import json
import logging
import re
import threading
from collections.abc import Iterable
from typing import Any, TextIO
from urllib.parse import quote, quote_plus

from gameday.store import url_secrets

MASK = "***"
# Shorter values are not masked: masking every "ab" of a journal would garble it and, by where
# the masks fall, disclose the value anyway; a secret that short protects nothing.
MIN_SECRET_LEN = 4
# "passw(or)d", not "pass": a key such as "passed" (a count in a journal) is no secret.
SECRET_KEYS = re.compile(r"passw(or)?d|passphrase|secret|token|api[_-]?key|credential|authorization",
                         re.IGNORECASE)
# user:password@ in URLs, greedy up to the last "@" of the word: an unescaped "@" in a password
# must not leave its tail behind. And password=... in libpq conninfo strings.
URL_PASSWORD = re.compile(r"(?<=://)([^:/@\s]+):(\S*)@")
CONNINFO_PASSWORD = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def secret_forms(values: Iterable[str]) -> tuple[str, ...]:
    """Each text form of ``values`` long enough to mask, longest first (so a value that
    contains another is masked whole)."""
    forms: set[str] = set()
    for value in values:
        forms.update((value, value.strip(), quote(value, safe=""), quote_plus(value, safe=""),
                      json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1],
                      html.escape(value)))
    return tuple(sorted((f for f in forms if len(f) >= MIN_SECRET_LEN), key=len, reverse=True))


def store_url_secrets(url: str | None) -> tuple[str, ...]:
    """The store URL's password in the forms it is written and used in (none without one)."""
    return url_secrets(url) if url else ()


class Redactor:
    """Masks the secrets it knows; ``add`` teaches it more (safe from any thread)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()
        self._forms: tuple[str, ...] = ()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            values = self._values | {s for s in secrets if isinstance(s, str) and s}
            if values != self._values:
                # Replaced whole, never mutated: readers in other threads see one or the other.
                self._values, self._forms = frozenset(values), secret_forms(values)

    def text(self, text: str) -> str:
        return _mask_text(text, self._forms)

    def value(self, value: Any) -> Any:
        """A copy of ``value`` (JSON-like) with secrets and secret-named fields masked."""
        return _mask_value(value, self._forms)


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of ``value`` with every known secret, secret-named field and URL password masked."""
    return Redactor(secrets).value(value)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret and every URL / conninfo password masked."""
    return Redactor(secrets).text(text)


def _mask_value(value: Any, forms: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {k: MASK if isinstance(k, str) and SECRET_KEYS.search(k) and value[k]
                else _mask_value(v, forms) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask_value(v, forms) for v in value]
    if isinstance(value, str):
        return _mask_text(value, forms)
    return value


def _mask_text(text: str, forms: tuple[str, ...]) -> str:
    for form in forms:
        if form in text:
            text = text.replace(form, MASK)
    text = URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{MASK}@", text)
    return CONNINFO_PASSWORD.sub(lambda m: m.group(1) + MASK, text)


class RedactingFormatter(logging.Formatter):
    """Formats with ``inner``, then masks: the message, its arguments, the exception text and
    the stack all pass through it (chaoslib logs activity errors with the exception's text)."""

    def __init__(self, inner: logging.Formatter | None, redactor: Redactor) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor.text(self.inner.format(record))


def redact_log_handlers(redactor: Redactor, *loggers: logging.Logger) -> None:
    """Put ``redactor`` in front of every handler of ``loggers`` (the root logger if none)."""
    for logger in loggers or (logging.getLogger(),):
        for handler in logger.handlers:
            if not isinstance(handler.formatter, RedactingFormatter):
                handler.setFormatter(RedactingFormatter(handler.formatter, redactor))


class RedactingStream(io.TextIOBase):
    """A text stream that masks each line before it reaches ``inner``.

    Whole lines, so a secret written in two pieces is still masked; ``flush`` passes on a
    partial line too, so nothing is held back when the process ends.
    """

    def __init__(self, inner: TextIO, redactor: Redactor) -> None:
        super().__init__()
        self.inner = inner
        self.redactor = redactor
        self._pending = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            *lines, self._pending = (self._pending + text).split("\n")
            if lines:
                self.inner.write("".join(self.redactor.text(line) + "\n" for line in lines))
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                self.inner.write(self.redactor.text(self._pending))
                self._pending = ""
            self.inner.flush()

    def fileno(self) -> int:
        return self.inner.fileno()

    def isatty(self) -> bool:
        return self.inner.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.inner.encoding
