"""Which database the store uses: parse and normalise ``--store`` / ``GAMEDAY_STORE``, redact it."""

from __future__ import annotations

import os
import re

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from gameday.errors import InputError

DEFAULT_STORE_URL = "sqlite:///.gameday/gameday.db"
STORE_ENV = "GAMEDAY_STORE"

_EXPECTED = "sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB"
_FIX = (f"pass --store {DEFAULT_STORE_URL} (a file, relative to the current directory) or "
        f"--store postgresql://USER:PASSWORD@HOST:PORT/DB, or set {STORE_ENV} to one of them")

# Schemes we accept, mapped to the driver we use: psycopg 3 is the only PostgreSQL driver installed.
_DRIVERS = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}

# Greedy up to the last "@": an unescaped "@" or "/" in a password must not leak its tail.
_USERINFO_PASSWORD = re.compile(r"^(?P<head>[^:/?#]+://[^:/@]*:)(?P<password>.*)(?P<tail>@[^@]*)$", re.DOTALL)
# libpq also takes the password as a query parameter (?password=...).
_PARAM_PASSWORD = re.compile(r"(?i)(?P<key>password=)[^&\s]*")


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``; works on URLs that do not parse, too."""
    redacted = _USERINFO_PASSWORD.sub(r"\g<head>***\g<tail>", url)
    return _PARAM_PASSWORD.sub(r"\g<key>***", redacted)


def resolve_store_url(url: str | None) -> str:
    """The SQLAlchemy URL of the store: ``url``, else ``$GAMEDAY_STORE``, else the default SQLite file.

    ``postgres://`` and ``postgresql://`` select the psycopg 3 driver; a relative SQLite path
    stays relative (to the current directory). Anything else is an InputError.
    """
    where = "--store"
    if url is None:
        from_env = os.environ.get(STORE_ENV, "").strip()
        if not from_env:
            return DEFAULT_STORE_URL
        url, where = from_env, f"{STORE_ENV} (environment)"
    parsed = _parse(url, where)
    driver = _DRIVERS.get(parsed.drivername.lower())
    if driver is None:
        raise InputError(where, _EXPECTED, redact_url(url), _FIX)
    if driver == "sqlite":
        if not parsed.database or parsed.database == ":memory:" or parsed.database.startswith("file:"):
            # A memory database would vanish with the process: the worker and the CLI share the file.
            raise InputError(where, f"{_EXPECTED} (SQLite needs a file path)", redact_url(url), _FIX)
        return url
    if parsed.drivername == driver:
        return url
    # Rewrite the scheme on the text, not by rendering the URL: rendering re-escapes the password.
    return driver + url[url.index("://"):]


def _parse(url: str, where: str) -> URL:
    try:
        return make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise InputError(where, _EXPECTED, redact_url(url), _FIX) from exc
