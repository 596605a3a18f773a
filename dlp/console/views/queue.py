"""The incident queue: filters, search, sort, paging, age badges, and bulk triage of similar incidents."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from dlp.console.users import Role
from dlp.console.views.common import blocking, console_of, error_page, form_text, read_form, redirect, render, require
from dlp.store import OPEN_STATUSES, AuditError, IncidentQuery, Status, StoreError

PAGE_SIZE = 50
STATUS_CHOICES = ("open", "all", *(s.value for s in Status))
CHANNELS = ("smtp", "web", "passive", "scan")
SEVERITIES = ("low", "medium", "high", "critical")
ACTIONS = ("block", "quarantine", "alert", "pass")
AGES = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
SORTS = {"-created": "newest first", "created": "oldest first", "-severity": "most severe first",
         "sender": "sender", "status": "status", "-updated": "recently changed"}
# Bulk operations offered on the queue: form value -> (store operation, extra keyword arguments, label).
BULK_OPERATIONS: dict[str, tuple[str, dict[str, str], str]] = {
    "confirm": ("confirm", {}, "Confirm (true positive)"),
    "false_positive": ("mark_false_positive", {}, "Mark false positive"),
    "delete": ("delete", {}, "Delete originals"),
    "in_review": ("set_status", {"status": "in_review"}, "Move to in review"),
}
MAX_BULK = 500


class BadFilter(ValueError):
    """A filter value outside its fixed set; the text is safe to show."""


@dataclass(frozen=True)
class Filters:
    status: str = "open"
    channel: str = ""
    severity: str = ""
    action: str = ""
    entity: str = ""
    sender: str = ""
    value_id: str = ""
    assignee: str = ""
    rule: str = ""
    age: str = ""
    q: str = ""
    requested: bool = False  # only incidents with an agent's release request
    sort: str = "-created"
    page: int = 1

    @classmethod
    def parse(cls, params: Any) -> Filters:
        def choice(name: str, allowed: Any, default: str = "") -> str:
            value = (params.get(name) or default).strip()
            if value and value not in allowed:
                raise BadFilter(f"unknown {name} {value[:40]!r}")
            return value

        try:
            page = max(1, min(100_000, int(params.get("page") or 1)))
        except ValueError:
            raise BadFilter("page must be a number") from None
        return cls(
            status=choice("status", STATUS_CHOICES, "open"), channel=choice("channel", CHANNELS),
            severity=choice("severity", SEVERITIES), action=choice("action", ACTIONS),
            entity=(params.get("entity") or "").strip()[:64], sender=(params.get("sender") or "").strip()[:320],
            value_id=(params.get("value_id") or "").strip()[:64], assignee=(params.get("assignee") or "").strip()[:64],
            rule=(params.get("rule") or "").strip()[:128], age=choice("age", AGES),
            q=(params.get("q") or "").strip()[:200],
            requested=params.get("requested") == "1", sort=choice("sort", SORTS, "-created"), page=page,
        )

    def query(self, *, paged: bool = True) -> IncidentQuery:
        statuses: tuple[str, ...] = ()
        if self.status == "open":
            statuses = tuple(s.value for s in OPEN_STATUSES)
        elif self.status != "all":
            statuses = (self.status,)
        return IncidentQuery(
            status=statuses, channel=(self.channel,) if self.channel else (), min_severity=self.severity,
            enforced_action=(self.action,) if self.action else (), entity=self.entity, sender=self.sender,
            value_id=self.value_id, assignee=self.assignee, rule=self.rule,
            since=time.time() - AGES[self.age] if self.age else None, text=self.q,
            has_release_request=True if self.requested else None, sort=self.sort,
            limit=PAGE_SIZE if paged else 0, offset=(self.page - 1) * PAGE_SIZE if paged else 0,
        )

    def params(self, **changes: Any) -> str:
        """The query string for these filters with some changed (paging and sort links)."""
        values = {**self.__dict__, **changes}
        values["requested"] = "1" if values["requested"] else ""
        defaults = Filters().__dict__
        return urlencode({k: v for k, v in values.items() if v and (v != defaults.get(k) or k == "status")})


@require(Role.VIEWER)
async def queue(request: Request) -> Response:
    c = console_of(request)
    try:
        filters = Filters.parse(request.query_params)
    except BadFilter as exc:
        return error_page(request, 400, "Bad filter", str(exc))
    query = filters.query()

    def load() -> dict[str, Any]:
        incidents = c.store.list_incidents(query)
        return {
            "incidents": incidents,
            "total": c.store.count(query),
            "requests": c.store.release_request_counts([s.id for s in incidents]),
            "backlog": c.store.backlog(),
        }

    data = await blocking(load)
    pages = max(1, -(-data["total"] // PAGE_SIZE))
    return render(request, "queue.html", {
        **data, "filters": filters, "pages": pages, "statuses": STATUS_CHOICES, "channels": CHANNELS,
        "severities": SEVERITIES, "actions": ACTIONS, "ages": AGES, "sorts": SORTS,
        "bulk_operations": BULK_OPERATIONS, "open_statuses": [s.value for s in OPEN_STATUSES],
        "similar": bool(filters.value_id or filters.sender),
    })


@require(Role.ANALYST)
async def bulk(request: Request) -> Response:
    """Selected incidents (checkboxes), or every open incident sharing a value id or a sender."""
    c = console_of(request)
    form = await read_form(request)
    op = form_text(form, "operation", 40)
    reason = form_text(form, "reason", 500)
    back = form_text(form, "back", 1000)
    back = back if back.startswith("/incidents") and not back.startswith("//") else "/incidents"
    if op not in BULK_OPERATIONS:
        return error_page(request, 400, "Unknown action", "Choose one of the bulk actions offered on the queue.")
    if not reason:
        request.state.session.flash("error", "A bulk action needs a reason (it is recorded for every incident).")
        return redirect(back)
    scope = form_text(form, "scope", 20)
    value_id, sender = form_text(form, "value_id", 64), form_text(form, "sender", 320)
    operation, kwargs, label = BULK_OPERATIONS[op]
    actor = request.state.user.name

    def run() -> Any:
        if scope == "similar":
            ids = c.store.select_ids(value_id=value_id, sender="" if value_id else sender, limit=MAX_BULK)
        else:
            ids = [i for i in form.getlist("ids") if isinstance(i, str)][:MAX_BULK]
        return c.store.bulk(operation, ids, actor, reason, **kwargs)

    try:
        result = await blocking(run)
    except AuditError:
        return error_page(request, 503, "Refused", "The audit log could not be written, so nothing was changed.")
    except (StoreError, ValueError) as exc:
        return error_page(request, 400, "Refused", str(exc))
    session = request.state.session
    if result.done:
        session.flash("ok", f"{label}: {len(result.done)} incident(s).")
    if result.failed:
        first = next(iter(result.failed.items()))
        session.flash("error", f"{len(result.failed)} incident(s) not changed (e.g. {first[0]}: {first[1]}).")
    if not result.done and not result.failed:
        session.flash("error", "No incidents were selected.")
    return redirect(back)
