"""A small, bounded reader for OLE compound files (MS-CFB): the directory and the first bytes of a
few streams, enough to tell a password-protected legacy Office file from a readable one. Every
sector chain is walked with a visited set, so a cyclic or overlong FAT cannot loop."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from dlp.extract.budget import DecodeError

MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_END_OF_CHAIN = 0xFFFFFFFE
_FREE = 0xFFFFFFFF
_STREAM, _ROOT = 2, 5
_MAX_ENTRIES = 100_000


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    kind: int
    start: int
    size: int


class CompoundFile:
    """The parsed header, FAT, mini FAT and directory of one compound file."""

    def __init__(self, data: bytes) -> None:
        if len(data) < 512 or not data.startswith(MAGIC):
            raise DecodeError("not a compound file")
        self.data = data
        _major, byte_order, sector_shift, mini_shift = struct.unpack_from("<HHHH", data, 0x1A)
        if byte_order != 0xFFFE or sector_shift not in (9, 12) or mini_shift != 6:
            raise DecodeError("compound file header is inconsistent")
        self.sector = 1 << sector_shift
        self.sectors = max(0, (len(data) - 512) // self.sector + 1)
        (first_dir,) = struct.unpack_from("<I", data, 0x30)
        self.cutoff, first_minifat, _, first_difat, difat_count = struct.unpack_from("<IIIII", data, 0x38)
        self.fat = self._fat(first_difat, difat_count)
        self.entries = self._directory(first_dir)
        if not self.entries or self.entries[0].kind != _ROOT:
            raise DecodeError("compound file has no root entry")
        self.minifat = _u32s(self._chain_bytes(first_minifat)) if first_minifat < _END_OF_CHAIN else []
        root = self.entries[0]
        self._ministream: bytes | None = None
        self._root = root
        self.names = {e.name for e in self.entries if e.kind in (_STREAM, 1)}
        self.by_name = {e.name: e for e in reversed(self.entries) if e.kind == _STREAM}

    def _sector_bytes(self, sid: int) -> bytes:
        start = (sid + 1) * self.sector
        return self.data[start : start + self.sector]

    def _fat(self, first_difat: int, difat_count: int) -> list[int]:
        sids = [s for s in _u32s(self.data[0x4C:0x200]) if s < _END_OF_CHAIN]
        seen: set[int] = set()
        sid = first_difat
        per = self.sector // 4 - 1
        while sid < _END_OF_CHAIN and sid not in seen and len(seen) < min(difat_count, self.sectors):
            seen.add(sid)
            words = _u32s(self._sector_bytes(sid))
            sids.extend(s for s in words[:per] if s < _END_OF_CHAIN)
            sid = words[per] if len(words) > per else _END_OF_CHAIN
        fat: list[int] = []
        for s in sids[: self.sectors]:
            fat.extend(_u32s(self._sector_bytes(s)))
        return fat

    def _chain(self, sid: int, table: list[int], limit: int) -> list[int]:
        out: list[int] = []
        seen: set[int] = set()
        while sid < _END_OF_CHAIN and len(out) < limit:
            if sid in seen or sid >= len(table):
                raise DecodeError("broken sector chain")
            seen.add(sid)
            out.append(sid)
            sid = table[sid]
        return out

    def _chain_bytes(self, sid: int, max_bytes: int | None = None) -> bytes:
        limit = self.sectors if max_bytes is None else -(-max_bytes // self.sector)
        return b"".join(self._sector_bytes(s) for s in self._chain(sid, self.fat, limit))

    def _directory(self, first: int) -> list[Entry]:
        raw = self._chain_bytes(first)
        entries = []
        for pos in range(0, min(len(raw), _MAX_ENTRIES * 128) - 127, 128):
            name_len, kind = struct.unpack_from("<HB", raw, pos + 64)
            start, size = struct.unpack_from("<IQ", raw, pos + 116)
            if self.sector == 512:
                size &= 0xFFFFFFFF  # version 3 files leave the high half undefined
            name = raw[pos : pos + max(0, min(name_len, 64) - 2)].decode("utf-16-le", "replace")
            entries.append(Entry(name, kind, start, size))
        return entries

    def read(self, name: str, max_bytes: int) -> bytes | None:
        """Up to `max_bytes` of the named stream (None when there is no such stream)."""
        entry = self.by_name.get(name)
        if entry is None:
            return None
        wanted = min(entry.size, max_bytes)
        if entry.size >= self.cutoff:
            return self._chain_bytes(entry.start, wanted)[:wanted]
        if self._ministream is None:
            self._ministream = self._chain_bytes(self._root.start, self._root.size)
        chain = self._chain(entry.start, self.minifat, -(-wanted // 64))
        return b"".join(self._ministream[s * 64 : s * 64 + 64] for s in chain)[:wanted]


def _u32s(raw: bytes) -> list[int]:
    return list(struct.unpack_from(f"<{len(raw) // 4}I", raw))


# ------------------------------------------------------------------------------ Office encryption

_WORD_IDENT = 0xA5EC
_F_ENCRYPTED, _F_OBFUSCATED = 0x0100, 0x8000
_BIFF_FILEPASS, _BIFF_EOF = 0x002F, 0x000A
_PPT_ENCRYPTED_TOKEN = 0xF3D1C4DF
_ENCRYPTION_STREAMS = ("EncryptedPackage", "EncryptionInfo", "EncryptedSummary")


def office_encryption(cfb: CompoundFile) -> str | None:
    """Why the file is password-protected, or None: an encrypted OOXML package, a Word FIB with
    fEncrypted / fObfuscated, an Excel workbook with a FILEPASS record, an encrypted PowerPoint
    (CurrentUserAtom header token)."""
    for name in _ENCRYPTION_STREAMS:
        if name in cfb.names:
            return "password-protected Office document"
    word = cfb.read("WordDocument", 32)
    if word and len(word) >= 12:
        ident, flags = struct.unpack_from("<H", word, 0)[0], struct.unpack_from("<H", word, 0x0A)[0]
        if ident == _WORD_IDENT and flags & (_F_ENCRYPTED | _F_OBFUSCATED):
            return "password-protected Word document"
    workbook = cfb.read("Workbook", 64 * 1024) or cfb.read("Book", 64 * 1024)
    if workbook and _biff_filepass(workbook):
        return "password-protected Excel workbook"
    user = cfb.read("Current User", 16)
    if user and len(user) >= 16 and struct.unpack_from("<I", user, 12)[0] == _PPT_ENCRYPTED_TOKEN:
        return "password-protected PowerPoint presentation"
    return None


def _biff_filepass(stream: bytes) -> bool:
    """FILEPASS sits in the workbook globals, before their EOF record."""
    pos = 0
    while pos + 4 <= len(stream):
        kind, length = struct.unpack_from("<HH", stream, pos)
        if kind == _BIFF_FILEPASS:
            return True
        if kind == _BIFF_EOF:
            return False
        pos += 4 + length
    return False
