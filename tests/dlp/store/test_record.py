"""Recording incidents: contents, thread safety, durability and failure without partial items, A13."""

from __future__ import annotations

import base64
import os
import threading
from pathlib import Path

import pytest
from storekit import CARD_DIGITS, Factory

from dlp.config import Settings, StoreSettings
from dlp.model import Action, Verdict
from dlp.store import IncidentQuery, StoreError, open_store


def test_record_stores_masked_incident_and_sealed_original(store, factory: Factory, settings: Settings) -> None:
    message, verdict, raw = factory.message()
    store.record(message, verdict, raw)
    detail = store.get(verdict.incident_id)
    s = detail.summary
    assert (s.channel, s.action, s.enforced_action, s.severity, s.status) == (
        "smtp", "quarantine", "quarantine", "high", "new")
    assert s.sender == "agent7@callcenter.example" and s.recipients == ("buyer@gmail.example",)
    assert {f.entity for f in detail.findings} >= {"CREDIT_CARD"}
    card = next(f for f in detail.findings if f.entity == "CREDIT_CARD")
    assert card.masked == "411111******1111" and card.value_id
    assert detail.client_address == "10.0.0.7" and detail.user == "agent7" and detail.method == "DATA"
    assert detail.history[0].event == "recorded"
    sealed = (settings.data_path / "quarantine" / f"{verdict.incident_id}.q").read_bytes()
    assert CARD_DIGITS.encode() not in sealed and b"4111 1111" not in sealed
    assert store.read_original(verdict.incident_id, "alice", "investigating") == raw


def test_record_without_original_and_filters(store, factory: Factory) -> None:
    message, verdict, _ = factory.message(sender="one@callcenter.example")
    store.record(message, verdict, None)
    m2, v2, raw2 = factory.message(sender="two@callcenter.example")
    store.record(m2, v2, raw2)
    assert store.count() == 2
    assert [s.id for s in store.list_incidents(IncidentQuery(sender="ONE@callcenter.example"))] == [verdict.incident_id]
    assert store.count(IncidentQuery(entity="CREDIT_CARD")) == 2
    card_id = next(f.value_id for f in verdict.findings if f.entity == "CREDIT_CARD")
    assert store.count(IncidentQuery(value_id=card_id)) == 2  # same card, two messages, one value id
    assert store.count(IncidentQuery(has_original=True)) == 1
    assert store.count(IncidentQuery(text="two@")) == 1
    assert store.count(IncidentQuery(text=v2.incident_id[-8:])) == 1
    assert store.count(IncidentQuery(channel=("web",))) == 0
    assert store.count(IncidentQuery(min_severity="critical")) == 0
    assert len(store.list_incidents(IncidentQuery(limit=1))) == 1
    newest_first = store.list_incidents(IncidentQuery(sort="-created"))
    assert [s.id for s in newest_first] == [v2.incident_id, verdict.incident_id]
    with pytest.raises(StoreError):
        store.read_original(verdict.incident_id, "alice", "look")  # alerted traffic: no original kept


def test_web_destination_keeps_only_the_host(store, factory: Factory) -> None:
    from dlp.model import Channel

    message, verdict, raw = factory.message(channel=Channel.WEB, raw=b"card=4111111111111111",
                                            destination="https://paste.example:8443/p?ssn=078051120&u=x")
    store.record(message, verdict, raw)
    assert store.get(verdict.incident_id).summary.destination == "https://paste.example:8443"


def test_concurrent_records_from_threads(store, factory: Factory) -> None:
    items = [factory.message(sender=f"agent{i}@callcenter.example") for i in range(24)]
    errors: list[BaseException] = []

    def work(chunk):
        try:
            for message, verdict, raw in chunk:
                store.record(message, verdict, raw)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(items[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.count() == 24
    for _message, verdict, raw in items[:3]:
        assert store.read_original(verdict.incident_id, "alice", "spot check") == raw


def test_duplicate_incident_id_is_refused_and_leaves_the_first(store, factory: Factory) -> None:
    message, verdict, raw = factory.message()
    store.record(message, verdict, raw)
    with pytest.raises(StoreError):
        store.record(message, verdict, b"other bytes")
    assert store.read_original(verdict.incident_id, "alice", "still the first") == raw


def test_verdict_without_incident_id_is_refused(store, factory: Factory) -> None:
    message, _, raw = factory.message()
    with pytest.raises(StoreError):
        store.record(message, Verdict(Action.QUARANTINE), raw)


# ---------------------------------------------------------------- A13: refuse to start


def test_key_file_created_0600_and_reused(settings: Settings, factory: Factory) -> None:
    s = open_store(settings)
    m, v, raw = factory.message()
    s.record(m, v, raw)
    s.close()
    key = settings.data_path / "keys" / "quarantine.key"
    assert key.stat().st_mode & 0o777 == 0o600
    s = open_store(settings)
    assert s.read_original(v.incident_id, "alice", "reopen") == raw
    s.close()


def test_missing_key_with_existing_items_refuses_to_start(settings: Settings, factory: Factory) -> None:
    s = open_store(settings)
    m, v, raw = factory.message()
    s.record(m, v, raw)
    s.close()
    (settings.data_path / "keys" / "quarantine.key").unlink()
    with pytest.raises(StoreError, match="quarantine key missing"):
        open_store(settings)
    assert not (settings.data_path / "keys" / "quarantine.key").exists()  # not silently replaced


def test_replaced_key_refuses_to_start(settings: Settings, factory: Factory) -> None:
    s = open_store(settings)
    m, v, raw = factory.message()
    s.record(m, v, raw)
    s.close()
    path = settings.data_path / "keys" / "quarantine.key"
    path.write_bytes(base64.b64encode(os.urandom(32)))
    with pytest.raises(StoreError, match="neither the current key nor retired"):
        open_store(settings)


@pytest.mark.parametrize("content", [b"not base64 !!", base64.b64encode(b"short")])
def test_unusable_key_file(settings: Settings, content: bytes) -> None:
    path = settings.data_path / "keys" / "quarantine.key"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with pytest.raises(StoreError, match="quarantine key unusable"):
        open_store(settings)


def test_world_readable_key_refused(settings: Settings) -> None:
    path = settings.data_path / "keys" / "quarantine.key"
    path.parent.mkdir(parents=True)
    path.write_bytes(base64.b64encode(os.urandom(32)))
    os.chmod(path, 0o644)
    with pytest.raises(StoreError, match="chmod 600"):
        open_store(settings)


def test_bad_key_in_environment(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLP_QUARANTINE_KEY", "too-short")
    with pytest.raises(StoreError, match=r"\$DLP_QUARANTINE_KEY"):
        open_store(settings)


def test_key_from_environment(settings: Settings, monkeypatch: pytest.MonkeyPatch, factory: Factory) -> None:
    monkeypatch.setenv("DLP_QUARANTINE_KEY", base64.b64encode(os.urandom(32)).decode())
    s = open_store(settings)
    m, v, raw = factory.message()
    s.record(m, v, raw)
    assert s.read_original(v.incident_id, "alice", "env key") == raw
    s.close()
    assert not (settings.data_path / "keys" / "quarantine.key").exists()


def test_unwritable_store_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "quarantine").write_text("a file where the directory should be")
    with pytest.raises(StoreError, match="unwritable"):
        open_store(Settings(data_dir=str(data)))


def test_custom_key_file_location(tmp_path: Path, factory: Factory) -> None:
    key = tmp_path / "elsewhere" / "q.key"
    settings = Settings(data_dir=str(tmp_path / "d2"), store=StoreSettings(key_file=str(key)))
    open_store(settings).close()
    assert key.exists() and key.stat().st_mode & 0o777 == 0o600
