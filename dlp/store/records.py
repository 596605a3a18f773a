"""What the store hands back: incident summaries and details, history, comments, results of actions."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dlp.model import Finding, Uninspected


class Status(enum.StrEnum):
    NEW = "new"
    IN_REVIEW = "in_review"
    RELEASING = "releasing"  # transient: a release is being delivered
    RELEASED = "released"
    DELETED = "deleted"
    FALSE_POSITIVE = "false_positive"
    CONFIRMED = "confirmed"


# Statuses an analyst may still act on; the backlog counts held items in these.
OPEN_STATUSES = (Status.NEW, Status.IN_REVIEW)
# Statuses after which the original is gone or delivered: no further release.
FINAL_STATUSES = (Status.RELEASED, Status.DELETED)


def from_ts(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


@dataclass(frozen=True, slots=True)
class IncidentSummary:
    """One row of the incident list; safe to show to any analyst (no raw values anywhere)."""

    id: str
    created: datetime
    channel: str
    sender: str
    recipients: tuple[str, ...]
    destination: str
    action: str
    enforced_action: str
    monitor_only: bool
    severity: str
    rules: tuple[str, ...]
    entities: tuple[str, ...]
    finding_count: int
    status: str
    disposition: str
    assignee: str
    has_original: bool
    updated: datetime


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    at: datetime
    actor: str
    event: str
    from_status: str = ""
    to_status: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Comment:
    id: int
    at: datetime
    actor: str
    text: str


@dataclass(frozen=True, slots=True)
class ReleaseRequest:
    """An agent's request, through the signed link, to release a held message."""

    id: int
    incident_id: str
    at: datetime
    sender: str
    justification: str


@dataclass(frozen=True, slots=True)
class IncidentDetail:
    """One incident with everything the console shows (masked findings; the original is separate)."""

    summary: IncidentSummary
    message_id: str
    kind: str
    client_address: str
    user: str
    method: str
    findings: tuple[Finding, ...]
    uninspected: tuple[Uninspected, ...]
    history: tuple[HistoryEntry, ...]
    comments: tuple[Comment, ...]
    original_size: int
    original_key_id: str
    original_removed: datetime | None
    released: datetime | None

    @property
    def id(self) -> str:
        return self.summary.id

    @property
    def releasable(self) -> bool:
        s = self.summary
        return (s.channel == "smtp" and s.has_original and s.enforced_action in ("quarantine", "block")
                and s.status not in FINAL_STATUSES and s.status != Status.RELEASING)


@dataclass(frozen=True, slots=True)
class ReleaseResult:
    incident_id: str
    delivered_now: bool  # False: it had already been released (idempotent repeat)
    released_at: datetime | None


@dataclass(frozen=True, slots=True)
class BulkResult:
    done: tuple[str, ...] = ()
    failed: dict[str, str] = field(default_factory=dict)  # incident id -> error text


@dataclass(frozen=True, slots=True)
class PurgeResult:
    originals_removed: int
    incidents_removed: int
