"""End to end: `dlp serve` (a subprocess, every listener on port 0) proxying curl's HTTPS uploads to a
local TLS server through the proxy's own CA; the card upload is blocked with a block page and a stored
incident, the clean one arrives, nothing sensitive shows in logs or alerts, and the test-only fault
switch makes the proxy fail closed."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers.http_upstream import RecordingUpstream, TlsMaterial, make_tls_material

from dlp.config import load_settings
from dlp.store import open_store

CARD = "4111 1111 1111 1111"


@pytest.fixture(scope="module")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls_material(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_upstream(tls_material: TlsMaterial) -> Iterator[RecordingUpstream]:
    with RecordingUpstream(tls=tls_material.server_context()) as up:
        yield up


def curl(proxy: tuple[str, int], ca: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "-x", f"http://{proxy[0]}:{proxy[1]}", "--cacert", str(ca), *args],
                          capture_output=True, text=True, timeout=60)


def test_https_card_upload_is_blocked_and_clean_upload_passes(dlp_server, tls_material, tls_upstream,
                                                               tmp_path: Path) -> None:
    server = dlp_server("--console-listen", "off",  # the console has its own tests
                        env={"DLP_PROXY_UPSTREAM_TRUSTED_CA": str(tls_material.ca_cert)})
    proxy = server.address("proxy")
    ca = server.data_dir / "mitmproxy" / "mitmproxy-ca-cert.pem"
    assert ca.exists() and f"CA at {ca}" in server.log_text
    url = tls_upstream.url("/upload", host="localhost")
    card_file = tmp_path / "card.txt"
    card_file.write_text(f"Customer: Jane Roe\nCard: {CARD}\n")

    blocked = curl(proxy, ca, "-H", "Content-Type: text/plain", "--data-binary", f"@{card_file}",
                   "-w", "\n%{http_code}", url)
    page, _, status = blocked.stdout.rpartition("\n")
    assert status == "403", blocked.stderr
    assert "Blocked by data-loss prevention" in page and "4111" not in page
    incident = page.split('id="incident">', 1)[1].split("<", 1)[0]
    assert incident.startswith("INC-")

    clean = curl(proxy, ca, "-d", "note=call back on Tuesday", "-w", "%{http_code}", "-o", "/dev/null", url)
    assert clean.stdout == "200", clean.stderr
    [request] = tls_upstream.wait_for_requests(1)
    assert request.body == b"note=call back on Tuesday"  # the card upload never arrived

    metrics = httpx.get("http://{}:{}/metrics".format(*server.address("metrics")), timeout=10).text
    assert 'dlp_web_blocked_total{reason="policy"} 1.0' in metrics

    assert server.stop() == 0
    settings = load_settings(None, {"data_dir": str(server.data_dir)}, environ={})
    with open_store(settings) as store:
        detail = store.get(incident)
    assert detail.summary.channel == "web" and detail.summary.action == "block"
    # Invariant 3: the raw card appears neither in the logs nor in the alerts.
    digits = CARD.replace(" ", "")
    assert CARD not in server.log_text and digits not in server.log_text
    alerts = server.data_dir / "alerts.jsonl"
    if alerts.exists():
        text = alerts.read_text()
        assert incident in text and CARD not in text and digits not in text


def test_injected_fault_fails_closed(dlp_server, tls_material, tls_upstream) -> None:
    server = dlp_server("--console-listen", "off", env={
        "DLP_PROXY_UPSTREAM_TRUSTED_CA": str(tls_material.ca_cert), "DLPTEST_WEB_FAULT": "inspect"})
    ca = server.data_dir / "mitmproxy" / "mitmproxy-ca-cert.pem"
    done = curl(server.address("proxy"), ca, "-d", "harmless", "-o", "/dev/null", "-w", "%{http_code}",
                tls_upstream.url("/", host="localhost"))
    assert done.stdout == "403", done.stderr
    assert tls_upstream.raw == b""
    assert "web_inspection_failed" in server.log_text
