"""Per-installation secret keys: created once with mode 0600 in the data directory, read thereafter."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

KEY_BYTES = 32


class KeyError_(Exception):
    """A key that exists but cannot be used (wrong size, unreadable, too permissive)."""


def load_or_create_key(path: Path, *, create: bool = True) -> bytes:
    """Read a base64 key file, creating it atomically with mode 0600 if it is missing and `create`."""
    try:
        return _read(path)
    except FileNotFoundError:
        if not create:
            raise
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(KEY_BYTES)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, base64.b64encode(key) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # never overwrite a key another process created meanwhile
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> bytes:
    data = path.read_bytes().strip()
    try:
        key = base64.b64decode(data, validate=True)
    except ValueError as exc:
        raise KeyError_(f"{path}: not a base64 key") from exc
    if len(key) != KEY_BYTES:
        raise KeyError_(f"{path}: key must be {KEY_BYTES} bytes, found {len(key)}")
    return key


def decode_key(text: str, what: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError as exc:
        raise KeyError_(f"{what}: not a base64 key") from exc
    if len(key) != KEY_BYTES:
        raise KeyError_(f"{what}: key must be {KEY_BYTES} bytes")
    return key


def value_id_key(data_dir: Path) -> bytes:
    """The key behind Finding.value_id: stable within one installation, useless outside it."""
    return load_or_create_key(data_dir / "keys" / "value-id.key")
