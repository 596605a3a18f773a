"""Shared fixtures: a real `dlp serve` in a subprocess on loopback ports chosen by the kernel."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_BANNER = re.compile(r"^\s+(\w+)\s+.*?\b(\d+\.\d+\.\d+\.\d+|\[[0-9a-f:]+\]):(\d+)")


@dataclass
class DlpServer:
    """A running `dlp serve`. `addresses` maps a service name to its bound (host, port)."""

    proc: subprocess.Popen[str]
    data_dir: Path
    addresses: dict[str, tuple[str, int]]
    output: list[str] = field(default_factory=list)  # stdout + stderr lines, for leak checks

    def address(self, service: str) -> tuple[str, int]:
        return self.addresses[service]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    @property
    def log_text(self) -> str:
        return "\n".join(self.output)


def start_dlp_server(data_dir: Path, *args: str, env: dict[str, str] | None = None,
                     timeout: float = 120) -> DlpServer:
    """Start `dlp serve` with every listener on port 0 unless `args` say otherwise; wait for its banner."""
    defaults = {
        "--smtp-listen": "127.0.0.1:0",
        "--proxy-listen": "127.0.0.1:0",
        "--console-listen": "127.0.0.1:0",
        "--metrics-listen": "127.0.0.1:0",
        "--workers": "1",
    }
    argv = [sys.executable, "-m", "dlp", "serve", "--data-dir", str(data_dir)]
    given = set(args)
    for flag, value in defaults.items():
        if flag not in given:
            argv += [flag, value]
    argv += list(args)
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    server = DlpServer(proc, data_dir, {})
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            server.output.append(line.rstrip("\n"))
            m = _BANNER.match(line)
            if m and not ready.is_set():
                server.addresses[m.group(1)] = (m.group(2).strip("[]"), int(m.group(3)))
            if line.strip() == "dlp ready":
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(timeout) or proc.poll() is not None:
        server.stop(signal.SIGKILL)
        raise RuntimeError("dlp serve did not start:\n" + server.log_text)
    return server


@pytest.fixture
def dlp_server(tmp_path: Path) -> Iterator[Callable[..., DlpServer]]:
    """Factory: `srv = dlp_server("--next-hop", "127.0.0.1:2525")`; every server is stopped at the end."""
    servers: list[DlpServer] = []

    def factory(*args: str, data_dir: Path | None = None, env: dict[str, str] | None = None) -> DlpServer:
        srv = start_dlp_server(data_dir or tmp_path / f"data{len(servers)}", *args, env=env)
        servers.append(srv)
        return srv

    yield factory
    for srv in servers:
        srv.stop()
