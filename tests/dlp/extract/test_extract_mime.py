"""Email extraction: headers, transfer encodings, charsets, HTML, attachments and MIME ambiguities
(adversarial cases C1-C13, C15 for mail)."""

from __future__ import annotations

import base64
import binascii
import gzip
import io
import struct
import zipfile

from dlp.config import Limits
from dlp.extract import Extraction, extract, extract_email
from dlp.model import ContentKind, Reason
from tests.helpers.extraction import parts, reasons

PAN = "4111111111111111"


def found(e: Extraction, needle: str = PAN) -> list[str]:
    return [p.location for p in e.parts if needle in p.text.replace(" ", "").replace("-", "")]


def mail(body: bytes, content_type: str = "text/plain", extra: bytes = b"") -> bytes:
    return (
        b"From: Agent <agent@callcenter.example>\r\nTo: client@example.com\r\nSubject: hello\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: " + content_type.encode() + b"\r\n" + extra + b"\r\n" + body
    )


def multipart(*entities: bytes, boundary: bytes = b"BOUND") -> bytes:
    body = b"".join(b"--" + boundary + b"\r\n" + e + b"\r\n" for e in entities) + b"--" + boundary + b"--\r\n"
    return mail(body, f'multipart/mixed; boundary="{boundary.decode()}"')


def test_auto_detects_email_and_plain_body() -> None:
    e = extract(mail(f"card {PAN}\r\n".encode()))
    assert e.kind is ContentKind.EMAIL
    assert parts(e)["body"].strip() == f"card {PAN}"
    assert parts(e)["header:Subject"] == "hello"


def test_c1_card_in_base64_attachment() -> None:
    csv = base64.encodebytes(f"name,card\r\nBob,{PAN}\r\n".encode())
    e = extract_email(multipart(
        b"Content-Type: text/plain\r\n\r\nsee attached",
        b'Content-Type: text/csv; name="clients.csv"\r\nContent-Disposition: attachment; filename="clients.csv"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + csv,
    ))
    assert parts(e)["attachment[1]:clients.csv"] == f"name\tcard\nBob\t{PAN}"
    assert parts(e)["body[0]:text/plain"] == "see attached"


def test_c2_quoted_printable_soft_break_inside_digits() -> None:
    e = extract_email(mail(b"4111 11=\r\n11 1111 1111\r\n", extra=b"Content-Transfer-Encoding: quoted-printable\r\n"))
    assert parts(e)["body"].strip() == "4111 1111 1111 1111"


def _nested(depth: int) -> bytes:
    inner = f"Content-Type: text/plain\r\n\r\ncard {PAN}\r\n".encode()
    for level in range(depth):
        b = f"b{level}".encode()
        if level % 2:
            inner = b"Content-Type: message/rfc822\r\n\r\nSubject: fwd\r\n" + inner
        inner = (b"Content-Type: multipart/mixed; boundary=" + b + b"\r\n\r\n--" + b + b"\r\n" + inner
                 + b"\r\n--" + b + b"--\r\n")
    return b"From: a@b.c\r\nTo: d@e.f\r\nMIME-Version: 1.0\r\n" + inner


def test_c3_ten_deep_nesting_found_and_depth_101_flagged() -> None:
    assert found(extract_email(_nested(10)))
    deep = extract_email(_nested(101))
    assert Reason.MIME_DEPTH_EXCEEDED in reasons(deep)
    assert not found(deep) or Reason.MIME_DEPTH_EXCEEDED in reasons(deep)


def test_c3_depth_limit_is_configurable() -> None:
    assert Reason.MIME_DEPTH_EXCEEDED in reasons(extract_email(_nested(10), Limits(mime_depth=4)))


def test_c4_duplicate_transfer_encoding_decodes_every_view() -> None:
    e = extract_email(mail(
        base64.encodebytes(f"card {PAN}".encode()),
        extra=b"Content-Transfer-Encoding: 7bit\r\nContent-Transfer-Encoding: base64\r\n",
    ))
    assert Reason.AMBIGUOUS_MIME in reasons(e)
    assert parts(e)["body/cte:base64"] == f"card {PAN}"
    assert "body/cte:7bit" in parts(e)


def test_c5_shared_boundary_inner_and_outer() -> None:
    raw = (b"From: a@b.c\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=SAME\r\n\r\n"
           b"--SAME\r\nContent-Type: multipart/alternative; boundary=SAME\r\n\r\n"
           b"--SAME\r\nContent-Type: text/plain\r\n\r\nfirst " + PAN.encode() + b"\r\n"
           b"--SAME\r\nContent-Type: text/plain\r\n\r\nsecond 5500000000000004\r\n--SAME--\r\n--SAME--\r\n")
    e = extract_email(raw)
    assert found(e) and found(e, "5500000000000004")


def test_c6_multipart_without_boundary_scans_raw_and_decodes_blobs() -> None:
    blob = base64.b64encode(f"secret card {PAN} here".encode())
    e = extract_email(mail(b"some text\r\n" + blob + b"\r\n", "multipart/mixed"))
    assert Reason.AMBIGUOUS_MIME in reasons(e)
    assert any(loc.endswith("/base64") for loc in found(e))


def test_c6_missing_start_and_end_boundaries() -> None:
    no_start = mail(b"Content-Type: text/plain\r\n\r\ncard " + PAN.encode() + b"\r\n", "multipart/mixed; boundary=X")
    e = extract_email(no_start)
    assert found(e) and Reason.AMBIGUOUS_MIME in reasons(e)
    no_end = mail(b"--X\r\nContent-Type: text/plain\r\n\r\ncard " + PAN.encode() + b"\r\n",
                  "multipart/mixed; boundary=X")
    e = extract_email(no_end)
    assert found(e) and Reason.AMBIGUOUS_MIME in reasons(e)


def test_c7_rfc2047_subject_display_name_and_rfc2231_filename() -> None:
    raw = (
        b"From: =?utf-8?B?" + base64.b64encode("José 4111 1111".encode()) + b"?= <j@example.com>\r\n"
        b"To: =?iso-8859-1?Q?Ren=E9e_1111_1111?= <r@example.com>, plain@example.com\r\n"
        b"Subject: =?utf-8?q?card_4111=201111_1111_1111?=\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n"
        b"Content-Disposition: attachment; filename*=utf-8''clients%20%C3%A9t%C3%A9.txt\r\n\r\n"
        b"card " + PAN.encode() + b"\r\n--B--\r\n"
    )
    p = parts(extract_email(raw))
    assert p["header:Subject"] == "card 4111 1111 1111 1111"
    assert p["header:From"] == "José 4111 1111"
    assert p["header:To"] == "Renée 1111 1111"
    assert "attachment[0]:clients été.txt" in p


def test_c8_uuencode_as_transfer_encoding_and_inline_block() -> None:
    encoded = binascii.b2a_uu(f"card {PAN}".encode()).decode()
    cte = extract_email(mail(f"begin 644 a.txt\n{encoded}`\nend\n".encode(),
                             extra=b"Content-Transfer-Encoding: x-uuencode\r\n"))
    assert parts(cte)["body"].strip() == f"card {PAN}"
    inline = extract_email(mail(f"hello\nbegin 644 data.txt\n{encoded}`\nend\nbye\n".encode()))
    assert parts(inline)["body/uuencode:data.txt"] == f"card {PAN}"


def tnef(attachments: list[tuple[str, bytes]]) -> bytes:
    def attr(level: int, ident: int, value: bytes) -> bytes:
        return struct.pack("<BII", level, ident, len(value)) + value + struct.pack("<H", sum(value) & 0xFFFF)

    out = struct.pack("<IH", 0x223E9F78, 1) + attr(1, 0x00089006, b"\x01\x00")
    for name, data in attachments:
        out += attr(2, 0x00069002, b"\x01\x00" + b"\x00" * 12)
        out += attr(2, 0x00018010, name.encode() + b"\x00")
        out += attr(2, 0x0006800F, data)
    return out


def test_c9_tnef_winmail_with_csv_and_unparsable() -> None:
    data = tnef([("clients.csv", f"name,card\nBob,{PAN}\n".encode())])
    e = extract_email(multipart(
        b"Content-Type: application/ms-tnef; name=winmail.dat\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(data)
    ))
    assert parts(e)["attachment[0]:winmail.dat/clients.csv"] == f"name\tcard\nBob\t{PAN}"
    broken = extract_email(multipart(
        b"Content-Type: application/ms-tnef; name=winmail.dat\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(data[:40])
    ))
    assert Reason.UNDECODABLE_TNEF in reasons(broken)


def test_c10_utf16_and_mislabelled_charsets() -> None:
    utf16 = extract_email(mail(f"card {PAN}".encode("utf-16-le"), "text/plain; charset=us-ascii"))
    assert found(utf16)
    bom = extract_email(mail(f"card {PAN} é".encode("utf-16"), "text/plain"))
    assert parts(bom)["body"] == f"card {PAN} é"
    mislabelled = extract_email(mail("Ünïcode card".encode(), "text/plain; charset=iso-8859-1"))
    assert parts(mislabelled)["body"] == "Ünïcode card"
    unknown = extract_email(mail("carte bancaire é".encode("cp1252"), "text/plain; charset=x-unknown"))
    assert parts(unknown)["body"] == "carte bancaire é"


def test_c11_html_split_digits_and_entities() -> None:
    e = extract_email(mail(b"<p>4111<span></span>1111&#49;111&nbsp;1111</p>", "text/html"))
    assert "411111111111\xa01111" in parts(e)["body"]


def test_c12_pii_only_in_headers() -> None:
    raw = (b'From: "Card 4111 1111 1111 1111" <a@b.c>\r\nTo: "Customer 123-45-6789" <c@d.e>\r\n'
           b"Cc: x@y.z\r\nX-Customer-Card: " + PAN.encode() + b"\r\nSubject: " + PAN.encode() + b"\r\n\r\nhi\r\n")
    p = parts(extract_email(raw))
    assert p["header:From"] == "Card 4111 1111 1111 1111"
    assert p["header:To"] == "Customer 123-45-6789"
    assert p["header:X-Customer-Card"] == PAN
    assert p["header:Subject"] == PAN
    assert "header:Cc" not in p  # addresses alone are not content


def test_c13_message_partial() -> None:
    e = extract_email(mail(b"part one", 'message/partial; id="abc"; number=1; total=2'))
    assert Reason.MESSAGE_PARTIAL in reasons(e)


def test_c15_smime_and_pgp_encrypted() -> None:
    smime = extract_email(mail(b"MIIBxx==", 'application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"',
                               extra=b"Content-Transfer-Encoding: base64\r\n"))
    # Declared enveloped-data whose body is no PKCS#7 structure: the label is not trusted (a real
    # enveloped body is encrypted_content, test_extract_smime.py); it fails closed.
    assert reasons(smime) == {Reason.EXTRACTION_FAILED}
    pgp = extract_email(mail(
        b"--P\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--P\r\n"
        b"Content-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\nhQEM\r\n"
        b"-----END PGP MESSAGE-----\r\n--P--\r\n",
        'multipart/encrypted; protocol="application/pgp-encrypted"; boundary=P'))
    assert Reason.ENCRYPTED_CONTENT in reasons(pgp)
    inline = extract_email(mail(b"-----BEGIN PGP MESSAGE-----\r\nhQEMA\r\n-----END PGP MESSAGE-----\r\n"))
    assert Reason.ENCRYPTED_CONTENT in reasons(inline)


def test_attached_message_recursion_and_zip_named_dat() -> None:
    inner = mail(f"inner card {PAN}".encode()).replace(b"Subject: hello", b"Subject: inner 5500000000000004")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("clients.csv", f"a,b\n1,{PAN}\n")
    e = extract_email(multipart(
        b"Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename=fwd.eml\r\n\r\n" + inner,
        b"Content-Type: image/png; name=image001.dat\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(buf.getvalue()),
    ))
    p = parts(e)
    assert p["attachment[0]:fwd.eml/header:Subject"] == "inner 5500000000000004"
    assert p["attachment[0]:fwd.eml/body"] == f"inner card {PAN}"
    assert p["attachment[1]:image001.dat/clients.csv"] == f"a\tb\n1\t{PAN}"


def test_gzip_attachment_and_real_image() -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
    e = extract_email(multipart(
        b"Content-Type: application/gzip; name=x.csv.gz\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(gzip.compress(PAN.encode())),
        b"Content-Type: image/png; name=logo.png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(png),
    ))
    assert parts(e)["attachment[0]:x.csv.gz/x.csv"] == PAN
    assert Reason.NOT_INSPECTED_IMAGE in reasons(e)
