"""Secrets never reach journals, logs or reports: replace them before anything is stored."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "***"
# "passw(or)d", not "pass": a key such as "passed" (a count in a journal) is no secret.
SECRET_KEYS = re.compile(r"passw(or)?d|passphrase|secret|token|api[_-]?key|credential|authorization",
                         re.IGNORECASE)
# user:password@ in URLs and password=... in libpq conninfo strings.
URL_PASSWORD = re.compile(r"(?<=://)([^:/@\s]+):([^@\s]+)@")
CONNINFO_PASSWORD = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of ``value`` with every known secret, secret-named field and URL password masked."""
    known = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
    return _redact(value, known)


def _redact(value: Any, known: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: MASK if isinstance(k, str) and SECRET_KEYS.search(k) and value[k]
                else _redact(v, known) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(v, known) for v in value]
    if isinstance(value, str):
        return redact_text(value, known)
    return value


def redact_text(text: str, known: Iterable[str]) -> str:
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    text = URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{MASK}@", text)
    return CONNINFO_PASSWORD.sub(lambda m: m.group(1) + MASK, text)
