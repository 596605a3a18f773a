"""TCP stream reassembly that says what it could not see.

Unlike scapy's TCPSession (which zero-fills holes and lets a later segment overwrite earlier bytes
silently), this reassembler:
- orders segments by sequence number (wraparound-safe: offsets are relative to the first sequence number);
- drops identical retransmissions (counted) and reports overlaps with *different* bytes as the anomaly
  `overlap_different_data`, handing the other version to the consumer so that both are inspected;
- never fills a hole: missing bytes become a `gap(n)` call (the stream is incomplete, counted);
- ignores segments the receiver would drop (bad checksum, TTL well below the flow's) and counts them;
- bounds memory per flow and globally, evicting the least recently active flows and counting the
  bytes it had to drop.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from dlp.channels.passive.decode import ACK, FIN, RST, SYN, Segment, tcp_checksum_ok
from dlp.channels.passive.stats import CaptureStats

_WRAP = 1 << 32
_HALF = 1 << 31
_TAIL = 64 * 1024  # delivered bytes kept per direction to compare retransmissions against
_CONTEXT = 256  # bytes of surrounding stream kept with the other version of an overlap
_LOW_TTL_MARGIN = 8  # a segment this many hops below the flow's TTL may never reach the receiver
_WELL_KNOWN_SERVER_PORTS = {25, 80, 110, 143, 443, 465, 587, 993, 995, 2525, 3128, 8000, 8080, 8443}


class StreamConsumer(Protocol):
    """What a flow's application-protocol handler receives, per direction, in stream order."""

    def data(self, from_client: bool, data: bytes) -> None: ...

    def gap(self, from_client: bool, missing: int) -> None: ...

    def overlap(self, from_client: bool, other_version: bytes) -> None: ...

    def close(self, reason: str) -> None: ...  # "fin", "rst", "idle", "end", "evicted"

    def wants(self, from_client: bool) -> bool: ...  # False: skip this direction's bytes (not read)

    def buffered(self) -> int: ...


@dataclass(frozen=True, slots=True)
class ReassemblyLimits:
    flow_memcap: int = 16 * 1024 * 1024
    global_memcap: int = 512 * 1024 * 1024
    max_flows: int = 100_000
    idle_seconds: float = 300.0
    checksums: str = "auto"  # "auto" | "verify" | "ignore"


class Direction:
    """One half of a connection: bytes from one endpoint, in order."""

    __slots__ = ("acked", "base", "checksums", "fin_at", "next", "pending", "pending_bytes", "starts",
                 "tail", "tail_start", "ttl")

    def __init__(self) -> None:
        self.base: int | None = None  # sequence number of stream offset 0
        self.next = 0  # stream offset of the next byte expected
        self.starts: list[int] = []  # sorted offsets of out-of-order pieces (non-overlapping)
        self.pending: dict[int, bytes] = {}
        self.pending_bytes = 0
        self.tail = bytearray()  # the last delivered bytes, from offset tail_start
        self.tail_start = 0
        self.fin_at: int | None = None
        self.acked = 0  # highest offset the peer acknowledged
        self.ttl = 0
        self.checksums = ""  # "" undecided, "verify", "offload"

    def offset(self, seq: int) -> int:
        assert self.base is not None
        rel = (seq - self.base) % _WRAP
        return rel - _WRAP if rel >= _HALF else rel


class Flow:
    __slots__ = ("client", "client_low", "consumer", "first_ts", "held", "key", "last_ts", "midstream", "server",
                 "to_client", "to_server")

    def __init__(self, key: tuple[bytes, int, bytes, int], client: tuple[bytes, int], server: tuple[bytes, int],
                 ts: float, midstream: bool) -> None:
        self.key = key
        self.client = client
        self.server = server
        self.client_low = client == (key[0], key[1])  # the client is the first endpoint of the key
        self.to_server = Direction()  # bytes the client sent
        self.to_client = Direction()
        self.first_ts = self.last_ts = ts
        self.midstream = midstream
        self.held = 0  # bytes this flow holds (out-of-order pieces + the consumer's buffer)
        self.consumer: StreamConsumer | None = None


class Reassembler:
    def __init__(self, stats: CaptureStats, consumer_factory: Callable[[Flow], StreamConsumer],
                 limits: ReassemblyLimits | None = None) -> None:
        self.stats = stats
        self.factory = consumer_factory
        self.limits = limits or ReassemblyLimits()
        self.flows: OrderedDict[tuple[bytes, int, bytes, int], Flow] = OrderedDict()
        self.held = 0
        self._now = 0.0
        self._since_sweep = 0
        self._reset: OrderedDict[tuple[bytes, int, bytes, int], None] = OrderedDict()  # recently reset flows

    # --------------------------------------------------------------------------------- segments

    def add(self, seg: Segment) -> None:
        # The common case (an established flow, in-order data or a pure ACK) runs through this method
        # without helper calls: fields unpacked once, offsets computed inline.
        ts, src, dst, sport, dport, seq, ack, flags, ttl, seg_payload, _raw = seg
        self._now = ts
        if src < dst or (src == dst and sport <= dport):
            key, forward = (src, sport, dst, dport), True
        else:
            key, forward = (dst, dport, src, sport), False
        flow = self.flows.get(key)
        if flow is not None and flags & SYN and not flags & ACK and flow.to_server.base is not None \
                and flow.to_server.base != (seq + 1) % _WRAP:
            self._close(flow, "end")  # the port pair is reused by a new connection
            flow = None
        if flow is None:
            if flags & RST or (not seg_payload and not flags & SYN):
                return  # nothing to reassemble: a stray ACK or reset of a flow we do not track
            flow = self._open(key, seg)
        else:
            self.flows.move_to_end(key)
        flow.last_ts = ts
        consumer = flow.consumer
        assert consumer is not None
        from_client = forward == flow.client_low
        d, other = (flow.to_server, flow.to_client) if from_client else (flow.to_client, flow.to_server)
        payload = seg_payload
        base = d.base
        if payload and not flags & (SYN | RST) and base is not None and not consumer.wants(from_client):
            # Bytes nobody reads (HTTP responses, TLS, unknown protocols): only keep the offsets right.
            rel = (seq - base) % _WRAP
            end = (rel - _WRAP if rel >= _HALF else rel) + len(payload)
            if end > d.next:
                d.next = end
            payload = b""
        elif payload and d.ttl == 0:
            d.ttl = ttl  # from data, not the handshake: middleboxes often answer SYNs themselves
        if (payload or flags & RST) and not self._acceptable(seg, d):
            return
        if flags & SYN:
            if base is None or (not d.next and not d.pending):
                d.base = (seq + 1) % _WRAP
            if seg_payload:
                self.stats.anomaly("data_on_syn")
                self._insert(flow, d, from_client, 0, seg_payload)
        elif base is None:
            d.base = seq
        if flags & ACK:
            obase = other.base
            if obase is not None:
                rel = (ack - obase) % _WRAP
                acked = rel - _WRAP if rel >= _HALF else rel
                if acked > other.acked:
                    other.acked = acked
        if payload and not flags & SYN:
            start = d.offset(seq)
            if d.fin_at is None or start < d.fin_at:
                self._insert(flow, d, from_client, start, payload)
        if flags & (FIN | RST):
            if flags & FIN and d.fin_at is None:
                d.fin_at = d.offset(seq) + len(seg_payload)
            if flags & RST:
                self._close(flow, "rst")
                self._reset[key] = None
                if len(self._reset) > 10_000:
                    self._reset.popitem(last=False)
                return
        ts_fin, tc_fin = flow.to_server.fin_at, flow.to_client.fin_at
        if ts_fin is not None and tc_fin is not None \
                and flow.to_server.next >= ts_fin and flow.to_client.next >= tc_fin:
            self._close(flow, "fin")
            return
        if payload:
            self._account(flow)
        self._since_sweep += 1
        if self._since_sweep >= 4096:
            self._since_sweep = 0
            self._sweep()

    def _open(self, key: tuple[bytes, int, bytes, int], seg: Segment) -> Flow:
        src, dst = (seg.src, seg.sport), (seg.dst, seg.dport)
        midstream = False
        if seg.flags & SYN:
            client, server = (dst, src) if seg.flags & ACK else (src, dst)
        else:
            midstream = True
            after_reset = key in self._reset
            self._reset.pop(key, None)
            self.stats.anomaly("data_after_rst" if after_reset else "midstream_pickup")
            client, server = (dst, src) if _looks_like_server(seg.sport, seg.dport) else (src, dst)
        flow = Flow(key, client, server, seg.ts, midstream)
        flow.consumer = self.factory(flow)
        self.flows[key] = flow
        self.stats.flows += 1
        while len(self.flows) > self.limits.max_flows:
            self._evict_oldest()
        return flow

    def _acceptable(self, seg: Segment, d: Direction) -> bool:
        """Would the receiver accept this segment? Checksums are verified unless the sender offloads
        them (captured on the sending host, every checksum is wrong): a direction whose first data
        segment fails is treated as offloaded in `auto` mode."""
        if d.ttl and seg.ttl + _LOW_TTL_MARGIN <= d.ttl:
            self.stats.anomaly("low_ttl")
            return False
        mode = self.limits.checksums
        if mode == "ignore" or d.checksums == "offload":
            return True
        ok = tcp_checksum_ok(seg.src, seg.dst, seg.raw)
        if not d.checksums:
            d.checksums = "verify" if ok or mode == "verify" else "offload"
            return ok or mode != "verify"
        if not ok:
            self.stats.anomaly("bad_checksum")
        return ok

    # ------------------------------------------------------------------------------- stream data

    def _insert(self, flow: Flow, d: Direction, from_client: bool, start: int, data: bytes) -> None:
        end = start + len(data)
        if start < d.next:
            self._compare_delivered(flow, d, from_client, start, data[: d.next - start])
            if end <= d.next:
                return
            data, start = data[d.next - start :], d.next
        if start == d.next and not d.starts:
            self._deliver(flow, d, from_client, data)
            return
        self._add_pending(flow, d, from_client, start, data)
        self._drain(flow, d, from_client)
        if d.pending_bytes > self.limits.flow_memcap:
            self._skip_gap(flow, d, from_client)

    def _compare_delivered(self, flow: Flow, d: Direction, from_client: bool, start: int, data: bytes) -> None:
        lo = max(start, d.tail_start)
        if lo >= start + len(data):
            self.stats.retransmissions += 1  # older than what we keep: assume a plain retransmission
            return
        seen = bytes(d.tail[lo - d.tail_start : lo - d.tail_start + len(data) - (lo - start)])
        if seen == data[lo - start :]:
            self.stats.retransmissions += 1
            return
        self._other_version(flow, d, from_client, lo, data[lo - start :])

    def _add_pending(self, flow: Flow, d: Direction, from_client: bool, start: int, data: bytes) -> None:
        end = start + len(data)
        i = max(bisect.bisect_right(d.starts, start) - 1, 0)
        cursor = start
        new: list[tuple[int, bytes]] = []
        duplicate = True
        while i < len(d.starts) and d.starts[i] < end:
            s = d.starts[i]
            piece = d.pending[s]
            e = s + len(piece)
            i += 1
            if e <= cursor:
                continue
            if s > cursor:
                new.append((cursor, data[cursor - start : s - start]))
                duplicate = False
            lo, hi = max(s, cursor), min(e, end)
            if piece[lo - s : hi - s] != data[lo - start : hi - start]:
                self._other_version(flow, d, from_client, lo, data[lo - start : hi - start], pending=True)
            cursor = hi
        if cursor < end:
            new.append((cursor, data[cursor - start :]))
            duplicate = False
        if duplicate:
            self.stats.retransmissions += 1
        for s, piece in new:
            bisect.insort(d.starts, s)
            d.pending[s] = piece
            d.pending_bytes += len(piece)

    def _drain(self, flow: Flow, d: Direction, from_client: bool) -> None:
        while d.starts and d.starts[0] <= d.next:
            s = d.starts.pop(0)
            piece = d.pending.pop(s)
            d.pending_bytes -= len(piece)
            if s + len(piece) > d.next:
                self._deliver(flow, d, from_client, piece[d.next - s :])

    def _deliver(self, flow: Flow, d: Direction, from_client: bool, data: bytes) -> None:
        d.next += len(data)
        d.tail += data
        if len(d.tail) > 2 * _TAIL:
            cut = len(d.tail) - _TAIL
            del d.tail[:cut]
            d.tail_start += cut
        assert flow.consumer is not None
        flow.consumer.data(from_client, data)

    def _other_version(self, flow: Flow, d: Direction, from_client: bool, start: int, data: bytes,
                       pending: bool = False) -> None:
        """Bytes that differ from what we already hold for the same offsets (Ptacek-Newsham): keep the
        first version in the stream and hand the other, with some surrounding bytes, to the consumer."""
        self.stats.anomaly("overlap_different_data")
        before = b""
        if not pending:
            lo = max(start - _CONTEXT, d.tail_start)
            before = bytes(d.tail[lo - d.tail_start : start - d.tail_start])
        assert flow.consumer is not None
        flow.consumer.overlap(from_client, before + data)

    def _skip_gap(self, flow: Flow, d: Direction, from_client: bool) -> None:
        """Give up waiting for the bytes before the first out-of-order piece: the stream has a hole."""
        missing = d.starts[0] - d.next
        self.stats.gap(missing)
        assert flow.consumer is not None
        flow.consumer.gap(from_client, missing)
        d.next = d.starts[0]
        self._drain(flow, d, from_client)

    def _finish_direction(self, flow: Flow, d: Direction, from_client: bool) -> None:
        while d.starts:
            self._skip_gap(flow, d, from_client)
        # Bytes the peer acknowledged (or a FIN beyond them) that never appeared in the capture.
        end = d.fin_at if d.fin_at is not None else d.acked
        if d.base is not None and end > d.next and end - d.next < _HALF:
            missing = end - d.next
            self.stats.gap(missing)
            assert flow.consumer is not None
            flow.consumer.gap(from_client, missing)
            d.next = end

    # --------------------------------------------------------------------------------- lifecycle

    def _account(self, flow: Flow) -> None:
        assert flow.consumer is not None
        held = flow.to_server.pending_bytes + flow.to_client.pending_bytes + flow.consumer.buffered()
        self.held += held - flow.held
        flow.held = held
        while self.held > self.limits.global_memcap and self.flows:
            self._evict_oldest()

    def _evict_oldest(self) -> None:
        _key, flow = next(iter(self.flows.items()))
        dropped = flow.to_server.pending_bytes + flow.to_client.pending_bytes
        self.stats.evicted_flows += 1
        self.stats.evicted(dropped)
        for d in (flow.to_server, flow.to_client):
            d.starts.clear()
            d.pending.clear()
            d.pending_bytes = 0
        self._close(flow, "evicted")

    def _close(self, flow: Flow, reason: str) -> None:
        if reason != "evicted":
            self._finish_direction(flow, flow.to_server, True)
            self._finish_direction(flow, flow.to_client, False)
        self.flows.pop(flow.key, None)
        self.held -= flow.held
        flow.held = 0
        assert flow.consumer is not None
        flow.consumer.close(reason)

    def _sweep(self) -> None:
        horizon = self._now - self.limits.idle_seconds
        while self.flows:
            flow = next(iter(self.flows.values()))
            if flow.last_ts >= horizon:
                break
            self._close(flow, "idle")

    def finish(self) -> None:
        """End of capture: every open flow is closed, its holes reported."""
        for flow in list(self.flows.values()):
            self._close(flow, "end")


def _looks_like_server(sport: int, dport: int) -> bool:
    """For a flow picked up mid-stream: is the sender of this packet the server?"""
    if sport in _WELL_KNOWN_SERVER_PORTS and dport not in _WELL_KNOWN_SERVER_PORTS:
        return True
    if dport in _WELL_KNOWN_SERVER_PORTS:
        return False
    return sport < dport
