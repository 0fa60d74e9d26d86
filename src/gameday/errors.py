"""The error tree of gameday.

    GamedayError                 root: anything we raise on purpose
    ├── InputError               bad input: experiment, schedule, cell config, CLI flags, state dir
    │                            (exit 2, raised before anything is touched)
    └── SandboxError             the local sandbox could not do what was asked (exit 3)

Input errors carry where / expected / found / fix so every message answers the four
questions a user has.
"""

from __future__ import annotations


class GamedayError(Exception):
    """Root of every error gameday raises on purpose."""


class InputError(GamedayError):
    """Input that cannot be used; raised before anything is touched."""

    def __init__(self, where: str, expected: str, found: object, fix: str) -> None:
        self.where = where
        self.expected = expected
        self.found = found
        self.fix = fix
        super().__init__(self.message())

    def message(self) -> str:
        return (
            f"{self.where}: expected {self.expected}, found {self.found!r}.\n"
            f"  fix: {self.fix}"
        )


class SandboxError(GamedayError):
    """The local sandbox failed at runtime (a process would not start, a node would not promote)."""
