"""An in-process SMTP relay for tests: start_service on a private event loop thread, real store and pipeline.

Inspection runs inline (a thread, `inspection.workers = -1`) unless a test passes its own Inspector, for
example one whose detector raises or sleeps, to drive the failure paths.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from detectors.base import Detector, DetectorSet, build_detectors
from dlp.channels.smtp import SmtpService, start_service
from dlp.config import Settings, load_settings
from dlp.inspect import InspectionPool, Inspector
from dlp.keys import value_id_key
from dlp.model import Match
from dlp.pipeline import Pipeline
from dlp.policy import load_policy
from dlp.serve import Runtime
from dlp.store import open_store


class RelayUnderTest:
    """`with RelayUnderTest(tmp_path, next_hop=sink.address) as relay: smtplib.SMTP(*relay.address)`."""

    def __init__(self, data_dir: Path, *, next_hop: str = "", inspector_factory: Callable[[Settings], Inspector]
                 | None = None, environ: dict[str, str] | None = None, **settings: Any) -> None:
        overrides = {"data_dir": str(data_dir), "smtp.next_hop": next_hop, "inspection.workers": -1,
                     "smtp.min_free_bytes": 0, "smtp.forward_timeout_seconds": 10.0}
        overrides.update({key.replace("__", "."): value for key, value in settings.items()})
        self.settings = load_settings(None, overrides, environ=environ or {})
        self._inspector_factory = inspector_factory or shipped_inspector
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.service: SmtpService | None = None
        self.store: Any = None
        self.pool: InspectionPool | None = None

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> RelayUnderTest:
        self._thread.start()
        self.store = open_store(self.settings)
        inspector = self._inspector_factory(self.settings)
        self.pool = InspectionPool(self.settings, inspector)
        runtime = Runtime(self.settings, Pipeline(self.pool, self.store, None), self.store, None)

        async def start() -> SmtpService:
            return await start_service(runtime, "127.0.0.1", 0)

        self.service = self.run(start())
        return self

    @property
    def address(self) -> tuple[str, int]:
        assert self.service is not None
        return self.service.address

    def stop(self, grace: float = 5.0) -> None:
        if self.service is not None:
            self.run(self.service.stop(grace), timeout=grace + 30)
            self.service = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if self.pool is not None:
            self.pool.close()
        if self.store is not None:
            self.store.close()

    def __enter__(self) -> RelayUnderTest:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_DETECTORS: dict[str, DetectorSet] = {}


def shipped_inspector(settings: Settings) -> Inspector:
    """The real detectors and policy; the compiled detector set is shared between tests (it is slow to build
    and immutable), everything else is per relay."""
    policy = load_policy(settings.inspection.policy_file or None)
    key = settings.inspection.policy_file
    if key not in _DETECTORS:
        _DETECTORS[key] = build_detectors(policy.detectors)
    return Inspector(policy, value_id_key(settings.data_path), settings.inspection.limits, detectors=_DETECTORS[key])


class ScriptedDetector(Detector):
    """A detector whose behaviour a test chooses: raise, sleep, or report a marker as a card number.

    It has no `name`, so it never joins the global registry that real inspections load.
    """

    entities = ("CREDIT_CARD",)

    def __init__(self, behaviour: str = "raise", seconds: float = 0.0, marker: str = "") -> None:
        super().__init__({})
        self.behaviour = behaviour
        self.seconds = seconds
        self.marker = marker

    def scan(self, text: str) -> list[Match]:
        if self.behaviour == "raise":
            raise RuntimeError("injected detector failure with 4111111111111111 in its text")
        if self.behaviour == "sleep":
            import time

            time.sleep(self.seconds)
        return []


def scripted_inspector(detector: Detector) -> Callable[[Settings], Inspector]:
    def factory(settings: Settings) -> Inspector:
        return Inspector(load_policy(None), value_id_key(settings.data_path), settings.inspection.limits,
                         detectors=DetectorSet([detector]))

    return factory


def self_signed_cert(directory: Path, hostname: str = "dlp.localhost") -> tuple[str, str]:
    """A throwaway certificate and key (PEM files) for STARTTLS tests."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


class RawClient:
    """A line-level SMTP client for protocol attacks: send exact bytes, read exact replies."""

    def __init__(self, address: tuple[str, int], source: str = "") -> None:
        import socket

        self.sock = socket.create_connection(address, timeout=10, source_address=(source, 0) if source else None)
        self.reader = self.sock.makefile("rb")

    def reply(self) -> list[str]:
        """One (possibly multi-line) reply, as text lines."""
        lines = []
        while True:
            line = self.reader.readline()
            if not line:
                raise ConnectionError("closed")
            lines.append(line.decode("ascii", "replace").rstrip("\r\n"))
            if line[3:4] != b"-":
                return lines

    def command(self, line: bytes) -> list[str]:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def code(self, line: bytes) -> str:
        return self.command(line)[-1]

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def rest(self) -> bytes:
        """Everything the server still sends until it closes the connection."""
        return self.reader.read()

    def close(self) -> None:
        import contextlib

        with contextlib.suppress(OSError):
            self.reader.close()  # the socket's descriptor is only released once its file object is closed
            self.sock.close()
