"""Encryption at rest for quarantined originals: AES-256-GCM under a keyring of a current key and retired keys.

A sealed item is `MAGIC | key id (16 ascii hex) | nonce (12) | ciphertext+tag`, and the associated data
binds it to its incident id and key id, so an item copied onto another incident, or with its key id
edited, fails authentication instead of decrypting. Key ids are a one-way fingerprint of the key.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dlp.store.errors import IntegrityError, StoreError

MAGIC = b"DLPQ1"
_KID_LEN = 16
_NONCE_LEN = 12


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"dlp-quarantine-key-id\x00" + key).hexdigest()[:_KID_LEN]


def _aad(incident_id: str, kid: str) -> bytes:
    return f"dlp-quarantine\x00{incident_id}\x00{kid}".encode()


@dataclass(frozen=True)
class Keyring:
    """The current key encrypts; any key in the ring decrypts what it encrypted."""

    current: bytes
    retired: tuple[bytes, ...] = ()
    _by_id: dict[str, bytes] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for key in (self.current, *self.retired):
            self._by_id[key_id(key)] = key

    @property
    def current_id(self) -> str:
        return key_id(self.current)

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self._by_id)

    def seal(self, incident_id: str, plaintext: bytes) -> bytes:
        kid = self.current_id
        nonce = os.urandom(_NONCE_LEN)
        return MAGIC + kid.encode() + nonce + AESGCM(self.current).encrypt(nonce, plaintext, _aad(incident_id, kid))

    def open(self, incident_id: str, sealed: bytes) -> bytes:
        kid = sealed_key_id(sealed)
        key = self._by_id.get(kid)
        if key is None:
            raise StoreError(f"incident {incident_id}: encrypted under key {kid}, which is not in the keyring "
                             "(restore the retired key file)")
        body = sealed[len(MAGIC) + _KID_LEN :]
        nonce, ciphertext = body[:_NONCE_LEN], body[_NONCE_LEN:]
        try:
            return AESGCM(key).decrypt(nonce, ciphertext, _aad(incident_id, kid))
        except InvalidTag:
            raise IntegrityError(f"incident {incident_id}: quarantined original failed its integrity check "
                                 "(tampered or corrupted)") from None

    def with_retired(self, keys: Iterable[bytes]) -> Keyring:
        return Keyring(self.current, (*self.retired, *keys))


def sealed_key_id(sealed: bytes) -> str:
    if not sealed.startswith(MAGIC) or len(sealed) < len(MAGIC) + _KID_LEN + _NONCE_LEN + 16:
        raise IntegrityError("quarantined original is not a sealed item (truncated or corrupted)")
    try:
        return sealed[len(MAGIC) : len(MAGIC) + _KID_LEN].decode("ascii")
    except UnicodeDecodeError:
        raise IntegrityError("quarantined original has a corrupted header") from None
