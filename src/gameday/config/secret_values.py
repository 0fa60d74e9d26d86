"""The values of an experiment's ``secrets``, known before chaoslib runs: to mask them.

chaoslib's shape: ``secrets: {scope: {name: VALUE}}`` where VALUE is given inline, read from
the environment (``{type: env, key: NAME}``) or from Vault (``{type: vault, ...}``); a mapping
of another shape nests further. Inline and environment values are read here; what only a
secret store can give (Vault, ...) is known once chaoslib resolved it, in the worker
(``leaf_values`` of what chaoslib returns).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


def declared_secret_values(secrets: Any, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Every value ``secrets`` gives inline or names in the environment (``environ``, by
    default this process's), in the order found, without duplicates."""
    found: list[str] = []
    _walk(secrets, os.environ if environ is None else environ, found)
    return tuple(dict.fromkeys(found))


def leaf_values(resolved: Any) -> tuple[str, ...]:
    """Every scalar of ``resolved`` (secrets as chaoslib resolved them) as text."""
    found: list[str] = []
    _walk(resolved, {}, found, resolve=False)
    return tuple(dict.fromkeys(found))


def _walk(node: Any, environ: Mapping[str, str], found: list[str], resolve: bool = True) -> None:
    if isinstance(node, Mapping):
        kind = node.get("type") if resolve else None
        if kind == "env":
            # A default is secret material written in the file, whether chaoslib uses it or not.
            for value in (environ.get(str(node.get("key"))), node.get("default")):
                _leaf(value, found)
        # Vault: resolved by chaoslib alone (it needs the configuration and a client).
        elif kind != "vault":
            for value in node.values():
                _walk(value, environ, found, resolve)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _walk(value, environ, found, resolve)
    else:
        _leaf(node, found)


def _leaf(value: Any, found: list[str]) -> None:
    # Numbers too (a PIN is a secret); booleans and None say nothing.
    if isinstance(value, str) and value:
        found.append(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        found.append(str(value))


__all__ = ["declared_secret_values", "leaf_values"]
