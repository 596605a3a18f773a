"""TCP reassembly through the whole monitor (scapy-built packets -> verdicts): order, retransmissions,
overlaps, gaps, wraparound, SYN data, resets, mid-stream pickup, insertion packets, fragments, caps."""

from __future__ import annotations

from prometheus_client import REGISTRY

from dlp.config import PassiveSettings


def _metric(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_one_byte_segments_out_of_order_are_reassembled(gen, monitor_run):
    run = monitor_run([p for p in gen.demo() if p.haslayer("TCP") and 80 in (p["TCP"].sport, p["TCP"].dport)])
    posts = [r for r in run.results if r.message.envelope.method == "POST"]
    assert len(posts) == 1
    assert posts[0].message.raw.endswith(b'"expiry": "04/28"}')
    assert [f.entity for f in posts[0].verdict.findings] == ["CREDIT_CARD"]
    assert run.stats.gaps == 0


def test_identical_retransmissions_give_one_alert(gen, monitor_run):
    run = monitor_run(gen.retransmissions())
    assert [str(r.verdict.action) for r in run.results] == ["alert"]
    assert run.stats.retransmissions >= 4
    assert run.stats.anomalies["overlap_different_data"] == 0


def test_overlap_with_different_data_inspects_both_versions(gen, monitor_run):
    before = _metric("dlp_capture_anomalies_total", {"kind": "overlap_different_data"})
    run = monitor_run(gen.overlap())
    assert run.stats.anomalies["overlap_different_data"] == 1
    assert _metric("dlp_capture_anomalies_total", {"kind": "overlap_different_data"}) == before + 1
    # the first version (a decoy) reached the parser; the second (with the card) was inspected too
    post = next(r for r in run.results if r.message.envelope.method == "POST")
    assert b"0000 0000 0000 0000" in post.message.raw
    other = next(r for r in run.results if r.message.envelope.method == "overlap")
    assert "overlap_different_data" in [str(u.reason) for u in other.verdict.uninspected]
    assert "CREDIT_CARD" in [f.entity for f in other.verdict.findings]


def test_a_gap_is_never_clean(gen, monitor_run):
    before = _metric("dlp_reassembly_gaps_total")
    run = monitor_run(gen.gap())
    assert run.stats.gaps == 1 and run.stats.gap_bytes == 40
    assert _metric("dlp_reassembly_gaps_total") == before + 1
    assert "reassembly_gap" in run.reasons()
    assert all(str(r.verdict.action) != "pass" for r in run.results)
    assert not any(b"\x00" * 8 in r.message.raw for r in run.results)  # no zero-filled hole


def test_missing_last_segment_is_a_gap_from_the_peer_ack(gen, monitor_run):
    conv = gen.Conversation(("10.9.0.1", 50000), ("198.51.100.80", 80))
    conv.handshake()
    request = gen.http_post()
    conv.send(True, request, size=100, skip={len(request) // 100})  # lose the last piece
    conv.close()
    run = monitor_run(conv.packets)
    assert run.stats.gaps >= 1
    assert "reassembly_gap" in run.reasons() or "truncated" in run.reasons()


def test_sequence_wraparound(gen, monitor_run):
    run = monitor_run(gen.wraparound())
    assert run.entities() == ["CREDIT_CARD"]
    assert run.stats.gaps == 0


def test_wraparound_with_reordering(gen, monitor_run):
    conv = gen.Conversation(("10.9.0.2", 50001), ("198.51.100.80", 80), isn_client=2**32 - 15)
    conv.handshake()
    request = gen.http_post()
    pieces = (len(request) + 9) // 10
    conv.send(True, request, size=10, order=list(reversed(range(pieces))))
    conv.close()
    run = monitor_run(conv.packets)
    assert run.entities() == ["CREDIT_CARD"] and run.stats.gaps == 0


def test_data_on_syn_is_read(gen, monitor_run):
    conv = gen.Conversation(("10.9.0.3", 50002), ("198.51.100.80", 80))
    conv.handshake(syn_payload=gen.http_post())
    conv.close()
    run = monitor_run(conv.packets)
    assert run.stats.anomalies["data_on_syn"] == 1
    assert run.entities() == ["CREDIT_CARD"]


def test_data_after_reset_is_still_inspected(gen, monitor_run):
    conv = gen.Conversation(("10.9.0.4", 50003), ("198.51.100.80", 80))
    conv.handshake()
    conv.emit(conv.segment(True, "R"))
    conv.send(True, gen.http_post())
    run = monitor_run(conv.packets)
    assert run.stats.anomalies["data_after_rst"] == 1
    assert run.entities() == ["CREDIT_CARD"]


def test_midstream_pickup(gen, monitor_run):
    conv = gen.Conversation(("10.9.0.5", 50004), ("198.51.100.80", 80))
    conv.handshake()
    conv.send(True, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    conv.send(True, gen.http_post())
    conv.close()
    run = monitor_run(conv.packets[5:])  # handshake and the first request not captured
    assert run.stats.anomalies["midstream_pickup"] == 1
    assert run.entities() == ["CREDIT_CARD"]


def test_insertion_packets_are_ignored_and_counted(gen, monitor_run):
    run = monitor_run(gen.insertion())
    assert run.stats.anomalies["bad_checksum"] == 1
    assert run.stats.anomalies["low_ttl"] == 1
    second = next(r for r in run.results if r.message.envelope.destination.endswith("/api/second"))
    assert b"0000" not in second.message.raw.split(b"\r\n\r\n", 1)[1][:60]
    assert [f.entity for f in second.verdict.findings] == ["CREDIT_CARD"]


def test_checksum_offload_is_tolerated(gen, monitor_run):
    conv = gen.Conversation(("10.9.0.6", 50005), ("198.51.100.80", 80))
    conv.handshake()
    start = conv.seq[True]
    request = gen.http_post()
    for i in range(0, len(request), 50):
        conv.emit(conv.segment(True, "PA", request[i : i + 50], seq=start + i, bad_checksum=True))
    conv.seq[True] += len(request)
    conv.close()
    run = monitor_run(conv.packets)
    assert run.entities() == ["CREDIT_CARD"]
    strict = monitor_run(conv.packets, PassiveSettings(checksums="verify"))
    assert strict.entities() == [] and strict.stats.anomalies["bad_checksum"] >= 1


def test_ip_fragments_and_overlapping_fragments(gen, monitor_run):
    run = monitor_run(gen.fragments())
    assert run.entities() == ["CREDIT_CARD"]
    assert run.stats.anomalies["overlapping_fragments"] == 1
    assert not any(b"XXXX" in r.message.raw for r in run.results)


def test_flow_count_cap_evicts_least_recent(gen, monitor_run):
    packets = []
    for i in range(3000):  # flows that never close, each with a request line still arriving
        conv = gen.Conversation((f"10.20.{i // 250}.{i % 250 + 1}", 30000 + i % 1000), ("198.51.100.80", 80),
                                start=gen.BASE_TIME + i * 0.001)
        conv.emit(conv.segment(True, "PA", b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nabc"))
        packets.extend(conv.packets)
    run = monitor_run(packets, PassiveSettings(max_flows=500))
    assert run.stats.evicted_flows >= 2500
    assert run.stats.uninspected["evicted"] >= 2500  # each partial request says why it is incomplete


def test_global_memcap_drops_out_of_order_bytes_and_counts_them(gen, monitor_run):
    before = _metric("dlp_capture_evicted_bytes_total")
    packets = []
    for i in range(20):  # each flow holds 2000 bytes beyond a hole that never fills
        conv = gen.Conversation((f"10.30.0.{i + 1}", 31000 + i), ("198.51.100.80", 80),
                                start=gen.BASE_TIME + i)
        conv.handshake()
        conv.emit(conv.segment(True, "PA", b"x" * 2000, seq=conv.seq[True] + 100))
        packets.extend(conv.packets)
    run = monitor_run(packets, PassiveSettings(global_memcap_bytes=10_000))
    assert run.stats.evicted_flows >= 15
    assert run.stats.evicted_bytes >= 15 * 2000
    assert _metric("dlp_capture_evicted_bytes_total") >= before + 15 * 2000


def test_per_flow_memcap_turns_a_hole_into_a_gap(gen, monitor_run):
    conv = gen.Conversation(("10.9.0.7", 50006), ("198.51.100.80", 80))
    conv.handshake()
    start = conv.seq[True]
    for i in range(10):  # 10 x 1000 bytes after a 10-byte hole; the flow may hold 4000
        conv.emit(conv.segment(True, "PA", b"y" * 1000, seq=start + 10 + i * 1000))
    run = monitor_run(conv.packets, PassiveSettings(flow_memcap_bytes=4000))
    assert run.stats.gaps >= 1
    assert "reassembly_gap" in run.reasons()
