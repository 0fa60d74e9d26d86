"""The sandbox's state directory: what is where, and whether a directory is ours.

    <root>/sandbox.json     marker: kind, schema_version, cells, where PostgreSQL data lives
    <root>/admin.token      bearer token of every cell's admin API (0600)
    <root>/secrets.json     database credentials (0600); never printed
    <root>/events.jsonl     ground-truth events of every cell
    <root>/<cell>/state.json  written by the cell's controller whenever something changes
    <root>/<cell>/logs/     logs of the controller, replicas and PostgreSQL nodes
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gameday.errors import InputError

MARKER_KIND = "gameday-sandbox"
SCHEMA_VERSION = 1
DEFAULT_STATE_DIR = Path(".gameday/sandbox")


def write_json_atomic(path: Path, data: Any, mode: int = 0o644) -> None:
    """Write ``data`` so a reader never sees half a file (rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, default=str)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


@dataclass(frozen=True)
class SandboxLayout:
    root: Path

    @property
    def marker(self) -> Path:
        return self.root / "sandbox.json"

    @property
    def token_file(self) -> Path:
        return self.root / "admin.token"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.json"

    @property
    def events_file(self) -> Path:
        return self.root / "events.jsonl"

    def cell_dir(self, cell: str) -> Path:
        return self.root / cell

    def cell_state(self, cell: str) -> Path:
        return self.root / cell / "state.json"

    def cell_logs(self, cell: str) -> Path:
        return self.root / cell / "logs"

    def check_ours(self) -> dict[str, Any] | None:
        """The marker when the directory is a sandbox's, None when it is absent or empty.

        Raises InputError for a directory that holds something else: we never write into it.
        """
        if not self.root.exists():
            return None
        if not self.root.is_dir():
            raise InputError(f"--state-dir {self.root}", "a directory", "a file",
                             "pass a directory path for the sandbox state")
        if not self.marker.exists():
            if any(self.root.iterdir()):
                raise InputError(
                    f"--state-dir {self.root}",
                    f"an empty directory or one made by `gameday sandbox up` (with {self.marker.name})",
                    "a directory with other files",
                    "pass another --state-dir; gameday never writes into a directory it did not make",
                )
            return None
        try:
            marker = read_json(self.marker)
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{self.marker}", "a gameday sandbox marker (JSON)", str(exc),
                             "remove the directory if it is a broken sandbox, or pass another --state-dir"
                             ) from exc
        if not isinstance(marker, dict) or marker.get("kind") != MARKER_KIND:
            raise InputError(f"{self.marker}", f'kind "{MARKER_KIND}"',
                             marker.get("kind") if isinstance(marker, dict) else marker,
                             "pass another --state-dir; this one belongs to something else")
        if marker.get("schema_version") != SCHEMA_VERSION:
            raise InputError(f"{self.marker}", f"schema_version {SCHEMA_VERSION}",
                             marker.get("schema_version"),
                             "stop that sandbox with the gameday version that made it, then remove "
                             "the directory")
        return marker

    def token(self) -> str:
        return self.token_file.read_text(encoding="utf-8").strip()

    def cell_names(self, marker: dict[str, Any]) -> list[str]:
        return [str(c) for c in marker.get("cells", [])]

    def read_cell_state(self, cell: str) -> dict[str, Any] | None:
        try:
            data = read_json(self.cell_state(cell))
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return data if isinstance(data, dict) else None


def new_token() -> str:
    return secrets.token_urlsafe(32)


def write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
