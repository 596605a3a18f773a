"""Agents' release requests (from the signed link): stored redacted, audited without the text, bounded."""

from __future__ import annotations

import pytest
from storekit import CARD, CARD_DIGITS, Factory, grep_tree

from dlp.store import IncidentQuery, InvalidAction, NotFound
from dlp.store.sqlite import MAX_RELEASE_REQUESTS


def test_request_is_stored_redacted_flagged_and_audited(store, factory: Factory, settings) -> None:
    message, verdict, raw = factory.message(sender="Agent7@callcenter.example")
    store.record(message, verdict, raw)
    other_message, other_verdict, other_raw = factory.message(sender="agent8@callcenter.example")
    store.record(other_message, other_verdict, other_raw)
    iid = verdict.incident_id

    rid = store.add_release_request(iid, "agent7@callcenter.example",
                                    f"  the customer asked for a copy of the order; card {CARD} ")
    requests = store.release_requests(iid)
    assert [r.id for r in requests] == [rid]
    assert requests[0].sender == "Agent7@callcenter.example"
    assert requests[0].justification.startswith("the customer asked for a copy of the order; card [redacted")
    assert CARD_DIGITS[-8:] not in requests[0].justification
    assert store.release_request_counts([iid, other_verdict.incident_id]) == {iid: 1}
    assert [s.id for s in store.list_incidents(IncidentQuery(has_release_request=True))] == [iid]
    assert [s.id for s in store.list_incidents(IncidentQuery(has_release_request=False))] == \
        [other_verdict.incident_id]
    assert [h.event for h in store.get(iid).history][-1] == "release_requested"
    record = store.audit_records(incident_id=iid)[-1]
    assert (record.actor, record.action, record.reason) == ("agent", "release_request", "")
    assert "customer" not in record.detail
    assert store.audit_verify().ok
    store.close()
    assert grep_tree(settings.data_path / "store", (CARD, CARD_DIGITS)) == []


def test_request_refused_for_wrong_sender_empty_text_final_state_and_flood(store, factory: Factory) -> None:
    message, verdict, raw = factory.message()
    store.record(message, verdict, raw)
    iid = verdict.incident_id
    with pytest.raises(InvalidAction, match="sender"):
        store.add_release_request(iid, "someone.else@callcenter.example", "please")
    with pytest.raises(InvalidAction, match="justification"):
        store.add_release_request(iid, message.envelope.sender, "   ")
    with pytest.raises(NotFound):
        store.add_release_request("INC-20260101-00000000", message.envelope.sender, "please")
    for _ in range(MAX_RELEASE_REQUESTS):
        store.add_release_request(iid, message.envelope.sender, "please")
    with pytest.raises(InvalidAction, match="maximum"):
        store.add_release_request(iid, message.envelope.sender, "please")
    store.delete(iid, "bob", "not needed")
    with pytest.raises(InvalidAction, match="already deleted"):
        store.add_release_request(iid, message.envelope.sender, "please")
