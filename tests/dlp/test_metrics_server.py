"""The metrics endpoint in-process: exposition formats, /healthz, the gauge refresher, bad requests."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dlp import metrics
from dlp.config import load_settings
from dlp.metrics_server import MetricsService, start_service
from dlp.serve import Runtime


class BacklogStore:
    """The part of the store the refresher reads (Store.backlog / precision); the real store's own tests
    cover its queries."""

    def __init__(self) -> None:
        self.backlog_value: tuple[int, float] = (3, 7200.0)
        self.fail = False
        self.writable = True

    def backlog(self) -> tuple[int, float]:
        if self.fail:
            raise RuntimeError("database is locked")
        return self.backlog_value

    def precision(self) -> dict[str, dict[str, tuple[int, int]]]:
        return {"rules": {"cards-external": (3, 1), "never-decided": (0, 0)}, "detectors": {"payment_card": (1, 1)}}

    def check_writable(self) -> None:
        if not self.writable:
            raise PermissionError("read-only")


def _runtime(data_dir: Path, store: Any) -> Runtime:
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = load_settings(overrides={"data_dir": str(data_dir), "smtp.min_free_bytes": 0})
    return Runtime(settings=settings, pipeline=None, store=store, alerts=None)  # type: ignore[arg-type]


def _value(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


async def _serve(runtime: Runtime) -> tuple[MetricsService, str]:
    service = await start_service(runtime, "127.0.0.1", 0)
    described = service.describe()
    assert described.startswith("http://127.0.0.1:") and described.endswith("/metrics")
    assert not described.endswith(":0/metrics"), "describe() must show the bound port"
    return service, described.removesuffix("/metrics")


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_metrics_exposition_has_preinitialised_series_and_store_gauges(tmp_path: Path) -> None:
    async def scenario() -> None:
        service, base = await _serve(_runtime(tmp_path / "data", BacklogStore()))
        try:
            async with httpx.AsyncClient() as client:
                r = await client.get(base + "/metrics")
                assert r.status_code == 200
                assert r.headers["content-type"].startswith("text/plain; version=")
                text = r.text
                om = await client.get(base + "/metrics", headers={"Accept": "application/openmetrics-text"})
                assert om.headers["content-type"].startswith("application/openmetrics-text")
                assert om.text.rstrip().endswith("# EOF")
                gz = await client.get(base + "/metrics", headers={"Accept-Encoding": "gzip"})
                assert gz.headers.get("content-encoding") == "gzip"  # httpx decodes it for us
                assert "dlp_build_info" in gz.text
        finally:
            await service.stop(5)
        # Pre-initialised series exist before any traffic (their values are process-wide: other tests in
        # this process may have moved them).
        assert _value(text, "dlp_messages_total", channel="passive", action="block") is not None
        assert _value(text, "dlp_uninspected_total", channel="web", reason="encrypted_archive") is not None
        assert _value(text, "dlp_alert_sink_failures_total", sink="webhook") is not None
        assert _value(text, "dlp_quarantine_backlog") == 3.0
        assert _value(text, "dlp_quarantine_oldest_age_seconds") == 7200.0
        assert _value(text, "dlp_rule_precision", rule="cards-external") == 0.75
        assert _value(text, "dlp_rule_precision", rule="never-decided") is None
        assert _value(text, "dlp_detector_precision", detector="payment_card") == 0.5
        assert _value(text, "dlp_service_up", service="metrics") == 1.0
        assert _value(text, "dlp_service_up", service="smtp") == 0.0
        assert _value(text, "dlp_store_writable") == 1.0
        # Every shipped rule and every registered detector already has its zero series.
        from dlp.policy import load_policy

        for rule in load_policy().rules:
            assert _value(text, "dlp_rule_matches_total", rule=rule.name) is not None, rule.name

    run(scenario())


def test_healthz_reports_store_and_stopping(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = BacklogStore()
        runtime = _runtime(tmp_path / "data", store)
        service, base = await _serve(runtime)
        try:
            async with httpx.AsyncClient() as client:
                ok = await client.get(base + "/healthz")
                assert ok.status_code == 200
                assert ok.json() == {"status": "ok", "checks": {"disk": "ok", "serving": "ok", "store": "ok"}}
                head = await client.head(base + "/healthz")
                assert head.status_code == 200 and head.content == b""

                store.writable = False
                service.health._cached = None  # the cache is 1 s; the test does not wait for it
                bad = await client.get(base + "/healthz")
                assert bad.status_code == 503
                assert bad.json()["checks"]["store"] == "error:PermissionError"
                assert "read-only" not in bad.text  # exception texts stay out of the probe

                store.writable = True
                (tmp_path / "data").rename(tmp_path / "gone")  # the data directory vanished
                service.health._cached = None
                gone = await client.get(base + "/healthz")
                assert gone.status_code == 503 and gone.json()["checks"]["store"] == "error:FileNotFoundError"
                (tmp_path / "gone").rename(tmp_path / "data")

                runtime.stopping.set()
                service.health._cached = None
                stopping = await client.get(base + "/healthz")
                assert stopping.status_code == 503 and stopping.json()["checks"]["serving"] == "stopping"
                metrics_text = (await client.get(base + "/metrics")).text
                assert _value(metrics_text, "dlp_store_writable") == 1.0
        finally:
            await service.stop(5)

    run(scenario())


def test_refresher_survives_store_errors(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = BacklogStore()
        service, base = await _serve(_runtime(tmp_path / "data", store))
        try:
            before = metrics.REFRESH_ERRORS.labels("backlog")._value.get()
            store.fail = True
            await service.refresher.refresh()
            assert metrics.REFRESH_ERRORS.labels("backlog")._value.get() == before + 1
            store.fail = False
            store.backlog_value = (0, 0.0)
            await service.refresher.refresh()
            async with httpx.AsyncClient() as client:
                text = (await client.get(base + "/metrics")).text
            assert _value(text, "dlp_quarantine_backlog") == 0.0
        finally:
            await service.stop(5)

    run(scenario())


async def _raw(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", b"404"),
        (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", b"405"),
        (b"garbage\r\n\r\n", b"400"),
        (b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 40_000 + b"\r\n\r\n", b"431"),
        (b"GET /metrics?x=1 HTTP/1.0\r\n\r\n", b"200"),
    ],
)
def test_bad_requests_get_clear_statuses(tmp_path: Path, request_bytes: bytes, status: bytes) -> None:
    async def scenario() -> None:
        service, base = await _serve(_runtime(tmp_path / "data", BacklogStore()))
        try:
            port = int(base.rsplit(":", 1)[1])
            reply = await _raw(port, request_bytes)
            assert reply.split(b" ", 2)[1] == status, reply[:200]
        finally:
            await service.stop(5)

    run(scenario())


def test_stop_closes_the_listener(tmp_path: Path) -> None:
    async def scenario() -> None:
        service, base = await _serve(_runtime(tmp_path / "data", None))
        port = int(base.rsplit(":", 1)[1])
        await service.stop(5)
        with pytest.raises(OSError):
            await _raw(port, b"GET /metrics HTTP/1.1\r\n\r\n")

    run(scenario())


def test_healthz_body_is_json_without_paths(tmp_path: Path) -> None:
    async def scenario() -> None:
        service, base = await _serve(_runtime(tmp_path / "data", None))
        try:
            async with httpx.AsyncClient() as client:
                r = await client.get(base + "/healthz")
        finally:
            await service.stop(5)
        assert str(tmp_path) not in r.text
        assert json.loads(r.text)["status"] == "ok"

    run(scenario())


def test_gzip_body_really_is_gzip(tmp_path: Path) -> None:
    async def scenario() -> None:
        service, base = await _serve(_runtime(tmp_path / "data", None))
        try:
            port = int(base.rsplit(":", 1)[1])
            reply = await _raw(port, b"GET /metrics HTTP/1.1\r\nAccept-Encoding: gzip\r\n\r\n")
        finally:
            await service.stop(5)
        head, _, body = reply.partition(b"\r\n\r\n")
        assert b"Content-Encoding: gzip" in head
        assert b"dlp_messages_total" in gzip.decompress(body)

    run(scenario())
