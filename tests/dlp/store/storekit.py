"""Helpers for the store tests: canary values, real messages through the real Inspector, a tree grep."""

from __future__ import annotations

from pathlib import Path

from dlp.inspect import Inspector
from dlp.model import Channel, ContentKind, Envelope, Message, Verdict

CARD = "4111 1111 1111 1111"
CARD_DIGITS = "4111111111111111"
SSN = "078-05-1120"
EMAIL = "canary.person.7f3a@example.org"
CANARIES = (CARD, CARD_DIGITS, SSN, SSN.replace("-", ""), EMAIL)


def canary_email(sender: str = "agent7@callcenter.example", recipients: tuple[str, ...] = ("buyer@gmail.example",),
                 subject: str = "notes") -> bytes:
    return (f"From: {sender}\r\nTo: {', '.join(recipients)}\r\nSubject: {subject}\r\n\r\n"
            f"customer card {CARD} exp 12/29\r\nssn {SSN}\r\nreach them at {EMAIL}\r\n").encode()


class Factory:
    """Real messages through the real Inspector."""

    def __init__(self, inspector: Inspector) -> None:
        self.inspector = inspector

    def message(self, sender: str = "agent7@callcenter.example",
                recipients: tuple[str, ...] = ("buyer@gmail.example",), channel: Channel = Channel.SMTP,
                raw: bytes | None = None, destination: str = "") -> tuple[Message, Verdict, bytes]:
        raw = raw if raw is not None else canary_email(sender, recipients)
        kind = ContentKind.EMAIL if channel is Channel.SMTP else ContentKind.AUTO
        message = Message(channel, raw, kind, Envelope(sender, recipients, "10.0.0.7", "agent7", destination, "DATA"))
        verdict = self.inspector.inspect(message)
        assert verdict.incident_id, verdict
        return message, verdict, raw


def grep_tree(root: Path, needles: tuple[str, ...]) -> list[tuple[str, str]]:
    """Every (file, needle) where a raw value occurs in any file under root (bytes, several encodings)."""
    hits = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        for needle in needles:
            for encoded in (needle.encode(), needle.encode("utf-16-le")):
                if encoded in data:
                    hits.append((str(path), needle))
    return hits


class RecordingSmtpServer:
    """A real aiosmtpd server on a loopback port in its own thread that records every message it accepts.
    `stop()` then `start()` again reuses the same port (the next hop going down and coming back)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, tuple[str, ...], bytes]] = []
        self.port = 0
        self._loop = None
        self._server = None
        self._thread = None

    def start(self) -> RecordingSmtpServer:
        import asyncio
        import threading

        from aiosmtpd.smtp import SMTP

        recorder = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                recorder.messages.append((envelope.mail_from, tuple(envelope.rcpt_tos), envelope.original_content))
                return "250 OK"

        ready = threading.Event()
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(
                loop.create_server(lambda: SMTP(Handler(), hostname="sink.localhost"), "127.0.0.1", self.port))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert ready.wait(10), "SMTP sink did not start"
        return self

    def stop(self) -> None:
        import asyncio

        loop, server = self._loop, self._server

        async def close() -> None:
            server.close()
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        loop.close()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"
