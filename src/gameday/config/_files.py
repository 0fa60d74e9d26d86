"""Reading untrusted files: what may be read, and how much of it.

Every file gameday parses (experiments, cells, schedules) comes through here, so one set of
limits holds for all of them:
- a regular file (not a directory, FIFO, device or symlink loop), at most ``MAX_BYTES``,
  opened without blocking, UTF-8;
- YAML or JSON nested at most ``MAX_DEPTH`` levels, with at most ``MAX_ALIASES`` YAML aliases
  and at most ``MAX_NODES`` values once aliases are expanded (a "billion laughs" file is
  small on disk and huge in memory);
- every number finite: NaN and infinity (YAML ``.nan``/``.inf``, JSON ``NaN``/``Infinity``)
  are refused wherever they stand.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from gameday.errors import InputError

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_ALIASES = 100
MAX_NODES = 100_000


def read_text(path: Path, where: str, what: str, fix: str) -> str:
    """The text of the regular file ``path``; InputError for anything else, nothing touched."""
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise InputError(where, what, f"no file at {path}", fix) from exc
    except OSError as exc:
        raise InputError(where, what, f"{path}: {_os_reason(exc)}", fix) from exc
    if not stat.S_ISREG(info.st_mode):
        raise InputError(where, f"{what} (a regular file)", f"{path} is {_file_type(info)}",
                         fix)
    if info.st_size > MAX_BYTES:
        raise InputError(where, f"{what} of at most {MAX_BYTES // 1024} KiB",
                         f"{path} of {info.st_size} bytes", "split it, or trim what it holds")
    try:
        # O_NONBLOCK: a file swapped for a FIFO after the stat must not hang us.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise InputError(where, f"{what} (a regular file)", f"{path} changed type", fix)
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InputError(where, what, f"{path}: {_os_reason(exc)}", fix) from exc
    if len(data) > MAX_BYTES:
        raise InputError(where, f"{what} of at most {MAX_BYTES // 1024} KiB",
                         f"{path} of more than that", "split it, or trim what it holds")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}", "UTF-8 text", f"byte 0x{data[exc.start]:02x} at "
                         f"offset {exc.start}", "save the file as UTF-8") from exc


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "not readable (permission denied)"
    return exc.strerror or str(exc)


def _file_type(info: os.stat_result) -> str:
    mode = info.st_mode
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


class _Limited(yaml.SafeLoader):
    """SafeLoader that stops at ``MAX_DEPTH`` levels and ``MAX_ALIASES`` aliases while
    composing, before the recursion or the expansion can cost anything."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _TooMuch(f"more than {MAX_ALIASES} YAML aliases", self.peek_event())  # type: ignore[no-untyped-call]
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _TooMuch(f"nesting deeper than {MAX_DEPTH} levels", self.peek_event())  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _TooMuch(Exception):
    def __init__(self, what: str, event: Any) -> None:
        super().__init__(what)
        self.what = what
        self.mark = getattr(event, "start_mark", None)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number gameday can use")


def parse_data(text: str, source: str, as_json: bool) -> Any:
    """YAML (or JSON) ``text`` as Python data, within the limits; InputError says where."""
    from gameday.config._errors import yaml_error

    try:
        if as_json:
            data = json.loads(text, parse_constant=_refuse_constant)
        else:
            loader = _Limited(text)
            try:
                data = loader.get_single_data()
            finally:
                loader.dispose()
    except _TooMuch as exc:
        where = f"{source}:{exc.mark.line + 1}:{exc.mark.column + 1}" if exc.mark else source
        raise InputError(where, f"at most {MAX_DEPTH} levels of nesting and {MAX_ALIASES} "
                         "aliases", exc.what, "flatten the file") from exc
    except RecursionError as exc:
        raise InputError(source, f"at most {MAX_DEPTH} levels of nesting",
                         "nesting too deep to read", "flatten the file") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}:{exc.lineno}:{exc.colno}", "valid JSON", exc.msg,
                         "fix the JSON syntax at that line") from exc
    except ValueError as exc:  # parse_constant: NaN / Infinity in JSON
        raise InputError(source, "finite numbers", str(exc),
                         "write a finite number (NaN and Infinity are not allowed)") from exc
    except yaml.YAMLError as exc:
        raise yaml_error(exc, source) from exc
    check_data(data, source)
    return data


def check_data(data: Any, source: str) -> None:
    """Refuse data too deep, too large once aliases are expanded, or holding NaN/infinity."""
    seen: dict[int, int] = {}
    if _size(data, source, "", 0, seen) > MAX_NODES:
        raise InputError(source, f"at most {MAX_NODES} values (with YAML aliases expanded)",
                         "more than that", "write each value out once; do not nest aliases")


def _size(value: Any, source: str, path: str, depth: int, seen: dict[int, int]) -> int:
    if depth > MAX_DEPTH:
        raise InputError(f"{source}: {path}", f"at most {MAX_DEPTH} levels of nesting",
                         "deeper nesting", "flatten the file")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{source}: {path.lstrip('.') or '(top)'}", "a finite number", value,
                         "write a finite number (NaN and infinity are not allowed)")
    if not isinstance(value, (dict, list)):
        return 1
    key = id(value)
    if key in seen:  # an alias: counted again in full, without walking it again
        return seen[key]
    seen[key] = MAX_NODES + 1  # a cycle (a recursive alias) counts as too large
    items = value.items() if isinstance(value, dict) else enumerate(value)
    total = 1
    for k, v in items:
        total += _size(v, source, f"{path}.{k}", depth + 1, seen)
        if total > MAX_NODES:
            break
    seen[key] = total
    return total


def load_file(path: Path, where: str, what: str, fix: str) -> Any:
    """Read and parse ``path`` (JSON when it ends in .json, else YAML) within the limits."""
    text = read_text(path, where, what, fix)
    return parse_data(text, str(path), path.suffix.lower() == ".json")


__all__ = ["MAX_BYTES", "MAX_DEPTH", "check_data", "load_file", "parse_data", "read_text"]
