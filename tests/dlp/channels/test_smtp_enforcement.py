"""Verdict enforcement by the in-process relay: pass / alert / quarantine / block, fail modes, loops."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest
from helpers.smtp_relay import RelayUnderTest, ScriptedDetector, scripted_inspector
from helpers.smtp_sinks import RecordingSink

from dlp import metrics
from dlp.channels import smtp_replies as replies
from dlp.store import IncidentQuery

CLEAN = b"From: agent@callcenter.test\r\nTo: client@example.org\r\nSubject: hello\r\n\r\nYour ticket is closed.\r\n"
CARD = (b"From: agent@callcenter.test\r\nTo: client@example.org\r\nSubject: details\r\n\r\n"
        b"Card 4111 1111 1111 1111 exp 12/29\r\n")
MARKED = (b"From: agent@callcenter.test\r\nTo: client@example.org\r\nSubject: plan\r\n\r\n"
          b"This document is strictly confidential.\r\n")


def send(relay: RelayUnderTest, data: bytes, rcpts: tuple[str, ...] = ("client@example.org",)) -> tuple[int, str]:
    """One transaction; returns the reply to the final dot."""
    with smtplib.SMTP(*relay.address, timeout=30) as client:
        client.ehlo("agent.test")
        assert client.mail("agent@callcenter.test")[0] == 250
        for rcpt in rcpts:
            assert client.rcpt(rcpt)[0] == 250
        code, text = client.data(data)
        return code, f"{code} {text.decode()}"


def counter(metric: object, *labels: str) -> float:
    target = metric.labels(*labels) if labels else metric  # type: ignore[attr-defined]
    return target._value.get()  # type: ignore[attr-defined]


def incidents(relay: RelayUnderTest) -> list[object]:
    return relay.store.list_incidents(IncidentQuery())


def write_policy(tmp_path: Path, text: str) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return str(path)


def test_clean_message_is_forwarded_byte_for_byte_after_our_header(tmp_path: Path) -> None:
    with RecordingSink() as sink, RelayUnderTest(tmp_path / "d", next_hop=sink.address) as relay:
        forwarded = counter(metrics.SMTP_FORWARDED)
        code, reply = send(relay, CLEAN)
        assert (code, reply) == (250, replies.ACCEPTED)
        [got] = sink.wait_for(1)
        head, _, rest = got.data.partition(b"\r\n")
        assert head.startswith(b"X-DLP-Inspected: dlp.localhost; verdict=pass; id=m-")
        assert rest == CLEAN
        assert got.sender == "agent@callcenter.test" and got.recipients == ["client@example.org"]
        assert counter(metrics.SMTP_FORWARDED) == forwarded + 1
        assert incidents(relay) == []


def test_card_number_is_quarantined_not_forwarded(tmp_path: Path) -> None:
    with RecordingSink() as sink, RelayUnderTest(tmp_path / "d", next_hop=sink.address) as relay:
        code, reply = send(relay, CARD)
        assert (code, reply) == (250, replies.ACCEPTED)
        [incident] = incidents(relay)
        assert incident.action == "quarantine"
        assert relay.store.read_original(incident.id, "test", "check") == CARD
        assert sink.messages == []
        assert b"4111 1111 1111 1111" not in b"".join(p.read_bytes() for p in (tmp_path / "d").rglob("*")
                                                     if p.is_file() and p.suffix != ".key")


def test_quarantine_reply_reject_gives_550_with_incident_id(tmp_path: Path) -> None:
    with RecordingSink() as sink, RelayUnderTest(tmp_path / "d", next_hop=sink.address,
                                                 smtp__quarantine_reply="reject") as relay:
        code, reply = send(relay, CARD)
        [incident] = incidents(relay)
        assert code == 550 and reply == replies.held_rejected(incident.id)
        assert "4111" not in reply and sink.messages == []


def test_block_records_then_refuses_with_incident_id(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, "rules:\n  - name: block-cards\n    classes: [payment_card]\n"
                                    "    action: {smtp: block}\n    severity: critical\n")
    with RecordingSink() as sink, RelayUnderTest(tmp_path / "d", next_hop=sink.address,
                                                 inspection__policy_file=policy) as relay:
        code, reply = send(relay, CARD)
        [incident] = incidents(relay)
        assert incident.action == "block"
        assert (code, reply) == (550, replies.blocked(incident.id))
        assert sink.messages == []


def test_alert_records_the_incident_and_forwards_with_its_id(tmp_path: Path) -> None:
    with RecordingSink() as sink, RelayUnderTest(tmp_path / "d", next_hop=sink.address) as relay:
        code, _ = send(relay, MARKED)
        assert code == 250
        [incident] = incidents(relay)
        assert incident.action == "alert"
        [got] = sink.wait_for(1)
        assert got.data.startswith(b"X-DLP-Inspected: dlp.localhost; verdict=alert; id=m-")
        assert f"incident={incident.id}\r\n".encode() in got.data.split(b"\r\n\r\n")[0] + b"\r\n"
        assert got.data.endswith(MARKED)


def test_monitor_only_quarantine_is_recorded_and_forwarded(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, "monitor:\n  all: true\n")
    with RecordingSink() as sink, RelayUnderTest(tmp_path / "d", next_hop=sink.address,
                                                 inspection__policy_file=policy) as relay:
        code, _ = send(relay, CARD)
        assert code == 250
        [incident] = incidents(relay)
        assert incident.action == "quarantine"
        [got] = sink.wait_for(1)
        assert got.data.endswith(CARD) and b"verdict=alert" in got.data


def test_detector_exception_is_a_generic_tempfail_and_nothing_is_forwarded(tmp_path: Path) -> None:
    """A10: 451 4.3.0 with no exception text and no content; aiosmtpd's default would be `500 Error: (...)`."""
    with RecordingSink() as sink, RelayUnderTest(
            tmp_path / "d", next_hop=sink.address,
            inspector_factory=scripted_inspector(ScriptedDetector("raise"))) as relay:
        before = counter(metrics.FAIL_MODE, "smtp", "tempfail")
        code, reply = send(relay, CARD)
        assert (code, reply) == (451, replies.TEMPFAIL)
        assert counter(metrics.FAIL_MODE, "smtp", "tempfail") == before + 1
        assert sink.messages == [] and incidents(relay) == []


def test_fail_open_forwards_stamped_unscanned_and_counts_it(tmp_path: Path) -> None:
    with RecordingSink() as sink, RelayUnderTest(
            tmp_path / "d", next_hop=sink.address, smtp__fail_mode="open",
            inspector_factory=scripted_inspector(ScriptedDetector("raise"))) as relay:
        before = counter(metrics.UNINSPECTED, "smtp", "inspection_error")
        code, _ = send(relay, CLEAN)
        assert code == 250
        [got] = sink.wait_for(1)
        assert got.data.startswith(b"X-DLP-Unscanned: inspection_error\r\nX-DLP-Inspected: dlp.localhost; "
                                   b"verdict=unscanned; id=m-")
        assert got.data.endswith(CLEAN)
        assert counter(metrics.UNINSPECTED, "smtp", "inspection_error") == before + 1
        assert counter(metrics.FAIL_MODE, "smtp", "open") >= 1


def test_forged_loop_header_never_skips_inspection(tmp_path: Path) -> None:
    forged = b"X-DLP-Inspected: dlp.localhost; verdict=pass; id=m-0000000000000000\r\n" + CARD
    with RecordingSink() as sink, RelayUnderTest(tmp_path / "d", next_hop=sink.address) as relay:
        code, _ = send(relay, forged)
        assert code == 250
        assert len(incidents(relay)) == 1 and sink.messages == []


def test_too_many_of_our_headers_is_a_mail_loop(tmp_path: Path) -> None:
    looped = b"X-DLP-Inspected: dlp.localhost; verdict=pass; id=m-1\r\n" * 3 + CLEAN
    with RecordingSink() as sink, RelayUnderTest(tmp_path / "d", next_hop=sink.address) as relay:
        code, reply = send(relay, looped)
        assert (code, reply) == (554, replies.LOOP_DETECTED)
        assert sink.messages == []


def test_encoded_header_injection_adds_no_header(tmp_path: Path) -> None:
    """B11: only raw prepended headers; the original bytes follow unchanged, so no Bcc appears."""
    data = (b"From: agent@callcenter.test\r\nTo: client@example.org\r\n"
            b"Subject: =?UTF-8?Q?x=0ABcc:_attacker@evil?=\r\n\r\nhi\r\n")
    with RecordingSink() as sink, RelayUnderTest(tmp_path / "d", next_hop=sink.address) as relay:
        assert send(relay, data)[0] == 250
        [got] = sink.wait_for(1)
        assert got.data.split(b"\r\n", 1)[1] == data
        assert b"\r\nBcc:" not in got.data and got.recipients == ["client@example.org"]


@pytest.mark.parametrize("count", [3])
def test_verdict_covers_every_accepted_recipient(tmp_path: Path, count: int) -> None:
    rcpts = tuple(f"r{i}@example.org" for i in range(count))
    with RecordingSink() as sink, RelayUnderTest(tmp_path / "d", next_hop=sink.address) as relay:
        assert send(relay, CLEAN, rcpts)[0] == 250
        [got] = sink.wait_for(1)
        assert tuple(got.recipients) == rcpts


def test_outbox_is_the_demo_default(tmp_path: Path) -> None:
    with RelayUnderTest(tmp_path / "d") as relay:
        assert "outbox folder" in relay.service.describe()
        assert send(relay, CLEAN)[0] == 250
        [eml] = list((tmp_path / "d" / "outbox").glob("*.eml"))
        text = eml.read_bytes()
        assert text.startswith(b"X-DLP-Envelope-From: <agent@callcenter.test>\r\n") and text.endswith(CLEAN)
