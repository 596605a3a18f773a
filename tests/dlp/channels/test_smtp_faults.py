"""Adversarial section A: the next hop fails, the disk fills, inspection fails, the client vanishes."""

from __future__ import annotations

import contextlib
import smtplib
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from helpers.smtp_relay import RelayUnderTest, ScriptedDetector, scripted_inspector
from helpers.smtp_sinks import PostfixSmtpSink, RecordingSink, SinkBehaviour, postfix_tools_available

from dlp import metrics
from dlp.channels import smtp_replies as replies
from dlp.store import IncidentQuery

CLEAN = b"From: a@callcenter.test\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nNothing sensitive here.\r\n"
CARD = b"From: a@callcenter.test\r\nTo: b@example.org\r\nSubject: x\r\n\r\nCard 4111 1111 1111 1111\r\n"
needs_postfix = pytest.mark.skipif(not postfix_tools_available(), reason="Postfix smtp-sink not unpacked")


def send(address: tuple[str, int], data: bytes, rcpts: tuple[str, ...] = ("b@example.org",)) -> tuple[int, str]:
    with smtplib.SMTP(*address, timeout=60) as client:
        client.ehlo("agent.test")
        client.mail("a@callcenter.test")
        for rcpt in rcpts:
            client.rcpt(rcpt)
        code, text = client.data(data)
        return code, f"{code} {text.decode()}"


def value(metric: object, *labels: str) -> float:
    target = metric.labels(*labels) if labels else metric  # type: ignore[attr-defined]
    return target._value.get()  # type: ignore[attr-defined]


def wait_until(predicate: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.02)


def test_a1_client_gets_250_only_after_the_next_hops_250(tmp_path: Path) -> None:
    delay = 1.5
    with RecordingSink(SinkBehaviour(data_delay=delay)) as sink, \
            RelayUnderTest(tmp_path / "d", next_hop=sink.address) as relay:
        forwarded = value(metrics.SMTP_FORWARDED)
        code, _ = send(relay.address, CLEAN)
        replied = time.monotonic()
        [got] = sink.wait_for(1)
        assert code == 250
        assert replied >= got.at + delay  # the sink answered `delay` after the dot; we answered after that
        assert value(metrics.SMTP_FORWARDED) == forwarded + 1


@needs_postfix
def test_a2_next_hop_refused_then_back(tmp_path: Path) -> None:
    sink = PostfixSmtpSink()
    with RelayUnderTest(tmp_path / "d", next_hop=sink.address) as relay:
        assert send(relay.address, CLEAN) == (451, replies.NEXT_HOP_UNAVAILABLE)
        assert relay.store.list_incidents(IncidentQuery()) == []
        with sink:
            assert send(relay.address, CLEAN)[0] == 250


@needs_postfix
@pytest.mark.parametrize(("option", "expected"), [
    ("-r", (451, replies.NEXT_HOP_DEFERRED)),  # A3: 4xx at the dot
    ("-f", (554, replies.NEXT_HOP_REJECTED)),  # A4: 5xx at the dot
])
def test_a3_a4_next_hop_reply_class_is_mirrored_with_our_text(tmp_path: Path, option: str,
                                                                expected: tuple[int, str]) -> None:
    with PostfixSmtpSink(option, ".") as sink, RelayUnderTest(tmp_path / "d", next_hop=sink.address) as relay:
        assert send(relay.address, CLEAN) == expected


@needs_postfix
def test_a5_next_hop_vanishes_after_dot_is_451_and_a_possible_duplicate(tmp_path: Path) -> None:
    with PostfixSmtpSink("-q", ".") as sink, RelayUnderTest(tmp_path / "d", next_hop=sink.address) as relay:
        before = value(metrics.POSSIBLE_DUPLICATES)
        assert send(relay.address, CLEAN) == (451, replies.NEXT_HOP_LOST)
        assert value(metrics.POSSIBLE_DUPLICATES) == before + 1


@needs_postfix
def test_a6_slow_next_hop_hits_our_forward_timeout(tmp_path: Path) -> None:
    with PostfixSmtpSink("-w", "200") as sink, RelayUnderTest(
            tmp_path / "d", next_hop=sink.address, smtp__forward_timeout_seconds=1.5) as relay:
        started = time.monotonic()
        code, reply = send(relay.address, CLEAN)
        assert code == 451 and reply.startswith("451 4.4.")
        assert time.monotonic() - started < 20


@pytest.mark.parametrize(("refusal", "expected"), [
    ("550 5.1.1 No such user", (451, replies.RECIPIENTS_DEFERRED)),
    ("450 4.2.1 Try later", (451, replies.RECIPIENTS_DEFERRED)),
])
def test_a7_one_refused_recipient_of_three_never_gets_250(tmp_path: Path, refusal: str,
                                                          expected: tuple[int, str]) -> None:
    rcpts = ("r1@example.org", "r2@example.org", "r3@example.org")
    with RecordingSink(SinkBehaviour(refuse_recipients={"r2@example.org": refusal})) as sink, \
            RelayUnderTest(tmp_path / "d", next_hop=sink.address) as relay:
        assert send(relay.address, CLEAN, rcpts) == expected
        assert sink.messages == []


def test_a7_all_recipients_refused_permanently_is_550(tmp_path: Path) -> None:
    with RecordingSink(SinkBehaviour(refuse_recipients={"b@example.org": "550 5.1.1 No such user"})) as sink, \
            RelayUnderTest(tmp_path / "d", next_hop=sink.address) as relay:
        assert send(relay.address, CLEAN) == (550, replies.RECIPIENTS_REJECTED)


def test_a8_quarantine_write_on_a_full_filesystem_is_451_with_nothing_left(tmp_path: Path) -> None:
    with RecordingSink() as sink, RelayUnderTest(tmp_path / "d", next_hop=sink.address) as relay:
        quarantine = relay.store.quarantine_dir
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(quarantine)],
                                 capture_output=True).returncode == 0
        if not mounted:
            pytest.skip("cannot mount a small tmpfs here (needs root)")
        try:
            before = value(metrics.QUARANTINE_WRITE_ERRORS)
            big = CARD + b"padding line of text\r\n" * 4000  # sealed, larger than the 16 KiB filesystem
            assert send(relay.address, big) == (451, replies.TEMPFAIL)
            assert value(metrics.QUARANTINE_WRITE_ERRORS) == before + 1
            assert list(quarantine.iterdir()) == []
            assert relay.store.list_incidents(IncidentQuery()) == []
            assert sink.messages == []
        finally:
            subprocess.run(["umount", str(quarantine)], check=False)


def test_a10_generic_tempfail_never_quotes_the_exception(tmp_path: Path) -> None:
    with RelayUnderTest(tmp_path / "d", inspector_factory=scripted_inspector(ScriptedDetector("raise"))) as relay:
        code, reply = send(relay.address, CARD)
        assert (code, reply) == (451, replies.TEMPFAIL)
        assert "4111" not in reply and "injected" not in reply and "Error" not in reply


def test_a11_inspection_over_budget_fails_closed(tmp_path: Path) -> None:
    slow = ScriptedDetector("sleep", seconds=6.5)
    with RecordingSink() as sink, RelayUnderTest(
            tmp_path / "d", next_hop=sink.address, inspector_factory=scripted_inspector(slow),
            inspection__limits__time_budget_seconds=0.2) as relay:
        before = value(metrics.FAIL_MODE, "smtp", "tempfail")
        assert send(relay.address, CLEAN) == (451, replies.TEMPFAIL)
        assert value(metrics.FAIL_MODE, "smtp", "tempfail") == before + 1
        assert sink.messages == []


@pytest.mark.slow
def test_a11_inspection_over_budget_fails_open_when_configured(tmp_path: Path) -> None:
    slow = ScriptedDetector("sleep", seconds=6.5)
    with RecordingSink() as sink, RelayUnderTest(
            tmp_path / "d", next_hop=sink.address, inspector_factory=scripted_inspector(slow),
            smtp__fail_mode="open", inspection__limits__time_budget_seconds=0.2) as relay:
        before = value(metrics.UNINSPECTED, "smtp", "timeout")
        assert send(relay.address, CLEAN)[0] == 250
        [got] = sink.wait_for(1)
        assert got.data.startswith(b"X-DLP-Unscanned: timeout\r\n")
        assert value(metrics.UNINSPECTED, "smtp", "timeout") == before + 1


def _raw_transaction(address: tuple[str, int], data: bytes, after_dot: bytes = b"") -> socket.socket:
    sock = socket.create_connection(address, timeout=10)
    reader = sock.makefile("rb")
    reader.readline()
    for command in (b"EHLO agent.test", b"MAIL FROM:<a@callcenter.test>", b"RCPT TO:<b@example.org>", b"DATA"):
        sock.sendall(command + b"\r\n")
        line = reader.readline()
        while line[3:4] == b"-":
            line = reader.readline()
    sock.sendall(data + b".\r\n" + after_dot)
    return sock


def test_a12_client_disconnects_right_after_dot_commit_completes(tmp_path: Path) -> None:
    with RecordingSink(SinkBehaviour(data_delay=0.5)) as sink, \
            RelayUnderTest(tmp_path / "d", next_hop=sink.address) as relay:
        before = value(metrics.POSSIBLE_DUPLICATES)
        sock = _raw_transaction(relay.address, CLEAN)
        sock.close()
        [got] = sink.wait_for(1)
        assert got.data.endswith(CLEAN)
        wait_until(lambda: value(metrics.POSSIBLE_DUPLICATES) == before + 1)


def test_a12_disconnect_during_quarantine_leaves_a_whole_item(tmp_path: Path) -> None:
    with RelayUnderTest(tmp_path / "d") as relay:
        sock = _raw_transaction(relay.address, CARD)
        sock.close()
        wait_until(lambda: len(relay.store.list_incidents(IncidentQuery())) == 1)
        [incident] = relay.store.list_incidents(IncidentQuery())
        assert relay.store.read_original(incident.id, "test", "check") == CARD
        assert [p for p in relay.store.quarantine_dir.iterdir() if p.name.startswith(".tmp-")] == []


def test_a17_half_close_after_dot_and_quit(tmp_path: Path) -> None:
    with RecordingSink() as sink, RelayUnderTest(tmp_path / "d", next_hop=sink.address) as relay:
        before = value(metrics.POSSIBLE_DUPLICATES)
        sock = _raw_transaction(relay.address, CLEAN, after_dot=b"QUIT\r\n")
        sock.shutdown(socket.SHUT_WR)
        rest = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(4096):
                rest += chunk
        sock.close()
        [got] = sink.wait_for(1)
        assert got.data.endswith(CLEAN)
        # Either the client heard the 250, or the 250 it missed is counted as a possible duplicate.
        if not rest.startswith(b"250 "):
            wait_until(lambda: value(metrics.POSSIBLE_DUPLICATES) == before + 1)


def test_relay_keeps_answering_while_a_slow_inspection_runs(tmp_path: Path) -> None:
    slow = ScriptedDetector("sleep", seconds=2.0)
    with RecordingSink() as sink, RelayUnderTest(tmp_path / "d", next_hop=sink.address,
                                                 inspector_factory=scripted_inspector(slow)) as relay:
        result: list[int] = []
        worker = threading.Thread(target=lambda: result.append(send(relay.address, CLEAN)[0]))
        worker.start()
        wait_until(lambda: relay.pool is not None and relay.pool.queue_depth == 1)
        started = time.monotonic()
        with smtplib.SMTP(*relay.address, timeout=10) as client:
            assert client.ehlo("other.test")[0] == 250
            assert client.noop()[0] == 250
        assert time.monotonic() - started < 0.5
        assert relay.pool.queue_depth == 1  # the slow one is still being inspected
        worker.join(30)
        assert result == [250]
