"""The provider policy: experiment files are code, and this is what they may run.

Chaos Toolkit runs whatever an experiment names: any Python function, any program, any URL,
and controls around every activity. A scheduler that runs experiment files unattended with a
cell's credentials must not. By default an experiment may use only our own providers:

- ``gameday.chaos.actions`` (the faults, each through the fault ledger, and their revert);
- ``gameday.chaos.probes`` (read-only steady-state probes).

A cell (``allow:`` in the cells file) or a schedule (``allow:`` in the schedule) may opt in,
narrowly, to more *probes*, never to more faults:

    allow:
      python_modules: [mycompany.chaos.probes]   # probes from these modules
      process: [/usr/local/bin/check-payments]  # probes that run exactly these programs
      http: [https://status.example.com/]        # HTTP probes under these URL prefixes
      controls: [chaosreliably.controls]         # controls from these modules

The check reads the document only: nothing is imported or resolved before it passes.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from gameday.config._errors import StrictModel
from gameday.errors import InputError

ACTIONS_MODULE = "gameday.chaos.actions"
PROBES_MODULE = "gameday.chaos.probes"
# What our modules export; a test checks these against the modules' __all__.
OUR_ACTIONS = frozenset({"kill_pods", "add_latency", "stress_cpu", "fail_over_database",
                         "revert_faults"})
OUR_PROBES = frozenset({"cell_serves", "database_writable"})
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
FIX_OPT_IN = ("use the providers of gameday.chaos.actions / gameday.chaos.probes, or opt in "
              "narrowly under `allow:` of the cell (cells file) or the schedule (README: "
              "\"Experiment files are code\")")


class AllowModel(StrictModel):
    """``allow:`` of a cell or a schedule, as written."""

    python_modules: list[str] = Field(default_factory=list)
    process: list[str] | bool = Field(default_factory=list)
    http: list[str] | bool = Field(default_factory=list)
    controls: list[str] = Field(default_factory=list)

    @field_validator("python_modules", "controls")
    @classmethod
    def _modules(cls, names: list[str]) -> list[str]:
        for name in names:
            if not _MODULE.match(name):
                raise ValueError(f"{name!r} is not a dotted module name")
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top == "builtins":
                raise ValueError(f"{name!r} is a standard-library module: allow a module of "
                                 "probes, not the interpreter's own")
            if name.startswith("gameday"):
                raise ValueError(f"{name!r}: gameday's own providers are always allowed and "
                                 "its other modules never are")
            if name.rsplit(".", 1)[-1] == "actions":
                raise ValueError(f"{name!r} is a module of actions: faults go only through "
                                 f"{ACTIONS_MODULE} and the fault ledger")
        return names

    @field_validator("process")
    @classmethod
    def _programs(cls, value: list[str] | bool) -> list[str] | bool:
        if value is True:
            raise ValueError("`true` would allow any program: list the programs' absolute "
                             "paths")
        for path in value or []:
            if not path.startswith("/"):
                raise ValueError(f"{path!r} is not an absolute path")
        return value

    @field_validator("http")
    @classmethod
    def _urls(cls, value: list[str] | bool) -> list[str] | bool:
        if value is True:
            raise ValueError("`true` would allow any URL: list URL prefixes such as "
                             "https://status.example.com/")
        for url in value or []:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"{url!r} is not an http(s)://host/ prefix")
        return value


@dataclass(frozen=True)
class ProviderPolicy:
    """What experiments may run beyond gameday's own providers (probes only)."""

    python_modules: frozenset[str] = frozenset()
    process: frozenset[str] = frozenset()
    http: tuple[str, ...] = ()
    controls: frozenset[str] = frozenset()

    @classmethod
    def from_model(cls, model: AllowModel | None) -> ProviderPolicy:
        if model is None:
            return DEFAULT_POLICY
        return cls(frozenset(model.python_modules),
                   frozenset(model.process) if isinstance(model.process, list) else frozenset(),
                   tuple(model.http) if isinstance(model.http, list) else (),
                   frozenset(model.controls))

    def union(self, other: ProviderPolicy) -> ProviderPolicy:
        return ProviderPolicy(self.python_modules | other.python_modules,
                              self.process | other.process,
                              tuple(dict.fromkeys(self.http + other.http)),
                              self.controls | other.controls)

    def to_json(self) -> dict[str, list[str]]:
        return {"python_modules": sorted(self.python_modules), "process": sorted(self.process),
                "http": list(self.http), "controls": sorted(self.controls)}

    @classmethod
    def from_json(cls, data: dict[str, list[str]]) -> ProviderPolicy:
        return cls.from_model(AllowModel.model_validate(data))


DEFAULT_POLICY = ProviderPolicy()


def check_providers(document: dict[str, Any], policy: ProviderPolicy, source: str) -> None:
    """Refuse any provider or control ``policy`` does not allow; reads ``document`` only."""
    _check_controls(document.get("controls"), policy, f"{source}: controls")
    for where, activity in activities(document):
        _check_controls(activity.get("controls"), policy, f"{source}: {where}.controls")
        provider = activity.get("provider")
        if isinstance(provider, dict):
            _check_provider(provider, activity.get("type"), policy,
                            f"{source}: {where}.provider")


def activities(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every activity of the document with where it stands (hypothesis, method, rollbacks)."""
    found: list[tuple[str, Any]] = []
    hypothesis = document.get("steady-state-hypothesis")
    if isinstance(hypothesis, dict) and isinstance(hypothesis.get("probes"), list):
        found += [(f"steady-state-hypothesis.probes.{i}", a)
                  for i, a in enumerate(hypothesis["probes"])]
    for section in ("method", "rollbacks"):
        if isinstance(document.get(section), list):
            found += [(f"{section}.{i}", a) for i, a in enumerate(document[section])]
    return [(w, a) for w, a in found if isinstance(a, dict)]


def _check_controls(controls: Any, policy: ProviderPolicy, where: str) -> None:
    if controls is None:
        return
    for i, control in enumerate(controls if isinstance(controls, list) else [controls]):
        provider = control.get("provider") if isinstance(control, dict) else None
        module = provider.get("module") if isinstance(provider, dict) else None
        if not isinstance(module, str) or module not in policy.controls:
            raise InputError(f"{where}.{i}", "no controls (they run code around every "
                             "activity), or controls from modules listed in allow.controls",
                             module or control, FIX_OPT_IN)


def _check_provider(provider: dict[str, Any], activity_type: Any, policy: ProviderPolicy,
                    where: str) -> None:
    kind = provider.get("type")
    if kind == "python":
        _check_python(provider, activity_type, policy, where)
    elif kind == "process":
        path = provider.get("path")
        if activity_type != "probe" or path not in policy.process:
            raise InputError(f"{where}.type", "a python provider of gameday.chaos (process "
                             "providers run programs: only probes of programs listed in "
                             "allow.process)", f"process {path!r} in a {activity_type}",
                             FIX_OPT_IN)
    elif kind == "http":
        url = provider.get("url")
        allowed = isinstance(url, str) and any(url.startswith(p) for p in policy.http)
        if activity_type != "probe" or not allowed:
            raise InputError(f"{where}.type", "a python provider of gameday.chaos (http "
                             "providers call out: only probes of URLs under allow.http)",
                             f"http {url!r} in a {activity_type}", FIX_OPT_IN)
    else:
        raise InputError(f"{where}.type", "python (or an opted-in process or http probe)",
                         kind, FIX_OPT_IN)


def _check_python(provider: dict[str, Any], activity_type: Any, policy: ProviderPolicy,
                  where: str) -> None:
    module, func = provider.get("module"), provider.get("func")
    if module == ACTIONS_MODULE:
        if func not in OUR_ACTIONS:
            raise InputError(f"{where}.func", "one of " + ", ".join(sorted(OUR_ACTIONS)),
                             func, f"name an action of {ACTIONS_MODULE}")
    elif module == PROBES_MODULE:
        if func not in OUR_PROBES:
            raise InputError(f"{where}.func", "one of " + ", ".join(sorted(OUR_PROBES)), func,
                             f"name a probe of {PROBES_MODULE}")
    elif module in policy.python_modules:
        if activity_type != "probe":
            raise InputError(f"{where}.module", f"{ACTIONS_MODULE} for an action (opted-in "
                             "modules add probes, never faults)", module,
                             f"inject through {ACTIONS_MODULE}, or make it a probe")
    else:
        allowed = ", ".join([ACTIONS_MODULE, PROBES_MODULE, *sorted(policy.python_modules)])
        raise InputError(f"{where}.module", f"a module the provider policy allows ({allowed})",
                         module, FIX_OPT_IN)


__all__ = ["DEFAULT_POLICY", "AllowModel", "ProviderPolicy", "activities", "check_providers"]
