"""Adversarial section B: SMTP protocol attacks against the relay, plus its limits, STARTTLS and AUTH."""

from __future__ import annotations

import asyncio
import base64
import itertools
import random
import smtplib
import ssl
import time
import types
from pathlib import Path

import argon2
import hypothesis
import pytest
from helpers.smtp_relay import RawClient, RelayUnderTest, self_signed_cert
from helpers.smtp_sinks import RecordingSink, SinkBehaviour
from hypothesis import strategies as st

from dlp.channels import smtp_replies as replies
from dlp.store import IncidentQuery

CLEAN = b"From: a@callcenter.test\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello.\r\n"


def session(relay: RelayUnderTest, source: str = "") -> RawClient:
    client = RawClient(relay.address, source)
    assert client.reply()[0].startswith("220 dlp.localhost ESMTP")
    assert client.command(b"EHLO agent.test")[-1] == "250 ENHANCEDSTATUSCODES"
    return client


def envelope(client: RawClient, rcpt: bytes = b"<b@example.org>") -> None:
    assert client.code(b"MAIL FROM:<a@callcenter.test>") == replies.SENDER_OK
    assert client.code(b"RCPT TO:" + rcpt) == replies.RECIPIENT_OK
    assert client.code(b"DATA") == replies.START_DATA


@pytest.fixture
def sink() -> RecordingSink:
    with RecordingSink() as s:
        yield s


@pytest.fixture
def relay(tmp_path: Path, sink: RecordingSink) -> RelayUnderTest:
    with RelayUnderTest(tmp_path / "d", next_hop=sink.address, smtp__max_message_bytes=1024 * 1024) as r:
        yield r


BAD_EODS = [b"\n.\n", b"\r.\r", b"\r.\n", b"\n.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r\n.\r",
            b"\r\n\x00.\r\n", b"\r\r\n.\r\r\n"]


@pytest.mark.parametrize("eod", BAD_EODS, ids=[repr(e) for e in BAD_EODS])
def test_b1_bad_end_of_data_is_refused_and_nothing_is_smuggled(relay: RelayUnderTest, sink: RecordingSink,
                                                                eod: bytes) -> None:
    client = session(relay)
    envelope(client)
    smuggled = b"MAIL FROM:<evil@attacker.test>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nsmuggled\r\n"
    client.send(b"Subject: x\r\n\r\nbody" + eod + smuggled + b".\r\n")
    assert client.reply() == [replies.BARE_LINE_ENDING]
    assert client.code(b"QUIT") == replies.BYE
    # A clean transaction afterwards reaches the next hop: exactly one, with its own envelope.
    with smtplib.SMTP(*relay.address) as c:
        c.sendmail("a@callcenter.test", ["b@example.org"], CLEAN)
    [got] = sink.wait_for(1)
    assert got.sender == "a@callcenter.test" and b"smuggled" not in got.data
    assert len(sink.messages) == 1


def test_b2_pipelined_second_message_is_inspected_with_its_own_envelope(relay: RelayUnderTest,
                                                                        sink: RecordingSink) -> None:
    client = session(relay)
    envelope(client)
    client.send(CLEAN + b".\r\nMAIL FROM:<second@callcenter.test>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n")
    assert client.reply() == [replies.ACCEPTED]
    assert client.reply() == [replies.SENDER_OK]
    assert client.reply() == [replies.RECIPIENT_OK]
    assert client.reply() == [replies.START_DATA]
    client.send(b"Subject: card\r\n\r\n4111 1111 1111 1111\r\n.\r\n")
    assert client.reply() == [replies.ACCEPTED]
    [first] = sink.wait_for(1)
    assert first.recipients == ["b@example.org"]
    [incident] = relay.store.list_incidents(IncidentQuery())
    assert incident.sender == "second@callcenter.test" and list(incident.recipients) == ["c@example.org"]
    assert len(sink.messages) == 1


def test_b3_starttls_command_injection_is_discarded(tmp_path: Path, sink: RecordingSink) -> None:
    cert, key = self_signed_cert(tmp_path / "tls")
    with RelayUnderTest(tmp_path / "d", next_hop=sink.address, smtp__tls_cert=cert, smtp__tls_key=key) as relay:
        client = RawClient(relay.address)
        client.reply()
        assert "250-STARTTLS" in client.command(b"EHLO agent.test")
        client.send(b"STARTTLS\r\nMAIL FROM:<injected@attacker.test>\r\n")
        assert client.reply() == [replies.TLS_READY]
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        client.sock = context.wrap_socket(client.sock, server_hostname="dlp.localhost")
        client.reader = client.sock.makefile("rb")
        # The first reply after the handshake answers OUR command: the injected MAIL was never run,
        # and the session state was reset, so MAIL before EHLO is a bad sequence.
        assert client.code(b"MAIL FROM:<a@callcenter.test>") == replies.BAD_SEQUENCE
        lines = client.command(b"EHLO agent.test")
        assert "250-STARTTLS" not in lines
        envelope(client)
        client.send(CLEAN + b".\r\n")
        assert client.reply() == [replies.ACCEPTED]
        [got] = sink.wait_for(1)
        assert got.sender == "a@callcenter.test"
        assert client.code(b"QUIT") == replies.BYE
        client.close()


@pytest.mark.parametrize("address", [b"<a\rb@x.test>", b"<a\x00b@x.test>", b"<a\x1bb@x.test>", b"<ab@x.test\x7f>"])
def test_b4_control_characters_in_addresses_are_refused(relay: RelayUnderTest, sink: RecordingSink,
                                                        address: bytes) -> None:
    client = session(relay)
    assert client.code(b"MAIL FROM:" + address) == replies.CONTROL_CHARACTERS
    assert client.code(b"MAIL FROM:<a@callcenter.test>") == replies.SENDER_OK
    assert client.code(b"RCPT TO:" + address) == replies.CONTROL_CHARACTERS
    assert client.code(b"RCPT TO:<b@example.org>") == replies.RECIPIENT_OK
    assert client.code(b"DATA") == replies.START_DATA
    client.send(CLEAN + b".\r\n")
    assert client.reply() == [replies.ACCEPTED]
    [got] = sink.wait_for(1)
    assert got.sender == "a@callcenter.test" and got.recipients == ["b@example.org"]


def test_b5_long_line_is_refused_after_the_whole_message_never_truncated(relay: RelayUnderTest,
                                                                         sink: RecordingSink) -> None:
    client = session(relay)
    envelope(client)
    client.send(b"Subject: x\r\n\r\n" + b"y" * 2000 + b"\r\nmore\r\n.\r\n")
    assert client.reply() == [replies.LINE_TOO_LONG]
    envelope(client)  # the session is still in sync
    client.send(CLEAN + b".\r\n")
    assert client.reply() == [replies.ACCEPTED]
    assert len(sink.wait_for(1)) == 1


def test_b6_size_at_mail_and_after_data(relay: RelayUnderTest, sink: RecordingSink) -> None:
    client = session(relay)
    assert client.code(b"MAIL FROM:<a@callcenter.test> SIZE=1000000000") == replies.MESSAGE_TOO_BIG
    envelope(client)
    line = b"z" * 998 + b"\r\n"
    client.send(b"Subject: big\r\n\r\n" + line * 1100 + b".\r\n")
    assert client.reply() == [replies.MESSAGE_TOO_BIG]
    assert sink.messages == []


@pytest.mark.slow
def test_b6_32_mib_limit_keeps_memory_bounded(tmp_path: Path, sink: RecordingSink) -> None:
    import resource

    with RelayUnderTest(tmp_path / "d", next_hop=sink.address) as relay:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        client = session(relay)
        envelope(client)
        chunk = (b"z" * 998 + b"\r\n") * 1024
        client.send(b"Subject: big\r\n\r\n")
        for _ in range(40):  # 40 MiB
            client.send(chunk)
        client.send(b".\r\n")
        assert client.reply() == [replies.MESSAGE_TOO_BIG]
        grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        assert grown_kib < 80 * 1024  # the 40 MiB over the limit were never all held at once, nor twice


def test_b7_recipients_beyond_the_limit_get_452(relay: RelayUnderTest, sink: RecordingSink) -> None:
    client = session(relay)
    assert client.code(b"MAIL FROM:<a@callcenter.test>") == replies.SENDER_OK
    client.send(b"".join(b"RCPT TO:<r%d@example.org>\r\n" % i for i in range(2000)))
    answers = [client.reply()[0] for _ in range(2000)]
    assert answers[:100] == [replies.RECIPIENT_OK] * 100
    assert set(answers[100:]) == {replies.TOO_MANY_RECIPIENTS}
    assert client.code(b"DATA") == replies.START_DATA
    client.send(CLEAN + b".\r\n")
    assert client.reply() == [replies.ACCEPTED]
    [got] = sink.wait_for(1)
    assert len(got.recipients) == 100


def test_b8_session_caps_and_idle_timeout_keep_service_for_others(tmp_path: Path, sink: RecordingSink) -> None:
    with RelayUnderTest(tmp_path / "d", next_hop=sink.address, smtp__max_sessions=6,
                        smtp__max_sessions_per_ip=4, smtp__idle_timeout_seconds=1.0) as relay:
        slow = [RawClient(relay.address) for _ in range(4)]
        for s in slow:
            assert s.reply()[0].startswith("220 ")
            s.send(b"E")  # slowloris: never finishes a command
        extra = RawClient(relay.address)
        assert extra.reply() == [replies.TOO_MANY_FROM_ADDRESS]
        others = [RawClient(relay.address, source="127.0.0.2") for _ in range(2)]
        for o in others:
            assert o.reply()[0].startswith("220 ")
        over = RawClient(relay.address, source="127.0.0.3")
        assert over.reply() == [replies.TOO_MANY_SESSIONS]
        started = time.monotonic()
        for s in slow + others:
            assert s.rest() == b""  # closed by the idle timeout without a reply to half a command
        assert time.monotonic() - started < 10
        with smtplib.SMTP(*relay.address, timeout=10) as c:  # a legitimate client gets service again
            c.sendmail("a@callcenter.test", ["b@example.org"], CLEAN)
        assert len(sink.wait_for(1)) == 1


def test_b9_bogus_commands_end_the_session(relay: RelayUnderTest) -> None:
    client = session(relay)
    answers = [client.code(b"XBOGUS%d 4111111111111111" % i) for i in range(5)]
    assert answers[:4] == [replies.SYNTAX_ERROR] * 4
    assert answers[4] == replies.TOO_MANY_BOGUS
    assert client.rest() == b""


def test_b10_non_ascii_sender_needs_smtputf8(relay: RelayUnderTest) -> None:
    client = session(relay)
    assert client.code("MAIL FROM:<agënt@callcenter.test>".encode()) == replies.NEEDS_SMTPUTF8
    assert client.code("MAIL FROM:<agënt@callcenter.test> SMTPUTF8".encode()) == replies.SENDER_OK


def test_b10_eight_bit_body_to_a_seven_bit_next_hop_is_554_not_corrupted(tmp_path: Path) -> None:
    with RecordingSink(SinkBehaviour(eight_bit=False)) as sink, \
            RelayUnderTest(tmp_path / "d", next_hop=sink.address) as relay:
        client = session(relay)
        envelope(client)
        client.send("Subject: café\r\n\r\nrésumé\r\n.\r\n".encode())
        assert client.reply() == [replies.NEXT_HOP_NO_8BIT]
        assert sink.messages == []


def test_b12_every_reply_is_from_the_catalogue_and_echoes_nothing(relay: RelayUnderTest) -> None:
    canary = b"CANARY4111111111111111"
    rng = random.Random(12)
    verbs = [b"HELO", b"EHLO", b"MAIL FROM:", b"RCPT TO:", b"DATA", b"RSET", b"NOOP", b"VRFY", b"EXPN", b"HELP",
             b"AUTH", b"STARTTLS", b"BDAT", b"X" + canary, b"MAIL", b"RCPT"]
    seen: list[str] = []
    for _ in range(6):
        client = RawClient(relay.address)
        seen.extend(client.reply())
        try:
            for _ in range(40):
                verb = rng.choice(verbs)
                arg = rng.choice([b"", b" " + canary, b" <" + canary + b"@x.test>", b"<a@b.test> SIZE=" + canary,
                                  b" " + bytes(rng.randrange(33, 127) for _ in range(rng.randrange(1, 40)))])
                lines = client.command(verb + arg)
                seen.extend(lines)
                if lines[-1].startswith("354"):
                    client.send(canary + b"\r\n\x00\r\n.\r\n")
                    seen.extend(client.reply())
        except ConnectionError:
            pass
        finally:
            client.close()
    assert seen
    for line in seen:
        assert replies.is_catalogued(line), line
        assert "CANARY" not in line and "4111" not in line


def test_a15_low_disk_space_is_452_at_mail(tmp_path: Path, sink: RecordingSink) -> None:
    with RelayUnderTest(tmp_path / "d", next_hop=sink.address, smtp__min_free_bytes=10**18) as relay:
        client = session(relay)
        assert client.code(b"MAIL FROM:<a@callcenter.test>") == replies.NO_SPACE


# ---------------------------------------------------------------------------------- TLS and AUTH

def _unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def test_require_tls_refuses_mail_before_starttls(tmp_path: Path, sink: RecordingSink) -> None:
    cert, key = self_signed_cert(tmp_path / "tls")
    with RelayUnderTest(tmp_path / "d", next_hop=sink.address, smtp__tls_cert=cert, smtp__tls_key=key,
                        smtp__require_tls=True) as relay:
        client = session(relay)
        assert client.code(b"MAIL FROM:<a@callcenter.test>") == replies.TLS_REQUIRED
        with smtplib.SMTP(*relay.address, timeout=10) as c:
            c.starttls(context=_unverified())
            c.sendmail("a@callcenter.test", ["b@example.org"], CLEAN)
        assert len(sink.wait_for(1)) == 1


def test_auth_only_after_tls_and_the_user_reaches_the_incident(tmp_path: Path, sink: RecordingSink) -> None:
    cert, key = self_signed_cert(tmp_path / "tls")
    users = tmp_path / "users"
    users.write_text(f"# agents\nagent7:{argon2.PasswordHasher().hash('s3cret')}\n")
    with RelayUnderTest(tmp_path / "d", next_hop=sink.address, smtp__tls_cert=cert, smtp__tls_key=key,
                        smtp__auth_users_file=str(users)) as relay:
        client = session(relay)
        assert not any(line.startswith("250-AUTH") for line in client.command(b"EHLO agent.test"))
        plain = base64.b64encode(b"\x00agent7\x00s3cret")
        assert client.code(b"AUTH PLAIN " + plain) == replies.AUTH_NEEDS_TLS
        assert client.code(b"MAIL FROM:<a@callcenter.test>") == replies.AUTH_REQUIRED
        with smtplib.SMTP(*relay.address, timeout=10) as c:
            c.starttls(context=_unverified())
            c.ehlo("agent.test")
            assert "auth" in c.esmtp_features
            with pytest.raises(smtplib.SMTPAuthenticationError):
                c.login("agent7", "wrong")
            c.login("agent7", "s3cret")
            c.sendmail("a@callcenter.test", ["b@example.org"], b"Subject: x\r\n\r\n4111 1111 1111 1111\r\n")
        [incident] = relay.store.list_incidents(IncidentQuery())
        assert relay.store.get(incident.id).user == "agent7"


def test_repeated_auth_failures_close_the_session(tmp_path: Path, sink: RecordingSink) -> None:
    users = tmp_path / "users"
    users.write_text(f"agent7:{argon2.PasswordHasher().hash('s3cret')}\n")
    with RelayUnderTest(tmp_path / "d", next_hop=sink.address, smtp__auth_users_file=str(users),
                        smtp__auth_allow_plaintext=True) as relay:
        client = session(relay)
        bad = base64.b64encode(b"\x00agent7\x00nope")
        assert client.code(b"AUTH PLAIN " + bad) == replies.AUTH_INVALID
        assert client.code(b"AUTH PLAIN " + bad) == replies.AUTH_INVALID
        assert client.command(b"AUTH PLAIN " + bad) == [replies.AUTH_INVALID]
        assert client.reply() == [replies.TOO_MANY_AUTH_FAILURES]


def test_auth_is_not_offered_without_a_users_file(relay: RelayUnderTest) -> None:
    client = session(relay)
    assert client.code(b"AUTH PLAIN AGFnZW50AHB3") == replies.NOT_IMPLEMENTED


# ------------------------------------------------------------------------------ address parsing
_ADDRESS_PIECES = ["<", ">", "a", "b.c", "@", "x.test", ".", "..", " ", "\"q r\"", "(c)", "[1.2.3.4]", "-", "+",
                   "é", ":", ",", " SIZE=10", " BODY=8BITMIME", "<>", "\\", "x" * 70]


@hypothesis.settings(max_examples=400, deadline=None)
@hypothesis.given(pieces=st.lists(st.sampled_from(_ADDRESS_PIECES), max_size=8), limit=st.sampled_from([0, 64]))
def test_fast_address_parsing_agrees_with_aiosmtpd(pieces: list[str], limit: int) -> None:
    from aiosmtpd.smtp import SMTP

    from dlp.channels.smtp_protocol import RelaySMTP

    def stock(arg: str) -> tuple[str | None, str | None]:
        try:
            return SMTP._getaddr(holder, arg)  # type: ignore[arg-type]
        except IndexError:  # aiosmtpd's parser fails on e.g. "<"; the relay refuses it as malformed
            return None, None

    holder = types.SimpleNamespace(local_part_limit=limit)
    arg = "".join(pieces)
    plain = f"<{arg.replace(' ', '')}@x.test> SIZE=10"
    for text in (arg, plain):
        assert RelaySMTP._getaddr(holder, text) == stock(text)  # type: ignore[arg-type]


def test_a_lone_angle_bracket_is_a_malformed_address(relay: RelayUnderTest) -> None:
    client = session(relay)
    try:
        assert client.code(b"MAIL FROM:<").startswith("553 5.1.3")
    finally:
        client.close()


# ------------------------------------------------------------------------------ the DATA reader
def _line_reader_reference(stream: bytes, max_bytes: int, line_limit: int) -> tuple[bytes | None, str, bytes]:
    """The rules stated line by line (the reader's previous implementation): (body, refusal, unread)."""
    lines: list[bytes] = []
    size, refusal, position, long_line = 0, "", 0, False
    while True:
        crlf = stream.find(b"\r\n", position)
        assert crlf >= 0, "the reference needs a final dot"
        if crlf - position > line_limit:
            refusal = refusal or replies.LINE_TOO_LONG
            long_line, position = True, position + line_limit
            continue
        line, position = stream[position:crlf + 2], crlf + 2
        if long_line:
            long_line, size = False, size + len(line)
            continue
        if line == b".\r\n":
            break
        size += len(line)
        if not refusal and size > max_bytes:
            refusal = replies.MESSAGE_TOO_BIG
        if refusal:
            continue
        if b"\r" in line[:-2] or b"\n" in line[:-2] or b"\x00" in line:
            refusal = replies.BARE_LINE_ENDING
            continue
        lines.append(line[1:] if line.startswith(b".") else line)
    return (None if refusal else b"".join(lines)), refusal, stream[position:]


async def _chunked_read(stream: bytes, cuts: list[int], max_bytes: int, line_limit: int) -> tuple[bytes | None, str,
                                                                                                 bytes]:
    from dlp.channels.smtp_protocol import RelaySMTP, _Refused

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=line_limit, loop=loop)
    reader_like = types.SimpleNamespace(
        _options=types.SimpleNamespace(max_message_bytes=max_bytes), line_length_limit=line_limit,
        _timeout_duration=60.0, loop=loop, _reader=reader, transport=object(), _reset_timeout=lambda: None)
    task = asyncio.ensure_future(RelaySMTP._read_data(reader_like))  # type: ignore[arg-type]
    edges = [0, *sorted(c % (len(stream) + 1) for c in cuts), len(stream)]
    for a, b in itertools.pairwise(edges):  # each piece is a separate read for the reader
        if b > a:
            reader.feed_data(stream[a:b])
            await asyncio.sleep(0)
    try:
        body: bytes | None = await task
        refusal = ""
    except _Refused as exc:
        body, refusal = None, str(exc)
    unread = reader._buffer  # type: ignore[attr-defined]
    return body, refusal, bytes(unread)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(
    pieces=st.lists(st.sampled_from([b"a", b"bc", b".", b"..", b"\r\n", b"\r", b"\n", b"\x00", b"x" * 9, b" "]),
                    max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
    after=st.sampled_from([b"", b"QUIT\r\n", b"MAIL FROM:<a@b.c>\r\n"]),
)
def test_the_block_reader_decides_like_a_line_reader(pieces: list[bytes], cuts: list[int], after: bytes) -> None:
    """Any body, cut into reads anywhere: same body, same refusal, and what followed the dot left unread."""
    body = b"".join(pieces)
    stream = body + (b"" if body.endswith(b"\r\n") or not body else b"\r\n") + b".\r\n" + after
    max_bytes, line_limit = 60, 12
    expected = _line_reader_reference(stream, max_bytes, line_limit)
    got = asyncio.run(_chunked_read(stream, cuts, max_bytes, line_limit))
    assert got == expected
