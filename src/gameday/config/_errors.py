"""Turn a pydantic validation error into our InputError: where, expected, found, fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from gameday.errors import InputError


def input_error_from(exc: ValidationError, source: str, fix: str) -> InputError:
    first: Any = exc.errors()[0]
    location = ".".join(str(p) for p in first.get("loc", ()))
    where = f"{source}: {location}" if location else source
    found = first.get("input", "nothing")
    if first.get("type") == "missing":
        found = "nothing"
    return InputError(where, _expected(first), found, fix)


def _expected(error: Any) -> str:
    kind = error.get("type", "")
    msg = str(error.get("msg", "a valid value"))
    if kind == "missing":
        return "this field"
    if kind == "extra_forbidden":
        return "no such field (check its spelling)"
    return msg[0].lower() + msg[1:] if msg else "a valid value"


def yaml_error(exc: yaml.YAMLError, source: str) -> InputError:
    """A YAML syntax error, pointing at its line and column."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
    return InputError(where, "valid YAML", str(getattr(exc, "problem", exc)),
                      "fix the YAML syntax at that line")


M = TypeVar("M", bound=BaseModel)


def read_model(path: Path, model: type[M], option: str, what: str, fix: str) -> M:
    """Read the YAML file ``path`` into ``model``: every failure an InputError that says where."""
    source = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(option, f"a {what} file", f"no file at {path}",
                         f"pass {option} PATH or create it") from exc
    except yaml.YAMLError as exc:
        raise yaml_error(exc, source) from exc
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise input_error_from(exc, source, fix) from exc
