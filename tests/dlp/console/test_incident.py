"""The incident page and its actions: masked findings, shadow verdicts, triage with reasons, release to a
real next hop, reveal and download for admins (audited first, escaped, not cached)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from consolekit import CANARIES, CARD, ConsoleUnderTest, mail, make_console
from helpers.smtp_sinks import RecordingSink

from dlp.inspect import Inspector
from dlp.model import Action, Channel
from dlp.store import Status


@pytest.fixture
def sink() -> Iterator[RecordingSink]:
    with RecordingSink() as s:
        yield s


@pytest.fixture
def relay_console(tmp_path: Path, inspector: Inspector, sink: RecordingSink) -> Iterator[ConsoleUnderTest]:
    yield from make_console(tmp_path / "data", inspector, next_hop=sink.address)


def test_incident_page_shows_masked_findings_highlighted_and_history(console: ConsoleUnderTest) -> None:
    iid = console.record()
    page = console.login("anna").get(f"/incidents/{iid}").text
    assert "<mark>[411111******1111]</mark>" in page and "<mark>[*****1120]</mark>" in page
    assert "agent7@callcenter.example" in page and "buyer@gmail.example" in page
    assert "sensitive-data-leaving" in page and "recorded" in page
    assert not any(c in page for c in CANARIES)


def test_web_incident_shows_host_only_and_no_release(console: ConsoleUnderTest) -> None:
    raw = (b"POST /x HTTP/1.1\r\nHost: paste.example\r\nContent-Type: text/plain\r\nContent-Length: 30\r\n\r\n"
           + f"card {CARD} here.".encode())
    iid = console.record(channel=Channel.WEB, raw=raw)
    page = console.login("anna").get(f"/incidents/{iid}").text
    assert "https://paste.example" in page and "card=1" not in page
    assert f"/incidents/{iid}/release" not in page


def test_monitor_only_verdict_is_shown_as_would_have(console: ConsoleUnderTest) -> None:
    message_raw = mail()
    from dataclasses import replace

    from dlp.model import ContentKind, Envelope, Message

    message = Message(Channel.SMTP, message_raw, ContentKind.EMAIL,
                      Envelope("shadow@callcenter.example", ("x@y.example",)))
    verdict = console.inspector.inspect(message)
    shadow = replace(verdict, monitor_only=True, enforced_action=Action.ALERT)
    console.store.record(message, shadow, None)
    browser = console.login("anna")
    queue = browser.get("/incidents").text
    assert "would have quarantined" in queue
    page = browser.get(f"/incidents/{verdict.incident_id}").text
    assert "would have quarantined" in page and "Monitor-only (shadow) rule" in page


def test_triage_actions_are_audited_with_their_reasons(console: ConsoleUnderTest) -> None:
    iid = console.record()
    analyst = console.login("anna")
    steps = [
        (f"/incidents/{iid}/assign", {"assignee": "anna", "reason": "mine"}, "Assigned to anna."),
        (f"/incidents/{iid}/comment", {"text": f"agent pasted {CARD} by mistake"}, "Comment added."),
        (f"/incidents/{iid}/status", {"status": "new", "reason": "back to the pool"}, "Status set to new."),
        (f"/incidents/{iid}/false-positive", {"reason": "test card"}, "Marked as a false positive."),
        (f"/incidents/{iid}/confirm", {"reason": "actually real"}, "Confirmed as a true positive."),
    ]
    for path, form, flash in steps:
        response = analyst.post(path, form)
        assert response.status_code == 303 and response.headers["location"] == f"/incidents/{iid}"
        assert flash in analyst.get(f"/incidents/{iid}").text, path
    detail = console.store.get(iid)
    assert detail.summary.status == Status.CONFIRMED and detail.summary.disposition == "confirmed"
    assert CARD not in detail.comments[0].text  # the store redacts pasted values
    actions = [(r.actor, r.action, r.reason) for r in console.store.audit_records(incident_id=iid)]
    assert actions == [("anna", "assign", "mine"), ("anna", "comment", ""), ("anna", "status", "back to the pool"),
                       ("anna", "false_positive", "test card"), ("anna", "confirm", "actually real")]


def test_delete_and_release_need_a_reason(console: ConsoleUnderTest) -> None:
    iid = console.record()
    analyst = console.login("anna")
    for action in ("delete", "release"):
        analyst.post(f"/incidents/{iid}/{action}", {"reason": "  "})
        assert f"a reason is required to {action}" in analyst.get(f"/incidents/{iid}").text
    assert console.store.get(iid).summary.has_original
    assert console.store.audit_records(incident_id=iid) == []
    assert analyst.post(f"/incidents/{iid}/delete", {"reason": "customer data, no business need"}).status_code == 303
    detail = console.store.get(iid)
    assert detail.summary.status == Status.DELETED and not detail.summary.has_original
    assert console.store.audit_records(incident_id=iid)[-1].reason == "customer data, no business need"
    assert analyst.post(f"/incidents/{iid}/nonsense", {}).status_code == 404
    assert analyst.get("/incidents/INC-20260101-00000000").status_code == 404


def test_release_delivers_once_to_the_next_hop(relay_console: ConsoleUnderTest, sink: RecordingSink) -> None:
    raw = mail()
    iid = relay_console.record(raw=raw)
    analyst = relay_console.login("anna")
    assert analyst.post(f"/incidents/{iid}/release", {"reason": "customer asked for the receipt"}).status_code == 303
    assert "Released: the next hop accepted the message." in analyst.get(f"/incidents/{iid}").text
    received = sink.wait_for(1)
    assert received[0].data.replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")
    assert received[0].recipients == ["buyer@gmail.example"]
    # A second click (double submit) does not deliver again.
    analyst.post(f"/incidents/{iid}/release", {"reason": "again"})
    assert len(sink.messages) == 1
    assert relay_console.store.get(iid).summary.status == Status.RELEASED
    record = next(r for r in relay_console.store.audit_records(incident_id=iid) if r.action == "release")
    assert (record.actor, record.reason) == ("anna", "customer asked for the receipt")


def test_release_failure_is_shown_and_leaves_the_incident_open(relay_console: ConsoleUnderTest,
                                                               sink: RecordingSink) -> None:
    iid = relay_console.record()
    sink.behaviour.data_reply = "451 4.3.0 try later"
    analyst = relay_console.login("anna")
    analyst.post(f"/incidents/{iid}/release", {"reason": "needed"})
    page = analyst.get(f"/incidents/{iid}").text
    assert "failed" in page and "retry later" in page
    assert relay_console.store.get(iid).summary.status == Status.NEW


def test_reveal_is_audited_first_escaped_and_not_cached(console: ConsoleUnderTest) -> None:
    raw = mail(subject="<script>alert(1)</script>")
    iid = console.record(raw=raw)
    admin = console.login("adam")
    assert admin.post(f"/incidents/{iid}/reveal", {"reason": ""}).status_code == 303
    assert not [r for r in console.store.audit_records(incident_id=iid) if r.action == "view_original"]
    response = admin.post(f"/incidents/{iid}/reveal", {"reason": "legal hold 42"})
    assert response.status_code == 200
    assert CARD in response.text  # the admin asked for it, with a reason
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text and "<script>alert" not in response.text
    assert response.headers["cache-control"] == "no-store"
    views = [r for r in console.store.audit_records(incident_id=iid) if r.action == "view_original"]
    assert [(v.actor, v.reason) for v in views] == [("adam", "legal hold 42")]
    # No persistent link: the incident page itself never contains the raw value.
    assert CARD not in admin.get(f"/incidents/{iid}").text
    download = admin.post(f"/incidents/{iid}/download", {"reason": "evidence export"})
    assert download.status_code == 200 and download.content == raw
    assert download.headers["content-disposition"] == f'attachment; filename="{iid}.eml"'
    assert download.headers["content-type"] == "application/octet-stream"
    assert len([r for r in console.store.audit_records(incident_id=iid) if r.action == "view_original"]) == 2
