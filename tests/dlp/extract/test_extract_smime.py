"""S/MIME and CMS (issue 3): opaque-signed content is unwrapped and inspected, enveloped data is
encrypted_content, clear-signed mail is inspected, and anything unparsable is extraction_failed —
never binary_content, which the shipped policy passes."""

from __future__ import annotations

import base64
import datetime
import zlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from dlp.config import Limits
from dlp.extract import Extraction, extract_email, extract_file
from dlp.extract.pkcs7 import ID_COMPRESSED, ID_DATA, ID_SIGNED
from dlp.model import Reason
from tests.helpers.extraction import reasons

PAN = "4111111111111111"
INNER = f"Content-Type: text/plain; charset=utf-8\r\n\r\nCustomer card {PAN} exp 12/27\r\n".encode()
HEADERS = b"From: Agent <agent@callcenter.example>\r\nTo: client@example.com\r\nSubject: signed\r\n"


@pytest.fixture(scope="module")
def signer() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agent@callcenter.example")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256())
    )
    return cert, key


def sign(signer: tuple[x509.Certificate, rsa.RSAPrivateKey], data: bytes, encoding: serialization.Encoding,
         options: list[pkcs7.PKCS7Options] | None = None) -> bytes:
    cert, key = signer
    builder = pkcs7.PKCS7SignatureBuilder().set_data(data).add_signer(cert, key, hashes.SHA256())
    return builder.sign(encoding, options or [])


def found(e: Extraction) -> list[str]:
    return [p.location for p in e.parts if PAN in p.text]


def opaque_mail(der: bytes, ctype: str = "application/pkcs7-mime; smime-type=signed-data") -> bytes:
    """An opaque-signed S/MIME message (RFC 8551 3.5.2): cryptography writes its SMIME encoding
    clear-signed only, so the DER signature (no DetachedSignature option) is wrapped here."""
    body = base64.encodebytes(der).replace(b"\n", b"\r\n")
    return HEADERS + (f"MIME-Version: 1.0\r\nContent-Type: {ctype}; name=smime.p7m\r\n"
                      "Content-Disposition: attachment; filename=smime.p7m\r\n"
                      "Content-Transfer-Encoding: base64\r\n\r\n").encode() + body


def test_opaque_signed_mail_is_unwrapped(signer) -> None:
    der = sign(signer, INNER, serialization.Encoding.DER)  # no DetachedSignature: opaque
    raw = opaque_mail(der)
    assert PAN.encode() not in raw
    e = extract_email(raw)
    assert found(e) == ["body/signed-content/body"]
    assert not reasons(e)
    legacy = extract_email(opaque_mail(der, "application/x-pkcs7-mime"))  # old clients, no smime-type
    assert found(legacy) == ["body/signed-content/body"] and not reasons(legacy)


def test_p7m_attachment_der_and_pem(signer) -> None:
    der = sign(signer, INNER, serialization.Encoding.DER)
    e = extract_file(der, "smime.p7m")
    assert found(e) == ["smime.p7m/signed-content/body"] and not reasons(e)
    pem = sign(signer, INNER, serialization.Encoding.PEM)
    assert found(extract_file(pem, "signed.p7m")) == ["signed.p7m/signed-content/body"]
    # Sniffed by content: the same DER under a harmless name is still unwrapped.
    assert found(extract_file(der, "image001.dat")) == ["image001.dat/signed-content/body"]


def test_signed_file_that_is_not_mime(signer) -> None:
    """A signed document (contract.csv.p7m, common for e-invoices): the inner file goes through the
    file pipeline under its own name."""
    der = sign(signer, f"name,card\nAlice,{PAN}\n".encode(), serialization.Encoding.DER,
               [pkcs7.PKCS7Options.Binary])
    e = extract_file(der, "customers.csv.p7m")
    assert [p.location for p in e.parts] == ["customers.csv.p7m/signed-content"]
    assert e.parts[0].text == f"name\tcard\nAlice\t{PAN}"


def test_clear_signed_mail_is_inspected(signer) -> None:
    smime = sign(signer, INNER, serialization.Encoding.SMIME, [pkcs7.PKCS7Options.DetachedSignature])
    assert b"multipart/signed" in smime
    e = extract_email(HEADERS + smime)
    assert len(found(e)) == 1
    assert not reasons(e)  # the detached signature part is parsed: certificates only, nothing to flag


def test_enveloped_is_encrypted_content(signer) -> None:
    cert, _ = signer
    enveloped = pkcs7.PKCS7EnvelopeBuilder().set_data(INNER).add_recipient(cert).encrypt(
        serialization.Encoding.SMIME, [])
    assert b"enveloped-data" in enveloped
    e = extract_email(HEADERS + enveloped)
    assert reasons(e) == {Reason.ENCRYPTED_CONTENT} and not found(e)
    der = pkcs7.PKCS7EnvelopeBuilder().set_data(INNER).add_recipient(cert).encrypt(serialization.Encoding.DER, [])
    assert reasons(extract_file(der, "x.bin")) == {Reason.ENCRYPTED_CONTENT}


def test_unparsable_smime_is_extraction_failed(signer) -> None:
    der = sign(signer, INNER, serialization.Encoding.DER)
    truncated = der[: len(der) // 2]
    assert reasons(extract_file(truncated, "smime.p7m")) == {Reason.EXTRACTION_FAILED}
    assert reasons(extract_file(truncated, "x.bin")) == {Reason.EXTRACTION_FAILED}  # sniffed as PKCS#7
    garbage = bytes(range(256)) * 4
    assert reasons(extract_file(garbage, "smime.p7m")) == {Reason.EXTRACTION_FAILED}
    declared = HEADERS + (b"MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=signed-data\r\n"
                          b"Content-Transfer-Encoding: base64\r\n\r\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\r\n")
    assert reasons(extract_email(declared)) == {Reason.EXTRACTION_FAILED}


# ------------------------------------------------------------------------ hand-built BER (streaming)


def tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    length = bytes([n]) if n < 128 else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes(
        (n.bit_length() + 7) // 8, "big")
    return bytes([tag]) + length + body


def indefinite(tag: int, *items: bytes) -> bytes:
    return bytes([tag, 0x80]) + b"".join(items) + b"\x00\x00"


def oid(value: bytes) -> bytes:
    return tlv(0x06, value)


def ber_signed(content: bytes, chunk: int = 7, nested: bool = True) -> bytes:
    """SignedData as a streaming signer writes it: indefinite lengths everywhere and the content as a
    constructed OCTET STRING of small segments (optionally nested one level)."""
    segments = [tlv(0x04, content[i : i + chunk]) for i in range(0, len(content), chunk)]
    half = len(segments) // 2
    econtent = indefinite(0x24, *segments[:half], indefinite(0x24, *segments[half:])) if nested else \
        indefinite(0x24, *segments)
    digest_algorithms = tlv(0x31, tlv(0x30, oid(b"\x60\x86\x48\x01\x65\x03\x04\x02\x01")))
    signed_data = indefinite(0x30, tlv(0x02, b"\x01"), digest_algorithms,
                             indefinite(0x30, oid(ID_DATA), indefinite(0xA0, econtent)), tlv(0x31, b""))
    return indefinite(0x30, oid(ID_SIGNED), indefinite(0xA0, signed_data))


def test_indefinite_length_constructed_octets() -> None:
    e = extract_file(ber_signed(INNER), "stream.p7m")
    assert found(e) == ["stream.p7m/signed-content/body"] and not reasons(e)
    assert found(extract_file(ber_signed(INNER, chunk=1000, nested=False), "one.p7m"))


def test_compressed_data_is_inflated() -> None:
    compressed = tlv(0x30, tlv(0x02, b"\x00") + tlv(0x30, oid(b"\x2a\x86\x48\x86\xf7\x0d\x01\x09\x10\x03\x08"))
                     + tlv(0x30, oid(ID_DATA) + tlv(0xA0, tlv(0x04, zlib.compress(INNER)))))
    blob = tlv(0x30, oid(ID_COMPRESSED) + tlv(0xA0, compressed))
    assert found(extract_file(blob, "smime.p7z")) == ["smime.p7z/signed-content/body"]


def test_hostile_nesting_is_bounded(signer) -> None:
    # Constructed OCTET STRINGs nested 10,000 deep: refused by the walker, not a RecursionError.
    deep = b"\x24\x80" * 10_000 + b"\x04\x01A" + b"\x00\x00" * 10_000
    blob = indefinite(0x30, oid(ID_SIGNED), indefinite(0xA0, indefinite(0x30, tlv(0x02, b"\x01"), tlv(0x31, b""),
                      indefinite(0x30, oid(ID_DATA), indefinite(0xA0, deep)))))
    assert reasons(extract_file(blob, "deep.p7m")) == {Reason.EXTRACTION_FAILED}
    # A signed message inside a signed message ... : the MIME depth limit applies.
    data = INNER
    for _ in range(6):
        data = b"Content-Type: application/pkcs7-mime; smime-type=signed-data\r\n" \
               b"Content-Transfer-Encoding: binary\r\n\r\n" + sign(signer, data, serialization.Encoding.DER,
                                                                   [pkcs7.PKCS7Options.Binary])
    e = extract_email(HEADERS + data, Limits(mime_depth=4))
    assert Reason.MIME_DEPTH_EXCEEDED in reasons(e) and not found(e)
    assert found(extract_email(HEADERS + data))
