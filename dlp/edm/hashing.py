"""Keyed hashes for EDM: keyed BLAKE2b-64 under a per-client key (index format 3)."""

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
    """Keyed BLAKE2b (the key in BLAKE2's own keyed mode, a MAC and PRF like HMAC) with a 64-bit digest,
    the key block absorbed once: each value then costs one state copy and one compression, about half
    an HMAC-SHA256 (index format 3; formats 1 and 2 used HMAC-SHA256 truncated to 64 bits)."""

    __slots__ = ("_state",)

    def __init__(self, key: bytes) -> None:
        if not 16 <= len(key) <= 64:
            raise ValueError("an EDM key is 16 to 64 bytes")
        self._state = hashlib.blake2b(key=key, digest_size=8, person=b"dlp-edm")

    def h64(self, kind: str, value: str) -> int:
        """The 64-bit index key of one normalised value of one kind."""
        state = self._state.copy()
        state.update(f"{kind}\0{value}".encode())
        return int.from_bytes(state.digest(), "little")

    def key_id(self) -> str:
        """A public name for the key, stored in the index header to catch an index/key mismatch."""
        state = self._state.copy()
        state.update(b"dlp-edm-key-id")
        return state.hexdigest()
