"""The SQLite incident store: durable incident records, encrypted originals on disk, analyst actions.

Layout under the data directory: `store/incidents.db` (WAL, synchronous=FULL) and
`quarantine/<incident id>.q` (sealed by dlp.store.crypto). An original is written durably before its
row is committed, and removed again if the commit fails, so a row never points at a missing original;
a crash in between leaves an unreferenced file that the next open removes.

Concurrency: one write connection behind a lock (SQLite allows one writer anyway); reads use a
connection per thread and never wait for writers (WAL). Other processes (the CLI next to `dlp serve`)
share the same files safely; only the process holding `store/sweep.lock` removes leftovers.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from dlp import delivery as delivery_module
from dlp.config import Settings
from dlp.durable import TMP_PREFIX, fsync_directory, write_atomic
from dlp.keys import KeyError_, load_or_create_key
from dlp.logs import get_logger, redact_text
from dlp.model import Envelope, Finding, Message, Reason, Uninspected, Verdict, destination_host
from dlp.store import audit
from dlp.store.errors import (
    AuditError,
    InvalidAction,
    NotFound,
    ReleaseError,
    ReleaseInProgress,
    StoreError,
)
from dlp.store.keyfiles import load_keyring
from dlp.store.query import IncidentQuery, as_ts
from dlp.store.records import (
    FINAL_STATUSES,
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
    from_ts,
)
from dlp.store.schema import migrate

log = get_logger("dlp.store")

_INCIDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SUFFIX = ".q"
_MAX_COMMENT = 4000
MAX_JUSTIFICATION = 2000
MAX_RELEASE_REQUESTS = 5  # per incident: the link is a capability, not a mailbox
# An unfinished release older than this may be retried with force=True (the earlier attempt may have
# delivered: a duplicate is possible, a loss is not).
STALE_RELEASE_SECONDS = 600.0

_SUMMARY_COLUMNS = ("id, created, channel, sender, recipients, destination, action, enforced_action, monitor_only, "
                    "severity, rules, entities, finding_count, status, disposition, assignee, has_original, updated")

Clock = Callable[[], float]


def _summary(row: sqlite3.Row | tuple[Any, ...]) -> IncidentSummary:
    (iid, created, channel, sender, recipients, destination, action, enforced, monitor_only, severity, rules,
     entities, finding_count, status, disposition, assignee, has_original, updated) = tuple(row)
    return IncidentSummary(
        id=iid, created=from_ts(created), channel=channel, sender=sender,  # type: ignore[arg-type]
        recipients=tuple(json.loads(recipients)), destination=destination, action=action,
        enforced_action=enforced, monitor_only=bool(monitor_only), severity=severity,
        rules=tuple(json.loads(rules)), entities=tuple(json.loads(entities)), finding_count=finding_count,
        status=status, disposition=disposition, assignee=assignee, has_original=bool(has_original),
        updated=from_ts(updated),  # type: ignore[arg-type]
    )




def _pack(message: Message, original: bytes) -> bytes:
    head = {"v": 1, "message_id": message.id, "channel": str(message.channel),
            "sender": message.envelope.sender, "recipients": list(message.envelope.recipients)}
    return json.dumps(head, separators=(",", ":")).encode() + b"\n" + original


def _unpack(payload: bytes) -> tuple[dict[str, Any], bytes]:
    head, _, original = payload.partition(b"\n")
    return json.loads(head), original


class Store:
    """See dlp.store for the API overview. Every analyst action takes an actor and a reason, writes a
    history entry and commits an audit record before it takes effect (AuditError refuses it)."""

    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or time.time
        self.store_dir = settings.data_path / "store"
        self.quarantine_dir = settings.data_path / "quarantine"
        self.db_path = self.store_dir / "incidents.db"
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._sweep_lock_fd: int | None = None
        self._closed = False
        self._open()

    # ------------------------------------------------------------------ opening

    def _open(self) -> None:
        try:
            for directory in (self.store_dir, self.quarantine_dir):
                directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            probe = self.quarantine_dir / f"{TMP_PREFIX}probe-{os.getpid()}"
            write_atomic(probe, b"probe")
            probe.unlink()
        except OSError as exc:
            raise StoreError(f"store directory unwritable: {exc.filename or self.settings.data_path}: "
                             f"{exc.strerror or exc}") from None
        try:
            self._conn = self._connect()
            migrate(self._conn)
            self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_open', ?)",
                               (str(self.clock()),))
            needed = {r[0] for r in self._conn.execute(
                "SELECT DISTINCT original_key_id FROM incidents WHERE has_original = 1")}
            has_audit = self._conn.execute("SELECT 1 FROM audit LIMIT 1").fetchone() is not None
        except (sqlite3.Error, RuntimeError) as exc:
            raise StoreError(f"incident database unusable: {self.db_path}: {exc}") from None
        self.keyring = load_keyring(self.settings, create=not needed)
        missing = needed - self.keyring.ids
        if missing:
            raise StoreError(f"quarantine key unusable: the store holds originals encrypted under key(s) "
                             f"{', '.join(sorted(missing))}, which are neither the current key nor retired "
                             f"keys; restore the key file (or put the old key in its .retired folder)")
        audit_key_path = self.settings.data_path / "keys" / "audit.key"
        try:
            self._audit_key = load_or_create_key(audit_key_path, create=not has_audit)
        except FileNotFoundError:
            raise StoreError(f"audit key missing: {audit_key_path} (the audit log cannot be verified or "
                             "extended without it)") from None
        except (KeyError_, OSError) as exc:
            raise StoreError(f"audit key unusable: {exc}") from None
        self._sweep_leftovers()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 30000")
        with contextlib.suppress(OSError):
            os.chmod(self.db_path, 0o600)
        return conn

    def _sweep_leftovers(self) -> None:
        """Remove what interrupted writes left, but only when no other process has the store open for
        writing (holding the lock for the store's lifetime): its in-flight files must not vanish."""
        fd = os.open(self.store_dir / "sweep.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return
        self._sweep_lock_fd = fd
        referenced = {r[0] for r in self._conn.execute("SELECT id FROM incidents WHERE has_original = 1")}
        removed = 0
        for path in self.quarantine_dir.iterdir():
            name = path.name
            leftover = name.startswith(TMP_PREFIX) or (name.endswith(_SUFFIX) and name[: -len(_SUFFIX)]
                                                       not in referenced)
            if leftover and path.is_file():
                path.unlink(missing_ok=True)
                removed += 1
        if removed:
            fsync_directory(self.quarantine_dir)
            log.warning("store_leftovers_removed", count=removed)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._write_lock:
            self._conn.close()
        with self._readers_lock:
            for conn in self._readers:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._readers.clear()
        if self._sweep_lock_fd is not None:
            os.close(self._sweep_lock_fd)
            self._sweep_lock_fd = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    def _reader(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError("the store is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 30000")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One committed write transaction (synchronous=FULL: durable when this block exits)."""
        if self._closed:
            raise StoreError("the store is closed")
        with self._write_lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLite may already have rolled back (SQLITE_FULL)
                    conn.execute("ROLLBACK")
                raise

    def _audit(self, actor: str, action: str, incident_id: str = "", reason: str = "", detail: str = "") -> None:
        if not actor:
            raise InvalidAction("an actor is required")
        if self._closed:
            raise StoreError("the store is closed")
        with self._write_lock:
            audit.append(self._conn, self._audit_key, at=self.clock(), actor=actor, action=action,
                         incident_id=incident_id, reason=reason, detail=detail)

    def _history(self, conn: sqlite3.Connection, incident_id: str, actor: str, event: str,
                 from_status: str = "", to_status: str = "", detail: str = "") -> None:
        now = self.clock()
        conn.execute("INSERT INTO history (incident_id, at, actor, event, from_status, to_status, detail) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (incident_id, now, actor, event, from_status, to_status, redact_text(detail)[:500]))
        conn.execute("UPDATE incidents SET updated = ? WHERE id = ?", (now, incident_id))

    def _row(self, conn: sqlite3.Connection, incident_id: str, columns: str) -> tuple[Any, ...]:
        row = conn.execute(f"SELECT {columns} FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        if row is None:
            raise NotFound(f"no incident {incident_id}")
        return tuple(row)

    def _original_path(self, incident_id: str) -> Path:
        if not _INCIDENT_ID.fullmatch(incident_id):
            raise InvalidAction("malformed incident id")
        return self.quarantine_dir / f"{incident_id}{_SUFFIX}"

    @staticmethod
    def _require_reason(reason: str, what: str) -> None:
        if not reason or not reason.strip():
            raise InvalidAction(f"a reason is required to {what}")

    # ------------------------------------------------------------------ recording

    def record(self, message: Message, verdict: Verdict, original: bytes | None) -> None:
        """Durably record one incident (and its sealed original). Thread-safe. Raises StoreError and
        leaves nothing behind when any part cannot be written."""
        incident_id = verdict.incident_id
        if not incident_id:
            raise StoreError("cannot record a verdict without an incident id")
        path = self._original_path(incident_id)
        wrote_original = False
        try:
            if original is not None:
                if path.exists():
                    raise StoreError(f"incident {incident_id} already has an original")
                write_atomic(path, self.keyring.seal(incident_id, _pack(message, original)))
                wrote_original = True
            with self._transaction() as conn:
                self._insert(conn, message, verdict, original)
        except BaseException as exc:
            if wrote_original:
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
                    fsync_directory(self.quarantine_dir)
            if isinstance(exc, StoreError):
                raise
            if isinstance(exc, OSError):
                raise StoreError(f"quarantine write failed: {exc.strerror or exc}") from None
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"incident write failed: {exc}") from None
            raise

    def _insert(self, conn: sqlite3.Connection, message: Message, verdict: Verdict, original: bytes | None) -> None:
        env = message.envelope
        now = self.clock()
        incident_id = verdict.incident_id
        conn.execute(
            "INSERT INTO incidents (id, message_id, created, channel, kind, sender, recipients, client_address, "
            "user, destination, method, action, enforced_action, monitor_only, severity, severity_rank, rules, "
            "entities, finding_count, status, updated, has_original, original_key_id, original_size) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (incident_id, message.id, message.received.timestamp(), str(message.channel), verdict.kind,
             env.sender, json.dumps(list(env.recipients)), env.client_address, env.user,
             destination_host(env.destination), env.method, str(verdict.action), str(verdict.effective_action),
             int(verdict.monitor_only), str(verdict.severity), verdict.severity.rank, json.dumps(list(verdict.rules)),
             json.dumps(list(verdict.entities)), len(verdict.findings), str(Status.NEW), now,
             int(original is not None), self.keyring.current_id if original is not None else "",
             len(original) if original is not None else 0),
        )
        conn.executemany(
            "INSERT INTO findings (incident_id, seq, entity, detector, score, location, start, end, masked, "
            "value_id, label, context) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(incident_id, i, f.entity, f.detector, f.score, f.location, f.start, f.end, f.masked, f.value_id,
              f.label, redact_text(f.context)) for i, f in enumerate(verdict.findings)],
        )
        conn.executemany(
            "INSERT INTO uninspected (incident_id, seq, location, reason, detail) VALUES (?, ?, ?, ?, ?)",
            [(incident_id, i, u.location, str(u.reason), u.detail) for i, u in enumerate(verdict.uninspected)],
        )
        conn.execute("INSERT INTO history (incident_id, at, actor, event, to_status) VALUES (?, ?, 'dlp', ?, ?)",
                     (incident_id, now, "recorded", str(Status.NEW)))

    # ------------------------------------------------------------------ reading

    def list_incidents(self, query: IncidentQuery | None = None) -> list[IncidentSummary]:
        query = query or IncidentQuery()
        where, params = query.where()
        page, page_params = query.page()
        sql = f"SELECT {_SUMMARY_COLUMNS} FROM incidents{where}{query.order_by()}{page}"
        return [_summary(r) for r in self._reader().execute(sql, (*params, *page_params))]

    def count(self, query: IncidentQuery | None = None) -> int:
        where, params = (query or IncidentQuery()).where()
        return int(self._reader().execute(f"SELECT COUNT(*) FROM incidents{where}", params).fetchone()[0])

    def get(self, incident_id: str) -> IncidentDetail:
        conn = self._reader()
        conn.execute("BEGIN")  # one consistent snapshot across the tables
        try:
            row = conn.execute(f"SELECT {_SUMMARY_COLUMNS}, message_id, kind, client_address, user, method, "
                               "original_size, original_key_id, original_removed, released FROM incidents "
                               "WHERE id = ?", (incident_id,)).fetchone()
            if row is None:
                raise NotFound(f"no incident {incident_id}")
            n = len(_SUMMARY_COLUMNS.split(","))
            message_id, kind, client, user, method, size, kid, removed, released = row[n:]
            findings = tuple(Finding(*r) for r in conn.execute(
                "SELECT entity, detector, score, location, start, end, masked, value_id, label, context "
                "FROM findings WHERE incident_id = ? ORDER BY seq", (incident_id,)))
            uninspected = tuple(Uninspected(loc, _reason(reason), detail) for loc, reason, detail in conn.execute(
                "SELECT location, reason, detail FROM uninspected WHERE incident_id = ? ORDER BY seq",
                (incident_id,)))
            history = tuple(HistoryEntry(from_ts(at), actor, event, fs, ts, detail)  # type: ignore[arg-type]
                            for at, actor, event, fs, ts, detail in conn.execute(
                "SELECT at, actor, event, from_status, to_status, detail FROM history WHERE incident_id = ? "
                "ORDER BY id", (incident_id,)))
            comments = tuple(Comment(cid, from_ts(at), actor, text)  # type: ignore[arg-type]
                             for cid, at, actor, text in conn.execute(
                "SELECT id, at, actor, text FROM comments WHERE incident_id = ? ORDER BY id", (incident_id,)))
        finally:
            conn.execute("COMMIT")
        return IncidentDetail(
            summary=_summary(row[:n]), message_id=message_id, kind=kind, client_address=client, user=user,
            method=method, findings=findings, uninspected=uninspected, history=history, comments=comments,
            original_size=size, original_key_id=kid, original_removed=from_ts(removed), released=from_ts(released),
        )

    def _sealed(self, incident_id: str) -> tuple[dict[str, Any], bytes]:
        """Decrypt an original: (envelope head, original bytes). Unaudited: callers audit first."""
        has_original, = self._row(self._reader(), incident_id, "has_original")
        if not has_original:
            raise InvalidAction(f"incident {incident_id} has no original (never kept, deleted or purged)")
        try:
            sealed = self._original_path(incident_id).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"incident {incident_id}: the quarantined original is missing from disk") from None
        return _unpack(self.keyring.open(incident_id, sealed))

    def read_original(self, incident_id: str, actor: str, reason: str) -> bytes:
        """The original bytes. The view is audited (and committed) before the bytes are decrypted."""
        self._require_reason(reason, "view an original")
        self._row(self._reader(), incident_id, "id")
        self._audit(actor, audit.VIEW_ORIGINAL, incident_id, reason)
        with self._transaction() as conn:
            self._history(conn, incident_id, actor, "viewed_original", detail=reason)
        return self._sealed(incident_id)[1]

    # ------------------------------------------------------------------ analyst actions

    def _change_status(self, incident_id: str, actor: str, reason: str, event: str, audit_action: str,
                       status: Status | None, disposition: str | None = None) -> None:
        self._row(self._reader(), incident_id, "id")
        self._audit(actor, audit_action, incident_id, reason, detail=str(status or disposition or ""))
        with self._transaction() as conn:
            (current,) = self._row(conn, incident_id, "status")
            if current == Status.RELEASING:
                raise ReleaseInProgress(f"incident {incident_id} is being released")
            new = current if status is None or current in FINAL_STATUSES else str(status)
            if disposition is not None:
                conn.execute("UPDATE incidents SET disposition = ? WHERE id = ?", (disposition, incident_id))
            conn.execute("UPDATE incidents SET status = ? WHERE id = ?", (new, incident_id))
            self._history(conn, incident_id, actor, event, current, new, reason)

    def set_status(self, incident_id: str, status: str, actor: str, reason: str = "") -> None:
        """new / in_review only; use confirm, mark_false_positive, release and delete for the others."""
        status = Status(status)
        if status not in OPEN_STATUSES:
            raise InvalidAction(f"set {status} with its own action (confirm, mark_false_positive, release, delete)")
        self._change_status(incident_id, actor, reason, "status", audit.STATUS, status)

    def confirm(self, incident_id: str, actor: str, reason: str = "") -> None:
        """A true positive. Released or deleted incidents keep their status; the disposition is recorded."""
        self._change_status(incident_id, actor, reason, "confirmed", audit.CONFIRM, Status.CONFIRMED,
                            Status.CONFIRMED.value)

    def mark_false_positive(self, incident_id: str, actor: str, reason: str = "") -> None:
        self._change_status(incident_id, actor, reason, "false_positive", audit.FALSE_POSITIVE,
                            Status.FALSE_POSITIVE, Status.FALSE_POSITIVE.value)

    def assign(self, incident_id: str, assignee: str, actor: str, reason: str = "") -> None:
        """Assign (empty assignee: unassign). A new incident moves to in_review."""
        self._row(self._reader(), incident_id, "id")
        self._audit(actor, audit.ASSIGN, incident_id, reason, detail=f"assignee={assignee}")
        with self._transaction() as conn:
            (status,) = self._row(conn, incident_id, "status")
            new = Status.IN_REVIEW.value if assignee and status == Status.NEW else status
            conn.execute("UPDATE incidents SET assignee = ?, status = ? WHERE id = ?", (assignee, new, incident_id))
            self._history(conn, incident_id, actor, "assigned", status, new, f"assignee={assignee or '-'}")

    def comment(self, incident_id: str, text: str, actor: str) -> int:
        """Add a comment; the text goes through the redactor (a pasted card number is not kept)."""
        text = redact_text(text.strip())[:_MAX_COMMENT]
        if not text:
            raise InvalidAction("an empty comment")
        self._row(self._reader(), incident_id, "id")
        self._audit(actor, audit.COMMENT, incident_id, "")
        with self._transaction() as conn:
            cur = conn.execute("INSERT INTO comments (incident_id, at, actor, text) VALUES (?, ?, ?, ?)",
                               (incident_id, self.clock(), actor, text))
            self._history(conn, incident_id, actor, "commented")
            return int(cur.lastrowid or 0)

    def delete(self, incident_id: str, actor: str, reason: str) -> None:
        """Delete the original (the masked record and its history stay); status becomes deleted."""
        self._require_reason(reason, "delete an original")
        self._row(self._reader(), incident_id, "id")
        self._audit(actor, audit.DELETE, incident_id, reason)
        with self._transaction() as conn:
            (status,) = self._row(conn, incident_id, "status")
            if status == Status.RELEASING:
                raise ReleaseInProgress(f"incident {incident_id} is being released")
            conn.execute("UPDATE incidents SET status = ?, has_original = 0, original_removed = "
                         "COALESCE(original_removed, ?) WHERE id = ?",
                         (Status.DELETED.value, self.clock(), incident_id))
            self._history(conn, incident_id, actor, "deleted", status, Status.DELETED.value, reason)
        self._remove_original_file(incident_id)

    def _remove_original_file(self, incident_id: str) -> None:
        # After the commit: a crash here leaves an unreferenced file, removed at the next open.
        with contextlib.suppress(OSError):
            self._original_path(incident_id).unlink(missing_ok=True)
            fsync_directory(self.quarantine_dir)

    # ------------------------------------------------------------------ release

    def release(self, incident_id: str, actor: str, reason: str,
                deliver: Callable[..., delivery_module.DeliveryResult] | None = None,
                *, force: bool = False) -> ReleaseResult:
        """Deliver a held e-mail to the next hop exactly once.

        State machine: the status becomes `releasing` with a fresh token (committed) before delivery;
        `released` is committed only after the next hop's 250; on failure the previous status returns and
        ReleaseError says why. A repeat after success returns delivered_now=False without delivering; a
        concurrent one raises ReleaseInProgress. An attempt interrupted by a crash stays `releasing`; after
        STALE_RELEASE_SECONDS `force=True` retries it (the earlier attempt may have delivered)."""
        self._require_reason(reason, "release an original")
        self._row(self._reader(), incident_id, "id")
        self._audit(actor, audit.RELEASE, incident_id, reason, detail="force" if force else "")
        token = secrets.token_hex(8)
        now = self.clock()
        with self._transaction() as conn:
            (status, channel, enforced, has_original, started, released) = self._row(
                conn, incident_id, "status, channel, enforced_action, has_original, release_started, released")
            if status == Status.RELEASED or released is not None:
                return ReleaseResult(incident_id, False, from_ts(released))
            if status == Status.RELEASING:
                if not force or (started is not None and now - started < STALE_RELEASE_SECONDS):
                    raise ReleaseInProgress(f"incident {incident_id} is already being released")
                (status,) = self._row(conn, incident_id, "release_prev_status")
            if channel != "smtp":
                raise InvalidAction(f"incident {incident_id} is not an e-mail; only e-mail can be released")
            if enforced not in ("quarantine", "block"):
                raise InvalidAction(f"incident {incident_id} was not held (the message was already delivered)")
            if not has_original or status == Status.DELETED:
                raise InvalidAction(f"incident {incident_id} has no original to release")
            conn.execute("UPDATE incidents SET status = ?, release_token = ?, release_started = ?, "
                         "release_prev_status = ? WHERE id = ?",
                         (Status.RELEASING.value, token, now, status, incident_id))
            self._history(conn, incident_id, actor, "release_started", status, Status.RELEASING.value, reason)
        try:
            head, original = self._sealed(incident_id)
            deliver = deliver or delivery_module.deliver
            result = deliver(self.settings.smtp.next_hop, head.get("sender", ""), tuple(head.get("recipients", ())),
                             original, outbox=self.settings.data_path / "outbox",
                             timeout=self.settings.smtp.forward_timeout_seconds)
        except BaseException as exc:
            self._release_failed(incident_id, token, actor, type(exc).__name__)
            if isinstance(exc, StoreError) or not isinstance(exc, Exception):
                raise
            raise ReleaseError(f"release of {incident_id} failed: {type(exc).__name__}", "error") from None
        if not result.ok:
            self._release_failed(incident_id, token, actor, result.kind or str(result.outcome))
            hint = " (the next hop may have received it: a retry may duplicate)" if \
                result.outcome is delivery_module.Outcome.UNKNOWN else ""
            raise ReleaseError(f"release of {incident_id} failed: next hop answered {result.code} "
                               f"{result.status} ({result.kind}){hint}; the incident is unchanged, retry later",
                               result.kind)
        released_at = self.clock()
        with self._transaction() as conn:
            cur = conn.execute("UPDATE incidents SET status = ?, released = ?, release_token = '' "
                               "WHERE id = ? AND release_token = ?",
                               (Status.RELEASED.value, released_at, incident_id, token))
            if cur.rowcount:
                self._history(conn, incident_id, actor, "released", Status.RELEASING.value, Status.RELEASED.value)
        from dlp import metrics

        metrics.RELEASES.inc()
        return ReleaseResult(incident_id, True, from_ts(released_at))

    def _release_failed(self, incident_id: str, token: str, actor: str, kind: str) -> None:
        with self._transaction() as conn:
            cur = conn.execute("UPDATE incidents SET status = release_prev_status, release_token = '', "
                               "release_started = NULL WHERE id = ? AND release_token = ?", (incident_id, token))
            if cur.rowcount:
                (status,) = self._row(conn, incident_id, "status")
                self._history(conn, incident_id, actor, "release_failed", Status.RELEASING.value, status, kind)

    # ------------------------------------------------------------------ release requests

    def add_release_request(self, incident_id: str, sender: str, justification: str) -> int:
        """Record an agent's request to release a held message (the console verified the signed link).
        The justification goes through the redactor (no card or account number is needed to justify a
        release); audited as `release_request` by actor "agent" without the text."""
        text = redact_text(justification.strip())[:MAX_JUSTIFICATION]
        if not text:
            raise InvalidAction("a justification is required")
        status, stored_sender = self._row(self._reader(), incident_id, "status, sender")
        if stored_sender.lower() != sender.lower():
            raise InvalidAction("this link does not belong to the sender of that incident")
        if status in FINAL_STATUSES:
            raise InvalidAction(f"incident {incident_id} was already {status}")
        (count,) = self._reader().execute("SELECT COUNT(*) FROM release_requests WHERE incident_id = ?",
                                          (incident_id,)).fetchone()
        if count >= MAX_RELEASE_REQUESTS:
            raise InvalidAction("this incident already has the maximum number of release requests")
        self._audit("agent", audit.RELEASE_REQUEST, incident_id, "", detail=f"{len(text)} chars")
        with self._transaction() as conn:
            cur = conn.execute("INSERT INTO release_requests (incident_id, at, sender, justification) "
                               "VALUES (?, ?, ?, ?)", (incident_id, self.clock(), stored_sender, text))
            self._history(conn, incident_id, "agent", "release_requested")
            return int(cur.lastrowid or 0)

    def release_requests(self, incident_id: str) -> list[ReleaseRequest]:
        return [ReleaseRequest(rid, iid, from_ts(at), sender, text)  # type: ignore[arg-type]
                for rid, iid, at, sender, text in self._reader().execute(
                    "SELECT id, incident_id, at, sender, justification FROM release_requests "
                    "WHERE incident_id = ? ORDER BY id", (incident_id,))]

    def release_request_counts(self, incident_ids: list[str]) -> dict[str, int]:
        """Requests per incident for a page of the queue (incidents without any are left out)."""
        if not incident_ids:
            return {}
        marks = ",".join("?" * len(incident_ids))
        return dict(self._reader().execute(
            f"SELECT incident_id, COUNT(*) FROM release_requests WHERE incident_id IN ({marks}) "
            "GROUP BY incident_id", incident_ids).fetchall())

    # ------------------------------------------------------------------ bulk

    def select_ids(self, *, value_id: str = "", sender: str = "", statuses: tuple[str, ...] = OPEN_STATUSES,
                   limit: int = 10_000) -> list[str]:
        """Incidents sharing a value id or a sender (open ones by default), for the bulk actions."""
        if not value_id and not sender:
            raise InvalidAction("choose a value id or a sender")
        query = IncidentQuery(value_id=value_id, sender=sender, status=tuple(statuses), limit=limit, sort="created")
        return [s.id for s in self.list_incidents(query)]

    def bulk(self, operation: str, incident_ids: list[str], actor: str, reason: str, **kwargs: Any) -> BulkResult:
        """Apply one action (confirm, mark_false_positive, delete, release, set_status, assign) to many
        incidents; each is audited on its own and one failure does not stop the rest."""
        allowed = {"confirm", "mark_false_positive", "delete", "release", "set_status", "assign"}
        if operation not in allowed:
            raise InvalidAction(f"bulk {operation} is not supported; choose one of {', '.join(sorted(allowed))}")
        method = getattr(self, operation)
        done, failed = [], {}
        for iid in incident_ids:
            try:
                if operation == "set_status":
                    method(iid, kwargs["status"], actor, reason)
                elif operation == "assign":
                    method(iid, kwargs["assignee"], actor, reason)
                else:
                    method(iid, actor, reason)
                done.append(iid)
            except AuditError:
                raise
            except StoreError as exc:
                failed[iid] = str(exc)
        return BulkResult(tuple(done), failed)

    # ------------------------------------------------------------------ aggregates

    def overview(self, since: Any = None, until: Any = None, bucket: str = "day") -> dict[str, Any]:
        """Counts per time bucket ("day" or "hour", UTC) by action, channel and entity; totals; the ten
        oldest open incidents; the ten senders with most incidents — all over [since, until)."""
        fmt = {"day": "%Y-%m-%d", "hour": "%Y-%m-%dT%H:00"}.get(bucket)
        if fmt is None:
            raise ValueError("bucket must be day or hour")
        where, params = IncidentQuery(since=since, until=until).where()
        conn = self._reader()
        b = f"strftime('{fmt}', created, 'unixepoch')"

        def series(column: str, table: str = "incidents") -> list[dict[str, Any]]:
            sql = (f"SELECT {b} AS bucket, {column} AS key, COUNT(*) FROM {table}{where} "
                   "GROUP BY bucket, key ORDER BY bucket, key")
            return [{"bucket": r[0], "key": r[1], "count": r[2]} for r in conn.execute(sql, params)]

        entity_table = "incidents JOIN findings ON findings.incident_id = incidents.id"
        entity_sql = (f"SELECT {b} AS bucket, entity, COUNT(DISTINCT incidents.id) FROM {entity_table}{where} "
                      "GROUP BY bucket, entity ORDER BY bucket, entity")
        open_query = IncidentQuery(since=since, until=until, status=tuple(OPEN_STATUSES), sort="created", limit=10)
        return {
            "bucket": bucket,
            "total": self.count(IncidentQuery(since=since, until=until)),
            "by_action": series("enforced_action"),
            "by_computed_action": series("action"),
            "by_channel": series("channel"),
            "by_entity": [{"bucket": r[0], "key": r[1], "count": r[2]} for r in conn.execute(entity_sql, params)],
            "by_status": dict(conn.execute(f"SELECT status, COUNT(*) FROM incidents{where} GROUP BY status",
                                           params).fetchall()),
            "oldest_open": self.list_incidents(open_query),
            "top_senders": [{"sender": r[0], "count": r[1]} for r in conn.execute(
                f"SELECT sender, COUNT(*) AS n FROM incidents{where}{' AND' if where else ' WHERE'} sender != '' "
                "GROUP BY sender ORDER BY n DESC, sender LIMIT 10", params)],
        }

    def backlog(self) -> tuple[int, float]:
        """Held (quarantined) originals awaiting a decision: (count, age in seconds of the oldest)."""
        statuses = (*OPEN_STATUSES, Status.RELEASING)
        row = self._reader().execute(
            f"SELECT COUNT(*), MIN(created) FROM incidents WHERE enforced_action = 'quarantine' AND has_original = 1 "
            f"AND status IN ({','.join('?' * len(statuses))})", [str(s) for s in statuses]).fetchone()
        count, oldest = int(row[0]), row[1]
        return count, (max(0.0, self.clock() - oldest) if oldest is not None else 0.0)

    def precision(self) -> dict[str, dict[str, tuple[int, int]]]:
        """From analysts' dispositions: {"rules": {rule: (confirmed, false_positive)}, "detectors": {...}}."""
        conn = self._reader()
        out: dict[str, dict[str, tuple[int, int]]] = {"rules": {}, "detectors": {}}
        rule_sql = ("SELECT r.value, SUM(disposition = 'confirmed'), SUM(disposition = 'false_positive') "
                    "FROM incidents, json_each(incidents.rules) AS r WHERE disposition != '' GROUP BY r.value")
        for name, confirmed, fp in conn.execute(rule_sql):
            out["rules"][name] = (int(confirmed), int(fp))
        det_sql = ("SELECT detector, SUM(disposition = 'confirmed'), SUM(disposition = 'false_positive') FROM "
                   "(SELECT DISTINCT incidents.id, detector, disposition FROM incidents JOIN findings "
                   "ON findings.incident_id = incidents.id WHERE disposition != '') GROUP BY detector")
        for name, confirmed, fp in conn.execute(det_sql):
            out["detectors"][name] = (int(confirmed), int(fp))
        return out

    # ------------------------------------------------------------------ retention and keys

    def purge(self, actor: str, *, original_days: int | None = None, incident_days: int | None = None) -> PurgeResult:
        """Delete originals older than `original_days` (default settings.store.retention_days) and, when
        `incident_days` is given, whole incidents older than that. Audited before it runs. Incidents in
        the middle of a release are skipped."""
        days = self.settings.store.retention_days if original_days is None else original_days
        if days < 0 or (incident_days is not None and incident_days < 0):
            raise InvalidAction("retention days must not be negative")
        now = self.clock()
        detail = f"originals>{days}d" + (f" incidents>{incident_days}d" if incident_days is not None else "")
        self._audit(actor, audit.PURGE, "", "retention", detail=detail)
        cutoff = now - days * 86400
        with self._transaction() as conn:
            ids = [r[0] for r in conn.execute(
                "SELECT id FROM incidents WHERE has_original = 1 AND created < ? AND status != ?",
                (cutoff, Status.RELEASING.value))]
            for iid in ids:
                (status,) = self._row(conn, iid, "status")
                new = Status.DELETED.value if status in OPEN_STATUSES else status
                conn.execute("UPDATE incidents SET has_original = 0, original_removed = ?, status = ? WHERE id = ?",
                             (now, new, iid))
                self._history(conn, iid, actor, "purged", status, new, f"retention {days} days")
            removed_incidents: list[str] = []
            if incident_days is not None:
                removed_incidents = [r[0] for r in conn.execute(
                    "SELECT id FROM incidents WHERE created < ? AND status != ?",
                    (now - incident_days * 86400, Status.RELEASING.value))]
                conn.executemany("DELETE FROM incidents WHERE id = ?", [(i,) for i in removed_incidents])
        for iid in {*ids, *removed_incidents}:
            with contextlib.suppress(OSError):
                self._original_path(iid).unlink(missing_ok=True)
        fsync_directory(self.quarantine_dir)
        log.info("store_purged", originals=len(ids), incidents=len(removed_incidents))
        return PurgeResult(len(ids), len(removed_incidents))

    def reencrypt(self, actor: str) -> int:
        """Re-seal every original that is not under the current key; returns how many were rewritten."""
        current = self.keyring.current_id
        ids = [r[0] for r in self._reader().execute(
            "SELECT id FROM incidents WHERE has_original = 1 AND original_key_id != ?", (current,))]
        self._audit(actor, audit.REENCRYPT, "", "key rotation", detail=f"{len(ids)} items to key {current}")
        done = 0
        for iid in ids:
            path = self._original_path(iid)
            try:
                payload = self.keyring.open(iid, path.read_bytes())
            except FileNotFoundError:
                continue  # deleted meanwhile
            write_atomic(path, self.keyring.seal(iid, payload))
            with self._transaction() as conn:
                conn.execute("UPDATE incidents SET original_key_id = ? WHERE id = ?", (current, iid))
            done += 1
        return done

    def key_usage(self) -> dict[str, int]:
        """Originals per key id (to know when a retired key is no longer needed)."""
        return dict(self._reader().execute(
            "SELECT original_key_id, COUNT(*) FROM incidents WHERE has_original = 1 GROUP BY original_key_id"
        ).fetchall())

    # ------------------------------------------------------------------ audit

    def audit_records(self, **filters: Any) -> list[audit.AuditRecord]:
        """Filters: incident_id, since (datetime or unix seconds), actor, action, limit, offset."""
        if "since" in filters:
            filters["since"] = as_ts(filters["since"])
        return audit.records(self._reader(), **filters)

    def audit_verify(self) -> audit.Verification:
        return audit.verify(self._reader(), self._audit_key)

    def audit_event(self, actor: str, action: str, reason: str = "", detail: str = "", incident_id: str = "") -> None:
        """Record an audited action that happens outside the store (an export, a console login)."""
        self._audit(actor, action, incident_id, reason, detail)

    def export(self, query: IncidentQuery, actor: str, reason: str = "") -> Iterator[IncidentDetail]:
        """Every matching incident in full (masked) detail, paged; the export is audited first."""
        self._audit(actor, audit.EXPORT, "", reason, detail=f"{self.count(replace(query, limit=0))} incidents")
        offset = query.offset
        while True:
            page = self.list_incidents(replace(query, offset=offset, limit=500))
            if not page:
                return
            for s in page:
                yield self.get(s.id)
            offset += len(page)


def _reason(value: str) -> Reason | str:
    try:
        return Reason(value)
    except ValueError:
        return value


def envelope_of(detail: IncidentDetail) -> Envelope:
    s = detail.summary
    return Envelope(sender=s.sender, recipients=s.recipients, client_address=detail.client_address,
                    user=detail.user, destination=s.destination, method=detail.method)
