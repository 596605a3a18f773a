"""Hostile and odd input: CPython's own email corpus (C16), property-based fuzzing of the MIME, HTTP and
archive extractors, blobs (E10) and the time budget."""

from __future__ import annotations

import base64
import gzip
import io
import os
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlp.config import Limits
from dlp.extract import Extraction, extract, extract_email, extract_file, extract_http_request
from dlp.model import ContentKind, Reason
from tests.helpers.extraction import reasons

PAN = "4111111111111111"
CORPUS = Path(sysconfig.get_path("stdlib")) / "test" / "test_email" / "data"
FUZZ_EXAMPLES = int(os.environ.get("DLP_FUZZ_EXAMPLES", "150"))
SMALL = Limits(time_budget_seconds=2.0, member_bytes=4 * 1024 * 1024, total_extracted_bytes=16 * 1024 * 1024)


@pytest.mark.skipif(not CORPUS.is_dir(), reason="CPython's test_email corpus is not installed")
def test_c16_cpython_email_corpus_extracts_without_raising() -> None:
    files = sorted(CORPUS.glob("msg_*.txt"))
    assert len(files) > 40
    for path in files:
        started = time.monotonic()
        e = extract(path.read_bytes(), ContentKind.EMAIL)
        assert time.monotonic() - started < 2, path.name
        assert Reason.EXTRACTION_FAILED not in reasons(e), path.name
        assert e.parts or e.uninspected, path.name


def test_c5_cpython_shared_boundary_message() -> None:
    msg15 = CORPUS / "msg_15.txt"
    if not msg15.exists():
        pytest.skip("corpus absent")
    e = extract_email(msg15.read_bytes())
    assert e.parts


def test_e10_blobs_in_plain_text() -> None:
    hexed = f"card {PAN} inside".encode().hex()
    b64 = base64.b64encode(f"ssn 123-45-6789 and card {PAN}".encode()).decode()
    text = f"see {b64} and {hexed} and q=4111%201111%201111%201111%20x%20y".encode()
    p = {x.location: x.text for x in extract_file(text, "note.txt").parts}
    assert p["note.txt/base64"].endswith(PAN)
    assert p["note.txt/hex"] == f"card {PAN} inside"
    assert "4111 1111 1111 1111" in p["note.txt/percent"]


def test_blob_decoding_is_bounded() -> None:
    blob = base64.b64encode(("x" * 1000 + PAN).encode()).decode()
    text = "\n".join([blob] * 50).encode()
    e = extract_file(text, "n.txt", Limits(blob_decode_bytes=5000))
    assert 1 <= sum(1 for p in e.parts if "/base64" in p.location) <= 5


def test_base64_zip_blob_goes_through_type_sniffing() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("c.csv", f"a,b\n1,{PAN}\n")
    text = b'{"file": "' + base64.b64encode(buf.getvalue()) + b'"}'
    raw = b"POST /u HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n" + text
    p = {x.location: x.text for x in extract_http_request(raw).parts}
    assert p["json:$.file/base64/c.csv"] == f"a\tb\n1\t{PAN}"


def test_expired_deadline_is_timeout_not_clean() -> None:
    data = gzip.compress(b"x" * 1000)
    e = extract_file(data, "a.gz", deadline=time.monotonic() - 1)
    assert Reason.TIMEOUT in reasons(e) and not e.parts


def test_text_budget_truncates_visibly() -> None:
    e = extract_file(b"word " * 10_000, "big.txt", Limits(max_text_chars=1000))
    assert sum(len(p.text) for p in e.parts) <= 1000
    assert Reason.TRUNCATED in reasons(e)


_MIME_PIECES = st.sampled_from([
    b"Content-Type: multipart/mixed; boundary=B\r\n", b"--B\r\n", b"--B--\r\n", b"\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"Content-Transfer-Encoding: x-uuencode\r\n", b"Content-Type: message/rfc822\r\n",
    b"Content-Type: text/html; charset=utf-16\r\n", b"Subject: =?utf-8?b?w6k=?=\r\n", b"begin 644 a\r\n",
    b"=\r\n", b"QUJD\r\n", b"<p>&#52;</p>", b"Content-Type: application/ms-tnef\r\n", b"\x78\x9f\x3e\x22",
    b"Content-Disposition: attachment; filename*=utf-8''a%20b\r\n", b"PK\x03\x04", b"\x1f\x8b\x08",
])


@settings(max_examples=FUZZ_EXAMPLES, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_MIME_PIECES, st.binary(max_size=40)), max_size=40))
def test_fuzz_mime_never_raises(pieces: list[bytes]) -> None:
    e = extract_email(b"From: a@b.c\r\nMIME-Version: 1.0\r\n" + b"".join(pieces), SMALL)
    assert isinstance(e, Extraction)


_HTTP_PIECES = st.sampled_from([
    b"Transfer-Encoding: chunked\r\n", b"Content-Encoding: gzip, br\r\n", b"Content-Encoding: deflate\r\n",
    b"Content-Type: multipart/form-data; boundary=X\r\n", b"Content-Type: application/json\r\n",
    b"Content-Type: application/x-www-form-urlencoded\r\n", b"\r\n", b"--X\r\n", b"1;a=b\r\n", b"0\r\n\r\n",
    b'{"a": [1, "\\u0034"]}', b"a=%41&b", b"Content-Disposition: form-data; name=f; filename=x.zip\r\n",
    b"Cookie: a=b\r\n", b"Authorization: Basic !!\r\n", b"\x1f\x8b\x08\x00", b"[[[[[[[[[[[[",
])


@settings(max_examples=FUZZ_EXAMPLES, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_HTTP_PIECES, st.binary(max_size=40)), max_size=40))
def test_fuzz_http_never_raises(pieces: list[bytes]) -> None:
    e = extract_http_request(b"POST /x?a=1 HTTP/1.1\r\nHost: h\r\n" + b"".join(pieces), SMALL)
    assert isinstance(e, Extraction)


def _archive_seed() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.csv", "x,y\n1,2\n")
        z.writestr("b/c.txt.gz", gzip.compress(b"hello"))
    return buf.getvalue()


_SEED = _archive_seed()


@settings(max_examples=FUZZ_EXAMPLES, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(_SEED) - 1), st.integers(0, 255)), max_size=8),
       st.integers(0, len(_SEED)))
def test_fuzz_archives_never_raise(flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(_SEED)
    for pos, value in flips:
        data[pos] = value
    for candidate in (bytes(data), bytes(data[:cut]), gzip.compress(bytes(data))):
        e = extract_file(candidate, "f.zip", SMALL)
        assert isinstance(e, Extraction)


@pytest.mark.slow
@settings(max_examples=5000, deadline=5000)
@given(st.binary(max_size=4096))
def test_fuzz_any_bytes_slow(data: bytes) -> None:
    extract(data, ContentKind.AUTO, SMALL)
