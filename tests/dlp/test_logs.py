"""Log redaction: a table of sensitive shapes that must not survive, what must survive, structured
values, tracebacks (no locals, sanitised messages), and third-party loggers routed through it."""

from __future__ import annotations

import io
import json
import logging
import smtplib
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from helpers.canary import find_canaries, find_in_text
from hypothesis import given, settings
from hypothesis import strategies as st

from dlp import logs
from dlp.logs import format_exception, redact, redact_text

REPO = Path(__file__).resolve().parents[2]

CARD = "4111111111111111"
AMEX = "378282246310005"
SSN = "123-45-6789"
EMAIL = "jane.doe+orders@example-bank.co.uk"

LEAKS = [
    # (free text containing a sensitive value, the canary that must not survive)
    (f"card {CARD} declined", CARD),
    ("card 4111 1111 1111 1111 declined", CARD),
    ("card 4111-1111-1111-1111", CARD),
    ("card 4111.1111.1111.1111", CARD),
    ("card 4111/1111/1111/1111", CARD),
    ("card 4111\u00a01111\u00a01111\u00a01111", CARD),
    ("card 4111\u200b1111\u200b1111\u200b1111", CARD),
    ("card 4111\u20131111\u20131111\u20131111", CARD),
    ("card ４１１１ １１１１ １１１１ １１１１", CARD),
    ("card 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", CARD),
    (f"amex 3782 822463 10005 and {CARD}", AMEX),
    (f"ssn {SSN}", SSN),
    ("ssn 123 45 6789", SSN),
    ("ssn 123456789", SSN),
    ("phone +1 (555) 123-4567", "5551234567"),
    ("account 000123456789", "000123456789"),
    (f"RCPT TO:<{EMAIL}>", EMAIL),
    (f"from {EMAIL.upper()}", EMAIL),
    ("mail josé.müller@exämple.de", "josé.müller@exämple.de"),
    ("IBAN DE89 3704 0044 0532 0130 00", "DE89370400440532013000"),
    ("IBAN GB82WEST12345698765432", "GB82WEST12345698765432"),
    ("aws AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("gh ghp_16C7e42F292c6912E7710c838347Ae178B4a", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
    ("slack xoxb-2631-8732-hJkYBWp8Xp5r", "xoxb-2631-8732-hJkYBWp8Xp5r"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "eyJhbGciOiJIUzI1NiJ9"),
    ("password=hunter2 user=bob", "hunter2"),
    ('{"api_key": "s3cr3t-value"}', "s3cr3t-value"),
    ("connect https://bob:Tr0ub4dor@proxy.example/path", "Tr0ub4dor"),
    ("session 6f1ed002ab5595859014ebf0951522d9 expired", "6f1ed002ab5595859014ebf0951522d9"),
    ("key -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----", "MIIEvQIBAD"),
    ("truncated -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA", "MIIEowIBAA"),
]

KEPT = [
    # operational text that must stay readable
    "incident INC-20261128-8F3A1C2D recorded",
    "next hop 192.168.100.200:25 refused",
    "at 2026-11-28T03:45:00.123456+00:00",
    "card 411111******1111 masked",
    "ssn ***-**-6789",
    "quarantine write failed: [Errno 28] No space left on device",
    "listening on 127.0.0.1:10025",
    "/var/lib/dlp/keys/quarantine.key",
]


@pytest.mark.parametrize(("text", "canary"), LEAKS, ids=[t[:30] for t, _ in LEAKS])
def test_sensitive_shapes_are_redacted(text: str, canary: str) -> None:
    out = redact_text(text)
    assert not find_in_text([canary], out), out
    assert "[redacted" in out


@pytest.mark.parametrize("text", KEPT)
def test_operational_text_survives(text: str) -> None:
    assert redact_text(text) == text


@given(
    digits=st.text(alphabet="0123456789", min_size=13, max_size=19),
    separators=st.lists(st.sampled_from(["", " ", "-", ".", "  ", "\u00a0", "\u2009", "\u200b", " - "]),
                        min_size=19, max_size=19),
    prefix=st.sampled_from(["", "card ", "x", "#", "number:", "("]),
)
@settings(max_examples=300, deadline=None)
def test_no_card_length_digit_run_survives_any_separators(digits: str, separators: list[str], prefix: str) -> None:
    written = "".join(d + s for d, s in zip(digits, separators, strict=False)).rstrip()
    out = redact_text(prefix + written + " end")
    assert not find_in_text([digits], out), (written, out)


def test_structured_values() -> None:
    class Customer:
        def __str__(self) -> str:
            return f"Customer(card={CARD})"

    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    event = {
        "nested": {"deep": [{"note": f"ssn {SSN}"}, (f"mail {EMAIL}",)], "body": "anything"},
        "raw_bytes": CARD.encode(),
        "numbers": [4111111111111111, 42],
        "card_as_int": 4111111111111111,
        "size_bytes": 33_554_432,
        "port": 10025,
        "obj": Customer(),
        "broken": Broken(),
        "exc_value": ValueError(f"bad rcpt {EMAIL}"),
        f"key {CARD}": "keys are text too",
        "password": "hunter2",
        "incident": "INC-20261128-8F3A1C2D",
        "message_id": "m-0123456789abcdef",
        "set_of": {CARD},
    }
    out = redact(event)
    rendered = json.dumps(out)
    assert not find_in_text([CARD, SSN, EMAIL, "hunter2"], rendered), rendered
    assert out["nested"]["body"] == "[redacted]"
    assert out["raw_bytes"] == "[redacted:16 bytes]"
    assert out["numbers"] == ["[redacted:16d]", 42]
    assert out["size_bytes"] == 33_554_432 and out["port"] == 10025
    assert out["broken"] == "<Broken>"
    assert out["exc_value"].startswith("ValueError: bad rcpt [redacted")
    assert out["incident"] == "INC-20261128-8F3A1C2D" and out["message_id"] == "m-0123456789abcdef"


def test_deep_and_wide_structures_are_bounded() -> None:
    deep: Any = "x"
    for _ in range(50):
        deep = {"d": deep}
    assert "[redacted:nested]" in json.dumps(redact(deep))
    assert len(redact(list(range(10_000)))) == logs.MAX_ITEMS
    assert len(redact_text("a " * 10_000)) < logs.MAX_STRING + 20


def _raise_chain() -> None:
    customer_card = CARD  # a local variable that must never appear in a traceback  # noqa: F841
    try:
        raise KeyError(f"customer {EMAIL}")
    except KeyError as inner:
        raise ValueError(f"could not relay card {CARD}") from inner


def test_traceback_has_frames_but_no_locals_or_raw_messages() -> None:
    try:
        _raise_chain()
    except ValueError as exc:
        info = format_exception(exc)
    rendered = json.dumps(info)
    assert not find_in_text([CARD, EMAIL], rendered), rendered
    assert info["exception_type"] == "ValueError"
    assert [e["type"] for e in info["traceback"]] == ["KeyError", "ValueError"]
    assert any("_raise_chain" in frame for frame in info["traceback"][-1]["frames"])
    assert "customer_card" not in rendered


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """configure() into a buffer, then put the process's logging back as it was."""
    buf = io.StringIO()
    saved_config = structlog.get_config()
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_levels = {name: logging.getLogger(name).level for name in logs.TAMED_LOGGERS}
    saved_hooks = (sys.excepthook, threading.excepthook, logging.lastResort, logs._configured)
    logs._configured = False
    logs.configure("info", stream=buf)
    try:
        yield buf
    finally:
        structlog.configure(**saved_config)
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved_handlers:
            root.addHandler(h)
        root.setLevel(saved_level)
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)
        sys.excepthook, threading.excepthook, logging.lastResort, logs._configured = saved_hooks
        logging.captureWarnings(False)


def _lines(buf: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_json_lines_with_context_and_exceptions(captured: io.StringIO) -> None:
    log = logs.get_logger("dlp.test")
    with logs.log_context(incident="INC-20261128-8F3A1C2D", channel="smtp"):
        log.info("incident_recorded", rules=["cards-external"], note=f"card {CARD}")
        try:
            _raise_chain()
        except ValueError:
            log.exception("relay_failed")
    log.info("outside")
    lines = _lines(captured)
    assert [line["event"] for line in lines] == ["incident_recorded", "relay_failed", "outside"]
    first, failed, outside = lines
    assert first["incident"] == "INC-20261128-8F3A1C2D" and first["channel"] == "smtp"
    assert first["level"] == "info" and first["timestamp"].startswith("20")
    assert first["note"] == "card [redacted:16d]"
    assert failed["exception_type"] == "ValueError" and failed["traceback"][0]["type"] == "KeyError"
    assert "incident" not in outside
    assert not find_canaries([CARD, EMAIL], [captured.getvalue()])


def test_stdlib_loggers_are_tamed_and_redacted(captured: io.StringIO) -> None:
    logging.getLogger("mail.log").info("('127.0.0.1', 5000) >> b'RCPT TO:<%s>'", EMAIL)
    logging.getLogger("mitmproxy.proxy.server").info("GET https://x.example/?card=%s", CARD)
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET /incidents?q=%s HTTP/1.1" 200', SSN)
    logging.getLogger("httpx").info("HTTP Request: POST https://hooks.example/?t=%s", CARD)
    logging.getLogger("mail.log").warning("SMTP session exception for %s", EMAIL)
    # A broken format string (pytest's own handler would raise on it, so the bridge is called directly).
    logs.StdlibBridge().emit(logging.LogRecord("some.library", logging.ERROR, __file__, 1, "bad %s %d %s",
                                               (f"card {CARD}",), None))
    try:
        raise OSError(f"cannot deliver {CARD}")
    except OSError:
        logging.getLogger("asyncio").exception("Task exception was never retrieved")
    lines = _lines(captured)
    assert [(line["logger"], line["level"]) for line in lines] == [
        ("mail.log", "warning"), ("some.library", "error"), ("asyncio", "error")]
    assert lines[0]["message"] == "SMTP session exception for [redacted:email]"
    assert lines[2]["exception_type"] == "OSError"
    assert not find_canaries([CARD, EMAIL, SSN], [captured.getvalue()])


def test_real_aiosmtpd_session_logs_no_addresses_or_content(captured: io.StringIO) -> None:
    import asyncio

    from aiosmtpd.smtp import SMTP

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 OK"

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(lambda: SMTP(Sink()), "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.sendmail(EMAIL, [f"x{CARD}@example.net"], f"Subject: {SSN}\r\n\r\ncard {CARD}\r\n")
            s.docmd("VRFY", EMAIL)  # an odd command, answered and logged by aiosmtpd
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()
    assert not find_canaries([CARD, EMAIL, SSN], [captured.getvalue()]), captured.getvalue()


def test_uncaught_exception_is_logged_sanitised() -> None:
    code = (
        "from dlp import logs; logs.configure('info')\n"
        "def f():\n"
        f"    secret_local = '{CARD}'\n"
        f"    raise RuntimeError('failed for {EMAIL} card {CARD}')\n"
        "f()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 1
    assert not find_canaries([CARD, EMAIL], [proc.stderr, proc.stdout]), proc.stderr
    event = json.loads(proc.stderr.strip().splitlines()[-1])
    assert event["event"] == "uncaught_exception" and event["exception_type"] == "RuntimeError"
    assert "secret_local" not in proc.stderr


def test_uvicorn_options_keep_its_loggers_on_the_bridge(captured: io.StringIO) -> None:
    import uvicorn

    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - never served
        pass

    names = ("uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {n: (list(logging.getLogger(n).handlers), logging.getLogger(n).propagate) for n in names}
    try:
        uvicorn.Config(app, **logs.UVICORN_OPTIONS)  # applies uvicorn's logging configuration
        _check_uvicorn_loggers(captured)
    finally:
        for n, (handlers, propagate) in saved.items():
            logging.getLogger(n).handlers, logging.getLogger(n).propagate = handlers, propagate


def _check_uvicorn_loggers(captured: io.StringIO) -> None:
    # uvicorn's default config gives "uvicorn" its own stderr handler and cuts it off from the root.
    for name in ("uvicorn", "uvicorn.error"):
        assert not logging.getLogger(name).handlers and logging.getLogger(name).propagate, name
    access = logging.getLogger("uvicorn.access")  # request lines with query strings: silenced outright
    assert not access.handlers and not access.propagate
    assert any(isinstance(h, logs.StdlibBridge) for h in logging.getLogger().handlers)
    logging.getLogger("uvicorn.error").warning("Invalid HTTP request from %s", EMAIL)
    assert "[redacted:email]" in captured.getvalue() and EMAIL not in captured.getvalue()


def test_unconfigured_processes_still_log_safely() -> None:
    """An inspection worker or a command that logs before configure() gets the redacting pipeline, not
    structlog's default renderer (which prints local variables with rich)."""
    code = (
        "import structlog, dlp.logs\n"
        "def f():\n"
        f"    secret_local = '{CARD}'\n"
        f"    raise ValueError('card {CARD}')\n"
        "try:\n"
        "    f()\n"
        "except ValueError:\n"
        "    structlog.get_logger('w').error('worker_failed', exc_info=True)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    event = json.loads(proc.stderr.strip().splitlines()[-1])
    assert event["event"] == "worker_failed" and event["exception_type"] == "ValueError"
    assert not find_canaries([CARD], [proc.stderr, proc.stdout]) and "secret_local" not in proc.stderr
