"""Sends the sender notifications of dlp.notify in the background, through the relay's next hop.

`NotificationSender.emit` has the shape of an alert sink: the pipeline calls it right after an incident
was durably recorded. It renders the notification (masked findings only) and puts it on a bounded queue;
one thread delivers with a null return path (MAIL FROM:<>, so a notification can never bounce back into
a loop). Nothing here blocks, slows or fails the SMTP reply: a full queue drops, a refused or failed
delivery is counted and logged, and neither is retried (the incident and the console remain the record).
Only SMTP incidents notify: a web upload is explained on the block page itself.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from dlp import metrics
from dlp.config import Settings
from dlp.delivery import deliver
from dlp.logs import get_logger
from dlp.model import Channel, Message, Verdict
from dlp.notify import Notifier, ReleaseLinks

log = get_logger("dlp.notifications")

QUEUE_SIZE = 1000
DELIVERY_TIMEOUT_SECONDS = 30.0
_STOP = object()


@dataclass(frozen=True, slots=True)
class Pending:
    incident_id: str
    recipient: str
    data: bytes


class NotificationSender:
    def __init__(self, notifier: Notifier, next_hop: str, outbox: Path, *, helo: str = "dlp.localhost",
                 timeout: float = DELIVERY_TIMEOUT_SECONDS, queue_size: int = QUEUE_SIZE) -> None:
        self.notifier = notifier
        self.next_hop = next_hop
        self.outbox = outbox
        self.helo = helo
        self.timeout = timeout
        self._queue: queue.Queue[Pending | object] = queue.Queue(queue_size)
        self._thread = threading.Thread(target=self._run, name="dlp-notifications", daemon=True)
        self._thread.start()

    @classmethod
    def from_settings(cls, settings: Settings, policy_options: Any) -> NotificationSender:
        """From the policy's `notifications:` section; the release-link key is the console's."""
        notifier = Notifier(policy_options, ReleaseLinks.for_data_dir(settings.data_path), settings.console.public_url)
        outbox = settings.data_path / "outbox"
        if not settings.smtp.next_hop:
            outbox.mkdir(parents=True, exist_ok=True, mode=0o700)
        return cls(notifier, settings.smtp.next_hop, outbox, helo=settings.smtp.hostname,
                   timeout=min(DELIVERY_TIMEOUT_SECONDS, settings.smtp.forward_timeout_seconds))

    def emit(self, message: Message, verdict: Verdict) -> None:
        """Queue a notification if this incident calls for one. Never raises, never blocks."""
        if message.channel is not Channel.SMTP:
            return
        try:
            skip = self.notifier.skip_reason(message, verdict)
            if skip == "rate_limited":
                metrics.NOTIFICATIONS.labels("rate_limited").inc()
                log.info("notification_rate_limited", incident=verdict.incident_id)
            if skip is not None:
                return
            assert verdict.incident_id is not None
            pending = Pending(verdict.incident_id, message.envelope.sender, self.notifier.render(message, verdict))
        except Exception as exc:  # a template error at run time: the incident stands, the agent is not told
            metrics.NOTIFICATIONS.labels("failed").inc()
            log.error("notification_render_failed", incident=verdict.incident_id, error=type(exc).__name__)
            return
        try:
            self._queue.put_nowait(pending)
        except queue.Full:
            metrics.NOTIFICATIONS.labels("dropped").inc()
            log.warning("notification_dropped", incident=verdict.incident_id, reason="queue_full")

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            assert isinstance(item, Pending)
            try:
                result = deliver(self.next_hop, "", [item.recipient], item.data, outbox=self.outbox,
                                 timeout=self.timeout, helo=self.helo)
            except Exception as exc:
                metrics.NOTIFICATIONS.labels("failed").inc()
                log.error("notification_failed", incident=item.incident_id, error=type(exc).__name__)
                continue
            if result.ok:
                metrics.NOTIFICATIONS.labels("sent").inc()
                log.info("notification_sent", incident=item.incident_id)
            else:
                metrics.NOTIFICATIONS.labels("failed").inc()
                log.warning("notification_failed", incident=item.incident_id, kind=result.kind, code=result.code)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (within `timeout`), then stop the thread."""
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)


class IncidentSink(Protocol):
    def emit(self, message: Message, verdict: Verdict) -> None: ...


class AlertsAndNotifications:
    """What the pipeline calls after it recorded an incident: the alert sinks, then the sender's
    notification. Each is independent; neither raises into the channel."""

    def __init__(self, alerts: IncidentSink | None, notifications: IncidentSink | None) -> None:
        self.alerts = alerts
        self.notifications = notifications

    def emit(self, message: Message, verdict: Verdict) -> None:
        try:
            if self.alerts is not None:
                self.alerts.emit(message, verdict)
        finally:
            if self.notifications is not None:
                self.notifications.emit(message, verdict)
