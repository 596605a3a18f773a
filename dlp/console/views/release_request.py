"""The public release-request page: an agent follows the signed link in their notification and says why
the held message should go out. No login: the signed, expiring token in the URL is the capability; the
form still carries a CSRF token, and submissions are rate-limited per address and per token.

The justification is the agent's own text and may name the customer: it is stored (through the
redactor, so no card or account number survives), shown only to analysts, and never logged."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dlp.console.views.common import (
    blocking,
    check_post,
    console_of,
    current_session,
    form_text,
    read_form,
    render,
)
from dlp.notify import LinkError
from dlp.store import AuditError, InvalidAction, NotFound, StoreError
from dlp.store.sqlite import MAX_JUSTIFICATION

MAX_TOKEN_CHARS = 2048


def _page(request: Request, status: int, title: str, message: str, session=None) -> Response:  # type: ignore[no-untyped-def]
    return render(request, "release_request.html", {"title": title, "message": message, "form": False},
                  status=status, session=session)


async def _verify(request: Request):  # type: ignore[no-untyped-def]
    """(token data, summary) or a response saying clearly why not."""
    c = console_of(request)
    token = str(request.path_params["token"])
    if len(token) > MAX_TOKEN_CHARS:
        return None, _page(request, 403, "Link not valid", "This link is not valid.")
    try:
        data = c.links.verify(token)
    except LinkError as exc:
        expired = "expired" in str(exc)
        return None, _page(request, 410 if expired else 403, "Link expired" if expired else "Link not valid",
                           f"{str(exc).capitalize()}. Ask your team lead or the security team for help.")
    try:
        detail = await blocking(c.store.get, data.incident_id)
    except (NotFound, InvalidAction):
        return None, _page(request, 404, "Unknown message", "This message is no longer on record.")
    if detail.summary.sender.lower() != data.sender.lower():
        return None, _page(request, 403, "Link not valid", "This link is not valid.")
    return (data, detail), None


async def release_request_page(request: Request) -> Response:
    c = console_of(request)
    verified, refused = await _verify(request)
    if refused is not None:
        return refused
    _data, detail = verified
    session = current_session(request) or c.sessions.anonymous()
    return render(request, "release_request.html", {
        "title": "Ask for a release", "form": True, "detail": detail, "max_chars": MAX_JUSTIFICATION,
        "findings": _distinct(detail)}, session=session)


async def release_request_submit(request: Request) -> Response:
    c = console_of(request)
    client = request.client.host if request.client else "unknown"
    token = str(request.path_params["token"])[:MAX_TOKEN_CHARS]
    # The MAC (the token's tail) names the link; an altered body with the same MAC fails verification.
    if not c.release_request_limiter.allow(client) or not c.release_link_limiter.allow(token[-43:]):
        return _page(request, 429, "Too many requests", "Too many requests from here. Try again in an hour.")
    verified, refused = await _verify(request)
    if refused is not None:
        return refused
    data, detail = verified
    session = current_session(request)
    if session is None:
        return _page(request, 403, "Form expired", "The form expired. Open the link again.")
    bad = await check_post(request, session)
    if bad is not None:
        return bad
    form = await read_form(request)
    text = form_text(form, "justification", MAX_JUSTIFICATION)
    if not text:
        return render(request, "release_request.html", {
            "title": "Ask for a release", "form": True, "detail": detail, "max_chars": MAX_JUSTIFICATION,
            "findings": _distinct(detail), "error": "Please say why the message should be sent."},
            status=400, session=session)
    try:
        await blocking(c.store.add_release_request, data.incident_id, data.sender, text)
    except AuditError:
        return _page(request, 503, "Try again later", "Your request could not be recorded. Try again later.")
    except (InvalidAction, NotFound) as exc:
        return _page(request, 409, "Not possible", str(exc), session=session)
    except StoreError:
        return _page(request, 503, "Try again later", "Your request could not be recorded. Try again later.")
    return _page(request, 200, "Request sent",
                 f"Thank you. A security analyst will review incident {detail.id} with your explanation.",
                 session=session)


def _distinct(detail):  # type: ignore[no-untyped-def]
    seen, out = set(), []
    for f in detail.findings:
        if f.value_id not in seen:
            seen.add(f.value_id)
            out.append(f)
    return out[:20]
