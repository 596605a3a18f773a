"""The console as a `dlp serve` service: banner with the real port, pages over HTTP, a clean stop, a clear
error when the port is taken; and the `dlp users` commands (audited)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
from consolekit import PASSWORD

from dlp.console.users import UserStore

REPO = Path(__file__).resolve().parents[3]


def dlp(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dlp", *args], input=stdin, capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def test_serve_banner_names_the_bound_console_port_and_serves_login(dlp_server: Callable[..., object],
                                                                     tmp_path: Path) -> None:
    server = dlp_server()
    host, port = server.address("console")  # type: ignore[attr-defined]
    assert port != 0
    assert any(line.strip().startswith("console") and f"http://{host}:{port}" in line
               for line in server.output)  # type: ignore[attr-defined]
    response = httpx.get(f"http://{host}:{port}/login", timeout=10)
    assert response.status_code == 200 and "Sign in" in response.text
    assert httpx.get(f"http://{host}:{port}/incidents", timeout=10).status_code == 303
    assert server.stop() == 0  # type: ignore[attr-defined]
    assert "dlp stopped" in server.log_text  # type: ignore[attr-defined]


def test_serve_refuses_a_console_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "dlp", "serve", "--data-dir", str(tmp_path / "d"), "--workers", "1",
             "--smtp-listen", "off", "--proxy-listen", "off", "--metrics-listen", "off",
             "--console-listen", f"127.0.0.1:{port}"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode != 0
    assert f"console: cannot listen on 127.0.0.1:{port}" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_users_commands(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    assert dlp("users", "list", "--data-dir", data).stdout.startswith("no users")
    added = dlp("users", "add", "Alice", "--role", "analyst", "--password-stdin", "--data-dir", data,
                "--actor", "ops", stdin=PASSWORD + "\n")
    assert added.returncode == 0 and "added alice (analyst)" in added.stdout
    assert dlp("users", "add", "alice", "--role", "viewer", "--password-stdin", "--data-dir", data,
               stdin=PASSWORD + "\n").returncode == 2
    short = dlp("users", "add", "bob", "--role", "viewer", "--password-stdin", "--data-dir", data, stdin="short\n")
    assert short.returncode == 2 and "at least 12 characters" in short.stderr
    assert dlp("users", "add", "bob", "--role", "viewer", "--data-dir", data).returncode == 2  # no terminal
    assert dlp("users", "set-role", "alice", "admin", "--data-dir", data, "--actor", "ops").returncode == 0
    assert dlp("users", "disable", "alice", "--data-dir", data, "--actor", "ops").returncode == 0
    assert dlp("users", "enable", "nobody", "--data-dir", data).returncode == 2
    listing = dlp("users", "list", "--data-dir", data).stdout
    assert "alice" in listing and "admin" in listing and "disabled" in listing
    users = UserStore(tmp_path / "data")
    assert users.authenticate("alice", PASSWORD) is None  # disabled
    assert dlp("users", "enable", "alice", "--data-dir", data, "--actor", "ops").returncode == 0
    generation = users.get("alice").generation  # type: ignore[union-attr]
    assert dlp("users", "passwd", "alice", "--password-stdin", "--data-dir", data, "--actor", "ops",
               stdin="another long password\n").returncode == 0
    assert users.authenticate("alice", "another long password") is not None
    assert users.get("alice").generation == generation + 1  # type: ignore[union-attr]
    audit = dlp("audit", "list", "--data-dir", data).stdout
    for action in ("user_add", "user_role", "user_disable", "user_enable", "user_password"):
        assert action in audit
    assert PASSWORD not in audit and "another long password" not in audit
    assert oct((tmp_path / "data" / "store" / "users.db").stat().st_mode & 0o777) == "0o600"
