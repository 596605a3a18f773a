"""The console service of `dlp serve`: the Starlette app, its security headers, and uvicorn on the serve loop.

uvicorn runs inside the shared event loop (no signal handlers of its own: `dlp serve` owns SIGTERM; no
access log: request lines carry query strings). Store calls run in a thread pool so that the SMTP relay
and the proxy on the same loop keep answering while a page is built.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dlp.config import Settings
from dlp.console import format as fmt
from dlp.console.auth import LoginThrottle, RateLimiter, SessionStore
from dlp.console.users import UserStore
from dlp.console.views import admin, incident, login, overview, queue, release_request
from dlp.console.views.common import Console, error_page
from dlp.logs import get_logger
from dlp.notify import ReleaseLinks

log = get_logger("dlp.console")

HERE = Path(__file__).resolve().parent
MAX_BODY_BYTES = 1024 * 1024
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class BodyTooLarge(Exception):
    pass


class SecurityHeaders:
    """Security headers on every response; no-store on everything but static files; bodies capped."""

    def __init__(self, app: ASGIApp, secure: bool) -> None:
        self.app = app
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            await PlainTextResponse("request body too large\n", status_code=413)(scope, receive, send)
            return
        seen = 0

        async def capped_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY_BYTES:
                raise BodyTooLarge
            return message

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"
                           or static]
                headers += SECURITY_HEADERS
                if not static:
                    headers += [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
                if self.secure:
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, capped_receive, send_with_headers)
        except BodyTooLarge:
            await PlainTextResponse("request body too large\n", status_code=413)(scope, receive, send_with_headers)


def template_environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(age=fmt.age, duration=fmt.duration, age_class=fmt.age_class, when=fmt.when,
                       highlight=fmt.highlight, label=fmt.label)
    return env


def routes() -> list[Route | Mount]:
    return [
        Route("/", overview.overview, name="overview"),
        Route("/login", login.login_page, methods=["GET"], name="login"),
        Route("/login", login.login_submit, methods=["POST"], name="login_submit"),
        Route("/logout", login.logout, methods=["POST"], name="logout"),
        Route("/incidents", queue.queue, name="queue"),
        Route("/incidents/bulk", queue.bulk, methods=["POST"], name="bulk"),
        Route("/incidents/{incident_id}", incident.incident_page, name="incident"),
        Route("/incidents/{incident_id}/reveal", incident.reveal, methods=["POST"], name="reveal"),
        Route("/incidents/{incident_id}/download", incident.download, methods=["POST"], name="download"),
        Route("/incidents/{incident_id}/{action}", incident.incident_action, methods=["POST"], name="action"),
        Route("/admin/users", admin.users_page, name="users"),
        Route("/admin/users", admin.users_change, methods=["POST"], name="users_change"),
        Route("/admin/retention", admin.retention_page, name="retention"),
        Route("/admin/retention/purge", admin.retention_purge, methods=["POST"], name="purge"),
        Route("/admin/audit", admin.audit_page, name="audit"),
        Route("/release-request/{token}", release_request.release_request_page, methods=["GET"],
              name="release_request"),
        Route("/release-request/{token}", release_request.release_request_submit, methods=["POST"],
              name="release_request_submit"),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    titles = {404: ("Not found", "There is nothing at this address."),
              405: ("Not allowed", "This address does not accept that kind of request.")}
    title, message = titles.get(status, ("Error", "The request could not be handled."))
    return error_page(request, status, title, message)


async def _server_error(request: Request, exc: Exception) -> Response:
    # dlp.logs keeps the frames and redacts the message; the page says nothing about the internals.
    log.error("console_error", view=_view_name(request), exc_info=exc)
    try:
        return error_page(request, 500, "Something went wrong", "The page could not be built. It was logged.")
    except Exception:
        return HTMLResponse("<h1>Something went wrong</h1>", status_code=500)


def _view_name(request: Request) -> str:
    return getattr(request.scope.get("endpoint"), "__name__", "")


def create_app(settings: Settings, store: Any, *, users: UserStore | None = None) -> Starlette:
    console = Console(
        settings=settings, store=store, users=users or UserStore(settings.data_path),
        sessions=SessionStore(settings.console.session_minutes), throttle=LoginThrottle(),
        release_request_limiter=RateLimiter(limit=20, window=3600.0),
        release_link_limiter=RateLimiter(limit=5, window=3600.0),
        links=ReleaseLinks.for_data_dir(settings.data_path), templates=template_environment(),
    )
    app = Starlette(routes=routes(), exception_handlers={HTTPException: _http_error, Exception: _server_error})
    app.state.console = console
    app.add_middleware(SecurityHeaders, secure=settings.console.secure_cookies)
    return app


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # `dlp serve` owns the signals and calls stop()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class ConsoleService:
    name = "console"

    def __init__(self, server: uvicorn.Server, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.address = sock.getsockname()[:2]
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]), name="console")
        while not self.server.started:  # uvicorn has no started event; startup is a few loop turns
            if self.task.done():
                self.task.result()
                raise OSError("the console stopped during start-up")
            await asyncio.sleep(0.01)

    def describe(self) -> str:
        host, port = self.address
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    async def stop(self, grace: float) -> None:
        self.server.config.timeout_graceful_shutdown = max(1, int(grace))
        self.server.should_exit = True
        if self.task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self.task), grace + 1)
        except TimeoutError:
            self.server.force_exit = True
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


async def start_service(runtime: Any, host: str, port: int) -> ConsoleService:
    settings: Settings = runtime.settings
    app = create_app(settings, runtime.store)
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", server_header=False,
                            proxy_headers=False, http="h11", ws="none", timeout_keep_alive=5,
                            limit_concurrency=500, timeout_graceful_shutdown=30)
    sock = _bind(host, port)
    service = ConsoleService(_EmbeddedServer(config), sock)
    await service.start()
    return service
