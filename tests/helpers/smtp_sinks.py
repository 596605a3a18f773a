"""Next hops for relay tests: a recording aiosmtpd sink in its own thread, and Postfix's smtp-sink.

`RecordingSink` keeps every message it accepted (envelope, bytes, time) and can be told to delay its
reply to the final dot, refuse recipients, or answer the dot with a given reply. `PostfixSmtpSink` wraps
the smtp-sink fault injector (-r: 4xx, -f: 5xx, -q: disconnect without reply, -w: delay at DATA).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP

POSTFIX_ROOT = Path(__file__).resolve().parents[2] / ".cache" / "postfix"
SMTP_SINK = POSTFIX_ROOT / "usr" / "sbin" / "smtp-sink"
SMTP_SOURCE = POSTFIX_ROOT / "usr" / "sbin" / "smtp-source"
POSTFIX_LIBS = POSTFIX_ROOT / "usr" / "lib" / "postfix"


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    at: float  # time.monotonic() when the final dot was read
    tls: bool = False  # the session had done STARTTLS


@dataclass
class SinkBehaviour:
    data_reply: str = "250 2.0.0 Ok: queued"
    data_delay: float = 0.0  # seconds between the final dot and the reply
    refuse_recipients: dict[str, str] = field(default_factory=dict)  # address -> reply
    eight_bit: bool = True  # announce 8BITMIME (False: a 7-bit-only next hop)
    idle_timeout: float = 300.0  # aiosmtpd closes a session idle this long
    tls_context: ssl.SSLContext | None = None  # offer STARTTLS
    pipelining: bool = False  # announce PIPELINING (aiosmtpd reads commands from a buffered stream, in order)


class _Handler:
    def __init__(self, sink: RecordingSink) -> None:
        self.sink = sink

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.sink.behaviour.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        refusal = self.sink.behaviour.refuse_recipients.get(address)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        at = time.monotonic()
        self.sink.dot_seen.set()
        behaviour = self.sink.behaviour
        if behaviour.data_delay:
            await asyncio.sleep(behaviour.data_delay)
        if behaviour.data_reply.startswith("250"):
            with self.sink.lock:
                self.sink.messages.append(
                    Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content), at,
                             session.ssl is not None))
                self.sink.arrived.notify_all()
        return behaviour.data_reply


class RecordingSink:
    """An SMTP server on 127.0.0.1:<free port> that records what it accepts. Use as a context manager."""

    def __init__(self, behaviour: SinkBehaviour | None = None) -> None:
        self.behaviour = behaviour or SinkBehaviour()
        self.messages: list[Received] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.dot_seen = threading.Event()  # set when a final dot arrives (before any delay or reply)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> RecordingSink:
        self._thread.start()
        handler = _Handler(self)

        async def serve() -> asyncio.Server:
            return await self._loop.create_server(
                lambda: SMTP(handler, hostname="sink.test", enable_SMTPUTF8=self.behaviour.eight_bit,
                             decode_data=not self.behaviour.eight_bit, timeout=self.behaviour.idle_timeout,
                             tls_context=self.behaviour.tls_context, loop=self._loop),
                "127.0.0.1", 0)

        self._server = asyncio.run_coroutine_threadsafe(serve(), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            async def close() -> None:
                assert self._server is not None
                self._server.close()

            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def wait_for(self, count: int, timeout: float = 20) -> list[Received]:
        """Block until at least `count` messages arrived; returns them (raises on timeout)."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.messages) >= count, timeout):
                raise TimeoutError(f"sink got {len(self.messages)} messages, expected {count}")
            return list(self.messages)

    def __enter__(self) -> RecordingSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def postfix_tools_available() -> bool:
    return SMTP_SINK.exists() and os.access(SMTP_SINK, os.X_OK)


def postfix_env() -> dict[str, str]:
    return {**os.environ, "LD_LIBRARY_PATH": str(POSTFIX_LIBS)}


class PostfixSmtpSink:
    """Postfix's smtp-sink on a free loopback port with the given fault options, e.g. ["-r", "."]."""

    def __init__(self, *options: str, dump: Path | None = None) -> None:
        self.options = list(options)
        self.port = free_port()
        self.dump = dump
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> PostfixSmtpSink:
        argv = [str(SMTP_SINK)]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]  # smtp-sink refuses to run as root without a user to switch to
        if self.dump is not None:
            argv += ["-D", str(self.dump)]
        argv += [*self.options, f"127.0.0.1:{self.port}", "64"]
        self.proc = subprocess.Popen(argv, env=postfix_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_listening(self.port)
        except OSError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> PostfixSmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def swaks_available() -> bool:
    return shutil.which("swaks") is not None
