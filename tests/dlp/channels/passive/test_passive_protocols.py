"""HTTP and SMTP parsers over reassembled streams, fed byte strings directly."""

from __future__ import annotations

import base64

import pytest

from dlp.channels.passive.protocols.http import HttpParser
from dlp.channels.passive.protocols.smtp import SmtpParser
from dlp.channels.passive.transaction import Transaction


def _http(chunks: list[bytes], step: int = 0) -> list[Transaction]:
    out: list[Transaction] = []
    parser = HttpParser(out.append, "10.0.0.1:1", "10.0.0.2:80", 1 << 20)
    for chunk in chunks:
        if step:
            for i in range(0, len(chunk), step):
                parser.feed(chunk[i : i + step])
        else:
            parser.feed(chunk)
    parser.close("end")
    return out


@pytest.mark.parametrize("step", [0, 1, 7])
def test_http_keepalive_pipelining_and_chunked(step):
    stream = (b"GET /a HTTP/1.1\r\nHost: h.example\r\n\r\n"
              b"POST /b HTTP/1.1\r\nHost: h.example\r\nContent-Length: 5\r\n\r\nhello"
              b"PUT /c HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"3;ext=1\r\nabc\r\n4\r\ndefg\r\n0\r\nX-Trailer: 1\r\n\r\n")
    txs = _http([stream], step)
    assert [(t.method, t.url) for t in txs] == [("GET", "http://h.example/a"), ("POST", "http://h.example/b"),
                                                 ("PUT", "http://h.example/c")]
    assert txs[1].raw.endswith(b"\r\n\r\nhello")
    assert txs[2].raw.endswith(b"\r\n\r\nabcdefg")
    assert b"Content-Length: 7" in txs[2].raw and b"chunked" not in txs[2].raw.lower()
    assert all(not t.uninspected for t in txs)


def test_http_connect_then_tls_is_encrypted():
    txs = _http([b"CONNECT bank.example:443 HTTP/1.1\r\nHost: bank.example:443\r\n\r\n", b"\x16\x03\x01\x00\x05hello"])
    assert [t.protocol for t in txs] == ["http", "tls"]
    assert str(txs[1].uninspected[0].reason) == "encrypted_session"


def test_http_basic_credentials_are_flagged_not_kept_in_text():
    token = base64.b64encode(b"agent:pa55word").decode()
    txs = _http([f"GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Basic {token}\r\n\r\n".encode()])
    assert txs[0].credential_mechanism == "HTTP Basic"
    assert "pa55word" not in repr(txs[0])


def test_http_gap_in_body_marks_the_request():
    out: list[Transaction] = []
    parser = HttpParser(out.append, "c", "s", 1 << 20)
    parser.feed(b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 20\r\n\r\n0123")
    parser.gap(6)
    parser.feed(b"0123456789")
    assert len(out) == 1 and str(out[0].uninspected[0].reason) == "reassembly_gap"
    assert out[0].raw.endswith(b"01230123456789")


def _smtp(client: list[bytes], server: list[bytes] | None = None) -> list[Transaction]:
    out: list[Transaction] = []
    parser = SmtpParser(out.append, "10.0.0.1:1", "10.0.0.2:25", 1 << 20)
    server = server or []
    for i, chunk in enumerate(client):
        if i < len(server):
            parser.server_data(server[i])
        parser.feed(chunk)
    parser.close("end")
    return out


def test_smtp_two_pipelined_messages_with_dot_unstuffing():
    txs = _smtp([b"EHLO x\r\nMAIL FROM:<a@x.example> SIZE=10\r\nRCPT TO:<b@y.example>\r\nRCPT TO:<c@y.example>\r\n"
                 b"DATA\r\nSubject: one\r\n\r\n..leading dot\r\n.\r\n"
                 b"MAIL FROM:<d@x.example>\r\nRCPT TO:<e@y.example>\r\nDATA\r\n.\r\nQUIT\r\n"])
    assert [(t.sender, t.recipients) for t in txs] == [("a@x.example", ["b@y.example", "c@y.example"]),
                                                        ("d@x.example", ["e@y.example"])]
    assert txs[0].raw == b"Subject: one\r\n\r\n.leading dot\r\n"
    assert txs[1].raw == b""


def test_smtp_bdat_chunks():
    txs = _smtp([b"EHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 5\r\nhelloBDAT 6 LAST\r\n worldQUIT\r\n"])
    assert len(txs) == 1 and txs[0].method == "BDAT" and txs[0].raw == b"hello world"


def test_smtp_refused_data_does_not_swallow_commands():
    client = [b"EHLO x\r\n", b"MAIL FROM:<a@x>\r\n", b"RCPT TO:<b@y>\r\n", b"DATA\r\n",
              b"MAIL FROM:<c@x>\r\nRCPT TO:<d@y>\r\nDATA\r\nbody\r\n.\r\n"]
    server = [b"220 hi\r\n", b"250-x\r\n250 ok\r\n", b"250 ok\r\n", b"250 ok\r\n", b"554 no\r\n"]
    txs = _smtp(client, server)
    assert [t.sender for t in txs] == ["c@x"]
    assert txs[0].raw == b"body\r\n"


def test_smtp_auth_login_and_plain_produce_credential_records():
    txs = _smtp([b"EHLO x\r\nAUTH LOGIN\r\n", b"dXNlcg==\r\n", b"cGFzcw==\r\n",
                 b"AUTH PLAIN AHVzZXIAcGFzcw==\r\nAUTH LOGIN dXNlcg==\r\n*\r\n"])
    assert [t.credential_mechanism for t in txs] == ["SMTP AUTH LOGIN", "SMTP AUTH PLAIN"]
    assert txs[0].credential_secret == b"user\x00pass"


def test_smtp_starttls_accepted_is_encrypted_refused_is_not():
    txs = _smtp([b"EHLO x\r\n", b"STARTTLS\r\n", b"\x16\x03\x01\x00\x10" + bytes(16)],
                [b"220 hi\r\n", b"250 STARTTLS\r\n", b"220 go\r\n"])
    assert [t.protocol for t in txs] == ["tls"]
    txs = _smtp([b"EHLO x\r\n", b"STARTTLS\r\n", b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nhi\r\n.\r\n"],
                [b"220 hi\r\n", b"250 STARTTLS\r\n", b"454 not now\r\n"])
    assert [t.protocol for t in txs] == ["smtp"]


def test_smtp_capture_ending_inside_data_is_truncated_not_clean():
    txs = _smtp([b"EHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nSubject: s\r\n\r\npartial"])
    assert len(txs) == 1 and str(txs[0].uninspected[0].reason) == "truncated"
    assert txs[0].raw.endswith(b"partial")
