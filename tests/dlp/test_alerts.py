"""Alert sinks against real sockets: a JSON-lines file, syslog over UDP, TCP and a unix socket, a webhook
on a real local HTTP server (healthy, failing and hanging). No raw value in any alert; a failing sink is
counted and never blocks the caller."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from dlp.alerts import AlertDispatcher
from dlp.config import AlertSettings, Settings
from dlp.model import Action, Channel, Envelope, Finding, Message, Reason, Severity, Uninspected, Verdict

CARD = "4111111111111111"
SSN = "078051120"


def _incident(destination: str = "https://paste.example/upload?ssn=078051120") -> tuple[Message, Verdict]:
    message = Message(Channel.WEB, f"card={CARD}&ssn={SSN}".encode(),
                      envelope=Envelope("", (), "10.1.2.3", "agent42", destination, "POST"))
    verdict = Verdict(
        Action.BLOCK, Severity.HIGH, ("sensitive-data-leaving",),
        (Finding("CREDIT_CARD", "payment_cards", 1.0, "form:card", 5, 21, "411111******1111", "vid1", "visa",
                 context="card=[411111******1111]&ssn=#########"),),
        (Uninspected("form:file", Reason.ENCRYPTED_ARCHIVE, "zip with password"),),
        incident_id="INC-20260101-ABCDEF01",
    )
    return message, verdict


def _sample(name: str, sink: str) -> float:
    return REGISTRY.get_sample_value(name, {"sink": sink}) or 0.0


def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def _settings(tmp_path: Path, **alerts: object) -> Settings:
    return Settings(data_dir=str(tmp_path / "data"), alerts=AlertSettings(**{"jsonl_file": "off", **alerts}))


def _assert_safe(alert_text: str) -> None:
    assert CARD not in alert_text and SSN not in alert_text
    assert "/upload" not in alert_text  # destination reduced to the host


def test_jsonl_sink_writes_one_safe_line_per_alert(tmp_path: Path) -> None:
    settings = replace(_settings(tmp_path), alerts=AlertSettings())
    dispatcher = AlertDispatcher(settings)
    message, verdict = _incident()
    dispatcher.emit(message, verdict)
    dispatcher.emit(message, replace(verdict, incident_id="INC-20260101-ABCDEF02", monitor_only=True,
                                     enforced_action=Action.PASS))
    dispatcher.close()
    path = settings.data_path / "alerts.jsonl"
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text()
    _assert_safe(text)
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["incident_id"] == "INC-20260101-ABCDEF01" and first["action"] == "block"
    assert first["envelope"]["destination"] == "https://paste.example"
    assert first["findings"][0] == {"entity": "CREDIT_CARD", "detector": "payment_cards", "score": 1.0,
                                    "location": "form:card", "masked": "411111******1111", "value_id": "vid1",
                                    "label": "visa"}
    assert first["uninspected"][0]["reason"] == "encrypted_archive"
    assert first["entities"] == ["CREDIT_CARD"] and first["rules"] == ["sensitive-data-leaving"]
    assert second["monitor_only"] is True and second["enforced_action"] == "pass"


def _parse_5424(data: bytes) -> tuple[int, str, dict]:
    header, bom, body = data.partition(b"\xef\xbb\xbf")
    assert bom, data[:200]
    pri = int(header[1 : header.index(b">")])
    assert header[header.index(b">") + 1 :].startswith(b"1 ")
    return pri, header.decode(), json.loads(body)


def test_syslog_udp(tmp_path: Path) -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(10)
    port = server.getsockname()[1]
    dispatcher = AlertDispatcher(_settings(tmp_path, syslog=f"udp://127.0.0.1:{port}", syslog_facility="auth"))
    message, verdict = _incident()
    dispatcher.emit(message, verdict)
    data, _ = server.recvfrom(65535)
    dispatcher.close()
    server.close()
    pri, header, alert = _parse_5424(data)
    assert pri == 4 * 8 + 3  # auth.err for a high-severity incident
    assert ' incident [dlp@32473 incident="INC-20260101-ABCDEF01" channel="web" action="block"' in header
    assert alert["incident_id"] == "INC-20260101-ABCDEF01"
    _assert_safe(data.decode("utf-8", "replace"))


def test_syslog_tcp_octet_counting_and_reconnect(tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]
    dispatcher = AlertDispatcher(_settings(tmp_path, syslog=f"tcp://127.0.0.1:{port}"))
    message, verdict = _incident()

    def read_frames(conn: socket.socket, count: int) -> list[bytes]:
        buffer, frames = b"", []
        while len(frames) < count:
            chunk = conn.recv(65536)
            assert chunk, "connection closed early"
            buffer += chunk
            while b" " in buffer:
                length, _, rest = buffer.partition(b" ")
                if len(rest) < int(length):
                    break
                frames.append(rest[: int(length)])
                buffer = rest[int(length) :]
        return frames

    dispatcher.emit(message, verdict)
    dispatcher.emit(message, replace(verdict, incident_id="INC-20260101-ABCDEF02"))
    conn, _ = listener.accept()
    frames = read_frames(conn, 2)
    assert [_parse_5424(f)[2]["incident_id"] for f in frames] == ["INC-20260101-ABCDEF01", "INC-20260101-ABCDEF02"]
    conn.close()  # the collector restarts: the next alert reconnects
    dispatcher.emit(message, replace(verdict, incident_id="INC-20260101-ABCDEF03"))
    sent_before = _sample("dlp_alerts_sent_total", "syslog")
    conn2, _ = listener.accept()
    frame = read_frames(conn2, 1)[0]
    assert _parse_5424(frame)[2]["incident_id"] == "INC-20260101-ABCDEF03"
    _wait_for(lambda: _sample("dlp_alerts_sent_total", "syslog") >= sent_before)
    dispatcher.close()
    conn2.close()
    listener.close()


def test_syslog_unix_datagram_socket(tmp_path: Path) -> None:
    path = tmp_path / "log.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(10)
    dispatcher = AlertDispatcher(_settings(tmp_path, syslog=f"unix://{path}"))
    dispatcher.emit(*_incident())
    data = server.recv(65535)
    dispatcher.close()
    server.close()
    assert _parse_5424(data)[2]["channel"] == "web"


class _Hooks(BaseHTTPRequestHandler):
    received: list[dict]
    status = 200
    hang: threading.Event | None = None

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.hang is not None:
            self.hang.wait(30)
        self.received.append(json.loads(body))
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def webhook_server():
    servers = []

    def start(status: int = 200, hang: threading.Event | None = None):
        handler = type("Handler", (_Hooks,), {"received": [], "status": status, "hang": hang})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server, handler, f"http://127.0.0.1:{server.server_address[1]}/hook"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_webhook_posts_json(tmp_path: Path, webhook_server) -> None:
    _server, handler, url = webhook_server()
    sent = _sample("dlp_alerts_sent_total", "webhook")
    dispatcher = AlertDispatcher(_settings(tmp_path, webhook_url=url))
    dispatcher.emit(*_incident())
    _wait_for(lambda: handler.received)
    _wait_for(lambda: _sample("dlp_alerts_sent_total", "webhook") == sent + 1)
    dispatcher.close()
    assert handler.received[0]["incident_id"] == "INC-20260101-ABCDEF01"
    _assert_safe(json.dumps(handler.received))


def test_failing_webhook_is_retried_with_backoff_then_counted(tmp_path: Path, webhook_server) -> None:
    _server, handler, url = webhook_server(status=503)
    failures = _sample("dlp_alert_sink_failures_total", "webhook")
    dispatcher = AlertDispatcher(_settings(tmp_path, webhook_url=url, webhook_max_attempts=3,
                                           webhook_backoff_seconds=0.01))
    dispatcher.emit(*_incident())
    _wait_for(lambda: _sample("dlp_alert_sink_failures_total", "webhook") == failures + 1)
    assert len(handler.received) == 3  # three attempts, then counted as one failure
    dispatcher.close()


def test_webhook_client_error_is_not_retried(tmp_path: Path, webhook_server) -> None:
    _server, handler, url = webhook_server(status=400)
    failures = _sample("dlp_alert_sink_failures_total", "webhook")
    dispatcher = AlertDispatcher(_settings(tmp_path, webhook_url=url, webhook_backoff_seconds=0.01))
    dispatcher.emit(*_incident())
    _wait_for(lambda: _sample("dlp_alert_sink_failures_total", "webhook") == failures + 1)
    assert len(handler.received) == 1
    dispatcher.close()


def test_hanging_webhook_never_blocks_the_caller_and_overflow_is_dropped(tmp_path: Path, webhook_server) -> None:
    hang = threading.Event()
    _server, _handler, url = webhook_server(hang=hang)
    dropped = _sample("dlp_alerts_dropped_total", "webhook")
    dispatcher = AlertDispatcher(_settings(tmp_path, webhook_url=url, queue_size=5, webhook_timeout_seconds=30))
    message, verdict = _incident()
    started = time.perf_counter()
    for i in range(200):
        dispatcher.emit(message, replace(verdict, incident_id=f"INC-20260101-{i:08X}"))
    assert time.perf_counter() - started < 1.0
    assert _sample("dlp_alerts_dropped_total", "webhook") >= dropped + 190
    started = time.perf_counter()
    dispatcher.close(timeout=0.5)  # bounded even though the webhook never answers
    assert time.perf_counter() - started < 2.0
    hang.set()


def test_unreachable_syslog_is_counted(tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    failures = _sample("dlp_alert_sink_failures_total", "syslog")
    dispatcher = AlertDispatcher(_settings(tmp_path, syslog=f"tcp://127.0.0.1:{port}"))
    dispatcher.emit(*_incident())
    _wait_for(lambda: _sample("dlp_alert_sink_failures_total", "syslog") == failures + 1)
    dispatcher.close()


@pytest.mark.parametrize("alerts", [{"syslog": "ftp://x"}, {"webhook_url": "file:///etc/passwd"},
                                    {"syslog": "udp://127.0.0.1:514", "syslog_facility": "nope"}])
def test_bad_sink_configuration_is_a_clear_error(tmp_path: Path, alerts: dict) -> None:
    with pytest.raises(ValueError, match="alerts"):
        AlertDispatcher(_settings(tmp_path, **alerts))
