"""`dlp serve`: one process running the inline channels, the console and the metrics endpoint.

Each service lives in its own module with `async def start_service(runtime, host, port) -> Service`;
this module opens what they share (store, alerts, inspection pool), starts the services whose listen
address is not "off", and stops them in reverse order on SIGTERM / SIGINT, letting in-flight work drain.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import signal
import sys
from dataclasses import dataclass, field
from typing import Any, Protocol

from dlp import __version__
from dlp.config import ConfigError, Settings, parse_listen
from dlp.inspect import InspectionPool
from dlp.logs import get_logger
from dlp.notifications import AlertsAndNotifications
from dlp.pipeline import Pipeline
from dlp.windows import Escalations

log = get_logger("dlp.serve")

# (name, settings section holding `listen`, module)
SERVICES: tuple[tuple[str, str, str], ...] = (
    ("metrics", "metrics", "dlp.metrics_server"),
    ("smtp", "smtp", "dlp.channels.smtp"),
    ("proxy", "proxy", "dlp.channels.web"),
    ("console", "console", "dlp.console.app"),
)

DRAIN_SECONDS = 30.0


class ServeError(Exception):
    """A start-up problem an operator can fix (port in use, missing key, bad config)."""


class Service(Protocol):
    name: str

    def describe(self) -> str: ...  # one line for the start-up banner, no secrets

    async def stop(self, grace: float) -> None: ...


@dataclass
class Runtime:
    """What the services share."""

    settings: Settings
    pipeline: Pipeline
    store: Any
    alerts: Any
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    notifications: Any = None  # dlp.notifications.NotificationSender: tells senders why mail was held
    services: list[Service] = field(default_factory=list)


def open_store(settings: Settings) -> Any:
    from dlp.store import open_store as _open

    return _open(settings)


def open_alerts(settings: Settings) -> Any:
    from dlp.alerts import AlertDispatcher

    return AlertDispatcher(settings)


def open_notifications(settings: Settings) -> Any:
    """The sender-notification service, or None when the policy switches notifications off."""
    from jinja2 import TemplateError

    from dlp.notifications import NotificationSender
    from dlp.policy import PolicyError, load_policy

    try:
        options = load_policy(settings.inspection.policy_file or None).raw.get("notifications") or {}
        if options.get("enabled", True) is False:
            return None
        return NotificationSender.from_settings(settings, options)
    except (PolicyError, ValueError, TemplateError) as exc:
        raise ServeError(f"policy notifications: {exc}") from None


async def serve(settings: Settings, *, ready: asyncio.Event | None = None) -> int:
    try:
        listens = {name: parse_listen(getattr(settings, section).listen, f"{section}.listen")
                   for name, section, _ in SERVICES}
    except ConfigError as exc:
        raise ServeError(str(exc)) from None
    # First, so that a bad template stops start-up before anything opens. Only mail has a sender to tell.
    notifications = open_notifications(settings) if listens["smtp"] is not None else None
    store = open_store(settings)
    alerts = open_alerts(settings)
    pool = InspectionPool(settings)
    try:
        await asyncio.to_thread(pool.start)
    except RuntimeError as exc:  # the workers cannot build an inspector (an unusable EDM index, say)
        raise ServeError(str(exc)) from None
    escalations = Escalations.from_settings(settings)  # aggregation windows + EDM cross-client contamination
    after_record = AlertsAndNotifications(alerts, notifications)  # both run once the incident is durable
    runtime = Runtime(settings, Pipeline(pool, store, after_record, escalations), store, alerts,
                      notifications=notifications)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runtime.stopping.set)
    try:
        for name, _section, module_name in SERVICES:
            address = listens[name]
            if address is None:
                continue
            module = importlib.import_module(module_name)
            try:
                service = await module.start_service(runtime, *address)
            except OSError as exc:
                raise ServeError(f"{name}: cannot listen on {address[0]}:{address[1]}: "
                                 f"{exc.strerror or exc}") from None
            runtime.services.append(service)
        print(f"dlp {__version__} serving; data directory {settings.data_path.resolve()}", flush=True)
        for service in runtime.services:
            print(f"  {service.name:<8} {service.describe()}", flush=True)
        # Everything built so far (detectors, policy, mitmproxy, templates) lives until exit: keep it out of
        # the collector's full passes, which otherwise pause every channel for tens of milliseconds.
        gc.freeze()
        print("dlp ready", flush=True)
        log.info("serving", services=[s.name for s in runtime.services])
        if ready is not None:
            ready.set()
        await runtime.stopping.wait()
        log.info("stopping")
    finally:
        for service in reversed(runtime.services):
            try:
                await service.stop(DRAIN_SECONDS)
            except Exception:
                log.exception("service_stop_failed", service=service.name)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        pool.close()
        escalations.close()
        if notifications is not None:
            notifications.close()
        closer = getattr(alerts, "close", None)
        if closer:
            closer()
        closer = getattr(store, "close", None)
        if closer:
            closer()
    print("dlp stopped", file=sys.stderr, flush=True)
    return 0
