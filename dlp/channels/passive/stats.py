"""What one capture run saw: packet, flow, anomaly and verdict counts for the summary and the metrics."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dlp import metrics

# The fixed set of anomaly kinds (a metric label): what reassembly and decoding refuse or notice.
ANOMALIES = (
    "overlap_different_data",  # a TCP segment rewrote bytes already seen with different bytes
    "bad_checksum",  # a TCP segment the receiver would drop (insertion attempt, or corruption)
    "low_ttl",  # a segment whose TTL / hop limit is well below the flow's (may never reach the receiver)
    "overlapping_fragments",  # IP fragments that overlap: the datagram is dropped
    "fragments_expired",  # IP fragments never completed within the timeout
    "data_on_syn",  # payload carried by a SYN (TCP Fast Open, or evasion): accepted
    "data_after_rst",  # payload after a reset: picked up as a new, mid-stream flow
    "midstream_pickup",  # a flow whose handshake was not captured
    "truncated_packet",  # a frame cut by the capture's snap length
)


@dataclass
class CaptureStats:
    packets: int = 0
    bytes: int = 0
    tcp_packets: int = 0
    other_packets: int = 0  # not TCP over IPv4/IPv6, or an unsupported link type
    decode_errors: int = 0  # malformed headers
    flows: int = 0
    gaps: int = 0  # TCP streams with missing bytes
    gap_bytes: int = 0
    retransmissions: int = 0
    evicted_flows: int = 0
    evicted_bytes: int = 0
    encrypted_sessions: int = 0
    transactions: int = 0
    inspected_bytes: int = 0
    incidents: int = 0
    capture_drops: int = 0
    record_errors: int = 0  # incidents that could not be written to the store
    anomalies: Counter[str] = field(default_factory=Counter)
    protocols: Counter[str] = field(default_factory=Counter)  # flows by protocol; "other" is not read
    actions: Counter[str] = field(default_factory=Counter)
    uninspected: Counter[str] = field(default_factory=Counter)
    entities: Counter[str] = field(default_factory=Counter)

    def anomaly(self, kind: str, n: int = 1) -> None:
        self.anomalies[kind] += n
        metrics.CAPTURE_ANOMALIES.labels(kind).inc(n)

    def gap(self, missing: int) -> None:
        self.gaps += 1
        self.gap_bytes += missing
        metrics.REASSEMBLY_GAPS.inc()

    def evicted(self, nbytes: int) -> None:
        self.evicted_bytes += nbytes
        if nbytes:
            metrics.CAPTURE_EVICTED_BYTES.inc(nbytes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "packets": self.packets,
            "bytes": self.bytes,
            "tcp_packets": self.tcp_packets,
            "other_packets": self.other_packets,
            "decode_errors": self.decode_errors,
            "flows": self.flows,
            "protocols": dict(sorted(self.protocols.items())),
            "transactions": self.transactions,
            "inspected_bytes": self.inspected_bytes,
            "verdicts": dict(sorted(self.actions.items())),
            "incidents": self.incidents,
            "entities": dict(sorted(self.entities.items())),
            "uninspected": dict(sorted(self.uninspected.items())),
            "encrypted_sessions": self.encrypted_sessions,
            "gaps": self.gaps,
            "gap_bytes": self.gap_bytes,
            "retransmissions": self.retransmissions,
            "anomalies": dict(sorted(self.anomalies.items())),
            "evicted_flows": self.evicted_flows,
            "evicted_bytes": self.evicted_bytes,
            "capture_drops": self.capture_drops,
            "record_errors": self.record_errors,
        }
