"""A minimal OLE compound file (MS-CFB version 3) writer for tests: streams under the root storage,
small ones in the mini stream as the format requires. olefile is not a dependency; this is enough to
build legacy Office containers with and without their encryption markers."""

from __future__ import annotations

import struct

END, FREE, FATSECT = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD
SECTOR, MINI, CUTOFF = 512, 64, 4096


def _pad(data: bytes, size: int) -> bytes:
    return data + b"\x00" * (-len(data) % size)


def _entry(name: str, kind: int, start: int, size: int, child: int = FREE, right: int = FREE) -> bytes:
    encoded = (name + "\x00").encode("utf-16-le")
    return (encoded.ljust(64, b"\x00") + struct.pack("<HBBIII", len(encoded), kind, 1, FREE, right, child)
            + b"\x00" * 36 + struct.pack("<IQ", start, size))


def write_cfb(streams: dict[str, bytes]) -> bytes:
    sectors: list[bytes] = []
    fat: list[int] = []

    def place(data: bytes) -> int:
        """Append `data` as a chain of sectors; returns its first sector."""
        chunks = [data[i : i + SECTOR] for i in range(0, len(data), SECTOR)] or [b""]
        first = len(sectors)
        for i, chunk in enumerate(chunks):
            sectors.append(chunk.ljust(SECTOR, b"\x00"))
            fat.append(first + i + 1 if i + 1 < len(chunks) else END)
        return first

    mini = b""
    minifat: list[int] = []
    starts: dict[str, int] = {}
    for name, data in streams.items():
        if len(data) < CUTOFF:
            first = len(mini) // MINI
            count = max(1, -(-len(data) // MINI))
            minifat.extend(first + i + 1 if i + 1 < count else END for i in range(count))
            mini += _pad(data, MINI) if data else b"\x00" * MINI
            starts[name] = first
    root_start = place(mini) if mini else END
    for name, data in streams.items():
        if len(data) >= CUTOFF:
            starts[name] = place(data)
    names = list(streams)
    directory = _entry("Root Entry", 5, root_start, len(mini), child=1 if names else FREE)
    for i, name in enumerate(names, start=1):
        directory += _entry(name, 2, starts[name], len(streams[name]), right=i + 1 if i < len(names) else FREE)
    first_dir = place(_pad(directory, SECTOR))
    first_minifat = place(struct.pack(f"<{len(minifat)}I", *minifat)) if minifat else END
    minifat_sectors = -(-len(minifat) * 4 // SECTOR)
    nfat = 1
    while len(sectors) + nfat > nfat * (SECTOR // 4):
        nfat += 1
    fat_ids = list(range(len(sectors), len(sectors) + nfat))
    fat.extend([FATSECT] * nfat)
    fat.extend([FREE] * (nfat * (SECTOR // 4) - len(fat)))
    for i in range(nfat):
        sectors.append(struct.pack("<128I", *fat[i * 128 : (i + 1) * 128]))
    difat = fat_ids + [FREE] * (109 - len(fat_ids))
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 16
              + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + b"\x00" * 6
              + struct.pack("<IIIIIIIII", 0, nfat, first_dir, 0, CUTOFF, first_minifat, minifat_sectors, END, 0)
              + struct.pack("<109I", *difat))
    return header + b"".join(sectors)


def word_fib(encrypted: bool = False, text: str = "") -> bytes:
    """A WordDocument stream: FibBase (wIdent 0xA5EC, flags with fEncrypted) then the text."""
    flags = 0x0100 if encrypted else 0
    return struct.pack("<HHHHHH", 0xA5EC, 0xC1, 0, 0x409, 0, flags).ljust(0x400, b"\x00") + text.encode("utf-16-le")


def biff_workbook(filepass: bool = False, text: str = "") -> bytes:
    """A Workbook stream: BOF, optional FILEPASS (RC4), a label-ish record carrying text, EOF."""
    records = struct.pack("<HH", 0x0809, 16) + b"\x00\x06\x05\x00" + b"\x00" * 12
    if filepass:
        records += struct.pack("<HH", 0x002F, 6) + b"\x01\x00\x01\x00\x02\x00"
    payload = text.encode("latin-1")
    records += struct.pack("<HH", 0x00FC, len(payload)) + payload
    return records + struct.pack("<HH", 0x000A, 0)


def ppt_current_user(encrypted: bool = False) -> bytes:
    token = 0xF3D1C4DF if encrypted else 0xE391C05F
    return struct.pack("<HHIII", 0, 0x0FF6, 20, 20, token) + b"\x00" * 12
