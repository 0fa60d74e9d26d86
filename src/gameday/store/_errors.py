"""Errors of the store: a runtime failure, and a database written by another schema version."""

from __future__ import annotations

from gameday.errors import GamedayError


class StoreError(GamedayError):
    """The store could not read or write (unreachable database, locked file, bad value, no such row)."""


class IncompatibleSchemaError(StoreError):
    """The database holds tables of another store schema version (like dbt's IncompatibleSchemaError)."""

    def __init__(self, where: str, expected: str, found: object, fix: str) -> None:
        self.where = where
        self.expected = expected
        self.found = found
        self.fix = fix
        super().__init__(
            f"{where}: incompatible store schema: expected {expected}, found {found}.\n  fix: {fix}")
