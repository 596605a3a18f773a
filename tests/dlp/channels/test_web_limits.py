"""Size caps and failure modes of the DLP proxy on real sockets (adversarial cases F1, F2). One mitmproxy
per module: its context is process-wide."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from helpers.http_upstream import RecordingUpstream
from helpers.web_proxy import InProcessProxy
from prometheus_client import REGISTRY

CARD_BODY = b"customer paid with 4111 1111 1111 1111 yesterday"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def post(proxy: InProcessProxy, upstream: RecordingUpstream, body: bytes, **kwargs) -> httpx.Response:
    return httpx.post(upstream.url("/upload"), content=body, proxy=proxy.url, timeout=30, **kwargs)


def assert_blocked(response: httpx.Response, upstream: RecordingUpstream, status: int = 403) -> None:
    assert response.status_code == status, response.text[:300]
    assert upstream.raw == b"" and upstream.requests == []


@pytest.fixture
def upstream() -> Iterator[RecordingUpstream]:
    with RecordingUpstream() as up:
        yield up


# ------------------------------------------------------------------------------------ F2 size


@pytest.fixture(scope="module")
def small_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessProxy]:
    with InProcessProxy(tmp_path_factory.mktemp("web-small"), **{"proxy.max_body_bytes": 4096}) as px:
        yield px


def test_body_over_the_cap_is_refused_413(small_proxy: InProcessProxy, upstream: RecordingUpstream) -> None:
    response = post(small_proxy, upstream, b"a" * 5000)
    assert_blocked(response, upstream, 413)


def test_chunked_body_over_the_cap_is_refused_never_streamed(
        small_proxy: InProcessProxy, upstream: RecordingUpstream) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"b" * 1000

    response = httpx.post(upstream.url("/big"), content=chunks(), proxy=small_proxy.url, timeout=30)
    assert_blocked(response, upstream, 413)




def test_declared_length_over_the_cap_never_reaches_the_server(
        small_proxy: InProcessProxy, upstream: RecordingUpstream) -> None:
    before = sample("dlp_web_blocked_total", reason="too_large")
    response = post(small_proxy, upstream, b"c" * 100_000)
    assert_blocked(response, upstream, 413)
    assert sample("dlp_web_blocked_total", reason="too_large") == before + 1


def test_inspection_error_fails_closed(small_proxy: InProcessProxy, upstream: RecordingUpstream) -> None:
    """F1: mitmproxy's safecall would log a hook's exception and forward the request; ours blocks it.
    The fault is the one DLPTEST_WEB_FAULT=inspect switches on at start (see docs/web-proxy.md)."""
    addon = small_proxy.service.addon
    before = sample("dlp_fail_mode_applied_total", channel="web", mode="block")
    addon.fault = "inspect"
    try:
        response = post(small_proxy, upstream, b"perfectly harmless")
    finally:
        addon.fault = ""
    assert_blocked(response, upstream)
    assert response.headers["x-dlp-blocked"] == "inspection_unavailable"
    assert sample("dlp_fail_mode_applied_total", channel="web", mode="block") == before + 1
    assert post(small_proxy, upstream, b"perfectly harmless").status_code == 200
