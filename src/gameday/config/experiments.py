"""Experiments: Chaos Toolkit files with our settings in an ``extensions`` entry named gameday.

Validation checks everything before anything is touched: the file parses, Chaos Toolkit
accepts it (schema, every provider resolves, arguments bind), our extension is complete, every
fault's arguments are in range, label selectors are not empty, and it names exactly one cell.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gameday.analytics.criteria import Criterion
from gameday.config._errors import input_error_from, yaml_error
from gameday.engine.faults import validate_spec
from gameday.errors import InputError
from gameday.targets.base import FAULT_KINDS, FaultKind

ACTIONS_MODULE = "gameday.chaos.actions"
# Provider function -> the fault kind it injects.
FAULT_FUNCTIONS: dict[str, FaultKind] = {
    "kill_pods": "pod-kill",
    "add_latency": "latency",
    "stress_cpu": "cpu-stress",
    "fail_over_database": "db-failover",
}
FIX = "see the experiments in experiments/local/ for the expected shape"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CriterionModel(_Strict):
    name: str = Field(min_length=1)
    figure: str = Field(min_length=1)
    max: float | None = None
    min: float | None = None


class LatencyToleranceModel(_Strict):
    factor: float = Field(default=2.0, ge=1)
    floor_ms: float = Field(default=50.0, ge=0)
    max_ms: float | None = Field(default=None, gt=0)


class HaltModel(_Strict):
    error_rate_above: float = Field(gt=0, le=1)
    for_s: float = Field(gt=0)


class GamedayExtensionModel(_Strict):
    name: str
    kind: FaultKind
    probe_hz: float = Field(default=10.0, gt=0, le=50)
    baseline_s: float = Field(default=3.0, ge=0.5, le=600)
    recovery_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    stability_window_s: float = Field(default=10.0, gt=0, le=600)
    error_window_s: float = Field(default=1.0, gt=0, le=60)
    # Absent: a sample is too slow above the cell's p95 latency SLO.
    latency_tolerance: LatencyToleranceModel | None = None
    criteria: list[CriterionModel] = Field(default_factory=list)
    halt: HaltModel | None = None


@dataclass(frozen=True)
class RunSettings:
    kind: FaultKind
    probe_hz: float
    baseline_s: float
    recovery_timeout_s: float
    stability_window_s: float
    error_window_s: float
    latency_factor: float | None  # None: no tolerance relative to the baseline
    latency_floor_ms: float
    latency_max_ms: float | None  # None: the cell's p95 latency SLO
    criteria: tuple[Criterion, ...]
    halt_error_rate_above: float | None
    halt_for_s: float | None


@dataclass(frozen=True)
class Experiment:
    path: Path
    title: str
    document: dict[str, Any]  # what chaoslib runs, as loaded
    settings: RunSettings
    cell: str | None  # the one cell its configuration names, if any
    secret_values: tuple[str, ...]


def parse_document(path: Path) -> dict[str, Any]:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError("EXPERIMENT", "an experiment file", f"no file at {path}",
                         "pass the path of a YAML or JSON experiment") from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}:{exc.lineno}:{exc.colno}", "valid JSON", exc.msg,
                         "fix the JSON syntax at that line") from exc
    except yaml.YAMLError as exc:
        raise yaml_error(exc, source) from exc
    if not isinstance(data, dict):
        raise InputError(source, "a mapping (a Chaos Toolkit experiment)", type(data).__name__,
                         FIX)
    return data


def _chaos_validate(document: dict[str, Any], source: str) -> None:
    from chaoslib.exceptions import ChaosException
    from chaoslib.experiment import ensure_experiment_is_valid

    # chaoslib logs each check at INFO/ERROR; our own message says it all.
    chaos_log = logging.getLogger("chaostoolkit")
    level = chaos_log.level
    chaos_log.setLevel(logging.CRITICAL)
    try:
        ensure_experiment_is_valid(document)
    except ChaosException as exc:
        raise InputError(source, "a valid Chaos Toolkit experiment", str(exc),
                         "fix the experiment where the message points; `chaos validate FILE` "
                         "shows the same check") from exc
    finally:
        chaos_log.setLevel(level)


def _activities(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    hypothesis = document.get("steady-state-hypothesis") or {}
    for i, a in enumerate(hypothesis.get("probes", []) or []):
        found.append((f"steady-state-hypothesis.probes.{i}", a))
    for section in ("method", "rollbacks"):
        for i, a in enumerate(document.get(section, []) or []):
            found.append((f"{section}.{i}", a))
    return [(w, a) for w, a in found if isinstance(a, dict)]


def _check_faults(document: dict[str, Any], source: str, kind: FaultKind) -> None:
    kinds = []
    for where, activity in _activities(document):
        provider = activity.get("provider") or {}
        arguments = provider.get("arguments") or {}
        if "label_selector" in arguments and not str(arguments["label_selector"] or "").strip():
            raise InputError(f"{source}: {where}.provider.arguments.label_selector",
                             "a non-empty label selector", arguments["label_selector"],
                             "select the pods, e.g. app=payments; an empty selector matches "
                             "every pod in the namespace")
        if provider.get("module") == ACTIONS_MODULE and provider.get("func") in FAULT_FUNCTIONS:
            fault_kind = FAULT_FUNCTIONS[provider["func"]]
            spec = {k: v for k, v in arguments.items() if k != "label_selector"}
            validate_spec(fault_kind, spec, f"{source}: {where}.provider.arguments")
            kinds.append(fault_kind)
    if kind not in kinds:
        raise InputError(f"{source}: method", f"an action injecting a {kind} fault "
                         f"({ACTIONS_MODULE})", ", ".join(kinds) or "no fault action",
                         f"add the {kind} action, or set extensions.gameday.kind to match")


def _extension(document: dict[str, Any], source: str) -> GamedayExtensionModel:
    entries = [e for e in document.get("extensions", []) or []
               if isinstance(e, dict) and e.get("name") == "gameday"]
    if len(entries) != 1:
        raise InputError(f"{source}: extensions", "exactly one entry named gameday",
                         f"{len(entries)} entries", "add the gameday extension (kind, criteria, "
                         "probe_hz, baseline_s, recovery_timeout_s, stability_window_s)")
    try:
        return GamedayExtensionModel.model_validate(entries[0])
    except ValidationError as exc:
        raise input_error_from(exc, f"{source}: extensions.gameday", FIX) from exc


def _configured_cell(document: dict[str, Any], source: str) -> str | None:
    configuration = document.get("configuration") or {}
    for key in ("gameday_cells", "cells"):
        if key in configuration:
            raise InputError(f"{source}: configuration.{key}", "exactly one cell (gameday_cell)",
                             configuration[key], "run one cell at a time: name one in "
                             "gameday_cell or pass --cell")
    value = configuration.get("gameday_cell")
    if isinstance(value, list):
        raise InputError(f"{source}: configuration.gameday_cell", "exactly one cell", value,
                         "name one cell; run the others separately")
    if isinstance(value, dict):
        value = value.get("default")
    return None if value is None else str(value)


def _secret_values(document: dict[str, Any]) -> tuple[str, ...]:
    values: list[str] = []
    for scope in (document.get("secrets") or {}).values():
        if isinstance(scope, dict):
            for value in scope.values():
                if isinstance(value, str):
                    values.append(value)
                elif isinstance(value, dict) and isinstance(value.get("value"), str):
                    values.append(value["value"])
    return tuple(v for v in values if v)


def load_experiment(path: Path) -> Experiment:
    """Parse and validate ``path``; raise InputError before anything is touched."""
    source = str(path)
    document = parse_document(path)
    _chaos_validate(document, source)
    ext = _extension(document, source)
    _check_faults(document, source, ext.kind)
    settings = RunSettings(
        kind=ext.kind, probe_hz=ext.probe_hz, baseline_s=ext.baseline_s,
        recovery_timeout_s=ext.recovery_timeout_s, stability_window_s=ext.stability_window_s,
        error_window_s=ext.error_window_s,
        latency_factor=ext.latency_tolerance.factor if ext.latency_tolerance else None,
        latency_floor_ms=ext.latency_tolerance.floor_ms if ext.latency_tolerance else 0.0,
        latency_max_ms=ext.latency_tolerance.max_ms if ext.latency_tolerance else None,
        criteria=tuple(Criterion(c.figure, c.name, c.max, c.min) for c in ext.criteria),
        halt_error_rate_above=ext.halt.error_rate_above if ext.halt else None,
        halt_for_s=ext.halt.for_s if ext.halt else None,
    )
    return Experiment(path=path, title=str(document["title"]), document=document,
                      settings=settings, cell=_configured_cell(document, source),
                      secret_values=_secret_values(document))


__all__ = ["FAULT_KINDS", "Experiment", "RunSettings", "load_experiment"]
