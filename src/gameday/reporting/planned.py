"""Reports to write, named before they are built: ``render.write_reports`` links the reports
of one call to each other before any of them exists, then has each share of them built where
it is rendered."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class PlannedReport:
    """Its folder, and what it is (kind and id, as ``links.identity`` names a report)."""

    folder: Path
    kind: str
    ident: str


BuildReports = Callable[[Sequence[PlannedReport]], Sequence[dict[str, Any]]]
"""The data of some planned reports, in their order (read together: one query for them all)."""
