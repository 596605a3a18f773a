"""Capture files read without dissection: classic pcap (µs / ns, either byte order), the "modified pcap"
variant (magic a1b2cd34, 24-byte record headers) and pcapng. Yields raw link-layer frames."""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

# Link-layer types we decode (dlp.channels.passive.decode); others are counted and skipped.
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

_PCAP_MAGICS = {
    # magic as read little-endian -> (byte order, ns resolution, record header size, format name)
    0xA1B2C3D4: ("<", False, 16, "pcap"),
    0xD4C3B2A1: (">", False, 16, "pcap"),
    0xA1B23C4D: ("<", True, 16, "pcap (nanosecond)"),
    0x4D3CB2A1: (">", True, 16, "pcap (nanosecond)"),
    0xA1B2CD34: ("<", False, 24, "modified pcap (a1b2cd34)"),
    0x34CDB2A1: (">", False, 24, "modified pcap (a1b2cd34)"),
}
_PCAPNG_SHB = 0x0A0D0D0A
_PCAPNG_BOM = 0x1A2B3C4D
_MAX_RECORD = 256 * 1024 * 1024  # a record claiming more than this is corruption, not a packet


class CaptureError(Exception):
    """A capture that cannot be read at all; the message names the file, the format and what to do."""


@dataclass
class CaptureInfo:
    """What the reader learned about the file; `warnings` are fixed texts for the summary."""

    format: str = ""
    linktypes: set[int] = field(default_factory=set)
    interface_drops: int = 0  # pcapng interface statistics (isb_ifdrop), when the writer recorded them
    warnings: list[str] = field(default_factory=list)


class PcapLayout(NamedTuple):
    """Where a classic pcap file's records are, for a caller that walks them itself (the hot loop in
    dlp.channels.passive.fastpath) instead of iterating frame by frame; `Capture.records_done` takes the
    offset where it stopped."""

    data: mmap.mmap | bytes
    start: int  # offset of the first record header
    end: int
    header: struct.Struct  # record header: seconds, fraction, captured length, original length
    record_size: int  # 16, or 24 for the modified format
    scale: float  # seconds per timestamp fraction unit
    linktype: int
    max_record: int


class Capture:
    """An open capture file. Iterate for (timestamp seconds, link type, frame bytes)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.info = CaptureInfo()
        try:
            with self.path.open("rb") as fh:
                size = self.path.stat().st_size
                self._map: mmap.mmap | bytes = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        except IsADirectoryError:
            raise CaptureError(f"{self.path}: is a directory, not a capture file") from None
        except OSError as exc:
            raise CaptureError(f"{self.path}: {exc.strerror or exc}") from None
        self._data = memoryview(self._map)
        self.size = len(self._data)
        self._layout: PcapLayout | None = None
        self._records = self._open()

    def _open(self) -> Iterator[tuple[float, int, bytes]]:
        data = self._data
        if len(data) < 4:
            raise CaptureError(f"{self.path}: empty or too short to be a capture file")
        head = bytes(data[:4])
        (magic,) = struct.unpack("<I", head)
        if magic in _PCAP_MAGICS:
            return self._pcap(magic)
        if magic == _PCAPNG_SHB:
            return self._pcapng()
        if head[:2] == b"\x1f\x8b":
            raise CaptureError(f"{self.path}: gzip-compressed; decompress it first (gunzip -k FILE)")
        raise CaptureError(
            f"{self.path}: not a capture file (magic {head.hex()}); dlp reads pcap, pcapng and modified pcap. "
            "Convert other formats with: editcap -F pcap IN OUT"
        )

    def __iter__(self) -> Iterator[tuple[float, int, bytes]]:
        self._layout = None
        return self._records

    def take_layout(self, linktype: int | None = None) -> PcapLayout | None:
        """For a classic pcap file not read yet (of `linktype`, when given): its record layout, and the
        records are then the caller's to walk (iterating the capture yields nothing more). Otherwise None."""
        layout = self._layout
        if layout is None or (linktype is not None and layout.linktype != linktype):
            return None
        self._layout = None
        self._records = iter(())
        return layout

    def records_done(self, offset: int, corrupt: bool = False) -> None:
        """A caller walking a PcapLayout stopped at `offset`: note a corrupt or cut-short end."""
        if corrupt:
            self.info.warnings.append(f"corrupt record at byte {offset}; rest of file skipped")
        elif offset < self.size:
            self.info.warnings.append("capture ends with a truncated record (file cut short)")

    def close(self) -> None:
        self._data.release()
        if isinstance(self._map, mmap.mmap):
            self._map.close()

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------ pcap

    def _pcap(self, magic: int) -> Iterator[tuple[float, int, bytes]]:
        order, nanos, record_size, name = _PCAP_MAGICS[magic]
        data = self._data
        if len(data) < 24:
            raise CaptureError(f"{self.path}: {name} header is truncated")
        linktype = struct.unpack_from(order + "I", data, 20)[0] & 0x0FFFFFFF
        self.info.format = name
        self.info.linktypes.add(linktype)
        scale = 1e-9 if nanos else 1e-6
        self._layout = PcapLayout(self._map, 24, self.size, struct.Struct(order + "IIII"), record_size, scale,
                                  linktype, _MAX_RECORD)
        return self._pcap_records(order, scale, record_size, linktype)

    def _pcap_records(self, order: str, scale: float, record_size: int,
                      linktype: int) -> Iterator[tuple[float, int, bytes]]:
        data, end, raw = self._data, self.size, self._map
        header = struct.Struct(order + "IIII")
        offset = 24
        while offset + record_size <= end:
            sec, frac, caplen, _origlen = header.unpack_from(data, offset)
            offset += record_size
            if caplen > _MAX_RECORD:
                self.records_done(offset - record_size, corrupt=True)
                return
            if offset + caplen > end:
                break
            yield sec + frac * scale, linktype, raw[offset : offset + caplen]  # mmap slice: one copy
            offset += caplen
        self.records_done(offset)

    # ---------------------------------------------------------------------------------- pcapng

    def _pcapng(self) -> Iterator[tuple[float, int, bytes]]:
        data = self._data
        if len(data) < 12:
            raise CaptureError(f"{self.path}: pcapng section header is truncated")
        bom = struct.unpack_from("<I", data, 8)[0]
        if bom == _PCAPNG_BOM:
            order = "<"
        elif bom == 0x4D3C2B1A:
            order = ">"
        else:
            raise CaptureError(f"{self.path}: pcapng section header has an unknown byte-order mark")
        self.info.format = "pcapng"
        return self._pcapng_blocks(order)

    def _pcapng_blocks(self, order: str) -> Iterator[tuple[float, int, bytes]]:
        data, end = self._data, self.size
        block_head = struct.Struct(order + "II")
        epb = struct.Struct(order + "IIIII")
        interfaces: list[tuple[int, float]] = []  # (linktype, seconds per timestamp unit)
        offset = 0
        while offset + 12 <= end:
            btype, blen = block_head.unpack_from(data, offset)
            if btype == _PCAPNG_SHB:
                bom = struct.unpack_from("<I", data, offset + 8)[0]
                order = "<" if bom == _PCAPNG_BOM else ">"
                block_head, epb = struct.Struct(order + "II"), struct.Struct(order + "IIIII")
                btype, blen = block_head.unpack_from(data, offset)
                interfaces = []  # interface ids are per section
            if blen < 12 or blen % 4 or offset + blen > end:
                self.info.warnings.append("capture ends with a truncated or corrupt pcapng block")
                return
            body = offset + 8
            if btype == 1:  # interface description
                linktype = struct.unpack_from(order + "H", data, body)[0]
                interfaces.append((linktype, _if_tsresol(data, body + 8, offset + blen - 4, order)))
                self.info.linktypes.add(linktype)
            elif btype == 6:  # enhanced packet
                ifid, ts_hi, ts_lo, caplen, _orig = epb.unpack_from(data, body)
                if ifid < len(interfaces) and body + 20 + caplen <= offset + blen:
                    linktype, unit = interfaces[ifid]
                    yield ((ts_hi << 32) | ts_lo) * unit, linktype, bytes(data[body + 20 : body + 20 + caplen])
            elif btype == 3:  # simple packet: interface 0, no timestamp
                if interfaces:
                    orig = struct.unpack_from(order + "I", data, body)[0]
                    caplen = min(orig, blen - 16)
                    yield 0.0, interfaces[0][0], bytes(data[body + 4 : body + 4 + caplen])
            elif btype == 2:  # obsolete packet block
                ifid, _drops, ts_hi, ts_lo, caplen, _orig = struct.unpack_from(order + "HHIIII", data, body)
                if ifid < len(interfaces):
                    linktype, unit = interfaces[ifid]
                    yield ((ts_hi << 32) | ts_lo) * unit, linktype, bytes(data[body + 20 : body + 20 + caplen])
            elif btype == 5:  # interface statistics: remember kernel drops
                self.info.interface_drops += _isb_drops(data, body + 12, offset + blen - 4, order)
            offset += blen
        if offset < end:
            self.info.warnings.append("capture ends with a truncated pcapng block")


def _options(data: memoryview, start: int, stop: int, order: str) -> Iterator[tuple[int, memoryview]]:
    head = struct.Struct(order + "HH")
    while start + 4 <= stop:
        code, length = head.unpack_from(data, start)
        if code == 0:
            return
        yield code, data[start + 4 : start + 4 + length]
        start += 4 + length + (-length % 4)


def _if_tsresol(data: memoryview, start: int, stop: int, order: str) -> float:
    for code, value in _options(data, start, stop, order):
        if code == 9 and len(value) >= 1:
            raw = value[0]
            return 2.0 ** -(raw & 0x7F) if raw & 0x80 else 10.0 ** -raw
    return 1e-6


def _isb_drops(data: memoryview, start: int, stop: int, order: str) -> int:
    for code, value in _options(data, start, stop, order):
        if code == 5 and len(value) >= 8:
            return int(struct.unpack(order + "Q", value[:8])[0])
    return 0
