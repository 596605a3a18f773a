"""What a byte string is, decided by its magic bytes and structure — never by its name or declared
content type (a zip named image001.dat is a zip)."""

from __future__ import annotations

import enum
import re

from dlp.extract.charset import looks_textual
from dlp.extract.pkcs7 import looks_like_pkcs7
from dlp.extract.sealed import sealed_format


class FileType(enum.StrEnum):
    ZIP = "zip"
    GZIP = "gzip"
    BZIP2 = "bzip2"
    XZ = "xz"
    LZMA = "lzma"
    ZSTD = "zstd"
    TAR = "tar"
    SEVEN_ZIP = "7z"
    RAR = "rar"
    PDF = "pdf"
    CFB = "cfb"  # OLE compound file: legacy Office, Outlook .msg, or an encrypted OOXML package
    RTF = "rtf"
    SEALED = "sealed"  # encrypted container (OpenPGP, openssl enc, age): see dlp.extract.sealed
    PKCS7 = "pkcs7"  # S/MIME / CMS: signed (readable), enveloped (encrypted) or compressed data
    TNEF = "tnef"
    IMAGE = "image"
    EMAIL = "email"
    HTML = "html"
    TEXT = "text"
    BINARY = "binary"


_MAGIC: tuple[tuple[bytes, FileType], ...] = (
    (b"PK\x03\x04", FileType.ZIP),
    (b"PK\x05\x06", FileType.ZIP),  # empty archive
    (b"PK\x07\x08", FileType.ZIP),  # spanned marker
    (b"\x1f\x8b", FileType.GZIP),
    (b"BZh", FileType.BZIP2),
    (b"\xfd7zXZ\x00", FileType.XZ),
    (b"\x28\xb5\x2f\xfd", FileType.ZSTD),
    (b"7z\xbc\xaf\x27\x1c", FileType.SEVEN_ZIP),
    (b"Rar!\x1a\x07", FileType.RAR),
    (b"%PDF-", FileType.PDF),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", FileType.CFB),
    (b"{\\rtf", FileType.RTF),
    (b"\x78\x9f\x3e\x22", FileType.TNEF),
    (b"\x89PNG\r\n\x1a\n", FileType.IMAGE),
    (b"\xff\xd8\xff", FileType.IMAGE),
    (b"GIF87a", FileType.IMAGE),
    (b"GIF89a", FileType.IMAGE),
    (b"II*\x00", FileType.IMAGE),
    (b"MM\x00*", FileType.IMAGE),
    (b"BM", FileType.IMAGE),
    (b"\x00\x00\x01\x00", FileType.IMAGE),  # .ico
)

_MAIL_HEADERS = frozenset(
    b"from to cc subject date message-id mime-version received return-path content-type reply-to sender".split()
)
_HEADER_LINE = re.compile(rb"^([!-9;-~]+)[ \t]*:")
_HTML_START = re.compile(rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body|div|p|table|span)\b", re.I | re.S)


_ANY_MAGIC = tuple(magic for magic, _ in _MAGIC)


def sniff(data: bytes) -> FileType:
    for magic, kind in _MAGIC if data.startswith(_ANY_MAGIC) else ():  # one test rejects plain text
        if data.startswith(magic):
            # "BM" is also plain text; a bitmap's header declares its own size.
            if magic == b"BM" and int.from_bytes(data[2:6], "little") not in range(14, len(data) + 2):
                continue
            if kind is FileType.IMAGE and magic == b"\x00\x00\x01\x00" and len(data) < 22:
                continue
            return kind
    if data[:1] in (b"\x30", b"-", b" ", b"\n", b"\r") and looks_like_pkcs7(data):
        return FileType.PKCS7
    if (data[:1] >= b"\x80" or data[:1] in (b"S", b"a")) and sealed_format(data):
        return FileType.SEALED
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return FileType.IMAGE
    if data[:1] == b"\x5d" and data[1:5] in (b"\x00\x00\x80\x00", b"\x00\x00\x00\x01", b"\x00\x00\x00\x04"):
        return FileType.LZMA
    if len(data) > 262 and data[257:262] == b"ustar":
        return FileType.TAR
    if looks_like_email(data):
        return FileType.EMAIL
    if not looks_textual(data):
        return FileType.BINARY
    if _HTML_START.match(data[:1024]):
        return FileType.HTML
    return FileType.TEXT


def looks_like_email(data: bytes) -> bool:
    """The leading block is made of header lines, and names at least two well-known mail headers."""
    head = data[:8192]
    if head.startswith(b"From "):  # mbox separator line
        head = head.split(b"\n", 1)[1] if b"\n" in head else b""
    known = 0
    lines = 0
    for line in head.splitlines():
        if not line.strip():
            break
        if line[:1] in (b" ", b"\t"):
            if not lines:
                return False
            continue
        m = _HEADER_LINE.match(line)
        if not m:
            return False
        lines += 1
        if m.group(1).lower() in _MAIL_HEADERS:
            known += 1
    return known >= 2 or (known == 1 and lines >= 3)


_HTTP_REQUEST = re.compile(rb"^[A-Z][A-Z0-9_-]{1,19} [^\s]+ HTTP/1\.[01]\r?\n")


def looks_like_http_request(data: bytes) -> bool:
    return bool(_HTTP_REQUEST.match(data[:8192]))
