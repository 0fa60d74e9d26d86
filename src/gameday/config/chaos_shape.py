"""The shape of a Chaos Toolkit experiment, checked before chaoslib sees it.

chaoslib's own validation assumes the shape and crashes on what it did not expect
(``arguments: null``, ``method: {a: 1}``, ``secrets: {k: null}``, ...) with a TypeError or an
AttributeError instead of a message. These models say where and what, and they import
nothing; chaoslib's validation runs after them, on a document of the right shape.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)

from gameday.config._errors import StrictModel, expected_text
from gameday.errors import InputError

Number = StrictInt | StrictFloat
Scalar = StrictStr | Number | StrictBool | None
Name = Annotated[StrictStr, Field(min_length=1, max_length=200)]


class _Open(BaseModel):
    """A mapping whose unknown keys chaoslib ignores (the experiment's top level)."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)


class EnvValue(StrictModel):
    type: Literal["env"]
    key: Name
    default: Any = None
    env_var_type: StrictStr | None = None


class VaultValue(StrictModel):
    type: Literal["vault"]
    path: Name
    key: StrictStr | None = None


# A configuration value: a literal, or read from the environment ({type: env, key: ...}).
ConfigValue = Scalar | list[Any] | EnvValue | dict[str, Any]
SecretValue = StrictStr | Number | StrictBool | EnvValue | VaultValue


class PythonProvider(StrictModel):
    type: Literal["python"]
    module: Name
    func: Name
    arguments: dict[str, Any] = Field(default_factory=dict)
    secrets: list[StrictStr] | None = None


class ProcessProvider(StrictModel):
    type: Literal["process"]
    path: Name
    arguments: StrictStr | list[Any] | dict[str, Any] | None = None
    timeout: Number | None = Field(default=None, gt=0)
    secrets: list[StrictStr] | None = None


class HttpProvider(StrictModel):
    type: Literal["http"]
    url: Name
    method: StrictStr | None = None
    headers: dict[str, StrictStr] | None = None
    arguments: dict[str, Any] | StrictStr | None = None
    timeout: Number | list[Number] | None = None
    expected_status: StrictInt | None = None
    verify_tls: StrictBool | None = None
    secrets: list[StrictStr] | None = None


Provider = Annotated[PythonProvider | ProcessProvider | HttpProvider, Field(discriminator="type")]


class Pauses(StrictModel):
    before: Number | None = Field(default=None, ge=0, le=3600)
    after: Number | None = Field(default=None, ge=0, le=3600)


class Control(StrictModel):
    name: Name
    provider: dict[str, Any]
    scope: StrictStr | None = None
    automatic: StrictBool | None = None


class Activity(StrictModel):
    type: Literal["action", "probe"]
    name: Name
    provider: Provider
    tolerance: Any = None
    pauses: Pauses | None = None
    background: StrictBool | None = None
    controls: list[Control] | None = None


class Ref(StrictModel):
    ref: Name


class Hypothesis(StrictModel):
    title: Name
    probes: list[dict[str, Any]] = Field(default_factory=list)
    strategy: StrictStr | None = None
    controls: list[Control] | None = None


class Extension(_Open):
    name: Name


class ExperimentShape(_Open):
    title: Annotated[StrictStr, Field(min_length=1, max_length=500)]
    description: StrictStr | None = None
    version: StrictStr | None = None
    tags: list[StrictStr] | None = None
    configuration: dict[str, ConfigValue] | None = None
    secrets: dict[str, dict[str, SecretValue]] | None = None
    extensions: list[Extension] | None = None
    steady_state_hypothesis: Hypothesis | None = Field(default=None,
                                                       alias="steady-state-hypothesis")
    method: list[dict[str, Any]] = Field(min_length=1)
    rollbacks: list[dict[str, Any]] | None = None
    controls: list[Control] | None = None


_TAGS = {"python", "process", "http", "str", "int", "float", "bool"}
FIX = "see the experiments in experiments/local/ (and chaostoolkit.org's reference) for the shape"


def check_shape(document: dict[str, Any], source: str) -> None:
    """Raise InputError (where / expected / found / fix) unless ``document`` has the shape of a
    Chaos Toolkit experiment; every activity is checked on its own, so the message names it."""
    _validate(ExperimentShape, document, source, "")
    hypothesis = document.get("steady-state-hypothesis") or {}
    sections = [("steady-state-hypothesis.probes", hypothesis.get("probes") or []),
                ("method", document["method"]), ("rollbacks", document.get("rollbacks") or [])]
    for section, items in sections:
        for i, item in enumerate(items):
            model: type[BaseModel] = Ref if "ref" in item else Activity
            _validate(model, item, source, f"{section}.{i}")


def _validate(model: type[BaseModel], data: Any, source: str, where: str) -> None:
    try:
        model.model_validate(data)
    except ValidationError as exc:
        first: Any = exc.errors()[0]
        loc = [str(p) for p in first.get("loc", ()) if str(p) not in _TAGS]
        at = ".".join([where, *loc] if where else loc)
        found = "nothing" if first.get("type") == "missing" else first.get("input")
        raise InputError(f"{source}: {at}" if at else source, expected_text(first), found,
                         FIX) from exc


__all__ = ["ExperimentShape", "check_shape"]
