"""One incident: envelope, rules, masked findings in context, what was not inspected, history, comments,
release requests; the analysts' actions, and (admins) reveal or download of the original."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from dlp.console.users import Role
from dlp.console.views.common import (
    blocking,
    console_of,
    error_page,
    form_text,
    read_form,
    redirect,
    render,
    require,
)
from dlp.store import (
    OPEN_STATUSES,
    AuditError,
    IncidentQuery,
    InvalidAction,
    NotFound,
    ReleaseError,
    StoreError,
)

MAX_REVEAL_CHARS = 2 * 1024 * 1024  # a bigger original is shown truncated (the download has it whole)
_OPEN = tuple(s.value for s in OPEN_STATUSES)


def _incident_id(request: Request) -> str:
    return str(request.path_params["incident_id"])[:64]


def _not_found(request: Request) -> Response:
    return error_page(request, 404, "No such incident", "There is no incident with that id.")


@require(Role.VIEWER)
async def incident_page(request: Request) -> Response:
    c = console_of(request)
    iid = _incident_id(request)
    show_requests = request.state.user.role.allows(Role.ANALYST)

    def load() -> dict[str, Any]:
        detail = c.store.get(iid)
        value_ids: dict[str, int] = {}
        for f in detail.findings:
            if f.value_id not in value_ids and len(value_ids) < 20:
                value_ids[f.value_id] = c.store.count(IncidentQuery(value_id=f.value_id, status=_OPEN))
        sender_open = c.store.count(IncidentQuery(sender=detail.summary.sender, status=_OPEN)) \
            if detail.summary.sender else 0
        requests = c.store.release_requests(iid)
        return {"detail": detail, "similar": value_ids, "sender_open": sender_open,
                "release_requests": requests if show_requests else [], "request_count": len(requests)}

    try:
        data = await blocking(load)
    except (NotFound, InvalidAction):
        return _not_found(request)
    return render(request, "incident.html", data)


# action name in the URL -> (store method, reason required, message shown after it)
_ACTIONS: dict[str, tuple[str, bool, str]] = {
    "confirm": ("confirm", False, "Confirmed as a true positive."),
    "false-positive": ("mark_false_positive", False, "Marked as a false positive."),
    "delete": ("delete", True, "The original was deleted; the masked record stays."),
    "release": ("release", True, "Released: the next hop accepted the message."),
}


@require(Role.ANALYST)
async def incident_action(request: Request) -> Response:
    c = console_of(request)
    iid = _incident_id(request)
    action = str(request.path_params["action"])
    form = await read_form(request)
    reason = form_text(form, "reason", 500)
    actor = request.state.user.name
    session = request.state.session
    back = f"/incidents/{iid}"

    def run() -> str:
        if action in _ACTIONS:
            method, needs_reason, done = _ACTIONS[action]
            if needs_reason and not reason:
                raise InvalidAction(f"a reason is required to {action}")
            result = getattr(c.store, method)(iid, actor, reason)
            if action == "release" and result is not None and not result.delivered_now:
                return "It had already been released; nothing was sent again."
            return done
        if action == "status":
            status = form_text(form, "status", 20)
            c.store.set_status(iid, status, actor, reason)
            return f"Status set to {status.replace('_', ' ')}."
        if action == "assign":
            assignee = form_text(form, "assignee", 64)
            c.store.assign(iid, assignee, actor, reason)
            return f"Assigned to {assignee}." if assignee else "Unassigned."
        if action == "comment":
            c.store.comment(iid, form_text(form, "text", 4000), actor)
            return "Comment added."
        raise LookupError(action)

    try:
        message = await blocking(run)
    except LookupError:
        return error_page(request, 404, "Unknown action", "That action does not exist.")
    except NotFound:
        return _not_found(request)
    except AuditError:
        return error_page(request, 503, "Refused", "The audit log could not be written, so nothing was changed.")
    except ReleaseError as exc:
        session.flash("error", str(exc))
        return redirect(back)
    except (StoreError, ValueError) as exc:  # InvalidAction, ReleaseInProgress, a bad status value
        session.flash("error", str(exc))
        return redirect(back)
    session.flash("ok", message)
    return redirect(back)


async def _audited_original(request: Request, verb: str) -> tuple[str, str, bytes] | Response:
    """(incident id, reason, original bytes) after the audit record is written, or the page to show
    instead (no reason given, unknown incident, audit or store failure)."""
    c = console_of(request)
    iid = _incident_id(request)
    form = await read_form(request)
    reason = form_text(form, "reason", 500)
    if not reason:
        request.state.session.flash(
            "error", f"{verb.capitalize()} the original needs a reason (it goes to the audit log).")
        return redirect(f"/incidents/{iid}")
    try:
        original = await blocking(c.store.read_original, iid, request.state.user.name, reason)
    except NotFound:
        return _not_found(request)
    except AuditError:
        return error_page(request, 503, "Refused", "The audit log could not be written, so nothing is shown.")
    except StoreError as exc:
        request.state.session.flash("error", str(exc))
        return redirect(f"/incidents/{iid}")
    return iid, reason, original


@require(Role.ADMIN)
async def reveal(request: Request) -> Response:
    """The original, once: audited before it is decrypted, rendered as escaped text, never cached."""
    got = await _audited_original(request, "revealing")
    if isinstance(got, Response):
        return got
    iid, reason, original = got
    text = original.decode("utf-8", errors="replace")
    return render(request, "reveal.html", {"incident_id": iid, "text": text[:MAX_REVEAL_CHARS],
                                           "truncated": len(text) > MAX_REVEAL_CHARS, "size": len(original),
                                           "reason": reason})


@require(Role.ADMIN)
async def download(request: Request) -> Response:
    """The original as an .eml attachment (audited first, not cached, never rendered by the browser)."""
    got = await _audited_original(request, "downloading")
    if isinstance(got, Response):
        return got
    iid, _reason, original = got
    return Response(original, media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{iid}.eml"'})
