"""The hot loop for classic pcap files of Ethernet frames (most offline captures): records are read in
place from the mapped file, the common Ethernet/IPv4/TCP header is unpacked with one struct call, and
the three packets reassembly does least with are handled inline with the same state updates as
`Reassembler.add`:

- a pure ACK of an established flow (the peer's acknowledged offset moves on), or of no flow at all;
- data in a direction nobody reads (HTTP responses, TLS, unknown protocols): only the offset moves on,
  the payload is never copied out of the file;
- in-order data of a read direction that the receiver would accept (TTL and checksum as `_acceptable`).

Every other packet (handshakes, FIN, RST, out-of-order or suspicious segments, a closing flow, other
link or network layers) is handed to `Decoder.decode` / `Reassembler.add` unchanged. The results are
the same either way (tests compare this loop with frame-by-frame `Monitor.packet` on every capture).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dlp import metrics
from dlp.channels.passive.decode import _FAST, ACK, Segment, tcp_checksum_ok
from dlp.channels.passive.reader import LINKTYPE_ETHERNET, Capture, PcapLayout
from dlp.channels.passive.reassembly import _HALF, _LOW_TTL_MARGIN, _WRAP

if TYPE_CHECKING:
    from dlp.channels.passive.monitor import Monitor

_SYN_FIN_RST = 0x07
_EVERY = 8192  # packets between bulk stats updates, fragment expiry and progress calls (as Monitor.feed)


def feed_capture(monitor: Monitor, capture: Capture, progress: Callable[[int], None] | None) -> bool:
    """Run the whole capture through `monitor` if it is a classic pcap of Ethernet frames not read yet;
    False (nothing done) otherwise."""
    layout = capture.take_layout(LINKTYPE_ETHERNET)
    if layout is None:
        return False
    offset, corrupt = _feed(monitor, layout, progress)
    capture.records_done(offset, corrupt)
    return True


def _feed(monitor: Monitor, layout: PcapLayout, progress: Callable[[int], None] | None) -> tuple[int, bool]:
    stats = monitor.stats
    decoder = monitor.decoder
    decode = decoder.decode
    reassembler = monitor.reassembler
    add = reassembler.add
    deliver = reassembler._deliver
    account = reassembler._account
    flows = reassembler.flows
    flows_get = flows.get
    move_to_end = flows.move_to_end
    verify = reassembler.limits.checksums != "ignore"
    data, offset, end = layout.data, layout.start, layout.end
    record = layout.header.unpack_from
    fast = _FAST.unpack_from
    record_size, scale, max_record = layout.record_size, layout.scale, layout.max_record
    since = monitor._packets_since_expire
    n = counted = nbytes = tcp = 0
    ts = 0.0
    corrupt = False
    try:
        while offset + record_size <= end:
            sec, frac, caplen, _origlen = record(data, offset)
            if caplen > max_record:
                corrupt = True
                break
            start = offset + record_size
            stop = start + caplen
            if stop > end:
                offset = start  # as the frame-by-frame reader: the cut-short record's header was read
                break
            offset = stop
            ts = sec + frac * scale
            n += 1
            nbytes += caplen
            segment = None
            if caplen >= 54:
                ethertype, ver_ihl, total, frag, ttl, proto, src, dst, sport, dport, seq, ack, off_flags = \
                    fast(data, start + 12)
                doff = (off_flags >> 12) * 4
                if ethertype == 0x0800 and ver_ihl == 0x45 and proto == 6 and not frag & 0x3FFF \
                        and total >= 40 and 14 + total <= caplen and 20 <= doff <= total - 20:
                    tcp += 1
                    flags = off_flags & 0x1FF
                    handled = False
                    if flags & ACK and not flags & _SYN_FIN_RST:
                        if src < dst or (src == dst and sport <= dport):
                            key, forward = (src, sport, dst, dport), True
                        else:
                            key, forward = (dst, dport, src, sport), False
                        flow = flows_get(key)
                        if flow is None:
                            if total == 20 + doff:  # a stray ACK (after the close, say): add() only notes the time
                                reassembler._now = ts
                                handled = True
                        elif flow.to_server.fin_at is None and flow.to_client.fin_at is None:
                            from_client = forward == flow.client_low
                            if from_client:
                                d, other = flow.to_server, flow.to_client
                            else:
                                d, other = flow.to_client, flow.to_server
                            base = d.base
                            if base is not None:
                                plen = total - 20 - doff
                                rel = (seq - base) % _WRAP
                                rel = rel - _WRAP if rel >= _HALF else rel
                                consumer = flow.consumer
                                assert consumer is not None
                                deliver_payload = False
                                if not plen:
                                    handled = True
                                elif not consumer.wants(from_client):
                                    if rel + plen > d.next:
                                        d.next = rel + plen
                                    handled = True
                                elif rel == d.next and not d.starts and d.ttl and ttl + _LOW_TTL_MARGIN > d.ttl \
                                        and (not verify or d.checksums == "offload" or (
                                            d.checksums == "verify"
                                            and tcp_checksum_ok(src, dst, data[start + 34 : start + 14 + total]))):
                                    handled = deliver_payload = True
                                if handled:
                                    reassembler._now = ts
                                    move_to_end(key)
                                    flow.last_ts = ts
                                    obase = other.base
                                    if obase is not None:
                                        arel = (ack - obase) % _WRAP
                                        acked = arel - _WRAP if arel >= _HALF else arel
                                        if acked > other.acked:
                                            other.acked = acked
                                    if deliver_payload:
                                        deliver(flow, d, from_client, data[start + 34 + doff : start + 14 + total])
                                        account(flow)
                                    reassembler._since_sweep += 1
                                    if reassembler._since_sweep >= 4096:
                                        reassembler._since_sweep = 0
                                        reassembler._sweep()
                    if not handled:
                        segment = Segment(ts, src, dst, sport, dport, seq, ack, flags, ttl,
                                          data[start + 34 + doff : start + 14 + total],
                                          data[start + 34 : start + 14 + total])
                else:
                    segment = decode(ts, LINKTYPE_ETHERNET, data[start:stop])
            else:
                segment = decode(ts, LINKTYPE_ETHERNET, data[start:stop])
            if segment is not None:
                add(segment)
            since += 1
            if since >= _EVERY:
                stats.packets += n - counted
                stats.bytes += nbytes
                stats.tcp_packets += tcp
                counted, nbytes, since, tcp = n, 0, 0, 0
                metrics.CAPTURE_PACKETS.inc(_EVERY)
                decoder.fragments.expire(ts)
                if progress is not None:
                    progress(n)
    finally:
        stats.packets += n - counted
        stats.bytes += nbytes
        stats.tcp_packets += tcp
        monitor._packets_since_expire = since
    return offset, corrupt
