"""The DLP web proxy in-process for tests: `dlp.channels.web.start_service` on a loopback port-0
listener, in a background thread with its own event loop, inspecting in a thread (workers = -1) and
recording incidents in memory. Faster than a `dlp serve` subprocess; the end-to-end tests use that too.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlp.config import Settings, load_settings
from dlp.inspect import InspectionPool
from dlp.model import Message, Verdict
from dlp.pipeline import Pipeline
from dlp.serve import Runtime


@dataclass
class MemoryIncidents:
    """The IncidentSink the pipeline writes to, kept in memory so tests can read it back."""

    records: list[tuple[Message, Verdict, bytes | None]] = field(default_factory=list)

    def record(self, message: Message, verdict: Verdict, original: bytes | None) -> None:
        self.records.append((message, verdict, original))

    def incident_ids(self) -> list[str]:
        return [v.incident_id for _, v, _ in self.records if v.incident_id]


class InProcessProxy:
    def __init__(self, data_dir: Path, **overrides: Any) -> None:
        values = {"data_dir": str(data_dir), "inspection.workers": -1, **overrides}
        self.settings: Settings = load_settings(None, values, environ={})
        self.incidents = MemoryIncidents()
        self.address: tuple[str, int] = ("", 0)
        self.service: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}"

    @property
    def ca_cert(self) -> Path:
        return self.service.confdir / "mitmproxy-ca-cert.pem"

    def __enter__(self) -> InProcessProxy:
        started = threading.Event()
        errors: list[BaseException] = []

        async def main() -> None:
            from dlp.channels.web import start_service

            pool = InspectionPool(self.settings)
            runtime = Runtime(self.settings, Pipeline(pool, self.incidents), self.incidents, None)
            self._stop = asyncio.Event()
            try:
                self.service = await start_service(runtime, "127.0.0.1", 0)
            except BaseException as exc:
                errors.append(exc)
                started.set()
                return
            self.address = self.service.address
            started.set()
            await self._stop.wait()
            await self.service.stop(10)
            pool.close()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(main())
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=run, name="dlp-proxy", daemon=True)
        self._thread.start()
        if not started.wait(60):
            raise RuntimeError("proxy did not start")
        if errors:
            raise errors[0]
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread:
            self._thread.join(30)
