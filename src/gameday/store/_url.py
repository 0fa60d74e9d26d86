"""Which database the store uses: parse and normalise ``--store`` / ``GAMEDAY_STORE``, redact it."""

from __future__ import annotations

import os
import re
from urllib.parse import quote, quote_plus

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from gameday.errors import InputError
from gameday.files import DEFAULT_STORE_URL, STORE_ENV

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
_PARAM_PASSWORD_VALUE = re.compile(r"(?i)password=([^&\s]+)")
# Where the driver ends the user info: at the first "@" after "user:" (a user name may hold one).
_SPLIT_AT_USERINFO = re.compile(r"^[^:/?#]+://[^:/]*(?::[^@]*)?@(?P<rest>.*)$", re.DOTALL)
_FIX_AT = ("write every \"@\" (and \":\", \"/\", \"?\", \"#\") of the user name or password "
           "percent-encoded (\"@\" is %40), e.g. postgresql://USER:p%40ss@HOST:PORT/DB")


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``; works on URLs that do not parse, too."""
    redacted = _USERINFO_PASSWORD.sub(r"\g<head>***\g<tail>", url)
    return _PARAM_PASSWORD.sub(r"\g<key>***", redacted)


def url_secrets(url: str) -> tuple[str, ...]:
    """The password of ``url`` in every form it may take in a text: as written, decoded and
    encoded; also as far as the last "@" when an unescaped "@" makes the URL ambiguous."""
    found: set[str] = set()
    written = _USERINFO_PASSWORD.match(url)
    if written:
        found.add(written.group("password"))
    found.update(_PARAM_PASSWORD_VALUE.findall(url))
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        parsed = None
    if parsed is not None and parsed.password:
        found.add(str(parsed.password))
    found.update({encoded for value in list(found) for encoded in (quote(value, safe=""),
                                                                   quote_plus(value, safe=""))})
    return tuple(sorted(value for value in found if value))


def mask_password(text: str, password: str | None) -> str:
    """``text`` (a driver's error, say) with ``password`` masked as written, encoded or decoded.

    Under 4 characters it is left alone, as engine.redact does: masking every "ab" of a
    message would garble it and show the value by where the masks fall.
    """
    if password:
        forms = {password, quote(password, safe=""), quote_plus(password, safe="")}
        for form in sorted(forms, key=len, reverse=True):
            if len(form) >= 4:
                text = text.replace(form, "***")
    return text


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
    _check_userinfo(url, where)
    if parsed.drivername == driver:
        return url
    # Rewrite the scheme on the text, not by rendering the URL: rendering re-escapes the password.
    return driver + url[url.index("://"):]


def _check_userinfo(url: str, where: str) -> None:
    """Refuse an "@" after the one that ends the user info (an unescaped "@" in the password)
    before anything connects: the rest of the password would become the host name, sent to
    the DNS resolver and echoed in the driver's error."""
    userinfo = _SPLIT_AT_USERINFO.match(url)
    if userinfo and "@" in userinfo.group("rest"):
        raise InputError(where, f"{_EXPECTED}, with \"@\" in the password written %40",
                         redact_url(url), _FIX_AT)


def _parse(url: str, where: str) -> URL:
    try:
        return make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise InputError(where, _EXPECTED, redact_url(url), _FIX) from exc


__all__ = ["DEFAULT_STORE_URL", "STORE_ENV", "mask_password", "redact_url", "resolve_store_url",
           "url_secrets"]
