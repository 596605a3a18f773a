"""HTTPS through the DLP proxy: interception with its CA (curl, httpx, HTTP/2), clients that refuse the
CA, and passthrough hosts (adversarial case F14). One mitmproxy per module: its context is process-wide."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers.http_upstream import RecordingUpstream, make_tls_material
from helpers.web_proxy import InProcessProxy
from prometheus_client import REGISTRY

CARD_BODY = b"customer paid with 4111 1111 1111 1111 yesterday"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# ------------------------------------------------------------------------------------ TLS


@pytest.fixture(scope="module")
def tls_material(tmp_path_factory: pytest.TempPathFactory):
    return make_tls_material(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_proxy(tmp_path_factory: pytest.TempPathFactory, tls_material) -> Iterator[InProcessProxy]:
    with InProcessProxy(tmp_path_factory.mktemp("web-tls"), **{
            "proxy.upstream_trusted_ca": str(tls_material.ca_cert),
            "proxy.passthrough_hosts": "127.0.0.1"}) as px:
        yield px


@pytest.fixture
def tls_upstream(tls_material) -> Iterator[RecordingUpstream]:
    with RecordingUpstream(tls=tls_material.server_context()) as up:
        yield up


def _curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", *args],
                          capture_output=True, text=True, timeout=60)


def test_https_through_the_proxy_ca_with_curl(tls_proxy: InProcessProxy, tls_upstream: RecordingUpstream,
                                              tmp_path: Path) -> None:
    card_file = tmp_path / "card.txt"
    card_file.write_bytes(CARD_BODY)
    url = tls_upstream.url("/upload", host="localhost")
    blocked = _curl("-x", tls_proxy.url, "--cacert", str(tls_proxy.ca_cert), "-H", "Content-Type: text/plain",
                    "--data-binary", f"@{card_file}", url)
    assert blocked.stdout == "403", blocked.stderr
    assert tls_upstream.requests == []
    clean = _curl("-x", tls_proxy.url, "--cacert", str(tls_proxy.ca_cert), "-d", "hello", url)
    assert clean.stdout == "200", clean.stderr
    assert tls_upstream.wait_for_requests(1)[0].body == b"hello"


def test_https_over_http2_is_inspected(tls_proxy: InProcessProxy, tls_upstream: RecordingUpstream) -> None:
    with httpx.Client(proxy=tls_proxy.url, verify=str(tls_proxy.ca_cert), timeout=30) as client:
        response = client.post(tls_upstream.url("/h", host="localhost"), content=CARD_BODY)
        assert response.status_code == 403
    done = subprocess.run(["curl", "-sS", "--http2", "-x", tls_proxy.url, "--cacert", str(tls_proxy.ca_cert),
                           "-H", "Content-Type: text/plain", "--data-binary", CARD_BODY.decode(),
                           "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                           tls_upstream.url("/h2", host="localhost")], capture_output=True, text=True, timeout=60)
    assert done.stdout == "403 2", done.stderr
    assert tls_upstream.requests == []


def test_client_that_refuses_the_ca_is_counted(tls_proxy: InProcessProxy, tls_upstream: RecordingUpstream) -> None:
    before = sample("dlp_web_blocked_total", reason="tls_handshake_failed")
    refused = _curl("-x", tls_proxy.url, "-d", "hello", tls_upstream.url("/", host="localhost"))
    assert refused.returncode != 0 and tls_upstream.requests == []
    assert sample("dlp_web_blocked_total", reason="tls_handshake_failed") == before + 1


def test_passthrough_host_is_not_intercepted_but_counted(tls_proxy: InProcessProxy,
                                                         tls_upstream: RecordingUpstream, tls_material) -> None:
    before = sample("dlp_uninspected_total", channel="web", reason="tls_passthrough")
    # The upstream's own certificate reaches curl (it trusts only the upstream CA, not the proxy's).
    url = tls_upstream.url("/", host="127.0.0.1")  # the passthrough host; other tests use "localhost"
    done = _curl("-x", tls_proxy.url, "--cacert", str(tls_material.ca_cert), "-d", CARD_BODY.decode(), url)
    assert done.stdout == "200", done.stderr
    assert sample("dlp_uninspected_total", channel="web", reason="tls_passthrough") == before + 1
