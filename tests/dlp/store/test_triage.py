"""Analyst workflow API: statuses, assignment, comments, bulk actions, aggregates, backlog and precision."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from storekit import Factory

from dlp.model import Action
from dlp.store import IncidentQuery, InvalidAction, NotFound, Status, open_store


def test_status_assignment_comments_and_history(store, factory: Factory) -> None:
    message, verdict, raw = factory.message()
    store.record(message, verdict, raw)
    iid = verdict.incident_id
    store.assign(iid, "bob", "lead", "shift handover")
    assert store.get(iid).summary.status == Status.IN_REVIEW
    store.set_status(iid, "new", "bob", "not mine after all")
    store.assign(iid, "", "bob")
    cid = store.comment(iid, "  the agent says it was a test  ", "bob")
    with pytest.raises(InvalidAction):
        store.comment(iid, "   ", "bob")
    with pytest.raises(InvalidAction):
        store.set_status(iid, "released", "bob")
    with pytest.raises(NotFound):
        store.confirm("INC-20260101-00000000", "bob")
    with pytest.raises(InvalidAction, match="actor"):
        store.confirm(iid, "")
    detail = store.get(iid)
    assert detail.summary.assignee == "" and detail.summary.status == Status.NEW
    assert [(c.id, c.actor, c.text) for c in detail.comments] == [(cid, "bob", "the agent says it was a test")]
    assert [h.event for h in detail.history] == ["recorded", "assigned", "status", "assigned", "commented"]
    assert store.count(IncidentQuery(assignee="bob")) == 0


def test_bulk_by_value_id_and_by_sender(store, factory: Factory) -> None:
    ids = []
    for sender in ("a@cc.example", "a@cc.example", "b@cc.example"):
        m, v, raw = factory.message(sender=sender)
        store.record(m, v, raw)
        ids.append(v.incident_id)
    assert store.select_ids(sender="a@cc.example") == ids[:2]
    card = next(f.value_id for f in store.get(ids[0]).findings if f.entity == "CREDIT_CARD")
    assert sorted(store.select_ids(value_id=card)) == sorted(ids)
    result = store.bulk("mark_false_positive", store.select_ids(sender="a@cc.example"), "rita", "test account")
    assert result.done == tuple(ids[:2]) and not result.failed
    result = store.bulk("delete", [*ids, "INC-20260101-00000000"], "rita", "cleanup")
    assert set(result.done) == set(ids) and list(result.failed) == ["INC-20260101-00000000"]
    assert store.select_ids(value_id=card) == []  # nothing open any more
    with pytest.raises(InvalidAction):
        store.bulk("purge", ids, "rita", "x")


def test_overview_backlog_and_precision(settings, factory: Factory) -> None:
    now = [datetime(2026, 3, 2, 12, tzinfo=UTC).timestamp()]
    store = open_store(settings, clock=lambda: now[0])
    ids = []
    for hours_ago, sender in ((30, "a@cc.example"), (5, "a@cc.example"), (1, "b@cc.example")):
        m, v, raw = factory.message(sender=sender)
        m = replace(m, received=datetime.fromtimestamp(now[0] - hours_ago * 3600, UTC))
        store.record(m, v, raw)
        ids.append(v.incident_id)
    m, v, _ = factory.message(sender="c@cc.example")
    m = replace(m, received=datetime.fromtimestamp(now[0] - 600, UTC))
    store.record(m, replace(v, action=Action.ALERT, enforced_action=Action.ALERT), None)
    assert store.backlog() == (3, 30 * 3600)
    store.release(ids[2], "rita", "fine")  # outbox: no next hop configured
    store.confirm(ids[0], "rita", "real")
    store.mark_false_positive(ids[1], "rita", "test")
    store.mark_false_positive(ids[2], "rita", "released, and it was a false positive")
    assert store.get(ids[2]).summary.status == Status.RELEASED  # disposition recorded, status kept
    assert store.backlog() == (0, 0.0)
    precision = store.precision()
    assert precision["rules"] == {"sensitive-data-leaving": (1, 2)}
    assert precision["detectors"]["payment_cards"] == (1, 2)
    ov = store.overview(since=now[0] - 2 * 86400, bucket="day")
    assert ov["total"] == 4
    assert {(r["bucket"], r["key"], r["count"]) for r in ov["by_action"]} == {
        ("2026-03-01", "quarantine", 1), ("2026-03-02", "quarantine", 2), ("2026-03-02", "alert", 1)}
    assert {"bucket": "2026-03-02", "key": "CREDIT_CARD", "count": 3} in ov["by_entity"]
    assert ov["top_senders"][0] == {"sender": "a@cc.example", "count": 2}
    assert ov["by_status"]["new"] == 1
    assert [s.id for s in ov["oldest_open"]] == [v.incident_id]
    hourly = store.overview(since=now[0] - 6 * 3600, bucket="hour")
    assert {r["bucket"] for r in hourly["by_channel"]} == {"2026-03-02T07:00", "2026-03-02T11:00"}
    store.close()


def test_sorting_and_paging(store, factory: Factory) -> None:
    for i in range(5):
        m, v, raw = factory.message(sender=f"s{i}@cc.example")
        store.record(m, v, raw)
    by_sender = [s.sender for s in store.list_incidents(IncidentQuery(sort="sender"))]
    assert by_sender == sorted(by_sender)
    page1 = store.list_incidents(IncidentQuery(sort="sender", limit=2))
    page2 = store.list_incidents(IncidentQuery(sort="sender", limit=2, offset=2))
    assert [s.sender for s in page1 + page2] == by_sender[:4]
    with pytest.raises(ValueError, match="cannot sort"):
        store.list_incidents(IncidentQuery(sort="raw; DROP TABLE incidents"))
