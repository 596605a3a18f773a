"""Containers whose content cannot be read here, recognised by their own structure so they get a
reason the policy holds (encrypted_content, extraction_failed) instead of binary_content, which it
passes: OpenPGP messages (binary packets or ASCII armour), `openssl enc` output, age files."""

from __future__ import annotations

import re

from dlp.model import Reason

_ARMOR = re.compile(r"-----BEGIN (PGP MESSAGE|AGE ENCRYPTED FILE)-----")
_AGE = b"age-encryption.org/v1\n"
_OPENSSL_SALTED = b"Salted__"
# OpenPGP packet tags (RFC 9580 5): encrypted session keys and encrypted data; then the packets a
# signed-only or compressed message starts with (readable in principle, but not unpacked here).
_PKESK, _SKESK, _SEIPD, _AEAD = 1, 3, 18, 20
_ONE_PASS_SIGNATURE, _COMPRESSED, _LITERAL = 4, 8, 11
_PUBLIC_KEY_ALGORITHMS = frozenset({1, 2, 3, 16, 18, 20, 22, 25, 26})
_SEALED_DETAIL = "encrypted file (OpenPGP)"


def armored(text: str) -> str | None:
    """The kind of an ASCII-armoured encrypted block in `text`, if any."""
    if "-----BEGIN " not in text:
        return None
    m = _ARMOR.search(text)
    return m.group(1) if m else None


def sealed_format(data: bytes) -> tuple[Reason, str] | None:
    """(reason, detail) when `data` is an encrypted or opaque container, else None."""
    if data.startswith(_OPENSSL_SALTED) and len(data) >= 32:
        return Reason.ENCRYPTED_CONTENT, "encrypted file (openssl enc)"
    if data.startswith(_AGE):
        return Reason.ENCRYPTED_CONTENT, "encrypted file (age)"
    return _openpgp(data)


def _openpgp(data: bytes) -> tuple[Reason, str] | None:
    """The first packet's header and its first body octets must make sense for that packet type."""
    if len(data) < 8 or not data[0] & 0x80:
        return None
    first = data[0]
    if first & 0x40:  # new format: tag in the low six bits, then a one/two/five-octet or partial length
        tag = first & 0x3F
        octet = data[1]
        header = 2 if octet < 192 else 3 if octet < 224 else 6 if octet == 255 else 2
    else:  # old format: tag in bits 5-2, length type in bits 1-0 (3 = indeterminate)
        tag = (first >> 2) & 0x0F
        header = (2, 3, 5, 1)[first & 0x03]
    body = data[header : header + 12]
    if len(body) < 4:
        return None
    version = body[0]
    if tag == _PKESK and ((version == 3 and body[9] in _PUBLIC_KEY_ALGORITHMS) or version == 6):
        return Reason.ENCRYPTED_CONTENT, _SEALED_DETAIL
    if tag == _SKESK and ((version == 4 and 1 <= body[1] <= 13) or version in (5, 6)):
        return Reason.ENCRYPTED_CONTENT, _SEALED_DETAIL
    if tag in (_SEIPD, _AEAD) and version in (1, 2):
        return Reason.ENCRYPTED_CONTENT, _SEALED_DETAIL
    if tag == _COMPRESSED and version in (1, 2, 3):  # ZIP, ZLIB, BZip2
        return Reason.EXTRACTION_FAILED, "OpenPGP compressed message not unpacked"
    if tag == _ONE_PASS_SIGNATURE and version in (3, 6):
        return Reason.EXTRACTION_FAILED, "OpenPGP signed message not unpacked"
    if tag == _LITERAL and chr(version) in "btulm1":
        return Reason.EXTRACTION_FAILED, "OpenPGP literal data not unpacked"
    return None
