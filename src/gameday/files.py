"""Files and directories gameday creates for itself: private to the user who runs it.

Journals, logs and stores can hold what a run saw of a cell; they are created 0600 inside
directories created 0700, whatever the umask.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

# Here, not in gameday.store, so a command can look for the default store without importing
# SQLAlchemy.
DEFAULT_STORE_URL = "sqlite:///.gameday/gameday.db"
STORE_ENV = "GAMEDAY_STORE"


def private_dirs(directory: Path) -> None:
    """Create ``directory`` and every missing parent 0700 (existing ones are left as they are)."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for d in reversed(missing):
        d.mkdir(mode=0o700, exist_ok=True)
        os.chmod(d, 0o700)  # mkdir's mode is masked by the umask


def open_private(path: Path, *, append: bool = False, exclusive: bool = False) -> IO[bytes]:
    """Open ``path`` for writing, created 0600 (its directory 0700)."""
    private_dirs(path.parent)
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    flags |= os.O_APPEND if append else (os.O_EXCL if exclusive else os.O_TRUNC)
    return os.fdopen(os.open(path, flags, 0o600), "ab" if append else "wb")


__all__ = ["DEFAULT_STORE_URL", "STORE_ENV", "open_private", "private_dirs"]
