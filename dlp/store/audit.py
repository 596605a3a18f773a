"""The audit log: append-only and HMAC-chained, in the store's database.

Each record's MAC covers the previous record's MAC and every field of its own (including its sequence
number), under a per-installation key (`<data-dir>/keys/audit.key`) that the database does not hold.
Editing, deleting or reordering records breaks the chain; a head MAC in `meta` catches removal of the
newest records. Someone holding both the database and the key could rewrite history: ship `dlp audit
list --format json` (or the alert sinks) off the host to anchor it. Reasons are passed through the
log redactor, so a card number typed into a reason is not kept.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from dlp.logs import redact_text
from dlp.store.errors import AuditError

MAX_REASON_CHARS = 500

# The audited actions (a fixed vocabulary, used by the console and `dlp audit list`).
VIEW_ORIGINAL = "view_original"
RELEASE = "release"
DELETE = "delete"
STATUS = "status"
ASSIGN = "assign"
COMMENT = "comment"
FALSE_POSITIVE = "false_positive"
CONFIRM = "confirm"
PURGE = "purge"
EXPORT = "export"
REENCRYPT = "reencrypt"
RELEASE_REQUEST = "release_request"  # an agent asked for a release through the signed link


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    at: float
    actor: str
    action: str
    incident_id: str
    reason: str
    detail: str
    mac: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    records: int
    problem: str = ""  # what is wrong, with the first bad sequence number
    first_bad_seq: int | None = None


def clean_reason(reason: str) -> str:
    return redact_text(" ".join(reason.split()))[:MAX_REASON_CHARS]


def _mac(key: bytes, prev: str, seq: int, at: float, actor: str, action: str, incident_id: str,
         reason: str, detail: str) -> str:
    body = json.dumps([prev, seq, repr(at), actor, action, incident_id, reason, detail], ensure_ascii=True)
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def _head_mac(key: bytes, seq: int, mac: str) -> str:
    return hmac.new(key, f"head\x00{seq}\x00{mac}".encode(), hashlib.sha256).hexdigest()


def append(conn: sqlite3.Connection, key: bytes, *, at: float, actor: str, action: str, incident_id: str = "",
           reason: str = "", detail: str = "") -> AuditRecord:
    """Append and commit one record. The caller holds the store's write lock. Raises AuditError."""
    reason = clean_reason(reason)
    detail = redact_text(detail)[:MAX_REASON_CHARS]
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            last = conn.execute("SELECT seq, mac FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (last[0] + 1, last[1]) if last else (1, "")
            mac = _mac(key, prev, seq, at, actor, action, incident_id, reason, detail)
            conn.execute(
                "INSERT INTO audit (seq, at, actor, action, incident_id, reason, detail, mac) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, at, actor, action, incident_id, reason, detail, mac),
            )
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('audit_head', ?)",
                         (f"{seq}:{_head_mac(key, seq, mac)}",))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise AuditError(f"audit record could not be written ({exc}); action refused") from None
    return AuditRecord(seq, at, actor, action, incident_id, reason, detail, mac)


def records(conn: sqlite3.Connection, *, incident_id: str | None = None, since: float | None = None,
            actor: str | None = None, action: str | None = None, limit: int = 1000,
            offset: int = 0) -> list[AuditRecord]:
    where, params = [], []
    for column, value in (("incident_id", incident_id), ("actor", actor), ("action", action)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if since is not None:
        where.append("at >= ?")
        params.append(since)
    sql = "SELECT seq, at, actor, action, incident_id, reason, detail, mac FROM audit"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY seq LIMIT ? OFFSET ?"
    return [AuditRecord(*row) for row in conn.execute(sql, (*params, limit, offset))]


def verify(conn: sqlite3.Connection, key: bytes) -> Verification:
    prev, expected_seq, count = "", 1, 0
    last_seq, last_mac = 0, ""
    for row in conn.execute("SELECT seq, at, actor, action, incident_id, reason, detail, mac FROM audit ORDER BY seq"):
        rec = AuditRecord(*row)
        if rec.seq != expected_seq:
            return Verification(False, count, f"record {expected_seq} is missing (next is {rec.seq})", expected_seq)
        want = _mac(key, prev, rec.seq, rec.at, rec.actor, rec.action, rec.incident_id, rec.reason, rec.detail)
        if not hmac.compare_digest(want, rec.mac):
            return Verification(False, count, f"record {rec.seq} was altered, reordered or forged", rec.seq)
        prev, expected_seq, count = rec.mac, rec.seq + 1, count + 1
        last_seq, last_mac = rec.seq, rec.mac
    head = conn.execute("SELECT value FROM meta WHERE key = 'audit_head'").fetchone()
    if head is None:
        if count:
            return Verification(False, count, "the audit head marker is missing", None)
        return Verification(True, 0)
    head_seq, _, head_mac = str(head[0]).partition(":")
    if not head_seq.isdigit() or not hmac.compare_digest(head_mac, _head_mac(key, int(head_seq), last_mac)) \
            or int(head_seq) != last_seq:
        return Verification(False, count, f"the newest records were removed (head says {head_seq}, "
                                          f"log ends at {last_seq})", last_seq + 1)
    return Verification(True, count)
