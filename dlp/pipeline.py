"""What every channel does with a message: inspect it off the event loop, then record the incident
(and the encrypted original when it is held), send alerts and count it. Channels only enforce."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from dlp import metrics
from dlp.inspect import InspectionFailed, InspectionPool
from dlp.logs import get_logger
from dlp.model import Action, Message, Reason, Severity, Uninspected, Verdict

log = get_logger("dlp.pipeline")


class IncidentSink(Protocol):
    """The part of the incident store the pipeline needs."""

    def record(self, message: Message, verdict: Verdict, original: bytes | None) -> None: ...


class VerdictHook(Protocol):
    """Raises a verdict after inspection with what one message cannot show (dlp.windows.Escalations)."""

    def apply(self, message: Message, verdict: Verdict) -> Verdict: ...


class AlertSink(Protocol):
    def emit(self, message: Message, verdict: Verdict) -> None: ...


def keeps_original(verdict: Verdict) -> bool:
    """Originals are kept (encrypted) for what is or would have been held or blocked: analysts need the
    evidence and replays need the content; alerted traffic left anyway and is not kept."""
    return verdict.action.rank >= Action.QUARANTINE.rank


_children: dict[tuple[object, tuple[str, ...]], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    """A labelled child, cached: `.labels()` takes a lock and builds a key on every call, which the
    passive monitor pays hundreds of thousands of times a minute. Label values come from fixed sets,
    so the cache is bounded like the metric itself."""
    key = (metric, labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def count(message: Message, verdict: Verdict, seconds: float | None = None) -> None:
    channel = str(message.channel)
    _child(metrics.MESSAGES, channel, str(verdict.effective_action)).inc()
    if verdict.monitor_only:
        _child(metrics.SHADOW_VERDICTS, channel, str(verdict.action)).inc()
    for f in verdict.findings:
        _child(metrics.FINDINGS, f.entity, f.detector).inc()
    for rule in verdict.rules:
        _child(metrics.RULE_MATCHES, rule).inc()
    for u in verdict.uninspected:
        _child(metrics.UNINSPECTED, channel, str(u.reason)).inc()
    size = len(message.raw)
    _child(metrics.MESSAGE_BYTES, channel).observe(size)
    _child(metrics.INSPECTED_BYTES, channel).inc(size)
    if seconds is not None:
        _child(metrics.INSPECTION_SECONDS, channel).observe(seconds)


class Pipeline:
    def __init__(self, pool: InspectionPool, store: IncidentSink | None, alerts: AlertSink | None = None,
                 windows: VerdictHook | None = None) -> None:
        self.pool = pool
        self.store = store
        self.alerts = alerts
        self.windows = windows  # dlp.windows.Escalations: aggregation windows, cross-client contamination

    async def inspect(self, message: Message) -> Verdict:
        """A verdict, or InspectionFailed (counted) — the channel applies its failure mode."""
        started = time.perf_counter()
        try:
            verdict = await self.pool.inspect(message)
            if self.windows is not None and verdict.findings:  # windows and contamination count findings
                try:
                    verdict = await asyncio.to_thread(self.windows.apply, message, verdict)
                except Exception:
                    raise InspectionFailed(Reason.INSPECTION_ERROR) from None  # fail closed, like inspection
        except InspectionFailed as exc:
            metrics.INSPECTION_ERRORS.labels(str(message.channel), str(exc.reason)).inc()
            log.warning("inspection_failed", channel=str(message.channel), message_id=message.id,
                        reason=str(exc.reason))
            self._alert_failure(message, exc.reason)
            raise
        count(message, verdict, time.perf_counter() - started)
        return verdict

    def _alert_failure(self, message: Message, reason: Reason) -> None:
        """Tell the SIEM that something could not be inspected (adversarial A11): the channel refuses or
        tempfails it by its failure mode, and a pattern of these is an attack or an outage."""
        if self.alerts is None:
            return
        failure = Verdict(Action.ALERT, Severity.HIGH, rules=("inspection-failed",), uninspected=(
            Uninspected("message", reason, "inspection failed; the channel applied its failure mode"),))
        try:
            self.alerts.emit(message, failure)
        except Exception:  # an alert sink never blocks a channel
            log.warning("alert_emit_failed", message_id=message.id)

    async def record(self, message: Message, verdict: Verdict) -> None:
        """Durably record the incident (and original) before the channel replies. Raises on failure:
        the channel must then refuse (tempfail / block), never accept."""
        if verdict.action is Action.PASS:
            return
        original = message.raw if keeps_original(verdict) else None
        if self.store is not None:
            try:
                await asyncio.to_thread(self.store.record, message, verdict, original)
            except Exception:
                if original is not None:
                    metrics.QUARANTINE_WRITE_ERRORS.inc()
                log.error("incident_write_failed", channel=str(message.channel), incident=verdict.incident_id)
                raise
            if original is not None:
                metrics.QUARANTINE_WRITES.inc()
        metrics.INCIDENTS.labels(str(message.channel), str(verdict.action), str(verdict.severity)).inc()
        log.info(
            "incident",
            incident=verdict.incident_id,
            channel=str(message.channel),
            action=str(verdict.action),
            enforced=str(verdict.effective_action),
            severity=str(verdict.severity),
            rules=list(verdict.rules),
            entities=list(verdict.entities),
            uninspected=sorted({str(u.reason) for u in verdict.uninspected}),
        )
        if self.alerts is not None:
            try:
                self.alerts.emit(message, verdict)
            except Exception:  # an alert sink never blocks a channel; the dispatcher counts its failures
                log.warning("alert_emit_failed", incident=verdict.incident_id)

    async def process(self, message: Message) -> Verdict:
        verdict = await self.inspect(message)
        await self.record(message, verdict)
        return verdict


def describe(verdict: Verdict) -> dict[str, Any]:
    """A log-safe summary of a verdict."""
    return {
        "action": str(verdict.action),
        "enforced": str(verdict.effective_action),
        "incident": verdict.incident_id,
        "rules": list(verdict.rules),
        "entities": list(verdict.entities),
    }
