"""What every page shares: the console's state, rendering, error pages, the session cookie, and `require`,
which authenticates, authorises (403 page, audited) and checks CSRF before a view runs."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from dlp.config import Settings
from dlp.console import csrf
from dlp.console.auth import LoginThrottle, RateLimiter, Session, SessionStore
from dlp.console.users import Role, User, UserStore
from dlp.logs import get_logger
from dlp.notify import ReleaseLinks

log = get_logger("dlp.console")

View = Callable[[Request], Awaitable[Response]]

MAX_FORM_FIELDS = 600  # a bulk form carries one field per selected incident


@dataclass
class Console:
    """Everything the views need, built once by app.create_app."""

    settings: Settings
    store: Any  # dlp.store.Store
    users: UserStore
    sessions: SessionStore
    throttle: LoginThrottle
    release_request_limiter: RateLimiter  # per client address
    release_link_limiter: RateLimiter  # per link
    links: ReleaseLinks
    templates: jinja2.Environment

    @property
    def cookie_name(self) -> str:
        # The __Host- prefix makes browsers refuse the cookie unless it is Secure, host-only and Path=/.
        return "__Host-dlp_session" if self.settings.console.secure_cookies else "dlp_session"


def console_of(request: Request) -> Console:
    return request.app.state.console  # type: ignore[no-any-return]


async def blocking[**P, T](func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a store or account call (blocking SQLite, argon2) off the event loop shared with the relay."""
    return await run_in_threadpool(func, *args, **kwargs)


def current_session(request: Request) -> Session | None:
    c = console_of(request)
    return c.sessions.get(request.cookies.get(c.cookie_name))


def set_session_cookie(response: Response, request: Request, session: Session) -> None:
    c = console_of(request)
    response.set_cookie(c.cookie_name, session.id, max_age=int(session.expires - session.created), path="/",
                        secure=c.settings.console.secure_cookies, httponly=True, samesite="strict")


def render(request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200,
           session: Session | None = None) -> HTMLResponse:
    c = console_of(request)
    session = session or getattr(request.state, "session", None)
    user: User | None = getattr(request.state, "user", None)
    values = {
        "request": request,
        "user": user,
        "csrf_token": session.csrf if session else "",
        "flashes": session.take_flashes() if session else [],
        "Role": Role,
        **(context or {}),
    }
    body = c.templates.get_template(template).render(values)
    response = HTMLResponse(body, status_code=status)
    if session is not None:
        set_session_cookie(response, request, session)
    return response


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return render(request, "error.html", {"status": status, "title": title, "message": message}, status=status)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def safe_next(value: str | None) -> str:
    """Only a path on this site (no //host, no scheme) may follow a login."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


async def read_form(request: Request) -> FormData:
    return await request.form(max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=64 * 1024)


def form_text(form: FormData, name: str, limit: int = 2000) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


async def check_post(request: Request, session: Session) -> HTMLResponse | None:
    """None when the form carries the session's CSRF token and no cross-site Origin; else a 403 page."""
    if not csrf.origin_ok(request.headers.get("origin"), request.headers.get("host"),
                          request.headers.get("sec-fetch-site")):
        return error_page(request, 403, "Request refused", "This form was sent from another site.")
    form = await read_form(request)
    if not csrf.token_ok(session.csrf, form.get(csrf.FIELD)):
        return error_page(request, 403, "Form expired",
                          "This form is no longer valid (it was open too long, or sent from another page). "
                          "Go back, reload the page and try again.")
    return None


def require(role: Role) -> Callable[[View], View]:
    """Signed in, enabled, with at least `role`; POSTs also pass the CSRF check."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        async def wrapper(request: Request) -> Response:
            c = console_of(request)
            session = current_session(request)
            user = await blocking(c.users.get, session.user) if session and session.authenticated else None
            if session is not None and user is not None and (user.disabled or user.generation != session.generation):
                c.sessions.drop(session)  # disabled, or the password changed since this login
                user = None
            if session is None or user is None:
                if request.method == "GET":
                    return redirect("/login?next=" + quote(request.url.path + (
                        "?" + request.url.query if request.url.query else ""), safe="/?=&"))
                return error_page(request, 403, "Signed out", "Your session has ended. Sign in again.")
            request.state.session, request.state.user = session, user
            if not user.role.allows(role):
                await blocking(c.store.audit_event, user.name, "access_denied",
                               detail=f"{view.__name__} needs {role}",
                               incident_id=str(request.path_params.get("incident_id", ""))[:64])
                return error_page(request, 403, "Not allowed",
                                  f"Your role ({user.role}) does not allow this; it needs the {role} role.")
            if request.method == "POST":
                refused = await check_post(request, session)
                if refused is not None:
                    return refused
            return await view(request)

        return wrapper

    return decorate
