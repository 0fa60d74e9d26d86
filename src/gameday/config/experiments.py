"""Experiments: Chaos Toolkit files with our settings in an ``extensions`` entry named gameday.

Validation checks everything before anything is touched, and before anything the file names
is imported: the file itself (config._files: a regular file, size, depth, finite numbers), its
shape (config.chaos_shape), the provider policy (config.policy), our extension, every fault's
arguments (in range, in the method only, non-empty label selectors), exactly one cell; only
then chaoslib's own check, which imports the providers and binds their arguments.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from gameday.analytics.criteria import Criterion, criterion_figures
from gameday.config._errors import StrictModel, input_error_from
from gameday.config._files import load_file
from gameday.config.chaos_shape import check_shape
from gameday.config.policy import ACTIONS_MODULE, DEFAULT_POLICY, ProviderPolicy, check_providers
from gameday.config.policy import activities as _activities
from gameday.errors import InputError
from gameday.model.faults import validate_spec
from gameday.targets.base import FAULT_KINDS, FaultKind

# Provider function -> the fault kind it injects.
FAULT_FUNCTIONS: dict[str, FaultKind] = {
    "kill_pods": "pod-kill",
    "add_latency": "latency",
    "stress_cpu": "cpu-stress",
    "fail_over_database": "db-failover",
}
FIX = "see the experiments in experiments/local/ for the expected shape"


_Strict = StrictModel


class CriterionModel(_Strict):
    name: str = Field(min_length=1, max_length=200)
    figure: str = Field(min_length=1)
    max: float | None = None
    min: float | None = None

    @field_validator("figure")
    @classmethod
    def _known(cls, figure: str) -> str:
        known = criterion_figures()
        if figure not in known:
            raise ValueError(f"{figure!r} is not a figure a run measures; one of "
                             + ", ".join(sorted(known)))
        return figure


class LatencyToleranceModel(_Strict):
    factor: float = Field(default=2.0, ge=1)
    floor_ms: float = Field(default=50.0, ge=0)
    max_ms: float | None = Field(default=None, gt=0)


class HaltModel(_Strict):
    error_rate_above: float = Field(gt=0, le=1)
    for_s: float = Field(gt=0)


# The ranges of the run settings a file or a flag may set: (low, high, low excluded).
SETTING_RANGES: dict[str, tuple[float, float, bool]] = {
    "probe_hz": (0.0, 50.0, True),
    "baseline_s": (0.5, 600.0, False),
    "recovery_timeout_s": (0.0, 3600.0, True),
    "stability_window_s": (0.0, 600.0, True),
    "error_span_s": (1.0, 600.0, False),
    "burst_hz": (0.0, 50.0, True),
}


def _ranged(name: str, default: float) -> Any:
    low, high, low_open = SETTING_RANGES[name]
    if low_open:
        return Field(default=default, gt=low, le=high)
    return Field(default=default, ge=low, le=high)


class GamedayExtensionModel(_Strict):
    name: str
    kind: FaultKind
    probe_hz: float = _ranged("probe_hz", 10.0)
    baseline_s: float = _ranged("baseline_s", 3.0)
    recovery_timeout_s: float = _ranged("recovery_timeout_s", 60.0)
    stability_window_s: float = _ranged("stability_window_s", 10.0)
    error_window_s: float = Field(default=1.0, gt=0, le=60)
    # The error rate is taken over this span from injection, like an alert's rate window, so it
    # does not change with the stability window; the run samples at least that long. 15 s holds
    # an instantaneous fault's impact and a 10 s sustained fault with 5 s of its recovery.
    error_span_s: float = _ranged("error_span_s", 15.0)
    # The rate from just before injection to a few seconds after it, and around the fault's
    # end: a 10 Hz timeline misses a killed replica that the balancer takes out within 90 ms.
    burst_hz: float = _ranged("burst_hz", 50.0)
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
    error_span_s: float
    burst_hz: float
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
    faults: tuple[FaultAction, ...] = ()


def parse_document(path: Path) -> dict[str, Any]:
    """The experiment at ``path`` as data: a regular file of at most 1 MiB, within the depth,
    alias and number limits of config._files."""
    data = load_file(path, "EXPERIMENT", "an experiment file (YAML or JSON)",
                     "pass the path of a YAML or JSON experiment")
    if not isinstance(data, dict):
        raise InputError(str(path), "a mapping (a Chaos Toolkit experiment)",
                         type(data).__name__, FIX)
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
    except Exception as exc:  # chaoslib assumes shapes ours let through: still the file's fault
        raise InputError(source, "a Chaos Toolkit experiment chaoslib can check",
                         f"{type(exc).__name__}: {exc}",
                         "compare the file with experiments/local/; `chaos validate FILE` "
                         "runs the same check") from exc
    finally:
        chaos_log.setLevel(level)


@dataclass(frozen=True)
class FaultAction:
    where: str  # e.g. "method.0.provider.arguments"
    kind: FaultKind
    spec: dict[str, Any]  # normalised arguments


def _check_faults(document: dict[str, Any], source: str, kind: FaultKind) -> list[FaultAction]:
    found: list[FaultAction] = []
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
            if not where.startswith("method."):
                raise InputError(f"{source}: {where}", "fault actions in the method only",
                                 f"{provider['func']} ({fault_kind})", "move the fault into "
                                 "the method; rollbacks and the hypothesis only revert and "
                                 "probe")
            spec = {k: v for k, v in arguments.items() if k != "label_selector"}
            at = f"{where}.provider.arguments"
            found.append(FaultAction(at, fault_kind,
                                     validate_spec(fault_kind, spec, f"{source}: {at}")))
    kinds = [f.kind for f in found]
    if kind not in kinds:
        raise InputError(f"{source}: method", f"an action injecting a {kind} fault "
                         f"({ACTIONS_MODULE})", ", ".join(kinds) or "no fault action",
                         f"add the {kind} action, or set extensions.gameday.kind to match")
    return found


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
        raise input_error_from(exc, source, FIX, prefix="extensions.gameday") from exc


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
    """What to mask: inline and environment values now; the worker adds what chaoslib resolves."""
    from gameday.config.secret_values import declared_secret_values

    return declared_secret_values(document.get("secrets"))


def configured_cell(path: Path) -> str | None:
    """The one cell the experiment's configuration names, reading the file only."""
    document = parse_document(path)
    check_shape(document, str(path))
    return _configured_cell(document, str(path))


def load_experiment(path: Path, policy: ProviderPolicy = DEFAULT_POLICY) -> Experiment:
    """Parse and validate ``path``; raise InputError before anything is touched.

    In this order, so nothing named by the file is imported before it is allowed: the file
    (regular, size, depth, finite numbers), its shape, the provider policy, our extension and
    the faults' arguments; only then chaoslib's own check, which imports the providers."""
    source = str(path)
    document = parse_document(path)
    check_shape(document, source)
    check_providers(document, policy, source)
    ext = _extension(document, source)
    fault_actions = _check_faults(document, source, ext.kind)
    _chaos_validate(document, source)
    settings = RunSettings(
        kind=ext.kind, probe_hz=ext.probe_hz, baseline_s=ext.baseline_s,
        recovery_timeout_s=ext.recovery_timeout_s, stability_window_s=ext.stability_window_s,
        error_window_s=ext.error_window_s, error_span_s=ext.error_span_s, burst_hz=ext.burst_hz,
        latency_factor=ext.latency_tolerance.factor if ext.latency_tolerance else None,
        latency_floor_ms=ext.latency_tolerance.floor_ms if ext.latency_tolerance else 0.0,
        latency_max_ms=ext.latency_tolerance.max_ms if ext.latency_tolerance else None,
        criteria=tuple(Criterion(c.figure, c.name, c.max, c.min) for c in ext.criteria),
        halt_error_rate_above=ext.halt.error_rate_above if ext.halt else None,
        halt_for_s=ext.halt.for_s if ext.halt else None,
    )
    return Experiment(path=path, title=str(document["title"]), document=document,
                      settings=settings, cell=_configured_cell(document, source),
                      faults=tuple(fault_actions),
                      secret_values=_secret_values(document))


__all__ = ["FAULT_KINDS", "SETTING_RANGES", "Experiment", "FaultAction", "RunSettings",
           "configured_cell", "load_experiment"]
