"""Signing in and out: CSRF-protected forms, throttling per account and per address, audited."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dlp.console.users import MAX_PASSWORD_CHARS, Role
from dlp.console.views.common import (
    blocking,
    check_post,
    console_of,
    current_session,
    error_page,
    form_text,
    read_form,
    redirect,
    render,
    require,
    safe_next,
)


async def login_page(request: Request) -> Response:
    c = console_of(request)
    session = current_session(request)
    if session is not None and session.authenticated:
        return redirect(safe_next(request.query_params.get("next")))
    session = session or c.sessions.anonymous()
    return render(request, "login.html", {"next": safe_next(request.query_params.get("next"))}, session=session)


async def login_submit(request: Request) -> Response:
    c = console_of(request)
    session = current_session(request)
    if session is None:
        return error_page(request, 403, "Form expired", "The sign-in form expired. Reload the page and try again.")
    refused = await check_post(request, session)
    if refused is not None:
        return refused
    form = await read_form(request)
    name = form_text(form, "username", 64).lower()
    password = form.get("password")
    password = password[:MAX_PASSWORD_CHARS] if isinstance(password, str) else ""
    next_url = safe_next(form_text(form, "next", 500))
    client = request.client.host if request.client else "unknown"
    keys = (f"user:{name}", f"ip:{client}")
    known = await blocking(c.users.get, name) if name else None
    actor = known.name if known else "console"
    wait = c.throttle.wait_seconds(*keys)
    if wait > 0:
        await blocking(c.store.audit_event, actor, "login_throttled", detail=f"client={client}")
        return render(request, "login.html", {"next": next_url, "username": name,
                                              "error": f"Too many failed sign-ins. Try again in {int(wait) + 1} s."},
                      status=429, session=session)
    user = await blocking(c.users.authenticate, name, password) if name and password else None
    if user is None:
        c.throttle.failed(*keys)
        detail = f"client={client}" + ("" if known else " unknown user")
        await blocking(c.store.audit_event, actor, "login_failed", detail=detail)
        return render(request, "login.html", {"next": next_url, "username": name,
                                              "error": "Wrong user name or password, or the account is disabled."},
                      status=401, session=session)
    c.throttle.succeeded(keys[0])
    await blocking(c.store.audit_event, user.name, "login", detail=f"client={client} role={user.role}")
    new_session = c.sessions.login(session, user.name, user.generation)
    response = redirect(next_url)
    from dlp.console.views.common import set_session_cookie

    set_session_cookie(response, request, new_session)
    return response


@require(Role.VIEWER)
async def logout(request: Request) -> Response:
    c = console_of(request)
    await blocking(c.store.audit_event, request.state.user.name, "logout")
    c.sessions.drop(request.state.session)
    response = redirect("/login")
    response.delete_cookie(c.cookie_name, path="/", secure=c.settings.console.secure_cookies, httponly=True,
                           samesite="strict")
    return response
