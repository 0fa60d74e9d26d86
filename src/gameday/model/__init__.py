"""The domain: frozen records that cross module boundaries (no ``dict[str, Any]`` past the engine)."""

from gameday.model.records import (
    RUN_SCHEMA_VERSION,
    CellObjectives,
    CriterionResult,
    FaultState,
    LedgerFault,
    RunDetail,
    RunEvent,
    RunRecord,
    RunStatus,
    Sample,
    Verdict,
    WindowRecord,
    WindowStatus,
)

__all__ = [
    "RUN_SCHEMA_VERSION",
    "CellObjectives",
    "CriterionResult",
    "FaultState",
    "LedgerFault",
    "RunDetail",
    "RunEvent",
    "RunRecord",
    "RunStatus",
    "Sample",
    "Verdict",
    "WindowRecord",
    "WindowStatus",
]
