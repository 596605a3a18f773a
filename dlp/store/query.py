"""Incident list filters, sorting and paging, turned into one parameterised SQL WHERE clause."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dlp.model import Severity

SORTABLE = {"created": "created", "updated": "updated", "severity": "severity_rank", "status": "status",
            "channel": "channel", "sender": "sender", "id": "id", "action": "action"}
MAX_LIMIT = 10_000


def as_ts(value: datetime | float | None) -> float | None:
    if value is None or isinstance(value, float | int):
        return value
    return value.timestamp()


@dataclass(frozen=True, slots=True)
class IncidentQuery:
    """Filters combine with AND; a tuple filter matches any of its values.

    sort: a SORTABLE name, "-" prefix for descending (default newest first). text: a case-insensitive
    substring of the id, sender, recipients or rule names. min_severity: at least this severity."""

    status: tuple[str, ...] = ()
    since: datetime | float | None = None
    until: datetime | float | None = None
    channel: tuple[str, ...] = ()
    severity: tuple[str, ...] = ()
    min_severity: str = ""
    sender: str = ""
    entity: str = ""
    action: tuple[str, ...] = ()  # the computed action
    enforced_action: tuple[str, ...] = ()
    value_id: str = ""
    rule: str = ""
    assignee: str = ""
    disposition: str = ""
    has_original: bool | None = None
    has_release_request: bool | None = None  # an agent asked for a release through the signed link
    text: str = ""
    sort: str = "-created"
    limit: int = 50
    offset: int = 0

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []

        def any_of(column: str, values: tuple[str, ...]) -> None:
            if values:
                clauses.append(f"{column} IN ({','.join('?' * len(values))})")
                params.extend(str(v) for v in values)

        any_of("status", self.status)
        any_of("channel", self.channel)
        any_of("severity", self.severity)
        any_of("action", self.action)
        any_of("enforced_action", self.enforced_action)
        if self.min_severity:
            clauses.append("severity_rank >= ?")
            params.append(Severity(self.min_severity).rank)
        if (since := as_ts(self.since)) is not None:
            clauses.append("created >= ?")
            params.append(since)
        if (until := as_ts(self.until)) is not None:
            clauses.append("created < ?")
            params.append(until)
        for column, value in (("sender", self.sender), ("assignee", self.assignee),
                              ("disposition", self.disposition)):
            if value:
                clauses.append(f"{column} = ? COLLATE NOCASE")
                params.append(value)
        if self.entity:
            clauses.append("id IN (SELECT incident_id FROM findings WHERE entity = ?)")
            params.append(self.entity)
        if self.value_id:
            clauses.append("id IN (SELECT incident_id FROM findings WHERE value_id = ?)")
            params.append(self.value_id)
        if self.rule:
            clauses.append("EXISTS (SELECT 1 FROM json_each(incidents.rules) WHERE value = ?)")
            params.append(self.rule)
        if self.has_original is not None:
            clauses.append("has_original = ?")
            params.append(int(self.has_original))
        if self.has_release_request is not None:
            clauses.append(f"{'' if self.has_release_request else 'NOT '}EXISTS "
                           "(SELECT 1 FROM release_requests WHERE release_requests.incident_id = incidents.id)")
        if self.text:
            pattern = "%" + self.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            clauses.append("(id LIKE ? ESCAPE '\\' OR sender LIKE ? ESCAPE '\\' OR recipients LIKE ? ESCAPE '\\' "
                           "OR rules LIKE ? ESCAPE '\\')")
            params.extend([pattern] * 4)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def order_by(self) -> str:
        descending = self.sort.startswith("-")
        name = self.sort.lstrip("-+")
        if name not in SORTABLE:
            raise ValueError(f"cannot sort by {name!r}; choose one of {', '.join(sorted(SORTABLE))}")
        direction = "DESC" if descending else "ASC"
        return f" ORDER BY {SORTABLE[name]} {direction}, id {direction}"

    def page(self) -> tuple[str, list[Any]]:
        limit = max(0, min(self.limit, MAX_LIMIT))
        return " LIMIT ? OFFSET ?", [limit, max(0, self.offset)]
