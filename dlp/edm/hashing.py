"""Keyed hashes for EDM: HMAC-SHA256 under a per-client key, truncated to 64 bits for the index."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from dlp.keys import load_or_create_key

CLIENT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
TOKEN_KIND = "tok"  # single words of name/text fields: a filter that keeps n-gram lookups rare
RECORD_KIND = "record"


def check_client(name: str) -> str:
    if not CLIENT_NAME.fullmatch(name):
        raise ValueError(f"client name {name!r}: use lowercase letters, digits, '-' and '_' (at most 63)")
    return name


def client_key_path(data_dir: Path, client: str) -> Path:
    return data_dir / "keys" / f"edm-{check_client(client)}.key"


def client_key(data_dir: Path, client: str, *, create: bool) -> bytes:
    """The client's EDM key (created 0600 on first index). Deleting it makes the client's index useless."""
    return load_or_create_key(client_key_path(data_dir, client), create=create)


class KeyedHasher:
    """HMAC-SHA256 with the key's inner and outer states computed once: the hot path then costs two
    SHA-256 state copies per value instead of a full `hmac.new` (about twice as fast here)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        block = key.ljust(64, b"\0") if len(key) <= 64 else hashlib.sha256(key).digest().ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def digest(self, data: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def h64(self, kind: str, value: str) -> int:
        """The 64-bit index key of one normalised value of one kind."""
        return int.from_bytes(self.digest(f"{kind}\0{value}".encode())[:8], "little")

    def key_id(self) -> str:
        """A public name for the key, stored in the index header to catch an index/key mismatch."""
        return self.digest(b"dlp-edm-key-id").hex()[:16]
