"""The SQLite schema of the incident store (one file, WAL mode). Bump SCHEMA_VERSION with a migration."""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 1

DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    created REAL NOT NULL,              -- unix seconds, UTC
    channel TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT '',
    sender TEXT NOT NULL DEFAULT '',
    recipients TEXT NOT NULL DEFAULT '[]',   -- JSON list
    client_address TEXT NOT NULL DEFAULT '',
    user TEXT NOT NULL DEFAULT '',
    destination TEXT NOT NULL DEFAULT '',    -- host only: URL paths and queries can carry PII
    method TEXT NOT NULL DEFAULT '',
    action TEXT NOT NULL,
    enforced_action TEXT NOT NULL,
    monitor_only INTEGER NOT NULL DEFAULT 0,
    severity TEXT NOT NULL,
    severity_rank INTEGER NOT NULL,
    rules TEXT NOT NULL DEFAULT '[]',        -- JSON list
    entities TEXT NOT NULL DEFAULT '[]',     -- JSON list
    finding_count INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'new',
    disposition TEXT NOT NULL DEFAULT '',    -- '', confirmed, false_positive: the analysts' verdict
    assignee TEXT NOT NULL DEFAULT '',
    updated REAL NOT NULL,
    has_original INTEGER NOT NULL DEFAULT 0,
    original_key_id TEXT NOT NULL DEFAULT '',
    original_size INTEGER NOT NULL DEFAULT 0,
    original_removed REAL,                    -- when the original was deleted or purged
    release_token TEXT NOT NULL DEFAULT '',
    release_started REAL,
    release_prev_status TEXT NOT NULL DEFAULT '',
    released REAL
);
CREATE INDEX IF NOT EXISTS incidents_created ON incidents (created);
CREATE INDEX IF NOT EXISTS incidents_status ON incidents (status, created);
CREATE INDEX IF NOT EXISTS incidents_sender ON incidents (sender);

CREATE TABLE IF NOT EXISTS findings (
    incident_id TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    entity TEXT NOT NULL,
    detector TEXT NOT NULL,
    score REAL NOT NULL,
    location TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    masked TEXT NOT NULL,
    value_id TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    context TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (incident_id, seq)
);
CREATE INDEX IF NOT EXISTS findings_value_id ON findings (value_id);
CREATE INDEX IF NOT EXISTS findings_entity ON findings (entity);

CREATE TABLE IF NOT EXISTS uninspected (
    incident_id TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    location TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (incident_id, seq)
);

CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY,
    incident_id TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    event TEXT NOT NULL,
    from_status TEXT NOT NULL DEFAULT '',
    to_status TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS history_incident ON history (incident_id, id);

CREATE TABLE IF NOT EXISTS comments (
    id INTEGER PRIMARY KEY,
    incident_id TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS comments_incident ON comments (incident_id, id);

-- Agents' requests to release a held message (from the signed link in their notification).
CREATE TABLE IF NOT EXISTS release_requests (
    id INTEGER PRIMARY KEY,
    incident_id TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at REAL NOT NULL,
    sender TEXT NOT NULL,
    justification TEXT NOT NULL              -- the agent's text, through the redactor
);
CREATE INDEX IF NOT EXISTS release_requests_incident ON release_requests (incident_id, id);

-- Append-only and HMAC-chained; never deleted with its incident.
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    incident_id TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    mac TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


def migrate(conn: sqlite3.Connection) -> None:
    conn.executescript(DDL)
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    elif int(row[0]) > SCHEMA_VERSION:
        raise RuntimeError(f"store schema {row[0]} is newer than this dlp ({SCHEMA_VERSION}); upgrade dlp")
