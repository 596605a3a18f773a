"""The metrics endpoint of `dlp serve`: Prometheus exposition on /metrics, a /healthz probe, and the
task that refreshes store-derived gauges (quarantine backlog and age, precision).

A deliberately tiny HTTP/1.1 server on asyncio streams: two read-only GET routes do not justify a web
framework in the serve loop, and a bounded request reader keeps a slow or hostile client from holding
memory or a task for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder

from dlp import metrics
from dlp.logs import get_logger

log = get_logger("dlp.metrics")

MAX_REQUEST_HEAD = 16 * 1024  # request line + headers; Prometheus sends well under 1 KiB
READ_TIMEOUT_SECONDS = 10.0
PROBE_TIMEOUT_SECONDS = 5.0  # a hung disk (NFS) must not hang the probe
HEALTH_CACHE_SECONDS = 1.0  # probes hammering /healthz do not turn into fsync storms

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            408: "Request Timeout", 431: "Request Header Fields Too Large", 503: "Service Unavailable"}


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    checks: dict[str, str]

    def body(self) -> bytes:
        return json.dumps({"status": "ok" if self.ok else "unavailable", "checks": self.checks},
                          sort_keys=True).encode() + b"\n"


class HealthChecker:
    """200 when the process serves and the data directory (store, quarantine) is writable."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self._cached: tuple[float, Health] | None = None
        self._lock = asyncio.Lock()

    async def check(self) -> Health:
        async with self._lock:
            now = time.monotonic()
            if self._cached and now - self._cached[0] < HEALTH_CACHE_SECONDS:
                return self._cached[1]
            health = await self._check()
            self._cached = (time.monotonic(), health)
            return health

    async def _check(self) -> Health:
        checks: dict[str, str] = {}
        checks["serving"] = "stopping" if self.runtime.stopping.is_set() else "ok"
        try:
            await asyncio.wait_for(asyncio.to_thread(self._probe_store), PROBE_TIMEOUT_SECONDS)
            checks["store"] = "ok"
        except TimeoutError:
            checks["store"] = "timeout"
        except Exception as exc:  # any failure means "not writable"; the type is enough for operators
            checks["store"] = f"error:{type(exc).__name__}"
        checks["disk"] = self._disk()
        ok = all(v == "ok" for v in checks.values())
        metrics.STORE_WRITABLE.set(1 if checks["store"] == "ok" else 0)
        return Health(ok, checks)

    def _probe_store(self) -> None:
        """Write, fsync and remove a file in the data directory; ask the store too when it can tell."""
        data = Path(self.runtime.settings.data_path)
        probe = data / f".healthz-{os.getpid()}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"ok")
            os.fsync(fd)
        finally:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                probe.unlink()
        store_check = getattr(self.runtime.store, "check_writable", None)
        if callable(store_check):
            store_check()

    def _disk(self) -> str:
        try:
            free = shutil.disk_usage(self.runtime.settings.data_path).free
        except OSError:
            return "error"
        # Below this the relay refuses new mail (452); the probe says so before the queue backs up.
        return "ok" if free >= self.runtime.settings.smtp.min_free_bytes else "low"


class GaugeRefresher:
    """Refreshes gauges that come from the store rather than from events, off the event loop."""

    def __init__(self, runtime: Any, health: HealthChecker) -> None:
        self.runtime = runtime
        self.health = health

    def update_services(self) -> None:
        running = {s.name for s in self.runtime.services} | {"metrics"}
        for service in metrics.SERVICES:
            metrics.SERVICE_UP.labels(service).set(1 if service in running else 0)

    async def refresh(self) -> None:
        self.update_services()
        await self.health.check()
        store = self.runtime.store
        backlog = getattr(store, "backlog", None)
        if callable(backlog):
            try:
                count, oldest = await asyncio.to_thread(backlog)
                metrics.QUARANTINE_BACKLOG.set(count)
                metrics.QUARANTINE_OLDEST_AGE.set(oldest or 0)
            except Exception:
                metrics.REFRESH_ERRORS.labels("backlog").inc()
                log.warning("metrics_refresh_failed", source="backlog", exc_info=True)
        precision = getattr(store, "precision", None)
        if callable(precision):
            try:
                counts: Mapping[str, Mapping[str, tuple[int, int]]] = await asyncio.to_thread(precision)
            except Exception:
                metrics.REFRESH_ERRORS.labels("precision").inc()
                log.warning("metrics_refresh_failed", source="precision", exc_info=True)
                return
            for kind, gauge in (("rules", metrics.RULE_PRECISION), ("detectors", metrics.DETECTOR_PRECISION)):
                for name, (confirmed, false_positive) in (counts.get(kind) or {}).items():
                    decided = confirmed + false_positive
                    if decided:  # no decisions yet: no series, rather than a misleading 0
                        gauge.labels(name).set(confirmed / decided)

    async def run(self, interval: float, stop: asyncio.Event) -> None:
        """Refresh every `interval` seconds until `stop` (the caller did the first refresh)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            if stop.is_set():
                return
            try:
                await self.refresh()
            except Exception:  # the refresher must outlive one bad refresh
                metrics.REFRESH_ERRORS.labels("refresh").inc()
                log.warning("metrics_refresh_failed", source="refresh", exc_info=True)


class MetricsService:
    name = "metrics"

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.health = HealthChecker(runtime)
        self.refresher = GaugeRefresher(runtime, self.health)
        self._server: asyncio.Server | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._address: tuple[str, int] = ("", 0)

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, host, port, limit=MAX_REQUEST_HEAD)
        sock = self._server.sockets[0].getsockname()
        self._address = (sock[0], sock[1])
        await self.refresher.refresh()  # gauges are right from the first scrape
        interval = max(1.0, float(self.runtime.settings.metrics.refresh_seconds))
        self._task = asyncio.create_task(self.refresher.run(interval, self._stop), name="metrics-refresh")

    def describe(self) -> str:
        host, port = self._address
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/metrics"

    async def stop(self, grace: float) -> None:
        # Metrics stop last (serve stops services in reverse order), so a final scrape sees the drain.
        self._stop.set()
        metrics.SERVICE_UP.labels("metrics").set(0)
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, grace)
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), grace)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, headers, body = await self._respond(reader)
        except Exception:
            log.warning("metrics_request_failed", exc_info=True)
            status, headers, body = 503, {"Content-Type": "text/plain"}, b"error\n"
        try:
            head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
                    f"Content-Length: {len(body) if body is not None else 0}", "Connection: close",
                    "Cache-Control: no-store", *(f"{k}: {v}" for k, v in headers.items())]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            if body:
                writer.write(body)
            await writer.drain()
        except (ConnectionError, OSError):
            pass  # the client went away; nothing to tell it
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
        text = {"Content-Type": "text/plain; charset=utf-8"}
        try:
            raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_SECONDS)
        except TimeoutError:
            return 408, text, b"request timeout\n"
        except asyncio.LimitOverrunError:
            return 431, text, b"request head too large\n"
        except asyncio.IncompleteReadError:
            return 400, text, b"incomplete request\n"
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return 400, text, b"bad request line\n"
        method, target, _version = parts
        request_headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                request_headers[name.strip().lower()] = value.strip()
        path = target.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return 405, {**text, "Allow": "GET, HEAD"}, b"method not allowed\n"
        status, headers, body = await self._route(path, request_headers)
        if "gzip" in request_headers.get("accept-encoding", "") and len(body) > 1024:
            body = gzip.compress(body, compresslevel=5)
            headers = {**headers, "Content-Encoding": "gzip"}
        if method == "HEAD":
            # Content-Length of the GET body, no body: what HTTP asks of HEAD.
            return status, headers, b""
        return status, headers, body

    async def _route(self, path: str, request_headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if path == "/metrics":
            self.refresher.update_services()  # cheap, and right even before the first refresh tick
            # Prometheus asks for OpenMetrics or the text format in Accept; prometheus_client decides.
            encoder, content_type = choose_encoder(request_headers.get("accept", ""))
            return 200, {"Content-Type": content_type}, encoder(REGISTRY)
        if path == "/healthz":
            health = await self.health.check()
            return (200 if health.ok else 503), {"Content-Type": "application/json"}, health.body()
        if path == "/":
            return 200, {"Content-Type": "text/plain; charset=utf-8"}, b"dlp: /metrics /healthz\n"
        return 404, {"Content-Type": "text/plain; charset=utf-8"}, b"not found\n"


def _policy_rules(settings: Any) -> list[str]:
    from dlp.policy import load_policy

    try:
        return [rule.name for rule in load_policy(settings.inspection.policy_file or None).rules]
    except Exception:  # the inspection pool reports policy errors; metrics just lose the zeros
        log.warning("metrics_policy_unavailable", exc_info=True)
        return []


def _detector_entities() -> list[tuple[str, str]]:
    try:
        from detectors.base import load_all

        return [(entity, name) for name, cls in load_all().items() for entity in getattr(cls, "entities", ())]
    except Exception:
        log.warning("metrics_detectors_unavailable", exc_info=True)
        return []


async def start_service(runtime: Any, host: str, port: int) -> MetricsService:
    rules, pairs = await asyncio.to_thread(lambda: (_policy_rules(runtime.settings), _detector_entities()))
    metrics.preinitialise(rules, pairs)
    service = MetricsService(runtime)
    await service.start(host, port)
    return service
