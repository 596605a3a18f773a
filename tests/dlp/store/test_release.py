"""Release (H4): exactly once, with the original bytes, only after the next hop's 250, retry-safe."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest
from storekit import Factory, RecordingSmtpServer

from dlp.config import Settings, SmtpSettings
from dlp.model import Channel
from dlp.store import InvalidAction, ReleaseError, ReleaseInProgress, Status, open_store


@pytest.fixture
def sink():
    server = RecordingSmtpServer().start()
    yield server
    if server._thread and server._thread.is_alive():
        server.stop()


def _relay_settings(settings: Settings, next_hop: str) -> Settings:
    return replace(settings, smtp=SmtpSettings(next_hop=next_hop, forward_timeout_seconds=5.0))


def test_release_delivers_original_once_and_double_release_is_idempotent(settings, factory: Factory, sink) -> None:
    store = open_store(_relay_settings(settings, sink.address))
    message, verdict, raw = factory.message()
    store.record(message, verdict, raw)
    result = store.release(verdict.incident_id, "rita", "customer asked; false positive")
    assert result.delivered_now
    again = store.release(verdict.incident_id, "rita", "double click")
    assert not again.delivered_now and again.released_at == result.released_at
    assert sink.messages == [("agent7@callcenter.example", ("buyer@gmail.example",), raw)]
    detail = store.get(verdict.incident_id)
    assert detail.summary.status == Status.RELEASED and detail.released is not None
    events = [h.event for h in detail.history]
    assert events[-2:] == ["release_started", "released"]
    actions = [r.action for r in store.audit_records(incident_id=verdict.incident_id)]
    assert actions == ["release", "release"]  # both attempts audited
    store.close()


def test_concurrent_releases_deliver_once(settings, factory: Factory, sink) -> None:
    store = open_store(_relay_settings(settings, sink.address))
    message, verdict, raw = factory.message()
    store.record(message, verdict, raw)
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def click() -> None:
        barrier.wait()
        try:
            r = store.release(verdict.incident_id, "rita", "release")
            outcomes.append("delivered" if r.delivered_now else "already")
        except ReleaseInProgress:
            outcomes.append("in_progress")

    threads = [threading.Thread(target=click) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("delivered") == 1
    assert len(sink.messages) == 1
    store.close()


def test_release_while_next_hop_down_then_retry_succeeds_once(settings, factory: Factory, sink) -> None:
    store = open_store(_relay_settings(settings, sink.address))
    message, verdict, raw = factory.message()
    store.record(message, verdict, raw)
    store.assign(verdict.incident_id, "rita", "rita", "mine")
    sink.stop()
    with pytest.raises(ReleaseError, match=r"451 4\.4\.1"):
        store.release(verdict.incident_id, "rita", "release")
    detail = store.get(verdict.incident_id)
    assert detail.summary.status == Status.IN_REVIEW  # the previous status is back
    assert detail.history[-1].event == "release_failed"
    sink.start()  # same port
    assert store.release(verdict.incident_id, "rita", "retry").delivered_now
    assert sink.messages == [("agent7@callcenter.example", ("buyer@gmail.example",), raw)]
    assert store.get(verdict.incident_id).summary.status == Status.RELEASED
    store.close()


def test_release_without_next_hop_writes_the_outbox(settings, factory: Factory) -> None:
    store = open_store(settings)
    message, verdict, raw = factory.message()
    store.record(message, verdict, raw)
    assert store.release(verdict.incident_id, "rita", "demo").delivered_now
    files = list((Path(settings.data_dir) / "outbox").glob("*.eml"))
    assert len(files) == 1 and files[0].read_bytes().endswith(raw)
    store.close()


def test_release_crash_leaves_releasing_and_force_retries_after_stale(settings, factory: Factory, sink) -> None:
    now = [1_900_000_000.0]
    store = open_store(_relay_settings(settings, sink.address), clock=lambda: now[0])
    message, verdict, raw = factory.message()
    store.record(message, verdict, raw)

    def broken(*_args, **_kwargs):
        raise RuntimeError("bug in delivery")

    with pytest.raises(ReleaseError, match="RuntimeError"):
        store.release(verdict.incident_id, "rita", "release", deliver=broken)
    assert store.get(verdict.incident_id).summary.status == Status.NEW
    with store._transaction() as conn:  # what a SIGKILL between 'releasing' and the next hop's reply leaves
        conn.execute("UPDATE incidents SET status = 'releasing', release_token = 'dead', release_started = ?, "
                     "release_prev_status = 'new' WHERE id = ?", (now[0], verdict.incident_id))
    with pytest.raises(ReleaseInProgress):
        store.release(verdict.incident_id, "rita", "again")
    with pytest.raises(ReleaseInProgress):
        store.release(verdict.incident_id, "rita", "force too early", force=True)
    now[0] += 3600
    assert store.release(verdict.incident_id, "rita", "stuck for an hour", force=True).delivered_now
    assert len(sink.messages) == 1
    store.close()


def test_only_held_email_with_an_original_can_be_released(settings, factory: Factory) -> None:
    store = open_store(settings)
    web_msg, web_verdict, web_raw = factory.message(channel=Channel.WEB, raw=b"card=4111111111111111")
    store.record(web_msg, web_verdict, web_raw)
    with pytest.raises(InvalidAction, match="not an e-mail"):
        store.release(web_verdict.incident_id, "rita", "web")
    m, v, _raw = factory.message()
    store.record(m, v, None)
    with pytest.raises(InvalidAction, match="no original"):
        store.release(v.incident_id, "rita", "nothing kept")
    m2, v2, raw2 = factory.message()
    store.record(m2, v2, raw2)
    store.delete(v2.incident_id, "rita", "not needed")
    with pytest.raises(InvalidAction):
        store.release(v2.incident_id, "rita", "after delete")
    m3, v3, raw3 = factory.message()
    store.record(m3, replace(v3, monitor_only=True, enforced_action=v3.action.PASS), raw3)
    with pytest.raises(InvalidAction, match="already delivered"):
        store.release(v3.incident_id, "rita", "monitor only")
    with pytest.raises(InvalidAction, match="reason"):
        store.release(v3.incident_id, "rita", "  ")
    store.close()
