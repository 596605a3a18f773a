"""Admin pages: accounts (add, role, disable/enable, password), retention (view, purge) and the audit log."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from dlp.console.users import Role, UserError, parse_role
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
from dlp.store import AuditError, IncidentQuery, StoreError

AUDIT_PAGE = 100


@require(Role.ADMIN)
async def users_page(request: Request) -> Response:
    c = console_of(request)
    users = await blocking(c.users.list)
    return render(request, "users.html", {"users": users, "roles": [r.value for r in Role]})


@require(Role.ADMIN)
async def users_change(request: Request) -> Response:
    """One form per change: add, role, disable, enable, password. Each is audited before it happens."""
    c = console_of(request)
    form = await read_form(request)
    change = form_text(form, "change", 20)
    name = form_text(form, "name", 64).lower()
    me = request.state.user.name
    session = request.state.session
    password = form.get("password")
    password = password if isinstance(password, str) else ""

    def run() -> str:
        if name == me and change in ("role", "disable"):
            raise UserError("you cannot demote or disable your own account (another admin can)")
        if change == "add":
            role = parse_role(form_text(form, "role", 20))
            c.store.audit_event(me, "user_add", detail=f"user={name} role={role}")
            c.users.add(name, role, password)
            return f"User {name} added as {role}."
        if c.users.get(name) is None:
            raise UserError(f"no user {name}")
        if change == "role":
            role = parse_role(form_text(form, "role", 20))
            c.store.audit_event(me, "user_role", detail=f"user={name} role={role}")
            c.users.set_role(name, role)
            return f"{name} is now {role}."
        if change in ("disable", "enable"):
            c.store.audit_event(me, f"user_{change}", detail=f"user={name}")
            c.users.set_disabled(name, change == "disable")
            if change == "disable":
                c.sessions.drop_user(name)
            return f"{name} {change}d."
        if change == "password":
            c.store.audit_event(me, "user_password", detail=f"user={name}")
            c.users.set_password(name, password)
            if name != me:
                c.sessions.drop_user(name)
            return f"Password of {name} changed; their sessions were ended."
        raise UserError("unknown change")

    try:
        session.flash("ok", await blocking(run))
    except UserError as exc:
        session.flash("error", str(exc))
    except AuditError:
        return error_page(request, 503, "Refused", "The audit log could not be written, so nothing was changed.")
    return redirect("/admin/users")


@require(Role.ADMIN)
async def retention_page(request: Request) -> Response:
    c = console_of(request)
    days = c.settings.store.retention_days

    def load() -> dict[str, Any]:
        cutoff = time.time() - days * 86400
        return {"due": c.store.count(IncidentQuery(until=cutoff, has_original=True)),
                "held": c.store.count(IncidentQuery(has_original=True)),
                "total": c.store.count(IncidentQuery()), "keys": c.store.key_usage(),
                "backlog": c.store.backlog()}

    return render(request, "retention.html", {"days": days, **(await blocking(load))})


@require(Role.ADMIN)
async def retention_purge(request: Request) -> Response:
    c = console_of(request)
    form = await read_form(request)
    if form_text(form, "confirm", 10) != "purge":
        request.state.session.flash("error", "Type purge to confirm.")
        return redirect("/admin/retention")
    try:
        result = await blocking(c.store.purge, request.state.user.name)
    except AuditError:
        return error_page(request, 503, "Refused", "The audit log could not be written, so nothing was purged.")
    except StoreError as exc:
        request.state.session.flash("error", str(exc))
        return redirect("/admin/retention")
    request.state.session.flash("ok", f"Purged {result.originals_removed} original(s) older than "
                                      f"{c.settings.store.retention_days} days.")
    return redirect("/admin/retention")


@require(Role.ADMIN)
async def audit_page(request: Request) -> Response:
    c = console_of(request)
    params = request.query_params
    filters = {k: params[k].strip()[:64] for k in ("actor", "action", "incident_id") if params.get(k, "").strip()}
    verification = await blocking(c.store.audit_verify)
    # Without filters the newest page comes first (the verification counted every record).
    last = max(1, -(-verification.records // AUDIT_PAGE)) if not filters else 1
    try:
        page = max(1, min(100_000, int(params.get("page") or last)))
    except ValueError:
        return error_page(request, 400, "Bad page", "page must be a number")
    records = await blocking(c.store.audit_records, **filters, limit=AUDIT_PAGE + 1, offset=(page - 1) * AUDIT_PAGE)
    return render(request, "audit.html", {
        "filters": filters, "page": page, "records": list(reversed(records[:AUDIT_PAGE])),
        "older": page > 1, "newer": len(records) > AUDIT_PAGE, "verification": verification})
