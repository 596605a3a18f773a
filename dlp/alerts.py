"""Alert sinks: a JSON-lines file, syslog (RFC 5424 over UDP, TCP with octet counting, or a unix socket)
and a webhook (HTTP POST of JSON with retries and exponential backoff).

`AlertDispatcher.emit` only builds the alert and puts it on each sink's bounded queue; a thread per sink
delivers. A full queue drops the alert for that sink (dlp_alerts_dropped_total); a failed delivery is
counted (dlp_alert_sink_failures_total) and logged. Nothing here blocks or slows a channel.

An alert carries metadata and masked findings only: incident id, time, channel, action, enforced action,
monitor_only, severity, rules, entities, findings (entity, detector, score, location, masked, value_id,
label), uninspected reasons, and the envelope (sender, recipients, client address, user, method, and the
destination reduced to scheme://host[:port] because URL paths and queries can carry personal data).
Finding contexts are not sent: they are text around the match and may hold what no detector caught.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dlp import __version__, metrics
from dlp.config import Settings
from dlp.logs import get_logger
from dlp.model import Message, Severity, Verdict, destination_host

log = get_logger("dlp.alerts")

_STOP = object()
# RFC 5424 severities for ours: critical -> crit(2) ... none -> info(6).
_SYSLOG_SEVERITY = {Severity.CRITICAL: 2, Severity.HIGH: 3, Severity.MEDIUM: 4, Severity.LOW: 5, Severity.NONE: 6}
_FACILITIES = {"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "authpriv": 10,
               **{f"local{i}": 16 + i for i in range(8)}}
# Private enterprise number 32473 is IANA's "example" PEN (RFC 5612): operators may map it.
SD_ID = "dlp@32473"
_UDP_MAX = 8192  # keep datagrams unfragmented-ish; bigger alerts lose their findings list




def build_alert(message: Message, verdict: Verdict) -> dict[str, Any]:
    env = message.envelope
    return {
        "type": "dlp.incident",
        "version": 1,
        "incident_id": verdict.incident_id,
        "time": message.received.astimezone(UTC).isoformat(),
        "channel": str(message.channel),
        "action": str(verdict.action),
        "enforced_action": str(verdict.effective_action),
        "monitor_only": verdict.monitor_only,
        "severity": str(verdict.severity),
        "rules": list(verdict.rules),
        "entities": list(verdict.entities),
        "findings": [
            {"entity": f.entity, "detector": f.detector, "score": f.score, "location": f.location,
             "masked": f.masked, "value_id": f.value_id, "label": f.label}
            for f in verdict.findings
        ],
        "uninspected": [{"location": u.location, "reason": str(u.reason), "detail": u.detail}
                        for u in verdict.uninspected],
        "envelope": {
            "sender": env.sender,
            "recipients": list(env.recipients),
            "client_address": env.client_address,
            "user": env.user,
            "destination": destination_host(env.destination),
            "method": env.method,
        },
    }


class Sink:
    """A bounded queue and one delivery thread. Subclasses implement `send(alert)` (raise on failure)."""

    kind = "sink"

    def __init__(self, queue_size: int) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, queue_size))
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"dlp-alerts-{self.kind}", daemon=True)
        self.thread.start()

    def offer(self, alert: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(alert)
        except queue.Full:
            metrics.ALERTS_DROPPED.labels(self.kind).inc()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is _STOP:
                break
            try:
                self.send(item)
                metrics.ALERTS_SENT.labels(self.kind).inc()
            except Exception as exc:
                metrics.ALERT_SINK_FAILURES.labels(self.kind).inc()
                log.warning("alert_sink_failed", sink=self.kind, error=type(exc).__name__,
                            incident=item.get("incident_id"))
        self.shutdown()

    def send(self, alert: dict[str, Any]) -> None:
        raise NotImplementedError

    def shutdown(self) -> None:
        """Release resources; runs on the sink's thread after the last alert."""

    def stop(self, deadline: float) -> None:
        """Deliver what is queued until `deadline` (monotonic), then give up on the rest."""
        self.stopping.set()
        with contextlib.suppress(queue.Full):
            self.queue.put(_STOP, timeout=max(0.0, deadline - time.monotonic()))
        self.thread.join(max(0.0, deadline - time.monotonic()))
        if self.thread.is_alive():
            left = self.queue.qsize()
            if left:
                metrics.ALERTS_DROPPED.labels(self.kind).inc(left)
            log.warning("alert_sink_not_flushed", sink=self.kind, pending=left)


class JsonLinesSink(Sink):
    kind = "jsonl"

    def __init__(self, path: Path, queue_size: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        super().__init__(queue_size)

    def send(self, alert: dict[str, Any]) -> None:
        line = json.dumps(alert, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        os.write(self.fd, line)  # one write with O_APPEND: lines from several processes never interleave

    def shutdown(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class SyslogSink(Sink):
    """RFC 5424 messages; TCP uses octet-counting framing (RFC 6587 3.4.1); reconnects on failure."""

    kind = "syslog"

    def __init__(self, url: str, queue_size: int, facility: str = "local0", app_name: str = "dlp") -> None:
        parts = urlsplit(url)
        self.scheme = parts.scheme
        if self.scheme == "unix":
            self.address: Any = parts.path
        elif self.scheme in ("udp", "tcp"):
            if not parts.hostname:
                raise ValueError(f"alerts.syslog: no host in {url!r}")
            self.address = (parts.hostname, parts.port or (514 if self.scheme == "udp" else 601))
        else:
            raise ValueError(f"alerts.syslog: expected udp://, tcp:// or unix://, got {url!r}")
        if facility not in _FACILITIES:
            raise ValueError(f"alerts.syslog_facility: unknown facility {facility!r}")
        self.facility = _FACILITIES[facility]
        self.app_name = app_name
        self.hostname = socket.gethostname() or "-"
        self.sock: socket.socket | None = None
        super().__init__(queue_size)

    def format(self, alert: dict[str, Any]) -> bytes:
        severity = _SYSLOG_SEVERITY.get(Severity(alert["severity"]), 6)
        pri = self.facility * 8 + severity
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

        def param(value: Any) -> str:
            return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")

        sd = (f'[{SD_ID} incident="{param(alert["incident_id"])}" channel="{param(alert["channel"])}" '
              f'action="{param(alert["action"])}" enforced="{param(alert["enforced_action"])}" '
              f'severity="{param(alert["severity"])}" version="{param(__version__)}"]')
        header = f"<{pri}>1 {now} {self.hostname[:255]} {self.app_name} {os.getpid()} incident {sd} "
        body = json.dumps(alert, separators=(",", ":"), ensure_ascii=False).encode()
        message = header.encode() + b"\xef\xbb\xbf" + body
        if self.scheme != "tcp" and len(message) > _UDP_MAX:
            slim = {**alert, "findings": [], "findings_truncated": len(alert["findings"])}
            message = header.encode() + b"\xef\xbb\xbf" + json.dumps(slim, separators=(",", ":")).encode()
        return message

    def _connect(self) -> socket.socket:
        if self.scheme == "udp":
            family = socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.connect(self.address)
        elif self.scheme == "tcp":
            sock = socket.create_connection(self.address, timeout=5.0)
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.connect(self.address)
            except OSError as exc:
                sock.close()
                if exc.errno != 91:  # EPROTOTYPE: a stream socket (rsyslog imuxsock is datagram)
                    raise
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(self.address)
        sock.settimeout(5.0)
        return sock

    def send(self, alert: dict[str, Any]) -> None:
        message = self.format(alert)
        if self.scheme == "tcp":
            message = str(len(message)).encode() + b" " + message
        for attempt in (1, 2):  # one reconnect: the collector may have restarted since the last alert
            try:
                if self.sock is not None and self.sock.type == socket.SOCK_STREAM and _peer_closed(self.sock):
                    self.shutdown()  # a send would "succeed" into a dead connection and the alert be lost
                if self.sock is None:
                    self.sock = self._connect()
                if self.sock.type == socket.SOCK_STREAM:
                    self.sock.sendall(message)
                else:
                    self.sock.send(message)
                return
            except OSError:
                self.shutdown()
                if attempt == 2:
                    raise

    def shutdown(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
            self.sock = None


def _peer_closed(sock: socket.socket) -> bool:
    """True when the collector has closed its end (readable with EOF or an error pending)."""
    import select

    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


class WebhookSink(Sink):
    """POST the alert as JSON; 2xx is success; 5xx, 429 and network errors are retried with exponential
    backoff (cut short by close()); other 4xx are permanent failures."""

    kind = "webhook"

    def __init__(self, url: str, queue_size: int, timeout: float, max_attempts: int, backoff: float) -> None:
        import httpx

        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"alerts.webhook_url: expected an http(s) URL, got {url!r}")
        self.url = url
        self.max_attempts = max(1, max_attempts)
        self.backoff = max(0.0, backoff)
        self.client = httpx.Client(timeout=timeout, headers={"User-Agent": f"dlp/{__version__}"})
        super().__init__(queue_size)

    def send(self, alert: dict[str, Any]) -> None:
        import httpx

        delay = self.backoff
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self.client.post(self.url, json=alert)
                if response.is_success:
                    return
                if response.status_code < 500 and response.status_code != 429:
                    raise RuntimeError(f"webhook refused the alert: HTTP {response.status_code}")
            except httpx.HTTPError:
                if attempt == self.max_attempts:
                    raise
            else:
                if attempt == self.max_attempts:
                    raise RuntimeError(f"webhook failed: HTTP {response.status_code}")
            if self.stopping.wait(delay):
                raise RuntimeError("webhook retry abandoned at shutdown")
            delay = min(delay * 2, 60.0)

    def shutdown(self) -> None:
        self.client.close()


class AlertDispatcher:
    """Fan an incident out to every configured sink without blocking the caller."""

    def __init__(self, settings: Settings) -> None:
        cfg = settings.alerts
        self.sinks: list[Sink] = []
        try:
            if cfg.jsonl_file.strip().lower() != "off":
                path = Path(cfg.jsonl_file) if cfg.jsonl_file else settings.data_path / "alerts.jsonl"
                self.sinks.append(JsonLinesSink(path, cfg.queue_size))
            if cfg.syslog:
                self.sinks.append(SyslogSink(cfg.syslog, cfg.queue_size, cfg.syslog_facility))
            if cfg.webhook_url:
                self.sinks.append(WebhookSink(cfg.webhook_url, cfg.queue_size, cfg.webhook_timeout_seconds,
                                              cfg.webhook_max_attempts, cfg.webhook_backoff_seconds))
        except (OSError, ValueError):
            self.close(0.0)
            raise

    def emit(self, message: Message, verdict: Verdict) -> None:
        if not self.sinks:
            return
        alert = build_alert(message, verdict)
        for sink in self.sinks:
            sink.offer(alert)

    def close(self, timeout: float = 5.0) -> None:
        """Flush the queues for at most `timeout` seconds in total, then stop the threads."""
        deadline = time.monotonic() + timeout
        for sink in self.sinks:
            sink.stop(deadline)
        self.sinks = []
