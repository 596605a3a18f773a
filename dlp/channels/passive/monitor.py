"""The passive monitor: frames in, verdicts out. Decodes, reassembles, parses, inspects each transaction
in this process, applies the policy in monitor mode (the enforced action is at most `alert`: a passive
monitor cannot block) and hands non-pass verdicts to a recorder (the incident store and alert sinks)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from dlp import metrics
from dlp.channels.passive import fastpath
from dlp.channels.passive.decode import Decoder
from dlp.channels.passive.flows import FlowHandler, endpoint
from dlp.channels.passive.offload import OrderedInspections
from dlp.channels.passive.reader import Capture
from dlp.channels.passive.reassembly import Flow, Reassembler, ReassemblyLimits
from dlp.channels.passive.stats import CaptureStats
from dlp.channels.passive.transaction import Transaction
from dlp.config import PassiveSettings
from dlp.inspect import Inspector, value_id
from dlp.model import (
    Action,
    Channel,
    Envelope,
    Finding,
    Message,
    Reason,
    Uninspected,
    Verdict,
    destination_host,
    new_incident_id,
    new_message_id,
)
from dlp.pipeline import count

CREDENTIALS_ENTITY = "CLEARTEXT_CREDENTIALS"
_ALERT_RANK = Action.ALERT.rank


@dataclass(frozen=True, slots=True)
class FlowInfo:
    """Where a transaction was seen; addresses and ports only."""

    protocol: str
    client: str
    server: str
    started: float  # capture timestamp of the flow's first packet
    midstream: bool


@dataclass(frozen=True, slots=True)
class Result:
    flow: FlowInfo
    message: Message
    verdict: Verdict
    summary: str  # one line a person can read: "POST http://host/path", "DATA a@x -> b@y"


Recorder = Callable[[Message, Verdict], None]


class Monitor:
    def __init__(self, inspector: Inspector, value_key: bytes, settings: PassiveSettings | None = None, *,
                 recorder: Recorder | None = None, on_result: Callable[[Result], None] | None = None,
                 offload: OrderedInspections | None = None, message_metrics: bool = True) -> None:
        settings = settings or PassiveSettings()
        # Per-message Prometheus updates (dlp.pipeline.count) cost several lock round trips per transaction;
        # `dlp pcap` exposes no metrics, so it turns them off. Capture-level metrics are always kept.
        self.message_metrics = message_metrics
        self.inspector = inspector
        self._key = value_key
        self.recorder = recorder
        self.on_result = on_result
        self.offload = offload  # offline captures: content inspected in worker processes, results in order
        self.stats = CaptureStats()
        self.decoder = Decoder(self.stats, settings.fragment_timeout_seconds)
        self.max_bytes = min(settings.flow_memcap_bytes, inspector.limits.max_message_bytes)
        self.smtp_ports = frozenset(int(p) for p in settings.smtp_ports)
        self.http_ports = frozenset(int(p) for p in settings.http_ports)
        self.reassembler = Reassembler(self.stats, self._handler, ReassemblyLimits(
            flow_memcap=settings.flow_memcap_bytes,
            global_memcap=settings.global_memcap_bytes,
            max_flows=settings.max_flows,
            idle_seconds=settings.flow_idle_seconds,
            checksums=settings.checksums,
        ))
        self.worst = Action.PASS
        self._packets_since_expire = 0

    # ------------------------------------------------------------------------------- packets

    def packet(self, ts: float, linktype: int, frame: bytes) -> None:
        stats = self.stats
        stats.packets += 1
        stats.bytes += len(frame)
        segment = self.decoder.decode(ts, linktype, frame)
        if segment is not None:
            self.reassembler.add(segment)
        self._packets_since_expire += 1
        if self._packets_since_expire >= 8192:
            self._packets_since_expire = 0
            metrics.CAPTURE_PACKETS.inc(8192)
            self.decoder.fragments.expire(ts)

    def feed(self, frames: Iterable[tuple[float, int, bytes]],
             progress: Callable[[int], None] | None = None) -> None:
        """`packet` for every frame, in a loop with its lookups hoisted (the offline path). `progress`
        is called with the number of frames fed so far every 8192 frames. A classic pcap file of Ethernet
        frames takes the fused loop of dlp.channels.passive.fastpath (same results, a third of the CPU)."""
        if isinstance(frames, Capture) and fastpath.feed_capture(self, frames, progress):
            return
        stats = self.stats
        decode = self.decoder.decode
        add = self.reassembler.add
        since, n, counted, nbytes = self._packets_since_expire, 0, 0, 0
        try:
            for ts, linktype, frame in frames:
                nbytes += len(frame)
                segment = decode(ts, linktype, frame)
                if segment is not None:
                    add(segment)
                since += 1
                n += 1
                if since >= 8192:
                    # Counted in bulk: two attribute updates per packet are measurable at 10^5 packets/s.
                    stats.packets += n - counted
                    stats.bytes += nbytes
                    counted, nbytes, since = n, 0, 0
                    metrics.CAPTURE_PACKETS.inc(8192)
                    self.decoder.fragments.expire(ts)
                    if progress is not None:
                        progress(n)
        finally:
            stats.packets += n - counted
            stats.bytes += nbytes
            self._packets_since_expire = since

    def finish(self) -> CaptureStats:
        """End of input: close every flow (reporting holes), expire fragments, flush metrics."""
        self.reassembler.finish()
        self.decoder.fragments.expire(float("inf"))
        self._drain()
        metrics.CAPTURE_PACKETS.inc(self._packets_since_expire)
        self._packets_since_expire = 0
        return self.stats

    # ------------------------------------------------------------------------------- transactions

    def _handler(self, flow: Flow) -> FlowHandler:
        def emit(tx: Transaction) -> None:
            self._transaction(flow, handler, tx)

        handler = FlowHandler(flow, emit, self.stats.protocols, self.max_bytes, self.smtp_ports, self.http_ports)
        return handler

    def _transaction(self, flow: Flow, handler: FlowHandler, tx: Transaction) -> None:
        stats = self.stats
        if tx.protocol == "tls":
            stats.encrypted_sessions += 1
        # Positional arguments: frozen dataclasses cost microseconds per keyword, 10^4 times a second here.
        envelope = Envelope(tx.sender, tuple(tx.recipients), handler.client, "", tx.url or handler.server, tx.method)
        message = Message(Channel.PASSIVE, tx.raw, tx.kind, envelope, new_message_id(),
                          datetime.fromtimestamp(flow.last_ts, UTC) if flow.last_ts else datetime.now(UTC),
                          f"{tx.protocol}-{tx.method.lower()}")
        info = None if self.on_result is None else FlowInfo(
            handler.protocol or tx.protocol, handler.client, handler.server, flow.first_ts, flow.midstream)
        offload = self.offload
        if offload is None:
            started = time.perf_counter()
            content = self.inspector.inspect(message) if message.raw else Verdict(Action.PASS)
            self._complete(message, tx, info, content, time.perf_counter() - started)
            return
        offload.submit(message, (tx, info))
        for done, (done_tx, done_info), (outcome, seconds) in offload.ready():
            self._complete(done, done_tx, done_info, outcome, seconds)

    def _drain(self) -> None:
        if self.offload is not None:
            for done, (done_tx, done_info), (outcome, seconds) in self.offload.drain():
                self._complete(done, done_tx, done_info, outcome, seconds)

    def _complete(self, message: Message, tx: Transaction, info: FlowInfo | None, content: Verdict | Reason,
                  seconds: float) -> None:
        """Everything after content inspection, in transaction order: verdict, counts, incident, output."""
        stats = self.stats
        verdict = self.conclude(message, tx, content)
        if self.message_metrics:
            count(message, verdict, seconds)
        if tx.raw:
            stats.transactions += 1
            stats.inspected_bytes += len(tx.raw)
        stats.actions[str(verdict.action)] += 1
        for u in verdict.uninspected:
            stats.uninspected[str(u.reason)] += 1
        for f in verdict.findings:
            stats.entities[f.entity] += 1
        if verdict.action is not Action.PASS:
            if verdict.action.rank > self.worst.rank:
                self.worst = verdict.action
            stats.incidents += 1
            if self.recorder is not None:
                try:
                    self.recorder(message, verdict)
                except Exception:  # counted and reported in the summary; the capture goes on
                    stats.record_errors += 1
        if self.on_result is not None and info is not None:
            self.on_result(Result(info, message, verdict, describe(tx)))

    def inspect(self, message: Message, tx: Transaction) -> Verdict:
        """Inspect the content (when there is any), add what the wire told us (cleartext credentials,
        holes, encryption) and let the policy decide; the enforced action is at most `alert`."""
        return self.conclude(message, tx, self.inspector.inspect(message) if message.raw else Verdict(Action.PASS))

    def conclude(self, message: Message, tx: Transaction, content: Verdict | Reason) -> Verdict:
        """The verdict from the content's verdict (or from why there is none: a worker's timeout or error)."""
        if type(content) is Verdict and not tx.credential_mechanism and not tx.uninspected and message.raw:
            # Most transactions: the wire added nothing, the content's verdict stands (at most `alert`).
            if content.effective_action.rank > _ALERT_RANK:
                return replace(content, enforced_action=Action.ALERT, monitor_only=True)
            return content
        inspector = self.inspector
        failed = isinstance(content, Reason)
        if isinstance(content, Reason):
            content = Verdict(Action.PASS, uninspected=(
                Uninspected("message", content, "inspection failed in a worker process"),))
        verdict = content
        findings = list(verdict.findings)
        if tx.credential_mechanism:
            findings.append(Finding(
                entity=CREDENTIALS_ENTITY, detector="passive-monitor", score=1.0,
                location=f"{tx.protocol}:{tx.method.lower() or 'auth'}", start=0, end=0, masked="****",
                value_id=value_id(self._key, CREDENTIALS_ENTITY, tx.credential_secret.decode("latin-1")),
                label=tx.credential_mechanism,
            ))
        uninspected = list(verdict.uninspected) + tx.uninspected
        if failed or len(findings) != len(verdict.findings) or tx.uninspected or not message.raw:
            evaluation = inspector.policy.evaluate(message, findings, uninspected)
            verdict = replace(
                verdict,
                action=evaluation.action,
                severity=evaluation.severity,
                rules=evaluation.rules,
                findings=tuple(findings),
                uninspected=tuple(uninspected),
                monitor_only=evaluation.monitor_only,
                enforced_action=evaluation.enforced_action,
                incident_id=None if evaluation.action is Action.PASS else (verdict.incident_id or new_incident_id()),
            )
        if verdict.effective_action.rank > Action.ALERT.rank:
            verdict = replace(verdict, enforced_action=Action.ALERT, monitor_only=True)
        return verdict


def describe(tx: Transaction) -> str:
    if tx.protocol == "http" and tx.method not in ("gap", "partial"):
        return f"{tx.method} {destination_host(tx.url)}"  # the path and query can carry the data itself
    if tx.protocol == "smtp" and tx.method in ("DATA", "BDAT"):
        rcpts = ", ".join(tx.recipients[:3]) + (f" (+{len(tx.recipients) - 3})" if len(tx.recipients) > 3 else "")
        return f"{tx.method} from <{tx.sender}> to {rcpts or '(no recipients)'}"
    if tx.protocol == "smtp" and tx.method == "AUTH":
        return f"AUTH ({tx.credential_mechanism}) in clear"
    if tx.protocol == "tls":
        return "encrypted session"
    return f"{tx.method} ({tx.protocol})"


__all__ = ["FlowInfo", "Monitor", "Result", "endpoint"]
