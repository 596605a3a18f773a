"""The incident store: incidents, encrypted quarantined originals and the audit log (SQLite by default).

Opening
    store = open_store(settings)          # StoreError (operator-facing text) if the key or directory is unusable
    store.close()                         # also a context manager

Recording (the channels, via dlp.pipeline; thread-safe, durable before it returns)
    store.record(message, verdict, original_or_None)

Reading (no raw values anywhere: findings carry `masked`, `value_id` and a masked `context`)
    store.list_incidents(IncidentQuery(status=("new",), since=dt, channel=("smtp",), severity=("high",),
                         sender="a@b", entity="CREDIT_CARD", action=("quarantine",), value_id="...",
                         rule="...", assignee="...", text="substring", sort="-created", limit=50, offset=0))
        -> list[IncidentSummary]
    store.count(query) -> int
    store.get(incident_id) -> IncidentDetail (summary, findings, uninspected, history, comments, ...)
    store.overview(since, until, bucket="day"|"hour") -> dict of series by action/channel/entity, totals,
        oldest open incidents, top senders
    store.backlog() -> (held items awaiting a decision, oldest age in seconds)
    store.precision() -> {"rules": {name: (confirmed, false_positive)}, "detectors": {...}}
    store.key_usage() -> {key id: originals}

Analyst actions (each takes `actor` and a `reason`; an audit record is committed first — AuditError
refuses the action — and a history entry is written with the change)
    store.read_original(id, actor, reason) -> bytes        # reason required
    store.release(id, actor, reason, deliver=None, force=False) -> ReleaseResult
        # e-mail only; exactly once; ReleaseError (next hop refused / down: unchanged, retry later),
        # ReleaseInProgress (concurrent), InvalidAction (not releasable)
    store.delete(id, actor, reason)                        # removes the original, keeps the masked record
    store.set_status(id, "new"|"in_review", actor, reason)
    store.confirm(id, actor, reason); store.mark_false_positive(id, actor, reason)
    store.assign(id, assignee, actor, reason); store.comment(id, text, actor) -> comment id
    store.add_release_request(id, sender, justification) -> request id   # from the signed link (agent)
    store.release_requests(id) -> [ReleaseRequest];  store.release_request_counts(ids) -> {id: n}
    store.select_ids(value_id=... | sender=...) -> ids;  store.bulk(operation, ids, actor, reason, **kw)
    store.purge(actor, original_days=None, incident_days=None) -> PurgeResult
    store.reencrypt(actor) -> items re-sealed under the current key
    store.export(query, actor, reason) -> iterator of IncidentDetail (audited)
    store.audit_event(actor, action, reason, detail, incident_id)   # e.g. the console's logins
    store.audit_records(incident_id=, since=, actor=, action=, limit=, offset=); store.audit_verify()

Statuses: new, in_review, releasing (transient), released, deleted, false_positive, confirmed. The
analysts' verdict is also kept in `disposition` so that a released or deleted incident can still be
confirmed or marked a false positive (precision counts dispositions).

Decisions: a web destination is stored as scheme://host[:port] only (paths and queries can carry
personal data); finding contexts, comments, history details and audit reasons pass through
dlp.logs.redact_text; originals are sealed with AES-256-GCM bound to incident id + key id.
"""

from __future__ import annotations

from dlp.config import Settings
from dlp.store.audit import AuditRecord, Verification
from dlp.store.errors import (
    AuditError,
    IntegrityError,
    InvalidAction,
    NotFound,
    ReleaseError,
    ReleaseInProgress,
    StoreError,
)
from dlp.store.query import IncidentQuery
from dlp.store.records import (
    OPEN_STATUSES,
    BulkResult,
    Comment,
    HistoryEntry,
    IncidentDetail,
    IncidentSummary,
    PurgeResult,
    ReleaseRequest,
    ReleaseResult,
    Status,
)
from dlp.store.sqlite import Clock, Store

__all__ = [
    "OPEN_STATUSES",
    "AuditError",
    "AuditRecord",
    "BulkResult",
    "Clock",
    "Comment",
    "HistoryEntry",
    "IncidentDetail",
    "IncidentQuery",
    "IncidentSummary",
    "IntegrityError",
    "InvalidAction",
    "NotFound",
    "PurgeResult",
    "ReleaseError",
    "ReleaseInProgress",
    "ReleaseRequest",
    "ReleaseResult",
    "Status",
    "Store",
    "StoreError",
    "Verification",
    "open_store",
]


def open_store(settings: Settings, *, clock: Clock | None = None) -> Store:
    """Open (creating on first run) the store under settings.data_dir; StoreError says what to fix."""
    return Store(settings, clock=clock)
