"""The web proxy on real sockets: mitmproxy with the DLP addon in-process (tests/helpers/web_proxy.py),
real clients (httpx, curl, websockets, raw sockets) and a recording upstream that proves what arrived —
and that nothing of a blocked request did (adversarial cases F1-F12, F14)."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import socket
import subprocess
import threading
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import brotli
import httpx
import pytest
import websockets.sync.client
import zstandard
from helpers.http_upstream import RecordingUpstream
from helpers.web_proxy import InProcessProxy
from prometheus_client import REGISTRY

CARD = "4111 1111 1111 1111"
SSN = "536-22-8174"
CARD_BODY = f"customer paid with {CARD} yesterday".encode()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessProxy]:
    with InProcessProxy(tmp_path_factory.mktemp("web-proxy"), **{"proxy.max_body_bytes": 2_000_000}) as px:
        yield px


@pytest.fixture
def upstream() -> Iterator[RecordingUpstream]:
    with RecordingUpstream() as up:
        yield up


def post(proxy: InProcessProxy, upstream: RecordingUpstream, body: bytes, **kwargs) -> httpx.Response:
    return httpx.post(upstream.url("/upload"), content=body, proxy=proxy.url, timeout=30, **kwargs)


def assert_blocked(response: httpx.Response, upstream: RecordingUpstream, status: int = 403) -> None:
    assert response.status_code == status, response.text[:300]
    assert upstream.raw == b"" and upstream.requests == []  # not a single byte reached the server


# ------------------------------------------------------------------------------------ basics


def test_clean_post_arrives_intact(proxy: InProcessProxy, upstream: RecordingUpstream) -> None:
    body = b"note=customer asked for a call back on Tuesday"
    response = post(proxy, upstream, body, headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200 and response.text == "ok\n"
    [request] = upstream.wait_for_requests(1)
    assert request.body == body and request.method == "POST" and request.target == "/upload"


def test_card_is_blocked_with_a_block_page_and_nothing_reaches_the_server(
        proxy: InProcessProxy, upstream: RecordingUpstream) -> None:
    response = post(proxy, upstream, CARD_BODY, headers={"accept": "text/html"})
    assert_blocked(response, upstream)
    incident = response.headers["x-dlp-incident"]
    assert incident in response.text and "4111" not in response.text
    assert incident in proxy.incidents.incident_ids()


# ------------------------------------------------------------------------------------ F3-F6 encodings


def _gzip_members(*parts: bytes) -> bytes:
    return b"".join(gzip.compress(p) for p in parts)


ENCODINGS = {
    "gzip": ("gzip", lambda b: gzip.compress(b)),
    "x-gzip": ("x-gzip", lambda b: gzip.compress(b)),
    "deflate-zlib": ("deflate", lambda b: zlib.compress(b)),
    "deflate-raw": ("deflate", lambda b: _raw_deflate(b)),
    "br": ("br", lambda b: brotli.compress(b)),
    "zstd": ("zstd", lambda b: zstandard.ZstdCompressor().compress(b)),
    "stacked gzip, br": ("gzip, br", lambda b: brotli.compress(gzip.compress(b))),
    "stacked as two headers": (None, lambda b: brotli.compress(gzip.compress(b))),
    "multi-member gzip, PII in the 2nd": ("gzip", lambda b: _gzip_members(b"harmless first member " * 50, b)),
}


def _raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize("name", list(ENCODINGS))
def test_encoded_bodies_are_decoded_and_blocked(proxy: InProcessProxy, upstream: RecordingUpstream, name: str) -> None:
    header, encode = ENCODINGS[name]
    headers: list[tuple[str, str]] = [("content-encoding", header)] if header else [
        ("content-encoding", "gzip"), ("content-encoding", "br")]
    response = post(proxy, upstream, encode(CARD_BODY), headers=headers)
    assert_blocked(response, upstream)


def test_clean_gzip_body_is_forwarded_still_encoded(proxy: InProcessProxy, upstream: RecordingUpstream) -> None:
    body = _gzip_members(b"first ", b"second")
    response = post(proxy, upstream, body, headers={"content-encoding": "gzip"})
    assert response.status_code == 200
    [request] = upstream.wait_for_requests(1)
    assert request.body == body and request.header("content-encoding") == "gzip"


def test_unknown_encoding_is_not_passed_as_raw_bytes(proxy: InProcessProxy, upstream: RecordingUpstream) -> None:
    response = post(proxy, upstream, b"\x00\x01 whatever", headers={"content-encoding": "x-custom"})
    assert_blocked(response, upstream)


def test_gzip_bomb_is_blocked_quickly(proxy: InProcessProxy, upstream: RecordingUpstream) -> None:
    bomb = gzip.compress(b"\0" * (200 * 1024 * 1024), compresslevel=9)  # ~200 KB -> 200 MB
    response = post(proxy, upstream, bomb, headers={"content-encoding": "gzip"})
    assert_blocked(response, upstream)


# ------------------------------------------------------------------------------------ F7 chunked


def test_curl_chunked_upload_is_blocked(proxy: InProcessProxy, upstream: RecordingUpstream, tmp_path: Path) -> None:
    data = tmp_path / "card.txt"
    data.write_bytes(CARD_BODY)
    done = subprocess.run(["curl", "-sS", "-x", proxy.url, "-H", "Transfer-Encoding: chunked",
                           "-H", "Content-Type: text/plain", "--data-binary",
                           f"@{data}", "-o", "/dev/null", "-w", "%{http_code}", upstream.url("/c")],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout == "403", done.stderr
    assert upstream.raw == b""


def test_urlencoded_body_without_fields_is_still_inspected(proxy: InProcessProxy, upstream: RecordingUpstream) -> None:
    response = post(proxy, upstream, CARD_BODY, headers={"content-type": "application/x-www-form-urlencoded"})
    assert_blocked(response, upstream)


def _raw_exchange(proxy: InProcessProxy, payload: bytes) -> bytes:
    """Send bytes as they are; read until the proxy closes (every payload here ends the connection)."""
    with socket.create_connection(proxy.address, timeout=30) as sock:
        sock.sendall(payload)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_one_byte_chunks_with_extensions_are_reassembled(proxy: InProcessProxy, upstream: RecordingUpstream) -> None:
    chunks = b"".join(b"1;ext=\"v\"\r\n" + bytes([c]) + b"\r\n" for c in CARD_BODY) + b"0\r\n\r\n"
    head = (f"POST {upstream.url('/c')} HTTP/1.1\r\nHost: 127.0.0.1:{upstream.http_port}\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    reply = _raw_exchange(proxy, head + chunks)
    assert reply.startswith(b"HTTP/1.1 403"), reply[:200]
    assert upstream.raw == b""


# ------------------------------------------------------------------------------------ F11 smuggling


@pytest.mark.parametrize("headers", [
    "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",  # CL + TE
    "Content-Length: 4\r\nContent-Length: 40\r\n",  # duplicate, conflicting CL
    "Content-Length: 4\r\nX-Folded: a\r\n b\r\n",  # obs-fold
    "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",  # ambiguous TE
], ids=["cl-te", "duplicate-cl", "obs-fold", "te-te"])
def test_request_smuggling_is_refused_and_upstream_gets_nothing(
        proxy: InProcessProxy, upstream: RecordingUpstream, headers: str) -> None:
    smuggled = f"GET /smuggled?card={CARD.replace(' ', '')} HTTP/1.1\r\nHost: x\r\n\r\n"
    payload = (f"POST {upstream.url('/s')} HTTP/1.1\r\nHost: 127.0.0.1:{upstream.http_port}\r\n{headers}\r\n"
               f"0\r\n\r\n{smuggled}").encode()
    reply = _raw_exchange(proxy, payload)
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
    assert upstream.raw == b""


# ------------------------------------------------------------------------------------ F8-F10 forms and uploads


def test_multipart_upload_of_a_zipped_csv_is_blocked(proxy: InProcessProxy, upstream: RecordingUpstream) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("export/customers.csv", f"name,card\nJane Roe,{CARD}\n")
    response = httpx.post(upstream.url("/upload"), files={"file": ("customers.zip", archive.getvalue(),
                                                                   "application/zip")},
                          data={"comment": "monthly export"}, proxy=proxy.url, timeout=30)
    assert_blocked(response, upstream)


def test_json_with_a_base64_csv_is_blocked(proxy: InProcessProxy, upstream: RecordingUpstream) -> None:
    import base64

    csv = base64.b64encode(f"name,ssn\nJane Roe,{SSN}\nJohn Doe,{SSN}\n".encode()).decode()
    response = post(proxy, upstream, json.dumps({"attachment": csv}).encode(),
                    headers={"content-type": "application/json", "accept": "application/json"})
    assert_blocked(response, upstream)
    assert response.json()["error"] == "blocked by data-loss prevention"


def test_pii_in_the_query_string_is_blocked(proxy: InProcessProxy, upstream: RecordingUpstream) -> None:
    response = httpx.get(upstream.url(f"/lookup?ssn={SSN}"), proxy=proxy.url, timeout=30)
    assert_blocked(response, upstream)


# ------------------------------------------------------------------------------------ F12 websockets


def test_websocket_message_with_an_ssn_is_dropped(proxy: InProcessProxy, upstream: RecordingUpstream) -> None:
    with websockets.sync.client.connect(upstream.ws_url("/chat"), proxy=proxy.url, open_timeout=30) as ws:
        ws.send("hello, how can I help?")
        assert ws.recv(timeout=30) == "ack"
        ws.send(f"the customer's ssn is {SSN}")
        with pytest.raises(websockets.ConnectionClosed):
            ws.recv(timeout=30)
    assert upstream.wait_for(lambda: len(upstream.ws_messages) >= 1)
    assert upstream.ws_messages == ["hello, how can I help?"]


def test_fragmented_binary_websocket_message_is_inspected_whole(
        proxy: InProcessProxy, upstream: RecordingUpstream) -> None:
    payload = f"export: {CARD}".encode()
    with websockets.sync.client.connect(upstream.ws_url("/bin"), proxy=proxy.url, open_timeout=30) as ws:
        ws.send([payload[:10], payload[10:]])  # one message, two frames
        with pytest.raises(websockets.ConnectionClosed):
            ws.recv(timeout=30)
    assert upstream.ws_messages == []


def test_non_http_bytes_in_a_connect_tunnel_never_reach_the_server(proxy: InProcessProxy) -> None:
    """mitmproxy relays unrecognised protocols as raw TCP by default; the DLP turns that off, so a
    tunnel carrying anything but HTTP is refused instead of relayed uninspected."""
    received: list[bytes] = []
    done = threading.Event()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()

        def serve() -> None:
            server.settimeout(10)
            try:
                conn, _ = server.accept()
            except OSError:
                done.set()
                return
            with conn:
                conn.sendall(b"220 service ready\r\n")
                conn.settimeout(3)
                try:
                    while data := conn.recv(4096):
                        received.append(data)
                except OSError:
                    pass
            done.set()

        threading.Thread(target=serve, daemon=True).start()
        port = server.getsockname()[1]
        with socket.create_connection(proxy.address, timeout=10) as client:
            client.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            assert client.recv(1000).startswith(b"HTTP/1.1 200")
            client.sendall(b"hi\ncard 4111 1111 1111 1111 ssn 536-22-8174\r\n")
            client.settimeout(10)
            with contextlib.suppress(OSError):
                while client.recv(4096):
                    pass
        done.wait(15)
    assert b"".join(received) == b""
