"""S/MIME and CMS containers (PKCS#7): signed data is unwrapped and its content extracted (anyone can
read it, so it is no excuse to skip it); enveloped / encrypted data is reported as encrypted; anything
unparsable is reported as a failed extraction, never as plain binary.

A small BER/DER walker reads just the path ContentInfo -> SignedData -> encapContentInfo -> eContent,
with constructed and indefinite-length OCTET STRINGs (what streaming signers emit), and bounds on
nesting and piece counts so hostile encodings cannot make it loop or recurse."""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass

from dlp.extract.budget import Budget, DecodeError
from dlp.model import Reason

_PKCS7 = b"\x2a\x86\x48\x86\xf7\x0d\x01\x07"  # 1.2.840.113549.1.7
_SMIME_CT = b"\x2a\x86\x48\x86\xf7\x0d\x01\x09\x10\x01"  # 1.2.840.113549.1.9.16.1
ID_DATA = _PKCS7 + b"\x01"
ID_SIGNED = _PKCS7 + b"\x02"
ID_ENVELOPED = _PKCS7 + b"\x03"
ID_SIGNED_ENVELOPED = _PKCS7 + b"\x04"
ID_DIGESTED = _PKCS7 + b"\x05"
ID_ENCRYPTED = _PKCS7 + b"\x06"
ID_COMPRESSED = _SMIME_CT + b"\x09"
ID_AUTH_ENVELOPED = _SMIME_CT + b"\x17"
ENCRYPTED_TYPES = frozenset({ID_ENVELOPED, ID_SIGNED_ENVELOPED, ID_ENCRYPTED, ID_AUTH_ENVELOPED})
CONTAINER_TYPES = frozenset({ID_SIGNED, ID_COMPRESSED, ID_DIGESTED, *ENCRYPTED_TYPES})

# Declared types and names that promise a PKCS#7 body: if it does not parse, that is a failure.
PKCS7_CONTENT_TYPES = frozenset({"application/pkcs7-mime", "application/x-pkcs7-mime",
                                 "application/pkcs7-signature", "application/x-pkcs7-signature"})
PKCS7_SUFFIXES = (".p7m", ".p7s", ".p7c", ".p7z")

_SEQUENCE, _OCTET_STRING, _OID, _CONTEXT_0 = 0x30, 0x04, 0x06, 0xA0
_MAX_NESTING = 16  # constructed OCTET STRING inside constructed OCTET STRING ...
_MAX_PIECES = 1_000_000  # segments of one constructed OCTET STRING (streaming signers use ~1 KB each)
_MAX_WRAPS = 8  # signed data inside signed data ...
_PEM = re.compile(rb"-----BEGIN (?:PKCS7|CMS|PKCS #7 SIGNED DATA)-----(.*?)-----END [^-]+-----", re.S)
_PEM_START = re.compile(rb"\s*-----BEGIN (?:PKCS7|CMS|PKCS #7 SIGNED DATA)-----")
_HEAD = re.compile(rb"^\x30(?:[\x00-\x7f]|\x80|\x81.|\x82..|\x83...|\x84....)\x06(?:\x09|\x0b)", re.S)


class Der(DecodeError):
    """The bytes are not the PKCS#7 structure they should be."""


@dataclass(frozen=True, slots=True)
class Tlv:
    tag: int  # first identifier octet (class, constructed bit, low tag number)
    start: int  # first content octet
    end: int  # one past the last content octet (before the end-of-contents octets if indefinite)
    after: int  # first octet of the next element
    indefinite: bool

    @property
    def constructed(self) -> bool:
        return bool(self.tag & 0x20)


def read_tlv(data: bytes | memoryview, pos: int, limit: int, depth: int = 0) -> Tlv:
    """One element at `pos`, which must end by `limit`."""
    if pos + 2 > limit:
        raise Der("truncated element")
    tag = data[pos]
    pos += 1
    if tag & 0x1F == 0x1F:  # high tag number: base-128 continuation octets
        for _ in range(4):
            if pos >= limit:
                raise Der("truncated tag")
            pos += 1
            if not data[pos - 1] & 0x80:
                break
        else:
            raise Der("tag number too long")
    if pos >= limit:
        raise Der("truncated length")
    first = data[pos]
    pos += 1
    if first == 0x80:
        if not tag & 0x20:
            raise Der("indefinite length on a primitive element")
        end = _end_of_contents(data, pos, limit, depth)
        return Tlv(tag, pos, end, end + 2, True)
    if first & 0x80:
        count = first & 0x7F
        if count > 4 or pos + count > limit:
            raise Der("bad length")
        length = int.from_bytes(bytes(data[pos : pos + count]), "big")
        pos += count
    else:
        length = first
    if pos + length > limit:
        raise Der("element longer than its container")
    return Tlv(tag, pos, pos + length, pos + length, False)


def _end_of_contents(data: bytes | memoryview, pos: int, limit: int, depth: int) -> int:
    """Where an indefinite-length element's contents end: walk its children up to the 00 00 marker."""
    if depth >= _MAX_NESTING:
        raise Der("indefinite-length elements nested too deeply")
    children = 0
    while True:
        if pos + 2 > limit:
            raise Der("indefinite length without end-of-contents")
        if data[pos] == 0 and data[pos + 1] == 0:
            return pos
        children += 1
        if children > _MAX_PIECES:
            raise Der("too many elements")
        pos = read_tlv(data, pos, limit, depth + 1).after


def children(data: bytes | memoryview, tlv: Tlv, depth: int = 0) -> list[Tlv]:
    out = []
    pos = tlv.start
    while pos < tlv.end:
        child = read_tlv(data, pos, tlv.end, depth)
        out.append(child)
        pos = child.after
        if len(out) > _MAX_PIECES:
            raise Der("too many elements")
    return out


def octets(data: bytes | memoryview, tlv: Tlv, depth: int = 0) -> bytes:
    """An OCTET STRING's value, primitive or constructed (segments, possibly nested, concatenated)."""
    if not tlv.constructed:
        return bytes(data[tlv.start : tlv.end])
    if depth >= _MAX_NESTING:
        raise Der("OCTET STRING segments nested too deeply")
    pieces = []
    for child in children(data, tlv, depth):
        if child.tag & 0xDF != _OCTET_STRING:
            raise Der("constructed OCTET STRING holds something else")
        pieces.append(octets(data, child, depth + 1))
    return b"".join(pieces)


def _explicit(data: bytes | memoryview, tlv: Tlv) -> Tlv:
    """The single element inside an [0] EXPLICIT wrapper."""
    inner = children(data, tlv)
    if len(inner) != 1:
        raise Der("explicit tag does not hold one element")
    return inner[0]


def _oid(data: bytes | memoryview, tlv: Tlv) -> bytes:
    if tlv.tag != _OID:
        raise Der("expected an OBJECT IDENTIFIER")
    return bytes(data[tlv.start : tlv.end])


@dataclass(frozen=True, slots=True)
class Unwrapped:
    """What a PKCS#7 blob holds: content to extract, or why there is none."""

    content: bytes | None  # the signed (or decompressed) content; None when there is none to read
    reason: Reason | None = None  # set when the content cannot be read (encrypted)
    detail: str = ""


def looks_like_pkcs7(data: bytes) -> bool:
    """DER ContentInfo whose type is a PKCS#7 / CMS content type, or its PEM armour."""
    if _PEM_START.match(data):
        return True
    m = _HEAD.match(data[:16])
    if not m:
        return False
    oid = data[m.end() : m.end() + data[m.end() - 1]]
    return oid in CONTAINER_TYPES or oid == ID_DATA


def der_bytes(data: bytes) -> bytes:
    """The DER of a blob that may be PEM-armoured or bare base64 (some clients attach .p7m that way)."""
    if data[:1] == b"\x30":
        return data
    m = _PEM.search(data)
    body = m.group(1) if m else data
    try:
        decoded = binascii.a2b_base64(re.sub(rb"\s+", b"", body))
    except (binascii.Error, ValueError) as exc:
        raise Der("neither DER nor base64") from exc
    if decoded[:1] != b"\x30":
        raise Der("not a PKCS#7 structure")
    return decoded


def unwrap(data: bytes, budget: Budget) -> Unwrapped:
    """Peel signed (and compressed) layers off one ContentInfo. Raises DecodeError when malformed."""
    der = memoryview(der_bytes(data))
    top = read_tlv(der, 0, len(der))
    if top.tag != _SEQUENCE:
        raise Der("ContentInfo is not a SEQUENCE")
    fields = children(der, top)
    if not fields:
        raise Der("empty ContentInfo")
    kind = _oid(der, fields[0])
    if len(fields) < 2:
        return Unwrapped(None)  # a content type with no content (degenerate)
    if fields[1].tag != _CONTEXT_0:
        raise Der("ContentInfo content is not [0]")
    return _content(der, kind, _explicit(der, fields[1]), budget, 0)


def _content(der: memoryview, kind: bytes, body: Tlv, budget: Budget, wraps: int) -> Unwrapped:
    if wraps >= _MAX_WRAPS:
        raise Der("PKCS#7 layers nested too deeply")
    if kind in ENCRYPTED_TYPES:
        return Unwrapped(None, Reason.ENCRYPTED_CONTENT, "encrypted message (S/MIME enveloped data)")
    if kind == ID_DATA:
        return Unwrapped(octets(der, body) if body.tag & 0xDF == _OCTET_STRING else bytes(der[body.start : body.end]))
    if kind == ID_DIGESTED:  # DigestedData: version, digestAlgorithm, encapContentInfo, digest
        return _encapsulated(der, _field(der, body, 2), budget, wraps)
    if kind == ID_SIGNED:  # SignedData: version, digestAlgorithms, encapContentInfo, ...
        return _encapsulated(der, _field(der, body, 2), budget, wraps)
    if kind == ID_COMPRESSED:  # CompressedData: version, compressionAlgorithm, encapContentInfo
        inner = _encapsulated(der, _field(der, body, 2), budget, wraps)
        if inner.content is None:
            return inner
        from dlp.extract.decompress import decompress

        return Unwrapped(decompress("zlib", inner.content, budget))
    raise Der("not a PKCS#7 content type")


def _field(der: memoryview, body: Tlv, index: int) -> Tlv:
    if body.tag != _SEQUENCE:
        raise Der("expected a SEQUENCE")
    fields = children(der, body)
    if len(fields) <= index:
        raise Der("structure is missing fields")
    return fields[index]


def _encapsulated(der: memoryview, info: Tlv, budget: Budget, wraps: int) -> Unwrapped:
    """EncapsulatedContentInfo: eContentType, [0] EXPLICIT eContent (an OCTET STRING in CMS; PKCS#7
    v1.5 allowed the content itself). A detached signature has no eContent: nothing to read."""
    if info.tag != _SEQUENCE:
        raise Der("encapContentInfo is not a SEQUENCE")
    fields = children(der, info)
    if not fields:
        raise Der("empty encapContentInfo")
    kind = _oid(der, fields[0])
    if len(fields) < 2:
        return Unwrapped(None)
    if fields[1].tag != _CONTEXT_0:
        raise Der("eContent is not [0]")
    body = _explicit(der, fields[1])
    if kind == ID_DATA or kind not in CONTAINER_TYPES:
        if body.tag & 0xDF == _OCTET_STRING:
            return Unwrapped(octets(der, body))
        return Unwrapped(bytes(der[body.start : body.end]))
    if body.tag & 0xDF == _OCTET_STRING:  # CMS: the inner structure's DER, wrapped in an OCTET STRING
        inner = memoryview(octets(der, body))
        return _content(inner, kind, read_tlv(inner, 0, len(inner)), budget, wraps + 1)
    return _content(der, kind, body, budget, wraps + 1)
