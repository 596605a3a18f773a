"""Helpers for the console tests: the real console service (uvicorn on a loopback port 0) on its own event
loop thread, a real store in tmp_path, incidents from the real Inspector, and signed-in httpx clients."""

from __future__ import annotations

import asyncio
import re
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

from dlp.config import ConsoleSettings, Settings, SmtpSettings
from dlp.console.app import start_service
from dlp.console.users import Role, UserStore
from dlp.inspect import Inspector
from dlp.model import Channel, ContentKind, Envelope, Message
from dlp.store import Store, open_store

PASSWORD = "correct horse battery staple"
CARD = "4111 1111 1111 1111"
CARD_DIGITS = "4111111111111111"
SSN = "078-05-1120"
CANARIES = (CARD, CARD_DIGITS, SSN, SSN.replace("-", ""))
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def mail(sender: str = "agent7@callcenter.example", recipients: tuple[str, ...] = ("buyer@gmail.example",),
         card: str = CARD, subject: str = "order notes") -> bytes:
    return (f"From: {sender}\r\nTo: {', '.join(recipients)}\r\nSubject: {subject}\r\n\r\n"
            f"customer card {card} exp 12/29\r\nssn {SSN}\r\n").encode()


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


@dataclass
class Browser:
    """An httpx client with its own cookie jar that remembers the CSRF token of its session."""

    client: httpx.Client
    csrf: str = ""

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        response = self.client.get(path, **kwargs)
        if "csrf_token" in response.text:
            self.csrf = csrf_of(response.text)
        return response

    def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True,
             **kwargs: Any) -> httpx.Response:
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf_token", self.csrf)
        return self.client.post(path, data=form, **kwargs)


@dataclass
class ConsoleUnderTest:
    base_url: str
    settings: Settings
    store: Store
    users: UserStore
    inspector: Inspector
    browsers: list[Browser] = field(default_factory=list)

    def record(self, sender: str = "agent7@callcenter.example", raw: bytes | None = None,
               channel: Channel = Channel.SMTP, keep_original: bool = True) -> str:
        raw = raw if raw is not None else mail(sender)
        kind = ContentKind.EMAIL if channel is Channel.SMTP else ContentKind.AUTO
        message = Message(channel, raw, kind, Envelope(sender, ("buyer@gmail.example",), "10.0.0.7", "agent7",
                                                     "https://paste.example/x?card=1" if channel is Channel.WEB
                                                     else "", "DATA"))
        verdict = self.inspector.inspect(message)
        assert verdict.incident_id, verdict
        self.store.record(message, verdict, raw if keep_original else None)
        return verdict.incident_id

    def browser(self) -> Browser:
        b = Browser(httpx.Client(base_url=self.base_url, follow_redirects=False, timeout=30))
        self.browsers.append(b)
        return b

    def login(self, name: str, password: str = PASSWORD) -> Browser:
        b = self.browser()
        b.get("/login")
        response = b.post("/login", {"username": name, "password": password, "next": "/"})
        assert response.status_code == 303, response.text
        b.get("/incidents")
        return b


class _LoopThread:
    """An asyncio loop in a thread, standing in for the `dlp serve` loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


_USERS_TEMPLATE: dict[str, bytes] = {}


def _users_db() -> bytes:
    """vera (viewer), anna (analyst), adam (admin): hashed once per test session (argon2 is slow on purpose)."""
    if "db" not in _USERS_TEMPLATE:
        with tempfile.TemporaryDirectory() as tmp:
            users = UserStore(Path(tmp))
            for name, role in (("vera", Role.VIEWER), ("anna", Role.ANALYST), ("adam", Role.ADMIN)):
                users.add(name, role, PASSWORD)
            _USERS_TEMPLATE["db"] = users.path.read_bytes()
    return _USERS_TEMPLATE["db"]


def make_console(data_dir: Path, inspector: Inspector, next_hop: str = "",
                 **console_settings: Any) -> Iterator[ConsoleUnderTest]:
    settings = Settings(data_dir=str(data_dir), console=ConsoleSettings(**console_settings),
                        smtp=SmtpSettings(next_hop=next_hop, forward_timeout_seconds=10))
    store = open_store(settings)
    (settings.data_path / "store" / "users.db").write_bytes(_users_db())
    users = UserStore(settings.data_path)
    loop = _LoopThread()
    runtime = SimpleNamespace(settings=settings, store=store, stopping=asyncio.Event())
    service = loop.run(start_service(runtime, "127.0.0.1", 0))
    host, port = service.address
    under_test = ConsoleUnderTest(f"http://{host}:{port}", settings, store, users, inspector)
    try:
        yield under_test
    finally:
        for b in under_test.browsers:
            b.client.close()
        loop.run(service.stop(5))
        loop.close()
        store.close()
