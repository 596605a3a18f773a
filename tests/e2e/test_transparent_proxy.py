"""The shipped transparent-gateway recipe, end to end in real network namespaces: an agent (10.20.1.2,
inside the recipe's AGENTS), a routing gateway that loads deploy/transparent-proxy/dlp-transparent.nft as
shipped (or runs dlp-transparent.iptables.sh) and runs `dlp serve --config dlp-transparent.toml` as the
user "dlp", and a server (10.99.0.2) with a recording HTTP/HTTPS upstream. The agent's curl uses no proxy
setting at all: the kernel redirects it, dlp finds the destination with SO_ORIGINAL_DST, blocks the card
upload (which never reaches the server), passes the clean one, and QUIC (UDP/443) is dropped.

Why dlp runs as "dlp": the recipe exempts that user's own connections from the redirect (`meta skuid
"dlp"`); as root, the proxy's upstream connections would be redirected back to itself. The fixture creates
the system user when it is missing. The process keeps one capability, CAP_DAC_READ_SEARCH, only so that
it can read the virtualenv's interpreter and the test's tmp_path when those live under root-only
directories (as on the machines that run this suite); it gains no network privilege from it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.http_upstream import make_tls_material
from helpers.netns import AGENT_IP, GATEWAY_SERVER_SIDE_IP, SERVER_IP, SERVER_IP6, GatewayNetwork, run, unavailable

from dlp.config import load_settings
from dlp.store import IncidentQuery, open_store

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "deploy" / "transparent-proxy"
CARD = "4111 1111 1111 1111"
PROXY_PORT = 8080  # the recipe's default, used unchanged
METRICS = "127.0.0.1:9108"  # inside the gateway namespace only
TLS_NAME = "upstream.test"
DROPPED_COUNTERS = re.compile(r"udp dport 443 counter packets (\d+)")

pytestmark = pytest.mark.timeout(120)


def skip_reason(*tools: str) -> str | None:
    reason = unavailable()
    if reason:
        return reason
    missing = [t for t in (*tools, "curl", "setpriv") if not shutil.which(t)]
    return f"needs {', '.join(missing)} (scripts/install-test-tools)" if missing else None


@pytest.fixture
def exclusive() -> Iterator[None]:
    """One run of this module at a time on a machine (several checkouts may share it): the runs would not
    collide on names, but they would share the `dlp` user's creation and two cores' worth of time budget."""
    with open(Path(tempfile.gettempdir()) / "dlp-e2e-transparent-proxy.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_dlp_user() -> None:
    if run(["id", "-u", "dlp"], check=False).returncode == 0:
        return
    made = run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                "--shell", "/usr/sbin/nologin", "dlp"], check=False)
    if made.returncode not in (0, 9):  # 9: created meanwhile by someone else
        raise RuntimeError(f"useradd dlp: {made.stderr}")


class Gateway:
    """The three namespaces, the recording upstream in the server one, dlp in the gateway one."""

    def __init__(self, net: GatewayNetwork, tmp: Path) -> None:
        self.net = net
        self.tmp = tmp
        self.record = tmp / "upstream.jsonl"
        self.data_dir = tmp / "dlp-data"
        self.dlp_output = tmp / "dlp.log"
        self.tls = make_tls_material(tmp / "tls", names=(TLS_NAME,))
        self.dlp: subprocess.Popen[bytes] | None = None

    def start_upstream(self) -> None:
        self.record.touch()
        proc = self.net.spawn(
            "server", sys.executable, str(REPO / "tests" / "helpers" / "netns_upstream.py"),
            "--record", str(self.record), "--http", "[::]:80", "--https", "[::]:443",
            "--cert", str(self.tls.server_cert), "--key", str(self.tls.server_key),
            "--udp-echo", "443", "--udp-echo", "4443",
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", line + proc.stdout.read()

    def start_dlp(self, *args: str) -> None:
        """`dlp serve` with the shipped config file itself; only the data directory, the services this test
        does not need, and the test upstream's CA come from the command line / environment."""
        self.data_dir.mkdir(mode=0o700)
        shutil.chown(self.data_dir, "dlp", "dlp")
        with self.dlp_output.open("w") as log:  # the child keeps its own descriptor
            proc = self.dlp = self.net.spawn(
                "gateway", "setpriv", "--reuid=dlp", "--regid=dlp", "--clear-groups",
                "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--",
                sys.executable, "-m", "dlp", "serve", "--config", str(RECIPE / "dlp-transparent.toml"),
                "--data-dir", str(self.data_dir), "--smtp-listen", "off", "--console-listen", "off",
                "--metrics-listen", METRICS, "--workers", "1", *args,
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                env={**os.environ, "HOME": str(self.data_dir),
                     "DLP_PROXY_UPSTREAM_TRUSTED_CA": str(self.tls.ca_cert)})
        deadline = time.monotonic() + 90
        while "dlp ready" not in self.log_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("dlp serve did not start:\n" + self.log_text())
            time.sleep(0.1)
        assert f"0.0.0.0:{PROXY_PORT} (transparent proxy" in self.log_text(), self.log_text()

    def stop_dlp(self) -> None:
        assert self.dlp is not None
        self.dlp.terminate()
        assert self.dlp.wait(60) == 0, self.log_text()

    def log_text(self) -> str:
        return self.dlp_output.read_text(errors="replace")

    @property
    def dlp_ca(self) -> Path:
        return self.data_dir / "mitmproxy" / "mitmproxy-ca-cert.pem"

    def requests(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def curl(self, *args: str) -> tuple[int, str]:
        """curl in the agent namespace, with no proxy configured: whatever interception happens is the
        gateway's doing."""
        out = self.net.run("agent", "curl", "-sS", "--noproxy", "*", "--max-time", "20", "-w", "\n%{http_code}",
                           *args, check=False, timeout=30, env={"PATH": os.environ["PATH"]})
        body, _, status = out.stdout.rpartition("\n")
        assert status.isdigit(), out.stderr
        return int(status), body

    def udp_answered(self, port: int, server: str = SERVER_IP) -> bool:
        """One datagram from the agent to the server; True when the echo comes back within a second."""
        family = "AF_INET6" if ":" in server else "AF_INET"
        probe = (f"import socket,sys; s=socket.socket(socket.{family}, socket.SOCK_DGRAM); s.settimeout(1);"
                 f"s.sendto(b'quic?', ('{server}', {port}));\n"
                 "try: print(s.recv(100).decode())\nexcept TimeoutError: print('timeout')")
        out = self.net.run("agent", sys.executable, "-c", probe).stdout.strip()
        assert out in ("echo:quic?", "timeout"), out
        return out == "echo:quic?"

    def dropped_udp(self) -> int:
        listing = self.net.run("gateway", "nft", "list", "table", "inet", "dlp_proxy").stdout
        return sum(int(n) for n in DROPPED_COUNTERS.findall(listing))

    def metrics(self) -> str:
        return self.net.run("gateway", "curl", "-sS", f"http://{METRICS}/metrics").stdout


@pytest.fixture
def gateway(exclusive: None, tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    nets: list[GatewayNetwork] = []

    def factory(*tools: str) -> Gateway:
        reason = skip_reason(*tools)
        if reason:
            pytest.skip(reason)
        ensure_dlp_user()
        net = GatewayNetwork.create(f"dlpt{uuid.uuid4().hex[:8]}")
        nets.append(net)
        return Gateway(net, tmp_path)

    yield factory
    for net in nets:  # processes first, then the namespaces (and every rule inside them)
        net.close()


def assert_recipe_enforced(gw: Gateway) -> None:
    """What any of the recipes must achieve, seen from the agent."""
    # A card upload to a plain-HTTP server: blocked by dlp, never reaches the server.
    status, page = gw.curl("-H", "Content-Type: text/plain", "--data-binary", f"Card: {CARD}\n",
                           f"http://{SERVER_IP}/upload")
    assert status == 403 and "Blocked by data-loss prevention" in page, page
    assert "4111" not in page
    blocked_incident = page.split('id="incident">', 1)[1].split("<", 1)[0]

    # A clean upload arrives and its answer comes back; the server sees the gateway, not the agent.
    status, body = gw.curl("-d", "note=call back on Tuesday", f"http://{SERVER_IP}/upload")
    assert (status, body) == (200, "upstream ok")
    # The Host header says nothing about where the connection goes: the kernel's original destination does.
    status, body = gw.curl("-H", "Host: elsewhere.invalid", "-d", "note=second", f"http://{SERVER_IP}/upload")
    assert (status, body) == (200, "upstream ok")
    plain = gw.requests()
    assert [r["body"] for r in plain] == ["note=call back on Tuesday", "note=second"]  # never the card
    assert {r["peer"] for r in plain} == {GATEWAY_SERVER_SIDE_IP}
    assert plain[1]["headers"]["Host"] == "elsewhere.invalid"

    # HTTPS: dlp's CA trusted by the agent, the upstream's own CA by dlp; SNI names the server.
    tls = ("--cacert", str(gw.dlp_ca), "--resolve", f"{TLS_NAME}:443:{SERVER_IP}")
    status, page = gw.curl(*tls, "-H", "Content-Type: text/plain", "--data-binary", f"Card: {CARD}\n",
                           f"https://{TLS_NAME}/upload")
    assert status == 403 and "Blocked by data-loss prevention" in page, page
    status, body = gw.curl(*tls, "-d", "note=over tls", f"https://{TLS_NAME}/upload")
    assert (status, body) == (200, "upstream ok")
    *_, last = gw.requests()
    assert (last["body"], last["tls"]) == ("note=over tls", True)
    assert len(gw.requests()) == 3

    # QUIC: dropped at the gateway, while other UDP still flows (the control the drop is measured against).
    assert gw.udp_answered(4443)
    assert not gw.udp_answered(443)

    assert 'dlp_web_blocked_total{reason="policy"} 2.0' in gw.metrics()
    gw.stop_dlp()
    settings = load_settings(None, {"data_dir": str(gw.data_dir)}, environ={})
    with open_store(settings) as store:
        incidents = {i.id: i for i in store.list_incidents(IncidentQuery(sort="created", limit=10))}
        detail = store.get(blocked_incident)
    assert len(incidents) == 2 and {i.action for i in incidents.values()} == {"block"}
    # SO_ORIGINAL_DST: the incident names the server the agent was really talking to.
    assert incidents[blocked_incident].destination == f"http://{SERVER_IP}"
    assert detail.client_address == AGENT_IP
    assert sorted(i.destination for i in incidents.values()) == [f"http://{SERVER_IP}", f"https://{TLS_NAME}"]
    assert CARD not in gw.log_text() and CARD.replace(" ", "") not in gw.log_text()


def ipv6_web_reaches_server(gw: Gateway) -> bool:
    """A plain-HTTP upload from the agent to the server's IPv6 address; True when it arrived."""
    before = len(gw.requests())
    status, _ = gw.curl("-g", "-d", "note=over ipv6", f"http://[{SERVER_IP6}]/upload")
    arrived = len(gw.requests()) > before
    assert arrived == (status == 200), status
    return arrived


def assert_ipv6_fails_closed(gw: Gateway) -> None:
    """IPv6 is routed for the agents too: their web traffic over it must not go around the proxy, neither
    TCP (refused: dlp listens on IPv4, so browsers fall back to IPv4) nor QUIC."""
    assert not ipv6_web_reaches_server(gw)
    assert any(gw.udp_answered(4443, SERVER_IP6) for _ in range(3))  # the control: other IPv6 is routed
    assert not gw.udp_answered(443, SERVER_IP6)


def load_nft_recipe(gw: Gateway) -> None:
    gw.net.run("gateway", "nft", "-f", str(RECIPE / "dlp-transparent.nft"))


def test_nftables_recipe_redirects_agents_through_dlp(gateway: Callable[..., Gateway]) -> None:
    gw = gateway("nft")
    gw.start_upstream()
    # Controls: before the rules, QUIC and IPv6 web traffic reach the server (the first IPv6 datagram may
    # wait out neighbour discovery).
    assert any(gw.udp_answered(4443, SERVER_IP6) for _ in range(3))
    assert gw.udp_answered(443) and gw.udp_answered(443, SERVER_IP6)
    assert ipv6_web_reaches_server(gw)
    gw.record.write_text("")
    load_nft_recipe(gw)
    load_nft_recipe(gw)  # a reload replaces the table, it does not stack a second copy of the rules
    listing = gw.net.run("gateway", "nft", "list", "table", "inet", "dlp_proxy").stdout
    assert listing.count(f"redirect to :{PROXY_PORT}") == 3, listing
    gw.start_dlp()
    assert_ipv6_fails_closed(gw)
    assert_recipe_enforced(gw)
    assert gw.dropped_udp() >= 2  # the recipe's counters saw the QUIC datagrams, IPv4 and IPv6


def iptables_udp443_drops(gw: Gateway) -> int:
    listing = gw.net.run("gateway", "iptables", "-w", "-L", "FORWARD", "-v", "-n", "-x").stdout
    return sum(int(line.split()[0]) for line in listing.splitlines() if "DROP" in line and "dpt:443" in line)


def test_iptables_recipe_redirects_agents_through_dlp(gateway: Callable[..., Gateway]) -> None:
    gw = gateway("iptables")
    script = ("sh", str(RECIPE / "dlp-transparent.iptables.sh"))
    gw.start_upstream()
    gw.net.run("gateway", "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")  # the script must turn it on
    gw.net.run("gateway", *script)
    gw.net.run("gateway", *script)  # idempotent: running it twice leaves one copy of each rule
    rules = gw.net.run("gateway", "iptables-save").stdout
    assert rules.count(f"--to-ports {PROXY_PORT}") == 2 and rules.count("-j DROP") == 2, rules
    gw.start_dlp()
    assert_ipv6_fails_closed(gw)
    assert_recipe_enforced(gw)
    assert iptables_udp443_drops(gw) >= 1
    gw.net.run("gateway", *script, "remove")
    rules = gw.net.run("gateway", "iptables-save").stdout
    assert "REDIRECT" not in rules and "DROP" not in rules, rules
    assert gw.udp_answered(443)  # QUIC flows again once the rules are gone
    gw.net.run("gateway", *script, "remove")  # removing what is already gone is not an error


def test_host_header_cannot_borrow_an_allowlisted_name(gateway: Callable[..., Gateway]) -> None:
    """An agent names an allow-listed host in the Host header of a plain-HTTP upload that the kernel sends
    to some other address: the allow-list must not apply, the card must not reach that address."""
    gw = gateway("nft")
    policy = gw.tmp / "policy.yaml"
    policy.write_text("destinations:\n  client_systems:\n    domains: [crm.client.test]\n")
    gw.start_upstream()
    load_nft_recipe(gw)
    gw.start_dlp("--policy", str(policy))
    status, _ = gw.curl("-H", "Host: crm.client.test", "--data-binary", f"Card: {CARD}", f"http://{SERVER_IP}/up")
    assert gw.requests() == [] and status == 403
