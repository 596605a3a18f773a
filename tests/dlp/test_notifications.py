"""NotificationSender (background delivery through the next hop) and the explanation shared with the
web block page: null sender, counted outcomes, never blocking, never a raw value."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers.smtp_sinks import RecordingSink, SinkBehaviour, free_port
from mitmproxy.test import tutils
from prometheus_client import REGISTRY

from dlp.channels.web_blockpage import BlockPages, BlockReason
from dlp.model import Action, Channel, Envelope, Finding, Message, Reason, Uninspected, Verdict
from dlp.notifications import AlertsAndNotifications, NotificationSender
from dlp.notify import Notifier, ReleaseLinks, safe_location

KEY = b"k" * 32
CARD = "4111111111111111"


def held(sender: str = "agent7@callcenter.test", channel: Channel = Channel.SMTP,
         location: str = "body") -> tuple[Message, Verdict]:
    msg = Message(channel, f"Subject: x\r\n\r\n{CARD}\r\n".encode(),
                  envelope=Envelope(sender=sender, recipients=("x@freemail.test",)))
    finding = Finding("CREDIT_CARD", "payment_cards", 1.0, location, 0, 16, "411111******1111", "v1", "visa")
    verdict = Verdict(Action.QUARANTINE, findings=(finding,), incident_id="INC-20261128-0000AAAA",
                      enforced_action=Action.QUARANTINE,
                      uninspected=(Uninspected("attachment[1]:x.zip", Reason.ENCRYPTED_ARCHIVE),))
    return msg, verdict


def outcome(name: str) -> float:
    return REGISTRY.get_sample_value("dlp_notifications_total", {"outcome": name}) or 0.0


def sender_for(next_hop: str, tmp_path: Path, **options: object) -> NotificationSender:
    return NotificationSender(Notifier(options, ReleaseLinks(KEY), "http://console.test"), next_hop,
                              tmp_path / "outbox", timeout=5)


def test_delivers_from_the_null_sender_to_the_agent(tmp_path: Path) -> None:
    with RecordingSink() as sink:
        notifications = sender_for(sink.address, tmp_path)
        before = outcome("sent")
        notifications.emit(*held())
        [note] = sink.wait_for(1)
        notifications.close()
    assert note.sender == "<>" and note.recipients == ["agent7@callcenter.test"]
    assert CARD.encode() not in note.data and b"411111" not in note.data
    assert b"INC-20261128-0000AAAA" in note.data
    # The release link is one unbroken line even in the raw message (7bit, not quoted-printable).
    link = re.search(rb"http://console\.test/release-request/(\S+)\r\n", note.data)
    assert link is not None and ReleaseLinks(KEY).verify(link.group(1).decode()).sender == "agent7@callcenter.test"
    assert outcome("sent") == before + 1


def test_a_refusing_or_absent_next_hop_is_counted_and_nothing_raises(tmp_path: Path) -> None:
    with RecordingSink(SinkBehaviour(data_reply="554 5.7.1 no thanks")) as sink:
        notifications = sender_for(sink.address, tmp_path)
        before = outcome("failed")
        notifications.emit(*held())
        notifications.close()  # drains the queue
    assert outcome("failed") == before + 1
    notifications = sender_for(f"127.0.0.1:{free_port()}", tmp_path)  # nothing listens there
    notifications.emit(*held())
    notifications.close()
    assert outcome("failed") == before + 2


def test_only_held_smtp_mail_with_a_sender_is_notified(tmp_path: Path) -> None:
    notifications = sender_for("", tmp_path)  # no next hop: the demo outbox
    (tmp_path / "outbox").mkdir()
    msg, verdict = held()
    notifications.emit(*held(channel=Channel.WEB))
    notifications.emit(*held(sender=""))  # a bounce: never answered
    notifications.emit(msg, Verdict(Action.QUARANTINE, incident_id="INC-1", enforced_action=Action.ALERT,
                                    monitor_only=True))  # monitor-only: the mail went out
    notifications.emit(msg, verdict)
    notifications.close()
    [written] = list((tmp_path / "outbox").iterdir())
    assert written.read_bytes().startswith(b"X-DLP-Envelope-From: <>\r\nX-DLP-Envelope-To: <agent7@callcenter.test>")


def test_a_full_queue_drops_instead_of_blocking(tmp_path: Path) -> None:
    with RecordingSink(SinkBehaviour(data_delay=1.0)) as sink:
        notifications = NotificationSender(Notifier({}, ReleaseLinks(KEY), "http://c"), sink.address,
                                           tmp_path, timeout=5, queue_size=1)
        before = outcome("dropped")
        for n in range(4):
            notifications.emit(*held(sender=f"agent{n}@callcenter.test"))
        notifications.close()
    assert outcome("dropped") >= before + 2  # one in flight, one queued, the rest dropped


def test_alerts_failing_do_not_stop_the_notification() -> None:
    seen: list[str] = []

    class Broken:
        def emit(self, message: Message, verdict: Verdict) -> None:
            raise RuntimeError("sink down")

    class Recorder:
        def emit(self, message: Message, verdict: Verdict) -> None:
            seen.append(str(verdict.incident_id))

    with pytest.raises(RuntimeError):  # the pipeline catches and logs alert failures itself
        AlertsAndNotifications(Broken(), Recorder()).emit(*held())
    assert seen == ["INC-20261128-0000AAAA"]


def test_locations_never_repeat_a_value() -> None:
    assert safe_location("attachment[1]:4111111111111111.txt") == "attachment[1]:[digits].txt"
    assert safe_location("form:4111-1111-1111-1111") == "form:[digits]"
    assert safe_location("attachment[2]:clients.zip/clients.csv") == "attachment[2]:clients.zip/clients.csv"


def test_block_page_and_json_carry_the_explanation() -> None:
    pages = BlockPages()
    _, verdict = held(channel=Channel.WEB, location=f"form:{CARD}")
    html = pages.render_html(BlockReason.QUARANTINE, verdict.incident_id, "m-1", verdict)
    assert "INC-20261128-0000AAAA" in html and "CREDIT_CARD" in html and "************1111" in html
    assert "(in form:[digits])" in html and "encrypted_archive" in html and "security analyst will review" in html
    assert "4111" not in html
    request = tutils.treq(headers=((b"accept", b"application/json"),))
    body = json.loads(pages.response(request, BlockReason.POLICY, verdict.incident_id, "m-1", verdict).get_text())
    assert body["findings"] == [{"entity": "CREDIT_CARD", "masked": "************1111", "location": "form:[digits]"}]
    assert body["uninspected"] == ["encrypted_archive"] and body["next_steps"].startswith("Remove the protected")
    # Refusals with no verdict (inspection unavailable) still explain what to do next.
    plain = json.loads(pages.response(request, BlockReason.INSPECTION_UNAVAILABLE, None, "m-2").get_text())
    assert plain["findings"] == [] and plain["next_steps"]
