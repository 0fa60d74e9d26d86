"""A hostile corpus: broken, forged and odd input through the real CLI, each case a subprocess.

Every case must exit 2 with a message that says where, what was expected, what was found and
how to fix it, and must leave everything as it was: the files of the project directory (the
store among them), the store's row counts, and no process left behind.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import ROOT

EXPERIMENTS = ROOT / "experiments" / "local"
STORE = ".gameday/gameday.db"

# Ours: "error: WHERE: expected EXPECTED, found FOUND.\n  fix: FIX"; click's usage errors put
# "Invalid value for 'WHERE': expected ..." in front of the same parts.
OURS = re.compile(r"error: (?P<where>.+?): expected (?P<expected>.+?), found (?P<found>.+?)\.\n"
                  r"  fix: (?P<fix>.+)")
CLICKS = re.compile(r"Invalid value for '(?P<where>[^']+)': expected (?P<expected>.+?), "
                    r"found (?P<found>.+?)\.\n  fix: (?P<fix>.+)")


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    where: str  # a part of the message's "where"
    files: dict[str, str | bytes] = field(default_factory=dict)  # written before the run
    setup: Callable[[Path], None] | None = None


def _base(kind: str = "pod-kill") -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((EXPERIMENTS / f"{kind}.yaml").read_text())
    return data


def _mutated(change: Callable[[dict[str, Any]], None], kind: str = "pod-kill") -> str:
    doc = copy.deepcopy(_base(kind))
    change(doc)
    return yaml.safe_dump(doc, sort_keys=False)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set ``a.b.0.c`` to ``value`` (a missing last key is added)."""
    def change(doc: dict[str, Any]) -> None:
        parts = path.split(".")
        node: Any = doc
        for p in parts[:-1]:
            node = node[int(p)] if isinstance(node, list) else node[p]
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return change


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        parts = path.split(".")
        node: Any = doc
        for p in parts[:-1]:
            node = node[int(p)] if isinstance(node, list) else node[p]
        del node[parts[-1]]
    return change


def _gameday(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        doc["extensions"][0][key] = value
    return change


def _provider(**provider: Any) -> Callable[[dict[str, Any]], None]:
    return _set("method.0.provider", provider)


ACTIONS = "gameday.chaos.actions"

# (id, experiment text, where): each is checked by `validate` and by `run` (which must refuse
# it before it opens, or creates, the store).
EXPERIMENT_CASES: list[tuple[str, str | bytes, str]] = [
    # the provider policy
    ("os-system", _mutated(_provider(type="python", module="os", func="system",
                                     arguments={"command": "id > pwned.txt"})),
     "method.0.provider.module"),
    ("process", _mutated(_provider(type="process", path="/bin/sh",
                                   arguments="-c 'id > pwned.txt'")), "method.0.provider.type"),
    ("http", _mutated(_provider(type="http", url="http://127.0.0.1:9/")),
     "method.0.provider.type"),
    ("controls", _mutated(_set("controls", [{"name": "c", "provider": {
        "type": "python", "module": "chaosaddons.controls.safeguards"}}])), "controls.0"),
    ("activity-controls", _mutated(_set("method.0.controls", [{"name": "c", "provider": {
        "type": "python", "module": "x.controls"}}])), "method.0.controls.0"),
    ("module-this", _mutated(_provider(type="python", module="this", func="x")),
     "method.0.provider.module"),
    ("unknown-action", _mutated(_provider(type="python", module=ACTIONS, func="system")),
     "method.0.provider.func"),
    ("probe-module-os", _mutated(_set("steady-state-hypothesis.probes.0.provider", {
        "type": "python", "module": "subprocess", "func": "run"})),
     "steady-state-hypothesis.probes.0.provider.module"),
    ("rollback-process", _mutated(_set("rollbacks.0.provider", {
        "type": "process", "path": "/bin/rm", "arguments": "-rf /"})), "rollbacks.0.provider"),
    ("provider-type-unknown", _mutated(_provider(type="shell", cmd="id")),
     "method.0.provider"),
    # malformed shapes chaoslib would crash on
    ("arguments-null", _mutated(_set("method.0.provider.arguments", None)),
     "method.0.provider.arguments"),
    ("arguments-str", _mutated(_set("method.0.provider.arguments", "str")),
     "method.0.provider.arguments"),
    ("configuration-list", _mutated(_set("configuration", [])), "configuration"),
    ("extensions-mapping", _mutated(_set("extensions", {"name": "gameday"})), "extensions"),
    ("extensions-null-item", _mutated(_set("extensions", [None])), "extensions.0"),
    ("method-null", _mutated(_set("method", None)), "method"),
    ("method-mapping", _mutated(_set("method", {"a": 1})), "method"),
    ("method-empty", _mutated(_set("method", [])), "method"),
    ("method-item-str", _mutated(_set("method.0", "kill")), "method.0"),
    ("rollbacks-null-item", _mutated(_set("rollbacks", [None])), "rollbacks.0"),
    ("rollbacks-mapping", _mutated(_set("rollbacks", {"a": 1})), "rollbacks"),
    ("secrets-null", _mutated(_set("secrets", {"k": None})), "secrets.k"),
    ("secrets-list", _mutated(_set("secrets", ["a"])), "secrets"),
    ("hypothesis-list", _mutated(_set("steady-state-hypothesis", [])),
     "steady-state-hypothesis"),
    ("hypothesis-no-title", _mutated(_drop("steady-state-hypothesis.title")),
     "steady-state-hypothesis.title"),
    ("probes-mapping", _mutated(_set("steady-state-hypothesis.probes", {"a": 1})),
     "steady-state-hypothesis.probes"),
    ("title-list", _mutated(_set("title", [1, 2])), "title"),
    ("title-missing", _mutated(_drop("title")), "title"),
    ("title-empty", _mutated(_set("title", "")), "title"),
    ("activity-no-name", _mutated(_drop("method.0.name")), "method.0.name"),
    ("activity-type", _mutated(_set("method.0.type", "attack")), "method.0.type"),
    ("activity-typo", _mutated(_set("method.0.argumets", {})), "method.0.argumets"),
    ("pauses-str", _mutated(_set("method.0.pauses", {"after": "five"})), "method.0.pauses.after"),
    ("pauses-negative", _mutated(_set("method.0.pauses", {"after": -1})),
     "method.0.pauses.after"),
    ("pauses-huge", _mutated(_set("method.0.pauses", {"after": 1e9})), "method.0.pauses.after"),
    ("func-null", _mutated(_set("method.0.provider.func", None)), "method.0.provider.func"),
    ("module-list", _mutated(_set("method.0.provider.module", ["os"])),
     "method.0.provider.module"),
    ("document-list", "- a\n- b\n", "experiment"),
    ("document-scalar", "42\n", "experiment"),
    ("document-empty", "", "experiment"),
    # numbers
    ("count-nan", _mutated(_set("method.0.provider.arguments", {"count": float("nan")})),
     "method.0.provider.arguments"),
    ("count-zero", _mutated(_set("method.0.provider.arguments", {"count": 0})),
     "method.0.provider.arguments.count"),
    ("count-float", _mutated(_set("method.0.provider.arguments", {"count": 1.5})),
     "method.0.provider.arguments.count"),
    ("count-bool", _mutated(_set("method.0.provider.arguments", {"count": True})),
     "method.0.provider.arguments.count"),
    ("count-huge", _mutated(_set("method.0.provider.arguments", {"count": 10**30})),
     "method.0.provider.arguments.count"),
    ("latency-nan", _mutated(_set("method.0.provider.arguments.latency_ms", float("nan")),
                             "latency"), "latency_ms"),
    ("latency-inf", _mutated(_set("method.0.provider.arguments.latency_ms", float("inf")),
                             "latency"), "latency_ms"),
    ("latency-negative", _mutated(_set("method.0.provider.arguments.latency_ms", -5),
                                  "latency"), "method.0.provider.arguments.latency_ms"),
    ("latency-duration-zero", _mutated(_set("method.0.provider.arguments.duration_s", 0),
                                       "latency"), "method.0.provider.arguments.duration_s"),
    ("jitter-above-latency", _mutated(_set("method.0.provider.arguments.jitter_ms", 1e4),
                                      "latency"), "method.0.provider.arguments.jitter_ms"),
    ("cpu-load-101", _mutated(_set("method.0.provider.arguments.load_pct", 101), "cpu-stress"),
     "method.0.provider.arguments.load_pct"),
    ("cpu-unknown-arg", _mutated(_set("method.0.provider.arguments.cores", 2), "cpu-stress"),
     "method.0.provider.arguments.cores"),
    ("probe-hz-nan", _mutated(_gameday("probe_hz", float("nan"))), "probe_hz"),
    ("probe-hz-zero", _mutated(_gameday("probe_hz", 0)), "extensions.gameday.probe_hz"),
    ("probe-hz-huge", _mutated(_gameday("probe_hz", 1e6)), "extensions.gameday.probe_hz"),
    ("baseline-inf", _mutated(_gameday("baseline_s", float("inf"))), "baseline_s"),
    ("timeout-negative", _mutated(_gameday("recovery_timeout_s", -1)),
     "extensions.gameday.recovery_timeout_s"),
    ("stability-str", _mutated(_gameday("stability_window_s", "ten")),
     "extensions.gameday.stability_window_s"),
    ("halt-rate-2", _mutated(_gameday("halt", {"error_rate_above": 2, "for_s": 1})),
     "extensions.gameday.halt.error_rate_above"),
    ("criterion-max-nan", _mutated(_gameday("criteria", [
        {"name": "x", "figure": "recovery_s", "max": float("nan")}])), "criteria"),
    # our extension
    ("no-extension", _mutated(_set("extensions", [])), "extensions"),
    ("two-extensions", _mutated(lambda d: d["extensions"].append(dict(d["extensions"][0]))),
     "extensions"),
    ("kind-unknown", _mutated(_gameday("kind", "meteor")), "extensions.gameday.kind"),
    ("kind-mismatch", _mutated(_gameday("kind", "latency")), "method"),
    ("extension-typo", _mutated(_gameday("probe_hzz", 5)), "extensions.gameday.probe_hzz"),
    ("criterion-unknown-figure", _mutated(_gameday("criteria", [
        {"name": "x", "figure": "happiness", "max": 1}])), "extensions.gameday.criteria.0.figure"),
    ("criterion-no-name", _mutated(_gameday("criteria", [{"figure": "recovery_s", "max": 1}])),
     "extensions.gameday.criteria.0.name"),
    ("fault-only-in-rollbacks", _mutated(lambda d: (
        d.__setitem__("rollbacks", [d["method"][0]]),
        d.__setitem__("method", [d["steady-state-hypothesis"]["probes"][0]]))), "rollbacks.0"),
    ("empty-label-selector", _mutated(_set("method.0.provider.arguments",
                                           {"count": 1, "label_selector": " "})),
     "label_selector"),
    ("two-cells", _mutated(_set("configuration.gameday_cells", ["cell-1", "cell-2"])),
     "configuration.gameday_cells"),
    ("cell-list", _mutated(_set("configuration.gameday_cell", ["cell-1", "cell-2"])),
     "configuration.gameday_cell"),
    # syntax and files
    ("yaml-syntax", "title: [unclosed\n", "experiment.yaml:"),
    ("yaml-tab", "title: t\n\tmethod: []\n", "experiment.yaml:"),
    ("yaml-python-tag", "title: !!python/object/apply:os.system ['id']\n", "experiment.yaml"),
    ("not-utf8", b"title: \xff\xfe caf\xe9\n", "experiment.yaml:1"),
    ("deep-yaml", "a: " + "[" * 100_000 + "]" * 100_000 + "\n", "experiment.yaml"),
    ("billion-laughs", "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [" + ", ".join([f"*{p}"] * 10) + "]\n"
        for p, n in zip("abcdefgh", "bcdefghi", strict=True)) + "title: t\n", "experiment.yaml"),
    ("too-many-aliases", "a: &a x\nb: [" + ", ".join(["*a"] * 500) + "]\n", "experiment.yaml"),
    ("huge-file", "title: t\n" + "# " + "x" * (1024 * 1024) + "\n", "EXPERIMENT"),
]

JSON_CASES: list[tuple[str, str, str]] = [
    ("json-syntax", "{\"title\": ", "experiment.json:1"),
    ("json-nan", json.dumps(_base()).replace('"probe_hz": 10', '"probe_hz": NaN'),
     "experiment.json"),
    ("json-infinity", json.dumps(_base()).replace('"count": 1', '"count": Infinity'),
     "experiment.json"),
    ("deep-json", "[" * 100_000 + "]" * 100_000, "experiment.json"),
    ("json-list", "[1, 2]", "experiment.json"),
]


def _fifo(project: Path) -> None:
    os.mkfifo(project / "experiment.yaml")


def _loop(project: Path) -> None:
    (project / "experiment.yaml").symlink_to(project / "experiment.yaml")


def _directory(project: Path) -> None:
    (project / "experiment.yaml").mkdir()


def _device(project: Path) -> None:
    (project / "experiment.yaml").symlink_to("/dev/zero")


# Also through `run`, which must refuse them before it opens the store (the rest share its code
# path: `run` validates with the same function).
RUN_TOO = {"os-system", "process", "http", "controls", "module-this", "arguments-null",
           "configuration-list", "secrets-null", "method-mapping", "hypothesis-list",
           "count-nan", "latency-inf", "probe-hz-nan", "criterion-unknown-figure",
           "fault-only-in-rollbacks", "not-utf8", "deep-yaml", "billion-laughs", "two-cells"}


def experiment_cases() -> list[Case]:
    cases: list[Case] = []
    for case_id, text, where in EXPERIMENT_CASES:
        files = {"experiment.yaml": text}
        cases.append(Case(f"validate-{case_id}", ("validate", "experiment.yaml"), where, files))
        if case_id in RUN_TOO:
            cases.append(Case(f"run-{case_id}", ("run", "experiment.yaml", "--cell", "cell-1",
                                                 "--store", f"sqlite:///{STORE}"), where, files))
    for case_id, text, where in JSON_CASES:
        cases.append(Case(f"validate-{case_id}", ("validate", "experiment.json"), where,
                          {"experiment.json": text}))
    for case_id, setup in (("fifo", _fifo), ("symlink-loop", _loop), ("directory", _directory),
                           ("dev-zero", _device)):
        cases.extend(Case(f"{command}-{case_id}", (command, "experiment.yaml", "--cell",
                                                   "cell-1"), "EXPERIMENT", setup=setup)
                     for command in ("validate", "run"))
    cases.append(Case("validate-missing-file", ("validate", "nope.yaml"), "EXPERIMENT"))
    cases.append(Case("validate-cell-kubernetes", ("validate", "experiment.yaml", "--cell",
                                                   "k8s-1", "--cells-file", "k8s-cells.yaml"),
                      "cell k8s-1: target",
                      {"experiment.yaml": (EXPERIMENTS / "pod-kill.yaml").read_text(),
                       "k8s-cells.yaml": yaml.safe_dump({"schema_version": 1, "cells": [{
                           "name": "k8s-1", "target": "kubernetes", "environment": "staging",
                           "kubernetes": {
                               "namespace": "payments", "label_selector": "app=payments"}}]})}))
    cases.append(Case("validate-unknown-cell", ("validate", "experiment.yaml", "--cell", "nope"),
                      "--cell", {"experiment.yaml": (EXPERIMENTS / "pod-kill.yaml").read_text()}))
    return cases


def _cells(change: Callable[[dict[str, Any]], None]) -> str:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "schedules" / "cells.yaml").read_text())
    change(doc)
    return yaml.safe_dump(doc, sort_keys=False)


CELL_CASES: list[tuple[str, str, str]] = [
    ("name-long", _cells(_set("cells.0.name", "c" * 1000)), "cells.0.name"),
    ("name-upper", _cells(_set("cells.0.name", "Cell 1")), "cells.0.name"),
    ("name-markup", _cells(_set("cells.0.name", "[bold]x[/]")), "cells.0.name"),
    ("name-duplicate", _cells(_set("cells.1.name", "cell-1")), "cells.1.name"),
    ("target-unknown", _cells(_set("cells.0.target", "mars")), "cells.0.target"),
    ("tier-0", _cells(_set("cells.0.tier", 0)), "cells.0.tier"),
    ("tier-str", _cells(_set("cells.0.tier", "gold")), "cells.0.tier"),
    ("rpo-inf", _cells(_set("cells.0.dr", {"rto_s": 900, "rpo_s": float("inf")})),
     "cells.0.dr.rpo_s"),
    ("rto-nan", _cells(_set("cells.0.dr", {"rto_s": float("nan"), "rpo_s": 60})),
     "cells.0.dr.rto_s"),
    ("rto-huge", _cells(_set("cells.0.dr", {"rto_s": 1e308, "rpo_s": 60})), "cells.0.dr.rto_s"),
    ("rto-zero", _cells(_set("cells.0.dr", {"rto_s": 0, "rpo_s": 60})), "cells.0.dr.rto_s"),
    ("slo-101", _cells(_set("cells.0.slo", {"availability": 101})), "cells.0.slo.availability"),
    ("slo-nan", _cells(_set("cells.0.slo", {"availability": float("nan")})),
     "cells.0.slo.availability"),
    ("p95-inf", _cells(_set("cells.0.slo", {"p95_latency_ms": float("inf")})),
     "cells.0.slo.p95_latency_ms"),
    ("probe-timeout-nan", _cells(_set("cells.0.probe", {"timeout_s": float("nan")})),
     "cells.0.probe.timeout_s"),
    ("halt-for-inf", _cells(_set("cells.0.halt", {"error_rate_above": 0.5,
                                                  "for_s": float("inf")})), "cells.0.halt.for_s"),
    ("unknown-field", _cells(_set("cells.0.colour", "red")), "cells.0.colour"),
    ("schema-version", _cells(_set("schema_version", 2)), "schema_version"),
    ("no-cells", _cells(_set("cells", [])), "cells"),
    ("tenant-empty", _cells(_set("cells.0.tenants", [" "])), "cells.0.tenants"),
    ("local-and-k8s", _cells(_set("cells.0.kubernetes", {"namespace": "a",
                                                         "label_selector": "app=x"})),
     "cells.0.kubernetes"),
    ("allow-stdlib", _cells(_set("cells.0.allow", {"python_modules": ["os"]})),
     "cells.0.allow.python_modules"),
    ("allow-actions", _cells(_set("cells.0.allow", {"python_modules": ["acme.chaos.actions"]})),
     "cells.0.allow.python_modules"),
    ("allow-process-true", _cells(_set("cells.0.allow", {"process": True})),
     "cells.0.allow.process"),
    ("allow-process-relative", _cells(_set("cells.0.allow", {"process": ["sh"]})),
     "cells.0.allow.process"),
    ("allow-http-any", _cells(_set("cells.0.allow", {"http": True})), "cells.0.allow.http"),
    ("allow-gameday", _cells(_set("cells.0.allow", {"python_modules": ["gameday.engine"]})),
     "cells.0.allow.python_modules"),
    ("cells-list", "- a\n", "cells.yaml"),
]


def cell_cases() -> list[Case]:
    experiment = (EXPERIMENTS / "pod-kill.yaml").read_text()
    return [Case(f"cells-{case_id}", ("validate", "experiment.yaml", "--cell", "cell-1",
                                      "--cells-file", "cells.yaml"), where,
                 {"experiment.yaml": experiment, "cells.yaml": text})
            for case_id, text, where in CELL_CASES]


def _schedule(change: Callable[[dict[str, Any]], None]) -> str:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "schedules" / "weekly.yaml").read_text())
    doc["cells"]["file"] = "schedules/cells.yaml"
    change(doc)
    return yaml.safe_dump(doc, sort_keys=False)


SCHEDULE_CASES: list[tuple[str, str, str]] = [
    ("kind-mismatch", _schedule(_set("experiments.latency", "experiments/local/pod-kill.yaml")),
     "experiments.latency"),
    ("experiment-invalid", _schedule(_set("experiments.pod-kill", "bad.yaml")), "bad.yaml"),
    ("experiment-missing", _schedule(_set("experiments.pod-kill", "nope.yaml")),
     "experiments.pod-kill"),
    ("duration-zero", _schedule(_set("windows.0.duration_minutes", 0)),
     "windows.0.duration_minutes"),
    ("duration-nan", _schedule(_set("windows.0.duration_minutes", float("nan"))),
     "windows.0.duration_minutes"),
    ("min-interval-inf", _schedule(_set("cells.min_interval_hours", float("inf"))),
     "cells.min_interval_hours"),
    ("budget-nan", _schedule(_set("gates.error_budget", {"max_consumed_pct": float("nan")})),
     "gates.error_budget.max_consumed_pct"),
    ("timezone", _schedule(_set("timezone", "Mars/Olympus")), "timezone"),
    ("day", _schedule(_set("windows.0.days", ["funday"])), "windows.0.days"),
    ("unknown-cell", _schedule(_set("cells.order", ["cell-9"])), "cells.order.0"),
    ("name-space", _schedule(_set("name", "my schedule")), "name"),
    ("allow-stdlib", _schedule(_set("allow", {"python_modules": ["subprocess"]})),
     "allow.python_modules"),
    ("unknown-field", _schedule(_set("colour", "red")), "colour"),
    ("webhook-scheme", _schedule(_set("notifications", {"webhook_url": "file:///etc/passwd"})),
     "notifications.webhook_url"),
    ("not-utf8", "name: caf\xe9\n", "schedule.yaml"),
]


def schedule_cases() -> list[Case]:
    bad = _mutated(_provider(type="python", module="os", func="system"))
    cases = []
    start = ("scheduler", "start", "--schedule", "schedule.yaml", "--store", f"sqlite:///{STORE}")
    for case_id, text, where in SCHEDULE_CASES:
        raw: str | bytes = text.encode("latin-1") if case_id == "not-utf8" else text
        files = {"schedule.yaml": raw, "bad.yaml": bad}
        cases.append(Case(f"plan-{case_id}", ("plan", "--schedule", "schedule.yaml"), where,
                          files))
        if case_id in ("kind-mismatch", "experiment-invalid", "duration-nan", "allow-stdlib"):
            cases.append(Case(f"scheduler-{case_id}", start, where, files))
    return cases


FLAG_CASES: list[tuple[str, tuple[str, ...], str]] = [
    ("run-probe-hz-nan", ("run", "experiments/local/pod-kill.yaml", "--probe-hz", "nan"),
     "--probe-hz"),
    ("run-probe-hz-inf", ("run", "experiments/local/pod-kill.yaml", "--probe-hz", "inf"),
     "--probe-hz"),
    ("run-probe-hz-zero", ("run", "experiments/local/pod-kill.yaml", "--probe-hz", "0"),
     "--probe-hz"),
    ("run-probe-hz-1e9", ("run", "experiments/local/pod-kill.yaml", "--probe-hz", "1e9"),
     "--probe-hz"),
    ("run-baseline-inf", ("run", "experiments/local/pod-kill.yaml", "--baseline", "inf"),
     "--baseline"),
    ("run-baseline-nan", ("run", "experiments/local/pod-kill.yaml", "--baseline", "nan"),
     "--baseline"),
    ("run-baseline-negative", ("run", "experiments/local/pod-kill.yaml", "--baseline", "-1"),
     "--baseline"),
    ("run-stability-nan", ("run", "experiments/local/pod-kill.yaml", "--stability-window",
                           "nan"), "--stability-window"),
    ("run-timeout-inf", ("run", "experiments/local/pod-kill.yaml", "--recovery-timeout",
                         "-inf"), "--recovery-timeout"),
    ("run-timeout-word", ("run", "experiments/local/pod-kill.yaml", "--recovery-timeout",
                          "soon"), "--recovery-timeout"),
    ("run-no-cell", ("run", "experiment.yaml"), "--cell"),
    ("run-unknown-cell", ("run", "experiments/local/pod-kill.yaml", "--cell", "cell-9"),
     "--cell"),
    ("run-window-unknown", ("run", "experiments/local/pod-kill.yaml", "--store",
                            f"sqlite:///{STORE}", "--window", "w-nope"), "--window"),
    ("window-duration-nan", ("window", "open", "gd", "--duration", "nan", "--store",
                             f"sqlite:///{STORE}"), "--duration"),
    ("window-duration-huge", ("window", "open", "gd", "--duration", "1e308", "--store",
                              f"sqlite:///{STORE}"), "--duration"),
    ("window-duration-negative", ("window", "open", "gd", "--duration", "-5", "--store",
                                  f"sqlite:///{STORE}"), "--duration"),
    ("window-name-blank", ("window", "open", " ", "--store", f"sqlite:///{STORE}"), "NAME"),
    ("window-close-unknown", ("window", "close", "w-nope", "--store", f"sqlite:///{STORE}"),
     "WINDOW_ID"),
    ("runs-limit-nan", ("runs", "--limit", "nan", "--store", f"sqlite:///{STORE}"), "--limit"),
    ("runs-limit-zero", ("runs", "--limit", "0", "--store", f"sqlite:///{STORE}"), "--limit"),
    ("plan-weeks-huge", ("plan", "--weeks", "99999"), "--weeks"),
    ("plan-weeks-nan", ("plan", "--weeks", "nan"), "--weeks"),
    ("show-unknown-run", ("show", "run-nope", "--store", f"sqlite:///{STORE}"), "RUN_ID"),
    ("report-unknown-run", ("report", "run", "run-nope", "--store", f"sqlite:///{STORE}",
                            "--out", "out"), "RUN_ID"),
    ("report-since-huge", ("report", "resilience", "--since", "99999999d", "--store",
                           f"sqlite:///{STORE}", "--out", "out"), "--since"),
    ("report-since-future", ("report", "resilience", "--since", "2999-01-01", "--store",
                             f"sqlite:///{STORE}", "--out", "out"), "--since"),
    ("report-since-word", ("report", "resilience", "--since", "lately", "--store",
                           f"sqlite:///{STORE}", "--out", "out"), "--since"),
    ("report-out-file", ("report", "resilience", "--store", f"sqlite:///{STORE}", "--out",
                         "experiment.yaml"), "--out"),
    ("scheduler-lease-nan", ("scheduler", "start", "--lease-ttl", "nan"), "--lease-ttl"),
    ("sandbox-ms-nan", ("sandbox", "fault", "cell-1", "latency", "--ms", "nan", "--duration",
                        "5", "--state-dir", "sbx"), "--ms"),
    ("sandbox-duration-inf", ("sandbox", "fault", "cell-1", "cpu", "--duration", "inf",
                              "--state-dir", "sbx"), "--duration"),
    ("sandbox-load-nan", ("sandbox", "fault", "cell-1", "cpu", "--load", "nan", "--duration",
                          "5", "--state-dir", "sbx"), "--load"),
    ("sandbox-cells-huge", ("sandbox", "up", "--cells", "1000", "--state-dir", "sbx"),
     "--cells"),
    ("sandbox-replicas-zero", ("sandbox", "up", "--replicas", "0", "--state-dir", "sbx"),
     "--replicas"),
]


def flag_cases() -> list[Case]:
    experiment = {"experiment.yaml": _mutated(_drop("configuration.gameday_cell"))}
    return [Case(f"flag-{case_id}", args, where, experiment) for case_id, args, where
            in FLAG_CASES]


STORE_CASES: list[tuple[str, str, str, Callable[[Path], None] | None]] = [
    ("directory", "sqlite:///adir", "--store", lambda p: (p / "adir").mkdir()),
    ("not-sqlite", "sqlite:///experiment.yaml", "--store", None),
    ("parent-is-file", "sqlite:///experiment.yaml/x.db", "--store", None),
    ("new-path-runs", "sqlite:///new/dir/x.db", "--store", None),
    ("scheme", "mysql://u:p@h/db", "--store", None),
    ("memory", "sqlite:///:memory:", "--store", None),
    ("garbage", "::::", "--store", None),
]


def store_cases() -> list[Case]:
    experiment = {"experiment.yaml": (EXPERIMENTS / "pod-kill.yaml").read_text()}
    cases = []
    for case_id, url, where, setup in STORE_CASES:
        cases.extend(Case(f"store-{command[0]}-{case_id}", (*command, "--store", url), where,
                          experiment, setup)
                     for command in (("runs",), ("show", "run-x"),
                                     ("report", "run", "run-x", "--out", "o")))
        if case_id in ("directory", "not-sqlite", "parent-is-file", "scheme"):
            cases.append(Case(f"store-run-{case_id}", ("run", "experiment.yaml", "--cell",
                                                       "cell-1", "--store", url), where,
                              experiment, setup))
    return cases


CASES = experiment_cases() + cell_cases() + schedule_cases() + flag_cases() + store_cases()


# ------------------------------------------------------------------------------ the harness


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project as a user has it: experiments, schedules, and a store with a window in it."""
    project = tmp_path_factory.mktemp("hostile-template")
    shutil.copytree(ROOT / "experiments", project / "experiments")
    shutil.copytree(ROOT / "schedules", project / "schedules")
    done = subprocess.run([sys.executable, "-m", "gameday", "window", "open", "seed",
                           "--store", f"sqlite:///{STORE}"], cwd=project, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return project


def snapshot(project: Path) -> dict[str, Any]:
    files: dict[str, Any] = {}
    for path in sorted(project.rglob("*")):
        info = path.lstat()
        rel = str(path.relative_to(project))
        if rel.startswith(STORE):  # the store is compared by its content, below
            continue
        if path.is_symlink() or not path.is_file():
            files[rel] = (oct(info.st_mode), None)
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if info.st_size < 4 << 20 \
            else info.st_size
        files[rel] = (oct(info.st_mode), digest)
    rows: dict[str, int] = {}
    conn = sqlite3.connect(f"file:{project / STORE}?mode=ro", uri=True)
    try:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            rows[table] = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        content = hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()
    finally:
        conn.close()
    return {"files": files, "rows": rows, "store": content, "processes": _processes_in(project)}


def _processes_in(project: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(project) in (entry / "cmdline").read_bytes().decode(errors="replace") \
                        or os.readlink(entry / "cwd").startswith(str(project)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return sorted(found)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_exits_2_and_touches_nothing(case: Case, template: Path,
                                                    tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(template, project, symlinks=True)
    for name, content in case.files.items():
        target = project / name
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    if case.setup is not None:
        case.setup(project)
    before = snapshot(project)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMEDAY_")}
    result = subprocess.run([sys.executable, "-m", "gameday", *case.args], cwd=project,
                            capture_output=True, text=True, timeout=60, env=env,
                            stdin=subprocess.DEVNULL)
    output = result.stdout + result.stderr
    assert result.returncode == 2, f"exit {result.returncode}:\n{output}"
    assert "Traceback" not in output, output
    match = OURS.search(result.stderr) or CLICKS.search(result.stderr)
    assert match is not None, f"no where / expected / found / fix in:\n{result.stderr}"
    assert all(match.group(part).strip() for part in ("where", "expected", "found", "fix"))
    assert case.where in match.group("where"), \
        f"where {match.group('where')!r} does not name {case.where!r}:\n{result.stderr}"
    assert len(result.stderr.splitlines()) <= 25, f"more than a screen:\n{result.stderr}"
    assert not (project / "pwned.txt").exists()
    assert snapshot(project) == before


def test_the_corpus_is_large_and_covers_every_family() -> None:
    families = {c.id.split("-")[0] for c in CASES}
    assert len(CASES) >= 150
    assert {"validate", "run", "cells", "plan", "scheduler", "flag", "store"} <= families
