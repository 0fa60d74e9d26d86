"""A small client of a cell controller's admin API (stdlib only: the CLI stays quick to start)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from gameday.errors import InputError, SandboxError


def admin_call(base_url: str, token: str, method: str, path: str,
               body: dict[str, Any] | None = None, timeout_s: float = 10.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base_url + path, data=data, method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        payload = _json_or_text(exc.read())
        if exc.code == 400 and isinstance(payload, dict) and "where" in payload:
            raise InputError(payload["where"], payload["expected"], payload["found"],
                             payload["fix"]) from exc
        raise SandboxError(f"{method} {path} on the cell's admin API answered {exc.code}: "
                           f"{payload}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise SandboxError(f"the cell's admin API at {base_url} does not answer ({exc}); "
                           "is the sandbox running? `gameday sandbox status` tells") from exc


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
