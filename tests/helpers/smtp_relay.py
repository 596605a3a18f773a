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

from detectors.base import Detector, DetectorSet
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
        self._inspector_factory = inspector_factory
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
        inspector = self._inspector_factory(self.settings) if self._inspector_factory else None
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
