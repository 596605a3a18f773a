"""Protecting the DLP (H1, H3, H7): no raw values at rest, integrity of originals and of the audit log,
audit before every action, retention, key rotation."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from storekit import CANARIES, Factory, grep_tree

from dlp.alerts import AlertDispatcher
from dlp.config import AlertSettings, Settings, StoreSettings
from dlp.store import AuditError, IntegrityError, Status, StoreError, open_store
from dlp.store.keyfiles import retired_dir, rotate_key_file


def test_canaries_never_at_rest_in_the_data_directory(settings: Settings, factory: Factory) -> None:
    """H1: card, SSN and e-mail seeded through the real Inspector; every file (db, WAL, quarantine,
    alerts) is grepped while the store is open (WAL not yet checkpointed) and after closing."""
    store = open_store(settings)
    alerts = AlertDispatcher(settings)
    for i in range(3):
        message, verdict, raw = factory.message(sender=f"agent{i}@callcenter.example")
        assert {"CREDIT_CARD", "US_SSN"} <= set(verdict.entities)
        store.record(message, verdict, raw)
        alerts.emit(message, verdict)
        store.comment(verdict.incident_id, "customer card 4111 1111 1111 1111 pasted by mistake", "rita")
        store.confirm(verdict.incident_id, "rita", "ssn 078-05-1120 is real")
    assert store.read_original(verdict.incident_id, "rita", "evidence").count(b"078-05-1120") == 1
    assert (settings.data_path / "store" / "incidents.db-wal").stat().st_size > 0
    alerts.close()
    assert grep_tree(settings.data_path, CANARIES) == []
    store.close()
    assert grep_tree(settings.data_path, CANARIES) == []


def test_tampered_or_swapped_ciphertext_is_an_integrity_error(store, factory: Factory, settings: Settings) -> None:
    ids = []
    for _ in range(2):
        message, verdict, raw = factory.message()
        store.record(message, verdict, raw)
        ids.append(verdict.incident_id)
    q = settings.data_path / "quarantine"
    first, second = (q / f"{i}.q" for i in ids)
    data = bytearray(first.read_bytes())
    data[-20] ^= 0x01
    first.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        store.read_original(ids[0], "rita", "tampered")
    first.write_bytes(second.read_bytes())  # a valid item moved onto another incident
    with pytest.raises(IntegrityError):
        store.read_original(ids[0], "rita", "swapped")
    first.write_bytes(b"DLPQ1short")
    with pytest.raises(IntegrityError):
        store.read_original(ids[0], "rita", "truncated")


def _raw_db(settings: Settings) -> sqlite3.Connection:
    """An attacker's connection: without our append-only triggers."""
    conn = sqlite3.connect(settings.data_path / "store" / "incidents.db", isolation_level=None)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("DROP TRIGGER audit_no_delete")
    return conn


def _audited_store(settings: Settings, factory: Factory):
    store = open_store(settings)
    message, verdict, raw = factory.message()
    store.record(message, verdict, raw)
    iid = verdict.incident_id
    store.assign(iid, "rita", "lead", "triage")
    store.comment(iid, "looks real", "rita")
    store.read_original(iid, "rita", "check the attachment")
    store.confirm(iid, "rita", "real card")
    store.delete(iid, "rita", "evidence no longer needed")
    return store, iid


@pytest.mark.parametrize("tamper", ["edit", "delete_middle", "reorder", "truncate_tail", "forge_append"])
def test_audit_tampering_is_detected(settings: Settings, factory: Factory, tamper: str) -> None:
    store, _iid = _audited_store(settings, factory)
    assert store.audit_verify().ok and store.audit_verify().records == 5
    conn = _raw_db(settings)
    if tamper == "edit":
        conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 3")
    elif tamper == "delete_middle":
        conn.execute("DELETE FROM audit WHERE seq = 3")
    elif tamper == "reorder":
        conn.execute("UPDATE audit SET seq = 100 WHERE seq = 2")
        conn.execute("UPDATE audit SET seq = 2 WHERE seq = 3")
        conn.execute("UPDATE audit SET seq = 3 WHERE seq = 100")
    elif tamper == "truncate_tail":
        conn.execute("DELETE FROM audit WHERE seq >= 5")
    else:
        conn.execute("INSERT INTO audit (seq, at, actor, action, mac) VALUES (6, 0, 'x', 'delete', 'abcd')")
    conn.close()
    result = store.audit_verify()
    assert not result.ok and result.problem
    store.close()


def test_audit_is_append_only_through_sqlite(store, factory: Factory, settings: Settings) -> None:
    message, verdict, raw = factory.message()
    store.record(message, verdict, raw)
    store.read_original(verdict.incident_id, "rita", "look")
    conn = sqlite3.connect(settings.data_path / "store" / "incidents.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit")
    conn.close()


def test_every_action_is_audited_before_it_happens_and_refused_without_audit(settings, factory: Factory) -> None:
    """H3: who, when, incident, action, reason; an audit failure refuses the action."""
    store, iid = _audited_store(settings, factory)
    records = store.audit_records(incident_id=iid)
    assert [r.action for r in records] == ["assign", "comment", "view_original", "confirm", "delete"]
    assert all(r.actor in ("lead", "rita") and r.at > 0 and r.incident_id == iid for r in records)
    assert records[2].reason == "check the attachment"
    message, verdict, raw = factory.message()
    store.record(message, verdict, raw)
    conn = sqlite3.connect(settings.data_path / "store" / "incidents.db", isolation_level=None)
    conn.execute("CREATE TRIGGER audit_broken BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'disk'); END")
    conn.close()
    for action in (lambda: store.read_original(verdict.incident_id, "rita", "peek"),
                   lambda: store.release(verdict.incident_id, "rita", "go"),
                   lambda: store.delete(verdict.incident_id, "rita", "gone"),
                   lambda: store.mark_false_positive(verdict.incident_id, "rita", "fp"),
                   lambda: store.assign(verdict.incident_id, "bob", "rita"),
                   lambda: store.comment(verdict.incident_id, "hello", "rita"),
                   lambda: store.purge("rita", original_days=0)):
        with pytest.raises(AuditError, match="action refused"):
            action()
    detail = store.get(verdict.incident_id)
    assert detail.summary.status == Status.NEW and detail.summary.has_original and not detail.comments
    assert [h.event for h in detail.history] == ["recorded"]
    assert not (settings.data_path / "outbox").exists()
    store.close()


def test_audit_and_history_keep_no_pii_typed_by_analysts(store, factory: Factory) -> None:
    message, verdict, raw = factory.message()
    store.record(message, verdict, raw)
    store.read_original(verdict.incident_id, "rita", "card 4111111111111111 of canary.person.7f3a@example.org")
    record = store.audit_records(incident_id=verdict.incident_id)[0]
    assert "4111111111111111" not in record.reason and "canary.person" not in record.reason
    assert "redacted" in record.reason
    assert "4111111111111111" not in store.get(verdict.incident_id).history[-1].detail


def test_retention_purge_with_a_controlled_clock(settings: Settings, factory: Factory) -> None:
    """H7: originals older than retention_days are purged (audited); with a flag, old incidents too."""
    settings = replace(settings, store=StoreSettings(retention_days=30))
    now = [datetime(2026, 1, 1, tzinfo=UTC).timestamp()]
    store = open_store(settings, clock=lambda: now[0])
    ids = []
    for days_old in (40, 31, 29, 1):
        message, verdict, raw = factory.message()
        message = replace(message, received=datetime.fromtimestamp(now[0] - days_old * 86400 - 60, UTC))
        store.record(message, verdict, raw)
        ids.append(verdict.incident_id)
    result = store.purge("retention-job")
    assert (result.originals_removed, result.incidents_removed) == (2, 0)
    for iid, kept in zip(ids, (False, False, True, True), strict=True):
        detail = store.get(iid)
        assert detail.summary.has_original is kept
        assert (settings.data_path / "quarantine" / f"{iid}.q").exists() is kept
        if not kept:
            assert detail.summary.status == Status.DELETED and detail.history[-1].event == "purged"
            with pytest.raises(StoreError):
                store.read_original(iid, "rita", "too late")
    assert [r.action for r in store.audit_records(action="purge")] == ["purge"]
    now[0] += 10 * 86400  # ten days later the 29-day-old one is due too, and incidents over 35 days go
    result = store.purge("retention-job", incident_days=35)
    assert (result.originals_removed, result.incidents_removed) == (1, 3)  # 50, 41 and 39 days old
    assert [s.id for s in store.list_incidents()] == [ids[3]]
    assert [p.stem for p in (settings.data_path / "quarantine").glob("*.q")] == [ids[3]]
    assert store.audit_verify().ok
    store.close()


def test_key_rotation_old_items_still_decrypt_and_reencrypt(settings: Settings, factory: Factory) -> None:
    store = open_store(settings)
    old_msg, old_verdict, old_raw = factory.message()
    store.record(old_msg, old_verdict, old_raw)
    old_kid = store.keyring.current_id
    store.close()
    retired_id, new_kid = rotate_key_file(settings)
    assert retired_id == old_kid and new_kid != old_kid
    assert (retired_dir(settings) / f"{old_kid}.key").stat().st_mode & 0o777 == 0o600
    store = open_store(settings)
    new_msg, new_verdict, new_raw = factory.message()
    store.record(new_msg, new_verdict, new_raw)
    assert store.key_usage() == {old_kid: 1, new_kid: 1}
    assert store.read_original(old_verdict.incident_id, "rita", "old key") == old_raw
    assert store.reencrypt("admin") == 1
    assert store.key_usage() == {new_kid: 2}
    store.close()
    for path in retired_dir(settings).glob("*.key"):
        path.unlink()  # no item needs the old key any more: the store opens without it
    store = open_store(settings)
    assert store.read_original(old_verdict.incident_id, "rita", "after re-encryption") == old_raw
    store.close()


def test_rotation_refused_when_the_key_comes_from_the_environment(settings, monkeypatch) -> None:
    import base64
    import os

    monkeypatch.setenv("DLP_QUARANTINE_KEY", base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(StoreError, match="DLP_QUARANTINE_KEY"):
        rotate_key_file(settings)


def test_alerts_file_off_leaves_no_file(settings: Settings) -> None:
    AlertDispatcher(replace(settings, alerts=AlertSettings(jsonl_file="off"))).close()
    assert not (settings.data_path / "alerts.jsonl").exists()
