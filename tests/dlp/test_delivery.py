"""Delivery against real next hops: what the client may be told for each outcome.

Every outcome test runs twice: through dlp.delivery.deliver (smtplib, one connection per message: the
store's release and the notifications) and through dlp.next_hop.NextHopPool (the relay's pooled path).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from helpers.smtp_sinks import PostfixSmtpSink, RecordingSink, SinkBehaviour, free_port, postfix_tools_available
from hypothesis import strategies as st

from dlp.delivery import DeliveryResult, Outcome, deliver, dot_stuffed
from dlp.next_hop import NextHopPool


def pooled(next_hop: str, sender: str, recipients: list[str], data: bytes, *, timeout: float = 120.0,
           **_: Any) -> DeliveryResult:
    """One message through a fresh NextHopPool on a private loop."""
    async def once() -> DeliveryResult:
        pool = NextHopPool(next_hop, timeout=timeout)
        try:
            return await pool.deliver(sender, recipients, data)
        finally:
            await pool.close()

    return asyncio.run(once())


Send = Callable[..., DeliveryResult]


@pytest.fixture(params=["deliver", "pool"])
def send(request: pytest.FixtureRequest) -> Send:
    return deliver if request.param == "deliver" else pooled

needs_postfix = pytest.mark.skipif(not postfix_tools_available(), reason="Postfix smtp-sink not unpacked")
DATA = b"Subject: x\r\n\r\n.leading dot survives\r\nend\r\n"


def test_delivered_bytes_are_unstuffed_at_the_other_end(send: Send) -> None:
    with RecordingSink() as sink:
        result = send(sink.address, "a@x.test", ["b@y.test"], DATA, timeout=10)
        assert result.outcome is Outcome.DELIVERED and result.code == 250
        [got] = sink.wait_for(1)
        assert got.data == DATA


@pytest.mark.parametrize("address", ["a\r\nRCPT TO:<evil@x.test>@x.test", "a\x00@x.test"])
def test_control_characters_in_addresses_never_reach_the_next_hop(address: str, send: Send) -> None:
    with RecordingSink() as sink:
        assert send(sink.address, address, ["b@y.test"], DATA, timeout=10).outcome is Outcome.REJECTED
        assert send(sink.address, "a@x.test", [address], DATA, timeout=10).outcome is Outcome.REJECTED
        assert sink.messages == []


def test_connection_refused_is_tempfail_441(send: Send) -> None:
    result = send(f"127.0.0.1:{free_port()}", "a@x.test", ["b@y.test"], DATA, timeout=5)
    assert (result.outcome, result.code, result.status, result.kind) == (Outcome.TEMPFAIL, 451, "4.4.1", "refused")


def test_partial_recipient_refusal_sends_nothing(send: Send) -> None:
    with RecordingSink(SinkBehaviour(refuse_recipients={"c@y.test": "550 5.1.1 no"})) as sink:
        result = send(sink.address, "a@x.test", ["b@y.test", "c@y.test"], DATA, timeout=10)
        assert result.outcome is Outcome.TEMPFAIL and result.refused == {"c@y.test": 550}
        assert sink.messages == []


@needs_postfix
@pytest.mark.parametrize(("options", "outcome", "kind"), [
    (("-r", "DATA"), Outcome.TEMPFAIL, "reply_4xx_data"),  # refused before the 354: nothing was sent
    (("-q", "."), Outcome.UNKNOWN, "disconnected_after_data"),  # vanished after our dot: maybe delivered
    (("-f", "."), Outcome.REJECTED, "reply_5xx_dot"),
])
def test_stage_of_the_failure_decides_the_outcome(options: tuple[str, str], outcome: Outcome, kind: str,
                                                   send: Send) -> None:
    with PostfixSmtpSink(*options) as sink:
        result = send(sink.address, "a@x.test", ["b@y.test"], DATA, timeout=10)
        assert (result.outcome, result.kind) == (outcome, kind)


def test_outbox_without_a_next_hop(tmp_path: Path) -> None:
    result = deliver("", "a@x.test", ["b@y.test"], DATA, outbox=tmp_path / "outbox")
    assert result.ok
    [eml] = list((tmp_path / "outbox").glob("*.eml"))
    assert eml.read_bytes() == b"X-DLP-Envelope-From: <a@x.test>\r\nX-DLP-Envelope-To: <b@y.test>\r\n" + DATA


@hypothesis.settings(max_examples=500, deadline=None)
@hypothesis.given(st.lists(st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b"..", b"x y"]), max_size=12))
def test_dot_stuffing_round_trips(pieces: list[bytes]) -> None:
    data = b"".join(pieces)
    stuffed = dot_stuffed(data)
    assert stuffed.endswith(b"\r\n.\r\n")
    body = stuffed[:-3]
    assert body.count(b"\r\n") == body.count(b"\n") == body.count(b"\r")  # CRLF only
    lines = body.split(b"\r\n")[:-1]
    assert all(line.startswith(b"..") for line in lines if line.startswith(b"."))
    normalized = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    unstuffed = b"".join((line[1:] if line.startswith(b".") else line) + b"\r\n" for line in lines)
    assert unstuffed == (normalized if normalized.endswith(b"\r\n") else normalized + b"\r\n")
