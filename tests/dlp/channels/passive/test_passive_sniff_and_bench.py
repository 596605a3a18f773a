"""`dlp sniff` on the loopback interface with a real HTTP client and server; `dlp bench pcap` bounded."""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]


def _can_capture() -> bool:
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()
        return True
    except (PermissionError, AttributeError, OSError):
        return False


def _sink_server() -> tuple[socket.socket, int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 27:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


@pytest.mark.skipif(not _can_capture(), reason="needs CAP_NET_RAW")
def test_sniff_loopback_sees_a_post_with_a_card(tmp_path):
    server, port = _sink_server()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlp", "sniff", "-i", "lo", "--bpf", f"tcp port {port}", "--duration", "30",
         "--no-record", "--format", "json", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stderr is not None
        line = ""
        while "capturing on lo" not in line:  # printed once the socket is open and filtered
            line = proc.stderr.readline()
            assert line, "dlp sniff exited before capturing"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/notes", body=b"card=4539 1488 0343 6467 thanks",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert conn.getresponse().status == 204
        conn.close()
        proc.send_signal(2)  # the monitor closes open flows at the end, so no need to wait for the FIN
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.close()
    lines = [json.loads(x) for x in out.splitlines() if x.strip()]
    assert proc.returncode == 1, err
    posts = [r for r in lines if r.get("envelope", {}).get("method") == "POST"]
    assert posts and [f["entity"] for f in posts[0]["findings"]] == ["CREDIT_CARD"]
    assert "4539 1488 0343 6467" not in out
    # kernel drops are reported (other loopback traffic may fill the buffer before the BPF filter is on)
    assert isinstance(lines[-1]["summary"]["capture_drops"], int)


def test_sniff_without_privilege_is_a_clear_error(tmp_path):
    """Drop CAP_NET_RAW from the capability bounding set (works as root, no other user needed)."""
    cmd = [sys.executable, "-m", "dlp", "sniff", "-i", "lo", "--no-record", "--duration", "1",
           "--data-dir", str(tmp_path)]
    try:
        result = subprocess.run(["setpriv", "--bounding-set=-net_raw,-net_admin", "--inh-caps=-net_raw,-net_admin",
                                 *cmd], capture_output=True, text=True, cwd=REPO, timeout=120)
    except FileNotFoundError:
        pytest.skip("setpriv not installed")
    if result.returncode == 127 or "setpriv:" in result.stderr:
        pytest.skip("cannot drop capabilities here: " + result.stderr.strip()[:200])
    assert result.returncode == 2, result.stderr
    assert "CAP_NET_RAW" in result.stderr and "Traceback" not in result.stderr


def test_bench_pcap_bounded():
    from dlp.bench import pcap

    result = pcap.run(argparse.Namespace(pcap_packets=3000, pcap_anchor_packets=300, seed=7))
    assert result["capture"]["packets"] >= 3000
    assert result["dlp"]["transactions"] == result["capture"]["requests"]
    assert result["dlp"]["findings"].get("CREDIT_CARD", 0) >= 1 and result["dlp"]["gaps"] == 0
    assert result["ratio"] > 1
    assert "packets/s" in pcap.format_text(result)
