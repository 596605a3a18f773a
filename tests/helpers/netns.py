"""A routed three-namespace network for gateway tests: agent <-> gateway <-> server, each a real Linux
network namespace joined by veth pairs, the gateway forwarding between them over IPv4 and IPv6.

    with GatewayNetwork.create("dlpt1234") as net:
        net.run("agent", "curl", f"http://{SERVER_IP}/")

Needs root and `ip`; `GatewayNetwork.unavailable()` says why a test must skip. Names are unique per run,
and `close()` (also on failure) kills the processes started through `spawn()` and deletes the
namespaces, which takes their interfaces and nftables/iptables rules with them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

AGENT_IP = "10.20.1.2"  # inside the recipe's default AGENTS (10.20.0.0/16)
GATEWAY_AGENT_SIDE_IP = "10.20.1.1"
GATEWAY_SERVER_SIDE_IP = "10.99.0.1"
SERVER_IP = "10.99.0.2"  # outside AGENTS: the "internet"
# The same network over IPv6 (unique local addresses), routed by the gateway too: recipes must not let it
# carry web traffic around the proxy.
AGENT_IP6 = "fd00:20::2"
GATEWAY_AGENT_SIDE_IP6 = "fd00:20::1"
GATEWAY_SERVER_SIDE_IP6 = "fd00:99::1"
SERVER_IP6 = "fd00:99::2"
ROLES = ("agent", "gateway", "server")


def run(argv: Sequence[str], *, timeout: float = 30, check: bool = True,
        **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def unavailable() -> str | None:
    """Why namespaces cannot be built here (a skip reason), or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, nftables)"
    if not shutil.which("ip"):
        return "needs iproute2's `ip`"
    probe = f"dlpprobe{os.getpid()}"
    made = run(["ip", "netns", "add", probe], check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    run(["ip", "netns", "del", probe], check=False)
    return None


@dataclass
class GatewayNetwork:
    prefix: str
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)

    def ns(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    @classmethod
    def create(cls, prefix: str) -> GatewayNetwork:
        net = cls(prefix)
        try:
            net._build()
        except BaseException:
            net.close()
            raise
        return net

    def _build(self) -> None:
        for role in ROLES:
            run(["ip", "netns", "add", self.ns(role)])
            self.created.append(self.ns(role))
            for scope in ("all", "default"):  # no duplicate address detection: addresses usable at once
                self.run(role, "sysctl", "-q", "-w", f"net.ipv6.conf.{scope}.accept_dad=0")
            self.ip(role, "link", "set", "lo", "up")
        agent, gateway, server = (self.ns(r) for r in ROLES)
        # The pairs are created directly inside their namespaces: no name ever exists in the host's.
        run(["ip", "link", "add", "eth0", "netns", agent, "type", "veth", "peer", "name", "agents", "netns", gateway])
        run(["ip", "link", "add", "eth0", "netns", server, "type", "veth", "peer", "name", "wan", "netns", gateway])
        self.ip("agent", "addr", "add", f"{AGENT_IP}/24", "dev", "eth0")
        self.ip("gateway", "addr", "add", f"{GATEWAY_AGENT_SIDE_IP}/24", "dev", "agents")
        self.ip("gateway", "addr", "add", f"{GATEWAY_SERVER_SIDE_IP}/24", "dev", "wan")
        self.ip("server", "addr", "add", f"{SERVER_IP}/24", "dev", "eth0")
        for role, address, dev in (("agent", AGENT_IP6, "eth0"), ("gateway", GATEWAY_AGENT_SIDE_IP6, "agents"),
                                   ("gateway", GATEWAY_SERVER_SIDE_IP6, "wan"), ("server", SERVER_IP6, "eth0")):
            self.ip(role, "addr", "add", f"{address}/64", "dev", dev)
        for role, dev in (("agent", "eth0"), ("gateway", "agents"), ("gateway", "wan"), ("server", "eth0")):
            self.ip(role, "link", "set", dev, "up")
        self.ip("agent", "route", "add", "default", "via", GATEWAY_AGENT_SIDE_IP)
        self.ip("server", "route", "add", "default", "via", GATEWAY_SERVER_SIDE_IP)
        self.ip("agent", "-6", "route", "add", "default", "via", GATEWAY_AGENT_SIDE_IP6)
        self.ip("server", "-6", "route", "add", "default", "via", GATEWAY_SERVER_SIDE_IP6)
        self.run("gateway", "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        self.run("gateway", "sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1")

    def ip(self, role: str, *args: str) -> subprocess.CompletedProcess[str]:
        return run(["ip", "-n", self.ns(role), *args])

    def command(self, role: str, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns(role), *argv]

    def run(self, role: str, *argv: str, timeout: float = 30, check: bool = True,
            **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return run(self.command(role, *argv), timeout=timeout, check=check, **kwargs)

    def spawn(self, role: str, *argv: str, **kwargs: Any) -> subprocess.Popen[Any]:
        """A long-running process inside the namespace; `close()` ends it."""
        proc = subprocess.Popen(self.command(role, *argv), **kwargs)
        self.processes.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream:
                    stream.close()
        self.processes.clear()
        for name in reversed(self.created):
            run(["ip", "netns", "del", name], check=False)
        self.created.clear()

    def __enter__(self) -> GatewayNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
