"""Sender notifications and signed release-request links."""

from __future__ import annotations

import email
import time
from email import policy as email_policy

import pytest

from dlp.model import Action, Channel, Envelope, Finding, Message, Reason, Uninspected, Verdict
from dlp.notify import LinkError, Notifier, RateLimiter, ReleaseLinks

KEY = b"k" * 32
CARD = "4111111111111111"


def held(action: Action = Action.QUARANTINE) -> tuple[Message, Verdict]:
    msg = Message(Channel.SMTP, f"Subject: cards\r\n\r\n{CARD}\r\n".encode(),
                  envelope=Envelope(sender="agent7@callcenter.example", recipients=("x@gmail.example",)))
    finding = Finding("CREDIT_CARD", "credit_card", 1.0, "body", 0, 16, "411111******1111", "abc123", "visa")
    verdict = Verdict(action, findings=(finding,), incident_id="INC-20261128-0000AAAA", enforced_action=action,
                      uninspected=(Uninspected("attachment[1]:x.zip", Reason.ENCRYPTED_ARCHIVE),))
    return msg, verdict


def test_link_round_trip_and_tampering() -> None:
    links = ReleaseLinks(KEY)
    token = links.sign("INC-1", "agent@x.example", 3600)
    got = links.verify(token)
    assert (got.incident_id, got.sender) == ("INC-1", "agent@x.example")
    body, mac = token.split(".")
    forged_body = ReleaseLinks(b"other key is 32 bytes long......").sign("INC-1", "agent@x.example", 3600)
    for bad in (forged_body, body + "." + mac[:-2] + "AA", body[:-2] + "xx." + mac, "garbage", "", token + "x"):
        with pytest.raises(LinkError, match="not valid"):
            links.verify(bad)


def test_expired_link_is_refused() -> None:
    links = ReleaseLinks(KEY)
    token = links.sign("INC-1", "a@b.example", 60, now=time.time() - 120)
    with pytest.raises(LinkError, match="expired"):
        links.verify(token)


def test_rate_limit_per_sender() -> None:
    limiter = RateLimiter(2, window_seconds=100)
    assert limiter.allow("a", now=0) and limiter.allow("a", now=1)
    assert not limiter.allow("a", now=2)
    assert limiter.allow("b", now=2)
    assert limiter.allow("a", now=101)


def test_notification_carries_masked_findings_and_a_valid_link() -> None:
    notifier = Notifier({}, ReleaseLinks(KEY), "http://console.example:8000/")
    msg, verdict = held()
    assert notifier.wants(msg, verdict)
    raw = notifier.render(msg, verdict)
    assert CARD.encode() not in raw
    parsed = email.message_from_bytes(raw, policy=email_policy.default)
    assert parsed["To"] == "agent7@callcenter.example"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert "INC-20261128-0000AAAA" in parsed["Subject"]
    body = parsed.get_content()
    assert "************1111" in body and "encrypted_archive" in body
    assert "411111" not in body  # the sender sees the last four digits only
    link = next(word for word in body.split() if word.startswith("http://console.example:8000/release-request/"))
    token = link.rsplit("/", 1)[1]
    assert notifier.links.verify(token).incident_id == "INC-20261128-0000AAAA"


def test_blocked_mail_has_no_release_link_and_passes_are_not_notified() -> None:
    notifier = Notifier({}, ReleaseLinks(KEY), "http://c")
    msg, verdict = held(Action.BLOCK)
    assert "release-request" not in notifier.render(msg, verdict).decode()
    _, passed = held(Action.ALERT)
    assert not notifier.wants(msg, passed)
    bounce = Message(Channel.SMTP, b"", envelope=Envelope(sender=""))
    assert not notifier.wants(bounce, verdict)


def test_rate_limit_applies_to_notifications() -> None:
    notifier = Notifier({"rate_limit_per_hour": 1}, ReleaseLinks(KEY), "http://c")
    msg, verdict = held()
    assert notifier.wants(msg, verdict)
    assert not notifier.wants(msg, verdict)


def test_template_is_sandboxed() -> None:
    notifier = Notifier({"body": "{{ ''.__class__.__mro__ }}"}, ReleaseLinks(KEY), "http://c")
    msg, verdict = held()
    with pytest.raises(Exception, match=r"unsafe|access"):
        notifier.render(msg, verdict)


def test_only_senders_of_the_listed_domains_are_notified() -> None:
    notifier = Notifier({"sender_domains": ["callcenter.example"]}, ReleaseLinks(KEY), "http://c")
    msg, verdict = held()
    assert notifier.skip_reason(msg, verdict) is None
    forged = Message(Channel.SMTP, b"", envelope=Envelope(sender="victim@elsewhere.example"))
    assert notifier.skip_reason(forged, verdict) == "foreign_sender"
