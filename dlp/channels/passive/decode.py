"""Frame -> TCP segment, parsed with struct from raw bytes (scapy's dissectors are ~100x slower):
Ethernet with 802.1Q/QinQ tags, Linux cooked capture (SLL, SLL2), raw IP, BSD loopback; IPv4 with
fragment reassembly; IPv6 with extension headers and fragments; TCP."""

from __future__ import annotations

import struct
from typing import NamedTuple

from dlp.channels.passive.reader import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
)
from dlp.channels.passive.stats import CaptureStats

_VLAN_TYPES = {0x8100, 0x88A8, 0x9100}
_IPV6_SKIPPABLE = {0, 43, 60}  # hop-by-hop, routing, destination options
_FRAGMENT_MEMCAP = 64 * 1024 * 1024

_H = struct.Struct("!H")
_TCP = struct.Struct("!HHIIH")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
# From the ethertype (offset 12): ethertype, version/IHL, total length, flags/fragment offset, TTL,
# protocol, addresses; then the TCP ports, sequence, acknowledgement, data offset and flags.
_FAST = struct.Struct("!HBxHxxHBBxx4s4sHHIIH")


class Segment(NamedTuple):
    """One TCP segment. `src`/`dst` are packed addresses (4 or 16 bytes); `raw` is the whole TCP
    segment (header + payload) for checksum validation, which is only done when it matters."""

    ts: float
    src: bytes
    dst: bytes
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    ttl: int
    payload: bytes
    raw: bytes


FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def tcp_checksum_ok(src: bytes, dst: bytes, raw: bytes) -> bool:
    """The Internet checksum over pseudo-header + segment, without a Python loop: the ones'-complement
    sum of 16-bit words is congruent to the integer the bytes spell modulo 0xFFFF (2^16 = 1 mod 0xFFFF).
    Read little-endian, which CPython converts twice as fast: that sums the byte-swapped words, i.e. the
    sum times 2^8, which is 0 modulo 0xFFFF exactly when the sum is (2^8 is invertible). Little-endian also
    makes the pad byte of an odd-length segment a leading zero (nothing to append) and lets the two parts be
    summed apart (the segment starts at an even offset: its weight is a power of 2^16, i.e. 1)."""
    length = len(raw)
    if len(src) == 4:
        pseudo = src + dst + b"\x00\x06" + _H.pack(length)
    else:
        pseudo = src + dst + length.to_bytes(4, "big") + b"\x00\x00\x00\x06"
    return (int.from_bytes(pseudo, "little") + int.from_bytes(raw, "little")) % 0xFFFF == 0


class _Datagram:
    __slots__ = ("bad", "first_ts", "pieces", "size", "total")

    def __init__(self, ts: float) -> None:
        self.first_ts = ts
        self.pieces: dict[int, bytes] = {}
        self.total: int | None = None
        self.size = 0
        self.bad = False


class Defragmenter:
    """IP fragment reassembly. Overlapping fragments (other than exact duplicates) are the classic
    evasion: the whole datagram is dropped and counted, as RFC 5722 requires for IPv6."""

    def __init__(self, stats: CaptureStats, timeout: float) -> None:
        self.stats = stats
        self.timeout = timeout
        self.pending: dict[tuple[bytes, bytes, int, int], _Datagram] = {}
        self.held = 0

    def add(self, key: tuple[bytes, bytes, int, int], ts: float, offset: int, more: bool,
            data: bytes) -> bytes | None:
        dgram = self.pending.get(key)
        if dgram is None:
            if self.held + len(data) > _FRAGMENT_MEMCAP:
                self.expire(float("inf"))
            dgram = self.pending[key] = _Datagram(ts)
        if dgram.bad:
            return None
        end = offset + len(data)
        for start, piece in dgram.pieces.items():
            if start < end and offset < start + len(piece):
                if start == offset and piece == data:
                    return None  # an exact duplicate: harmless
                self._drop(key, dgram)
                self.stats.anomaly("overlapping_fragments")
                return None
        if not more:
            if dgram.total is not None and dgram.total != end:
                self._drop(key, dgram)
                self.stats.anomaly("overlapping_fragments")
                return None
            dgram.total = end
        dgram.pieces[offset] = data
        dgram.size += len(data)
        self.held += len(data)
        if dgram.total is None or dgram.size < dgram.total:
            return None
        out = b"".join(dgram.pieces[o] for o in sorted(dgram.pieces))
        self.held -= dgram.size
        del self.pending[key]
        return out if len(out) == dgram.total else None

    def _drop(self, key: tuple[bytes, bytes, int, int], dgram: _Datagram) -> None:
        # Keep a tombstone so later fragments of the same datagram are dropped too, until it expires.
        self.held -= dgram.size
        dgram.pieces.clear()
        dgram.size = 0
        dgram.bad = True

    def expire(self, now: float) -> None:
        for key, dgram in list(self.pending.items()):
            if now - dgram.first_ts > self.timeout:
                if not dgram.bad:
                    self.stats.anomaly("fragments_expired")
                self.held -= dgram.size
                del self.pending[key]


class Decoder:
    """Turns frames into TCP segments; counts what it cannot use."""

    def __init__(self, stats: CaptureStats, fragment_timeout: float = 30.0) -> None:
        self.stats = stats
        self.fragments = Defragmenter(stats, fragment_timeout)

    def decode(self, ts: float, linktype: int, frame: bytes) -> Segment | None:
        try:
            # Fast path, most of any capture: Ethernet, IPv4 without options or fragmentation, TCP. One
            # unpack reads the ethertype, the IPv4 header fields and the TCP header in one go.
            if linktype == 1 and len(frame) >= 54:
                ethertype, ver_ihl, total, frag, ttl, proto, src, dst, sport, dport, seq, ack, off_flags = \
                    _FAST.unpack_from(frame, 12)
                if ethertype == 0x0800 and ver_ihl == 0x45 and proto == 6 and not frag & 0x3FFF:
                    end = 14 + total
                    doff = (off_flags >> 12) * 4
                    if total >= 40 and end <= len(frame) and 20 <= doff <= total - 20:
                        self.stats.tcp_packets += 1
                        return Segment(ts, src, dst, sport, dport, seq, ack, off_flags & 0x1FF, ttl,
                                       frame[34 + doff : end], frame[34:end])
            return self._decode(ts, linktype, frame)
        except (struct.error, IndexError):
            self.stats.decode_errors += 1
            return None

    def _decode(self, ts: float, linktype: int, frame: bytes) -> Segment | None:
        if linktype == LINKTYPE_ETHERNET:
            ethertype = (frame[12] << 8) | frame[13]
            off = 14
            while ethertype in _VLAN_TYPES:
                ethertype = (frame[off + 2] << 8) | frame[off + 3]
                off += 4
        elif linktype == LINKTYPE_LINUX_SLL:
            ethertype, off = (frame[14] << 8) | frame[15], 16
        elif linktype == LINKTYPE_LINUX_SLL2:
            ethertype, off = (frame[0] << 8) | frame[1], 20
        elif linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6, 12, 14):
            version = frame[0] >> 4
            ethertype, off = (0x0800 if version == 4 else 0x86DD if version == 6 else 0), 0
        elif linktype == LINKTYPE_NULL:
            family = struct.unpack_from("<I", frame)[0]
            if family > 0xFFFF:
                family = struct.unpack_from(">I", frame)[0]
            ethertype, off = (0x0800 if family == 2 else 0x86DD if family in (10, 24, 28, 30) else 0), 4
        else:
            self.stats.other_packets += 1
            return None
        if ethertype == 0x0800:
            return self._ipv4(ts, frame, off)
        if ethertype == 0x86DD:
            return self._ipv6(ts, frame, off)
        self.stats.other_packets += 1
        return None

    def _ipv4(self, ts: float, frame: bytes, off: int) -> Segment | None:
        ver_ihl, _tos, total, ident, frag, ttl, proto, _csum, src, dst = _IPV4.unpack_from(frame, off)
        ihl = (ver_ihl & 0x0F) * 4
        if ver_ihl >> 4 != 4 or ihl < 20 or total < ihl:
            self.stats.decode_errors += 1
            return None
        if proto != 6:
            self.stats.other_packets += 1
            return None
        end = off + total
        if end > len(frame):
            self.stats.anomaly("truncated_packet")
            end = len(frame)
        if frag & 0x3FFF:  # more-fragments flag or a non-zero offset
            body = self.fragments.add((src, dst, ident, 4), ts, (frag & 0x1FFF) * 8, bool(frag & 0x2000),
                                      frame[off + ihl : end])
            if body is None:
                return None
            return self._tcp(ts, src, dst, ttl, body)
        return self._tcp(ts, src, dst, ttl, frame[off + ihl : end])

    def _ipv6(self, ts: float, frame: bytes, off: int) -> Segment | None:
        if frame[off] >> 4 != 6:
            self.stats.decode_errors += 1
            return None
        plen = (frame[off + 4] << 8) | frame[off + 5]
        nh, hlim = frame[off + 6], frame[off + 7]
        src, dst = frame[off + 8 : off + 24], frame[off + 24 : off + 40]
        end = off + 40 + plen
        if end > len(frame):
            self.stats.anomaly("truncated_packet")
            end = len(frame)
        p = off + 40
        fragment: tuple[int, bool, int] | None = None
        while nh != 6:
            if nh in _IPV6_SKIPPABLE:
                nh, p = frame[p], p + (frame[p + 1] + 1) * 8
            elif nh == 44:
                offset_flags = (frame[p + 2] << 8) | frame[p + 3]
                ident = struct.unpack_from("!I", frame, p + 4)[0]
                fragment = (offset_flags & 0xFFF8, bool(offset_flags & 1), ident)
                nh, p = frame[p], p + 8
            elif nh == 51:  # authentication header
                nh, p = frame[p], p + (frame[p + 1] + 2) * 4
            else:
                self.stats.other_packets += 1
                return None
        body = frame[p:end]
        if fragment is not None and (fragment[0] or fragment[1]):
            assembled = self.fragments.add((src, dst, fragment[2], 6), ts, fragment[0], fragment[1], body)
            if assembled is None:
                return None
            body = assembled
        return self._tcp(ts, src, dst, hlim, body)

    def _tcp(self, ts: float, src: bytes, dst: bytes, ttl: int, seg: bytes) -> Segment | None:
        sport, dport, seq, ack, off_flags = _TCP.unpack_from(seg)
        doff = (off_flags >> 12) * 4
        if doff < 20 or doff > len(seg):
            self.stats.decode_errors += 1
            return None
        self.stats.tcp_packets += 1
        return Segment(ts, src, dst, sport, dport, seq, ack, off_flags & 0x1FF, ttl, seg[doff:], seg)
