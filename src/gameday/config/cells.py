"""Cells: isolated failure domains, described in ``schedules/cells.yaml``.

    schema_version: 1
    cells:
      - name: cell-1
        target: local                      # local | kubernetes
        environment: sandbox               # sandbox | staging | production (local: sandbox)
        tier: 1                            # 1 = most critical (RPO 1 min by default)
        tenants: [acme-bank]
        local: {state_dir: .gameday/sandbox, sandbox_cell: cell-1}
        slo: {availability: 99.95, p95_latency_ms: 250}
        dr: {rto_s: 900, rpo_s: 60}
        probe: {timeout_s: 2.0}
        halt: {error_rate_above: 0.5, for_s: 5}
        allow: {python_modules: [acme.probes]}  # optional: more probes (config/policy.py)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from gameday.config import DEFAULT_CELLS_FILE
from gameday.config._errors import StrictModel, read_model
from gameday.config.policy import DEFAULT_POLICY, AllowModel, ProviderPolicy
from gameday.errors import InputError
from gameday.model import CellObjectives
from gameday.model.figures import ENVIRONMENTS, Environment

CELLS_SCHEMA_VERSION = 1
FIX = "correct the cell in the cells file (see schedules/cells.yaml for the format)"


_Strict = StrictModel


class LocalTargetModel(_Strict):
    state_dir: str = ".gameday/sandbox"
    sandbox_cell: str | None = None


class KubernetesTargetModel(_Strict):
    context: str | None = None
    namespace: str = Field(min_length=1)
    label_selector: str = Field(min_length=1)
    url: str | None = None


# Upper bounds keep every figure a report compares against finite and meaningful.
MAX_OBJECTIVE_S = 30 * 86400.0


class SloModel(_Strict):
    availability: float = Field(default=99.95, gt=0, le=100)
    p95_latency_ms: float = Field(default=250.0, gt=0, le=600_000)


class DrModel(_Strict):
    rto_s: float = Field(default=900.0, gt=0, le=MAX_OBJECTIVE_S)
    rpo_s: float = Field(default=300.0, ge=0, le=MAX_OBJECTIVE_S)


class ProbeModel(_Strict):
    timeout_s: float = Field(default=2.0, gt=0, le=60)


class HaltModel(_Strict):
    error_rate_above: float = Field(default=0.5, gt=0, le=1)
    for_s: float = Field(default=5.0, gt=0, le=3600)


class CellModel(_Strict):
    # A DNS label, like a Kubernetes namespace: it names directories, schemas and reports.
    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    target: Literal["local", "kubernetes"]
    # Where a run's evidence comes from; a local cell is always a sandbox. No default for other
    # targets: calling a cluster "production" (or not) is the cell owner's statement to make.
    environment: Environment | None = None
    tier: int = Field(default=2, ge=1, le=3)
    tenants: list[str] = Field(default_factory=list, max_length=1000)
    local: LocalTargetModel | None = None
    kubernetes: KubernetesTargetModel | None = None
    slo: SloModel = SloModel()
    dr: DrModel | None = None
    probe: ProbeModel = ProbeModel()
    halt: HaltModel = HaltModel()
    secrets: dict[str, str] = Field(default_factory=dict)
    # Providers beyond gameday's own that this cell's experiments may use (probes only).
    allow: AllowModel | None = None

    @field_validator("tenants")
    @classmethod
    def _tenants_named(cls, tenants: list[str]) -> list[str]:
        if any(not t.strip() for t in tenants):
            raise ValueError("tenant names must not be empty")
        return tenants


class CellsFileModel(_Strict):
    schema_version: Literal[1]
    cells: list[CellModel] = Field(min_length=1)


@dataclass(frozen=True)
class Cell:
    name: str
    target: Literal["local", "kubernetes"]
    tier: int
    tenants: tuple[str, ...]
    availability_slo: float  # percent
    p95_latency_slo_ms: float
    rto_s: float
    rpo_s: float
    probe_timeout_s: float
    halt_error_rate_above: float
    halt_for_s: float
    local_state_dir: Path | None
    sandbox_cell: str | None
    k8s_context: str | None
    k8s_namespace: str | None
    k8s_label_selector: str | None
    k8s_url: str | None
    secrets: tuple[tuple[str, str], ...]
    allow: ProviderPolicy = DEFAULT_POLICY
    environment: Environment = "sandbox"

    @property
    def secret_values(self) -> list[str]:
        return [v for _, v in self.secrets if v]

    @property
    def objectives(self) -> CellObjectives:
        return CellObjectives(tier=self.tier, tenants=self.tenants,
                              availability_slo=self.availability_slo,
                              p95_latency_slo_ms=self.p95_latency_slo_ms, rto_s=self.rto_s,
                              rpo_s=self.rpo_s)


def _default_dr(tier: int) -> DrModel:
    # The seeds' objectives: RTO 15 min; RPO 5 min, 1 min for tier-1 cells.
    return DrModel(rto_s=900.0, rpo_s=60.0 if tier == 1 else 300.0)


def _to_cell(model: CellModel, base: Path, source: str, index: int) -> Cell:
    where = f"{source}: cells.{index}"
    if model.target == "local" and model.kubernetes is not None:
        raise InputError(f"{where}.kubernetes", "no kubernetes section for a local cell",
                         "a kubernetes section", "remove it, or set target: kubernetes")
    if model.target == "kubernetes" and model.kubernetes is None:
        raise InputError(f"{where}.kubernetes",
                         "a kubernetes section with namespace and label_selector", "nothing",
                         "add kubernetes: {namespace: ..., label_selector: app=...}")
    if model.target == "local" and model.environment not in (None, "sandbox"):
        raise InputError(f"{where}.environment", "sandbox (a local cell is a sandbox on this machine)",
                         model.environment, "remove environment, or set environment: sandbox")
    if model.target != "local" and model.environment is None:
        raise InputError(f"{where}.environment", "one of " + ", ".join(ENVIRONMENTS), "nothing",
                         "say where this cell's evidence comes from, e.g. environment: staging")
    local = model.local or LocalTargetModel() if model.target == "local" else None
    dr = model.dr or _default_dr(model.tier)
    state_dir = None
    if local is not None:
        state_dir = Path(local.state_dir)
        state_dir = state_dir if state_dir.is_absolute() else (base / state_dir)
    k8s = model.kubernetes
    return Cell(
        name=model.name, target=model.target, tier=model.tier, tenants=tuple(model.tenants),
        availability_slo=model.slo.availability, p95_latency_slo_ms=model.slo.p95_latency_ms,
        rto_s=dr.rto_s, rpo_s=dr.rpo_s, probe_timeout_s=model.probe.timeout_s,
        halt_error_rate_above=model.halt.error_rate_above, halt_for_s=model.halt.for_s,
        local_state_dir=state_dir,
        sandbox_cell=(local.sandbox_cell or model.name) if local is not None else None,
        k8s_context=k8s.context if k8s else None, k8s_namespace=k8s.namespace if k8s else None,
        k8s_label_selector=k8s.label_selector if k8s else None, k8s_url=k8s.url if k8s else None,
        secrets=tuple(sorted(model.secrets.items())),
        allow=ProviderPolicy.from_model(model.allow),
        environment=model.environment or "sandbox",
    )


def load_cells(path: Path = DEFAULT_CELLS_FILE) -> dict[str, Cell]:
    """Every cell of ``path`` by name; relative state dirs resolve against the current dir."""
    source = str(path)
    model = read_model(path, CellsFileModel, "--cells-file", "cells", FIX)
    cells: dict[str, Cell] = {}
    for index, cell_model in enumerate(model.cells):
        if cell_model.name in cells:
            raise InputError(f"{source}: cells.{index}.name", "a name used once", cell_model.name,
                             "give every cell its own name")
        cells[cell_model.name] = _to_cell(cell_model, Path.cwd(), source, index)
    return cells


def find_cell(cells: dict[str, Cell], name: str, source: str) -> Cell:
    if name not in cells:
        raise InputError("--cell", "one of " + ", ".join(sorted(cells)) + f" (from {source})",
                         name, "pass a cell named in the cells file, or add it there")
    return cells[name]
