"""Durable, atomic file writes: write a temporary file, fsync it, rename it, fsync the directory.

A crash leaves either the old state or the new one, plus at most a `.tmp-*` file that
`purge_temporaries` removes at start-up (the Postfix / OpenSMTPD model).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path

TMP_PREFIX = ".tmp-"


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes | Iterable[bytes | memoryview], mode: int = 0o600) -> None:
    """Durably replace `path` with `data` (bytes, or pieces streamed in order so a large file is never
    joined in memory). On any error no partial file remains and the error is raised."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f"{TMP_PREFIX}{secrets.token_hex(6)}-{path.name}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            for piece in [data] if isinstance(data, bytes | bytearray | memoryview) else data:
                view = memoryview(piece)
                while view:
                    view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def purge_temporaries(directory: Path) -> int:
    """Remove leftovers of interrupted writes; returns how many were removed."""
    if not directory.is_dir():
        return 0
    removed = 0
    for leftover in directory.glob(f"{TMP_PREFIX}*"):
        leftover.unlink(missing_ok=True)
        removed += 1
    return removed
