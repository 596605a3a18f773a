"""HTTP request extraction: request line, query, headers, chunked framing, content codings, forms,
multipart, JSON and blobs (adversarial cases F3-F10 as they concern decoding bodies)."""

from __future__ import annotations

import base64
import gzip
import io
import json
import zipfile
import zlib

import brotli
import pytest
import zstandard

from dlp.config import Limits
from dlp.extract import extract, extract_http_body, extract_http_request
from dlp.model import ContentKind, Reason
from tests.helpers.extraction import parts, reasons

PAN = "4111111111111111"


def request(body: bytes, *headers: str, target: str = "/upload") -> bytes:
    head = [f"POST {target} HTTP/1.1", "Host: crm.example", *headers]
    if not any(h.lower().startswith("transfer-encoding") for h in headers):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def chunked(data: bytes, size: int = 1) -> bytes:
    return b"".join(b"%x;ext=\"v\"\r\n%s\r\n" % (len(data[i:i + size]), data[i:i + size])
                    for i in range(0, len(data), size)) + b"0\r\nX-Trailer: t\r\n\r\n"


def test_request_line_query_cookie_auth_custom_headers() -> None:
    raw = request(b"", "Cookie: sid=1; card=4111%201111%201111%201111",
                  "Authorization: Basic " + base64.b64encode(b"agent7:Hunter2!").decode(), "X-Customer: 123-45-6789",
                  "User-Agent: curl/8", target="/search?q=4111+1111+1111+1111&page=2")
    e = extract(raw)
    assert e.kind is ContentKind.HTTP
    p = parts(e)
    assert p["request-line"] == "POST /search?q=4111+1111+1111+1111&page=2 HTTP/1.1"
    assert p["query:q"] == "4111 1111 1111 1111"
    assert "card=4111 1111 1111 1111" in p["header:Cookie"]
    assert "agent7:Hunter2!" in p["header:Authorization"]
    assert p["header:X-Customer"] == "123-45-6789"
    assert "header:User-Agent" not in p


@pytest.mark.parametrize("coding,encode", [
    ("gzip", gzip.compress),
    ("x-gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some clients send it
    ("br", brotli.compress),
    ("zstd", lambda b: zstandard.ZstdCompressor().compress(b)),
])
def test_f3_content_encodings(coding: str, encode: object) -> None:
    body = encode(f"card={PAN}".encode())  # type: ignore[operator]
    e = extract_http_body([("Content-Type", "application/x-www-form-urlencoded"), ("Content-Encoding", coding)], body)
    assert parts(e) == {"form:card": PAN}


def test_f4_stacked_encodings_and_unknown_token() -> None:
    body = brotli.compress(gzip.compress(json.dumps({"content": PAN}).encode()))
    e = extract_http_body([("Content-Type", "application/json"), ("Content-Encoding", "gzip, br")], body)
    assert parts(e) == {"json:$.content": PAN}
    unknown = extract_http_body([("Content-Encoding", "gzip, snappy")], gzip.compress(PAN.encode()))
    assert reasons(unknown) == {Reason.UNDECODABLE_BODY} and not unknown.parts
    corrupt = extract_http_body([("Content-Encoding", "gzip")], b"\x1f\x8bnot gzip at all " + PAN.encode())
    assert reasons(corrupt) == {Reason.UNDECODABLE_BODY} and not corrupt.parts


def test_f5_gzip_bomb_in_request_body_is_capped() -> None:
    bomb = gzip.compress(b"\x00" * (64 * 1024 * 1024), 9)
    e = extract_http_body([("Content-Encoding", "gzip")], bomb)
    assert Reason.DECOMPRESSION_RATIO_EXCEEDED in reasons(e) and not e.parts


def test_f6_multi_member_gzip_second_member() -> None:
    body = gzip.compress(b"name=Bob&") + gzip.compress(f"card={PAN}".encode())
    e = extract_http_body([("Content-Type", "application/x-www-form-urlencoded"), ("Content-Encoding", "gzip")], body)
    assert parts(e)["form:card"] == PAN


def test_f7_one_byte_chunks_with_extensions() -> None:
    raw = request(chunked(f"card={PAN}".encode()), "Transfer-Encoding: chunked",
                  "Content-Type: application/x-www-form-urlencoded")
    assert parts(extract_http_request(raw))["form:card"] == PAN


def test_f7_chunked_and_gzip_together() -> None:
    raw = request(chunked(gzip.compress(f"card={PAN}".encode()), 3), "Transfer-Encoding: chunked",
                  "Content-Encoding: gzip", "Content-Type: application/x-www-form-urlencoded")
    assert parts(extract_http_request(raw))["form:card"] == PAN


def test_f8_multipart_form_with_zip_of_csv() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("clients.csv", f"name,card\nBob,{PAN}\n")
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello 5500000000000004\r\n"
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"clients.zip\"\r\n"
            b"Content-Type: application/zip\r\n\r\n" + buf.getvalue() + b"\r\n--XyZ--\r\n")
    raw = request(body, "Content-Type: multipart/form-data; boundary=XyZ")
    p = parts(extract_http_request(raw))
    assert p["form:note"] == "hello 5500000000000004"
    assert p["form:file/clients.csv"] == f"name\tcard\nBob\t{PAN}"


def test_f9_json_unicode_escapes_and_base64_csv() -> None:
    csv = base64.b64encode(f"name,card\nBob,{PAN}\n".encode()).decode()
    escaped = "\\u0034\\u0031\\u0031\\u0031 1111 1111 1111"
    body = f'{{"content": "{escaped}", "upload": {{"file": "{csv}"}}, "n": [4111111111111111]}}'.encode()
    p = parts(extract_http_body([("Content-Type", "application/json")], body))
    assert p["json:$.content"] == "4111 1111 1111 1111"
    assert p["json:$.upload.file/base64"] == f"name,card\nBob,{PAN}\n"
    assert p["json:$.n[0]"] == PAN


def test_f10_urlencoded_form_and_percent_encoding() -> None:
    raw = request(b"name=Bob&card=4111%201111%201111%201111&note=a%2520b",
                  "Content-Type: application/x-www-form-urlencoded")
    p = parts(extract_http_request(raw))
    assert p["form:card"] == "4111 1111 1111 1111"
    assert p["form:name"] == "Bob"


def test_json_without_content_type_and_plain_text_body() -> None:
    assert parts(extract_http_body([], b'{"a": "x"}')) == {"json:$.a": "x"}
    assert parts(extract_http_body([("Content-Type", "text/plain")], b"hello")) == {"body": "hello"}


def test_content_encoding_bomb_respects_member_cap() -> None:
    body = gzip.compress(b"a" * (4 * 1024 * 1024))
    e = extract_http_body([("Content-Encoding", "gzip")], body, Limits(member_bytes=1024 * 1024))
    assert reasons(e) & {Reason.ARCHIVE_LIMITS_EXCEEDED, Reason.DECOMPRESSION_RATIO_EXCEEDED}


def test_urlencoded_field_names_are_content_not_locations() -> None:
    """`curl -d @file` sends the file as one field name; names that are not plain identifiers are
    scanned and never copied into a location (locations reach incidents and the console)."""
    form = [("Content-Type", "application/x-www-form-urlencoded")]
    e = extract_http_body(form, f"customer list {PAN} Bob".encode())
    assert parts(e) == {"form[0]/name": f"customer list {PAN} Bob"}
    e = extract_http_body(form, f"note=hi&{PAN}=x".encode())
    assert parts(e) == {"form:note": "hi", "form[1]/name": PAN, "form[1]": "x"}
    assert all(PAN not in p.location for p in e.parts)
    q = extract_http_request(f"GET /s?{PAN}=1&q=ok HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert parts(q)["query[0]/name"] == PAN and parts(q)["query:q"] == "ok"
