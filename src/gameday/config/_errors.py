"""Turn a pydantic validation error into our InputError: where, expected, found, fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from gameday.errors import InputError


class StrictModel(BaseModel):
    """Base of every model of untrusted input: unknown fields and NaN/infinity refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def input_error_from(exc: ValidationError, source: str, fix: str, prefix: str = "") -> InputError:
    """``prefix``: where the validated part sits in the file (e.g. ``extensions.gameday``)."""
    first: Any = exc.errors()[0]
    location = ".".join(([prefix] if prefix else []) + [str(p) for p in first.get("loc", ())])
    where = f"{source}: {location}" if location else source
    found = first.get("input", "nothing")
    if first.get("type") == "missing":
        found = "nothing"
    return InputError(where, expected_text(first), found, fix)


def expected_text(error: Any) -> str:
    kind = error.get("type", "")
    msg = str(error.get("msg", "a valid value"))
    if kind == "missing":
        return "this field"
    if kind == "extra_forbidden":
        return "no such field (check its spelling)"
    # "Input should be a valid string" -> "a valid string"; our validators' messages say it all.
    msg = msg.removeprefix("Value error, ").removeprefix("Input should be ")
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
    from gameday.config._files import load_file

    raw = load_file(path, option, f"a {what} file", f"pass {option} PATH or create it")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise input_error_from(exc, str(path), fix) from exc
