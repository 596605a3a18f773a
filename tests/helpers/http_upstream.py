"""A recording upstream for proxy tests: an HTTP/1.1 server (optionally TLS, parsed with h11) and a
websocket server (the `websockets` package), both on loopback port 0 in a background thread. Every byte
and every request they receive is kept, so a test can assert that a blocked request never arrived.

    with RecordingUpstream() as up:
        httpx.post(up.url("/upload"), content=b"x", proxy=...)
        up.wait_for_requests(1)
        assert up.requests[0].body == b"x"

`make_tls_material(dir)` writes a throw-away CA and a 127.0.0.1/localhost server certificate.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11
import websockets.asyncio.server
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class RecordedRequest:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)


@dataclass
class TlsMaterial:
    ca_cert: Path
    server_cert: Path
    server_key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.server_cert, self.server_key)
        return ctx


def make_tls_material(directory: Path, *, names: tuple[str, ...] = ("localhost",)) -> TlsMaterial:
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dlp test upstream CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    material = TlsMaterial(directory / "upstream-ca.pem", directory / "upstream.pem", directory / "upstream.key")
    material.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    material.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    material.server_key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    return material


@dataclass
class RecordingUpstream:
    """Start with `with RecordingUpstream(...) as up:` (or start()/stop())."""

    tls: ssl.SSLContext | None = None
    status: int = 200
    reply: bytes = b"ok\n"
    requests: list[RecordedRequest] = field(default_factory=list)
    raw: bytearray = field(default_factory=bytearray)  # every byte the HTTP server received, all connections
    ws_messages: list[str | bytes] = field(default_factory=list)
    http_port: int = 0
    ws_port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _stop: Callable[[], None] | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> RecordingUpstream:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        started = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(started))
            except BaseException as exc:  # surfaced to start()
                errors.append(exc)
                started.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="recording-upstream", daemon=True)
        self._thread.start()
        started.wait(30)
        if errors:
            raise errors[0]

    def stop(self) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop)
        if self._thread:
            self._thread.join(10)

    async def _serve(self, started: threading.Event) -> None:
        done = asyncio.Event()
        self._stop = done.set
        http_server = await asyncio.start_server(self._handle_http, "127.0.0.1", 0, ssl=self.tls)
        ws_server = await websockets.asyncio.server.serve(self._handle_ws, "127.0.0.1", 0, ssl=self.tls)
        self.http_port = http_server.sockets[0].getsockname()[1]
        self.ws_port = next(iter(ws_server.sockets)).getsockname()[1]
        started.set()
        await done.wait()
        http_server.close()
        ws_server.close()
        for task in list(self._handlers):  # keep-alive connections the clients left open
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await ws_server.wait_closed()

    # ------------------------------------------------------------------ what tests use

    def url(self, path: str = "/", *, host: str = "127.0.0.1") -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host}:{self.http_port}{path}"

    def ws_url(self, path: str = "/", *, host: str = "127.0.0.1") -> str:
        scheme = "wss" if self.tls else "ws"
        return f"{scheme}://{host}:{self.ws_port}{path}"

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def wait_for_requests(self, count: int, timeout: float = 10) -> list[RecordedRequest]:
        if not self.wait_for(lambda: len(self.requests) >= count, timeout):
            raise AssertionError(f"upstream received {len(self.requests)} requests, expected {count}")
        return self.requests

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    # ------------------------------------------------------------------ servers

    async def _handle_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        current: dict[str, Any] = {}
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    if data:
                        self.raw.extend(data)
                        self._notify()
                    conn.receive_data(data)
                    if not data and conn.their_state is not h11.SEND_BODY:
                        break
                    continue
                if isinstance(event, h11.Request):
                    current = {"method": event.method.decode(), "target": event.target.decode(),
                               "headers": [(k.decode(), v.decode("latin-1")) for k, v in event.headers],
                               "body": bytearray()}
                elif isinstance(event, h11.Data):
                    current["body"].extend(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    self.requests.append(RecordedRequest(current["method"], current["target"], current["headers"],
                                                         bytes(current["body"])))
                    self._notify()
                    body = self.reply
                    writer.write(conn.send(h11.Response(status_code=self.status, headers=[
                        ("content-type", "text/plain"), ("content-length", str(len(body)))])))
                    writer.write(conn.send(h11.Data(data=body)))
                    writer.write(conn.send(h11.EndOfMessage()))
                    await writer.drain()
                    if conn.our_state is h11.MUST_CLOSE:
                        break
                    conn.start_next_cycle()
                elif isinstance(event, h11.ConnectionClosed):
                    break
        except (h11.RemoteProtocolError, ConnectionError, ssl.SSLError):
            pass
        finally:
            self._handlers.discard(task)
            self._notify()
            writer.close()

    async def _handle_ws(self, ws: websockets.asyncio.server.ServerConnection) -> None:
        try:
            async for message in ws:
                self.ws_messages.append(message)
                self._notify()
                await ws.send(b"ack" if isinstance(message, bytes) else "ack")
        except websockets.ConnectionClosed:
            pass
        finally:
            self._notify()
