"""Verdict enforcement for the SMTP relay: inspect, record, then forward, hold or refuse.

The order of the commit step is what keeps mail from being lost (design invariant 1):
  pass        -> forward; 250 only after the next hop's 250, its 4xx / 5xx mirrored with our own text
  alert       -> record the incident, then forward as for pass
  quarantine  -> record (the encrypted original is durable), then 250 (or 550 with the incident id)
  block       -> record, then 550 5.7.1 with the incident id
  failure     -> settings.smtp.fail_mode: "tempfail" (451 4.3.0) or "open" (forward, stamped unscanned)
The commit runs as its own task under asyncio.shield: a client that disconnects after the final dot
cannot interrupt it half way; the outcome is logged, and a 250 the client never heard is counted as a
possible duplicate (the client will send it again).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlp import metrics
from dlp.channels import smtp_faults as faults
from dlp.channels import smtp_headers as headers
from dlp.channels import smtp_replies as replies
from dlp.channels.smtp_limits import low_on_space
from dlp.config import SmtpSettings
from dlp.delivery import DeliveryResult, Outcome, deliver
from dlp.inspect import InspectionFailed
from dlp.logs import get_logger
from dlp.model import Action, Channel, ContentKind, Envelope, Message, Reason, Verdict
from dlp.next_hop import NextHopPool
from dlp.pipeline import Pipeline

log = get_logger("dlp.smtp")

# Beyond its own per-operation timeouts, a delivery thread gets this long before we stop waiting.
_DELIVERY_GRACE_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class RelayConfig:
    smtp: SmtpSettings
    data_dir: Path
    outbox: Path

    @property
    def destination(self) -> str:
        return self.smtp.next_hop or "outbox"


class RelayHandler:
    """aiosmtpd handler: envelope checks at MAIL / RCPT, enforcement at DATA."""

    def __init__(self, pipeline: Pipeline, config: RelayConfig, executor: Executor,
                 track: Callable[[asyncio.Task[str]], None], next_hop: NextHopPool | None = None) -> None:
        self.pipeline = pipeline
        self.config = config
        self.executor = executor  # the outbox writes (no next hop)
        self.next_hop = next_hop  # persistent connections to smtp.next_hop, on this loop
        self._track = track

    # ------------------------------------------------------------------------------ envelope
    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          mail_options: list[str]) -> str:
        if not address.isascii() and "SMTPUTF8" not in mail_options:
            metrics.SMTP_REJECTED.labels("needs_smtputf8").inc()
            return replies.NEEDS_SMTPUTF8
        if low_on_space(self.config.data_dir, self.config.smtp.min_free_bytes):
            metrics.SMTP_TEMPFAILS.labels("low_disk_space").inc()
            log.warning("low_disk_space", min_free_bytes=self.config.smtp.min_free_bytes)
            return replies.NO_SPACE
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return replies.SENDER_OK

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if not address.isascii() and not envelope.smtp_utf8:
            metrics.SMTP_REJECTED.labels("needs_smtputf8").inc()
            return replies.NEEDS_SMTPUTF8
        if len(envelope.rcpt_tos) >= self.config.smtp.max_recipients:
            metrics.SMTP_REJECTED.labels("too_many_recipients").inc()
            return replies.TOO_MANY_RECIPIENTS
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return replies.RECIPIENT_OK

    async def handle_exception(self, error: Exception) -> str:
        # The exception text may quote the client's input: log its type only, answer generically.
        log.error("smtp_session_error", error=type(error).__name__)
        metrics.SMTP_TEMPFAILS.labels("internal_error").inc()
        return replies.TEMPFAIL

    # ------------------------------------------------------------------------------ DATA
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        peer = session.peer[0] if session.peer else ""
        message = Message(
            channel=Channel.SMTP,
            raw=bytes(envelope.original_content or b""),
            kind=ContentKind.EMAIL,
            envelope=Envelope(
                sender=envelope.mail_from or "",
                recipients=tuple(envelope.rcpt_tos),
                client_address=str(peer),
                user=str(session.auth_data or "") if session.authenticated else "",
                destination=self.config.destination,
                method="DATA",
            ),
        )
        task = asyncio.ensure_future(self.commit(message))
        self._track(task)
        try:
            reply = await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(functools.partial(_client_gone, message.id))
            raise
        metrics.SMTP_REPLIES.labels(reply[:3]).inc()
        return reply

    async def commit(self, message: Message) -> str:
        try:
            return await self._commit(message)
        except Exception as exc:
            log.error("relay_error", message_id=message.id, error=type(exc).__name__)
            metrics.SMTP_TEMPFAILS.labels("internal_error").inc()
            return replies.TEMPFAIL

    async def _commit(self, message: Message) -> str:
        faults.checkpoint("data-received")
        hostname = self.config.smtp.hostname
        if headers.hops(message.raw, hostname) >= self.config.smtp.max_hops:
            metrics.SMTP_REJECTED.labels("mail_loop").inc()
            log.warning("mail_loop", message_id=message.id)
            return replies.LOOP_DETECTED
        try:
            verdict = await self.pipeline.inspect(message)
        except InspectionFailed as exc:
            return await self._inspection_failed(message, exc.reason)
        except Exception as exc:  # the pool converts its errors; anything else is ours: same fail mode
            log.error("inspection_error", message_id=message.id, error=type(exc).__name__)
            return await self._inspection_failed(message, Reason.INSPECTION_ERROR)
        faults.checkpoint("verdict")
        action = verdict.effective_action
        if action is Action.PASS:
            return await self._forward(message, headers.inspected_header(hostname, "pass", message.id))
        try:
            await self.pipeline.record(message, verdict)
        except Exception as exc:
            # Counted (quarantine write errors) by the pipeline; we must not accept what we could not keep.
            log.error("record_failed", message_id=message.id, incident=verdict.incident_id,
                      error=type(exc).__name__)
            metrics.SMTP_TEMPFAILS.labels("record_failed").inc()
            return replies.TEMPFAIL
        faults.checkpoint("after-fsync-before-reply")
        return await self._enforce(message, verdict, action)

    async def _enforce(self, message: Message, verdict: Verdict, action: Action) -> str:
        log.info("smtp_verdict", message_id=message.id, incident=verdict.incident_id, action=str(verdict.action),
                 enforced=str(action))
        if action is Action.ALERT:
            header = headers.inspected_header(self.config.smtp.hostname, "alert", message.id, verdict.incident_id)
            return await self._forward(message, header)
        if action is Action.QUARANTINE:
            if self.config.smtp.quarantine_reply == "reject":
                return replies.held_rejected(verdict.incident_id)
            return replies.ACCEPTED
        return replies.blocked(verdict.incident_id)

    async def _inspection_failed(self, message: Message, reason: Reason) -> str:
        mode = self.config.smtp.fail_mode
        metrics.FAIL_MODE.labels(str(Channel.SMTP), mode).inc()
        if mode == "open":
            metrics.UNINSPECTED.labels(str(Channel.SMTP), str(reason)).inc()
            log.warning("forwarded_uninspected", message_id=message.id, reason=str(reason))
            header = headers.unscanned_header(str(reason)) + headers.inspected_header(
                self.config.smtp.hostname, "unscanned", message.id)
            return await self._forward(message, header)
        metrics.SMTP_TEMPFAILS.labels(str(reason)).inc()
        return replies.TEMPFAIL

    async def _forward(self, message: Message, prepend: bytes) -> str:
        result = await self._deliver(message, prepend + message.raw)
        if result.ok:
            metrics.SMTP_FORWARDED.inc()
            faults.checkpoint("after-next-hop-250")
            return replies.ACCEPTED
        metrics.SMTP_NEXT_HOP_ERRORS.labels(result.kind).inc()
        if result.outcome is Outcome.UNKNOWN:
            metrics.POSSIBLE_DUPLICATES.inc()
            log.warning("next_hop_outcome_unknown", message_id=message.id, kind=result.kind,
                        note="possible duplicate: the next hop may have the message")
        else:
            log.warning("next_hop_failed", message_id=message.id, kind=result.kind, code=result.code)
        reply = replies.for_delivery(result)
        if reply.startswith("4"):
            metrics.SMTP_TEMPFAILS.labels("next_hop").inc()
        return reply

    async def _deliver(self, message: Message, data: bytes) -> DeliveryResult:
        smtp = self.config.smtp
        sender, recipients = message.envelope.sender, message.envelope.recipients
        hand_off: Awaitable[DeliveryResult]
        if self.next_hop is not None:
            hand_off = self.next_hop.deliver(sender, recipients, data)
        else:
            call = functools.partial(deliver, "", sender, recipients, data, outbox=self.config.outbox)
            hand_off = asyncio.get_running_loop().run_in_executor(self.executor, call)
        try:
            # The pool bounds each step itself; this is the backstop for a hand-off that never ends.
            return await asyncio.wait_for(hand_off, smtp.forward_timeout_seconds + _DELIVERY_GRACE_SECONDS)
        except TimeoutError:
            return DeliveryResult(Outcome.UNKNOWN, 451, "4.4.2", "timeout_after_data")


def _client_gone(message_id: str, task: asyncio.Task[str]) -> None:
    """The client left before hearing the outcome; a 250 it never heard means it will send again."""
    if task.cancelled() or task.exception() is not None:
        return
    reply = task.result()
    if reply.startswith("250"):
        metrics.POSSIBLE_DUPLICATES.inc()
        log.warning("client_gone_after_commit", message_id=message_id, note="possible duplicate")
    else:
        log.info("client_gone_before_reply", message_id=message_id, code=reply[:3])
