"""Raw HTTP/1.x requests and request bodies -> Parts: request line and query string, content-bearing
headers, chunked framing, Content-Encoding (stacked, every gzip member, capped), urlencoded and
multipart forms, JSON, and files through the file pipeline."""

from __future__ import annotations

import binascii
import contextlib
import email.message
import re
from email.parser import BytesHeaderParser
from email.policy import compat32
from urllib.parse import parse_qsl, unquote, urlsplit

from dlp.extract import decompress
from dlp.extract.budget import Budget, DecodeError, LimitHit
from dlp.extract.charset import decode_text
from dlp.extract.files import Where, add_text, extract_bytes
from dlp.extract.jsonwalk import parse_json, walk_json
from dlp.extract.mime import decode_header_value
from dlp.model import Reason

Headers = list[tuple[str, str]]

# Headers that carry protocol, not content; every other request header is scanned.
PROTOCOL_HEADERS = frozenset({
    "host", "content-length", "content-type", "content-encoding", "transfer-encoding", "connection",
    "keep-alive", "accept", "accept-encoding", "accept-language", "accept-charset", "user-agent",
    "cache-control", "pragma", "upgrade-insecure-requests", "te", "trailer", "upgrade", "expect", "dnt",
    "priority", "if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range", "range",
    "origin", "sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest", "sec-fetch-user", "sec-ch-ua",
    "sec-ch-ua-mobile", "sec-ch-ua-platform", "proxy-connection", "via", "max-forwards", "content-md5",
})
_REQUEST_LINE = re.compile(rb"^([A-Z][A-Z0-9_-]{0,19}) (\S+) (HTTP/\d\.\d)\r?$")
_HEAD_END = re.compile(rb"\r?\n\r?\n")


def _prefix(where: Where) -> str:
    """Form fields and JSON leaves of the top-level body read `form:x`, `json:$.x`; nested ones carry
    their container's location."""
    return "" if where.location == "body" else f"{where.location}/"


def header(headers: Headers, name: str) -> str:
    values = [v for k, v in headers if k.lower() == name]
    return ", ".join(values)


def extract_request_into(raw: bytes, where: Where, budget: Budget) -> None:
    match = _HEAD_END.search(raw)
    head, body = (raw[: match.start()], raw[match.end() :]) if match else (raw, b"")
    lines = head.split(b"\n")
    request_line = lines[0].rstrip(b"\r")
    m = _REQUEST_LINE.match(request_line)
    if not m:
        budget.skip("request-line", Reason.PARSE_ERROR, "not an HTTP/1.x request line")
        add_text(decode_text(raw), where.child("raw"), budget)
        return
    target = m.group(2).decode("latin-1")
    budget.add("request-line", unquote(request_line.decode("latin-1")), "text/plain")
    query = urlsplit(target).query
    for index, (key, value) in enumerate(parse_qsl(query, keep_blank_values=True)):
        location = field_location("query", key, index)
        if not _SAFE_NAME.match(key):
            add_text(key, where.child(f"{location}/name"), budget)
        if value:
            add_text(value, where.child(location), budget)
    headers: Headers = []
    for line in lines[1:]:
        line = line.rstrip(b"\r")
        if line[:1] in (b" ", b"\t") and headers:  # obs-fold
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip().decode("latin-1"))
            continue
        field, sep, content = line.partition(b":")
        if sep:
            headers.append((field.strip().decode("latin-1"), content.strip().decode("latin-1")))
    request_headers(headers, budget)
    if "chunked" in header(headers, "transfer-encoding").lower():
        body, complete = dechunk(body, budget.limits.max_message_bytes)
        if not complete:
            budget.skip("body", Reason.TRUNCATED, "chunked body is malformed or incomplete")
    else:
        length = header(headers, "content-length").split(",")[0].strip()
        if length.isdigit() and int(length) < len(body):
            body = body[: int(length)]
    if body:
        body_into(headers, body, where.child("body"), budget)


def request_headers(headers: Headers, budget: Budget) -> None:
    """Cookies (URL-decoded), Authorization (basic credentials decoded) and every custom header."""
    for name, value in headers:
        key = name.lower()
        if key in PROTOCOL_HEADERS or not value:
            continue
        text = value
        if key == "cookie":
            text = "\n".join(unquote(c.strip()) for c in value.split(";"))
        elif key in ("authorization", "proxy-authorization") and value[:6].lower() == "basic ":
            with contextlib.suppress(binascii.Error, ValueError):
                text = value + "\n" + decode_text(binascii.a2b_base64(value[6:].strip()))
        elif key in ("referer", "location") or "%" in value:
            text = unquote(value)
        add_text(text, Where(f"header:{name[:60]}"), budget, "text/plain")


def dechunk(data: bytes, cap: int) -> tuple[bytes, bool]:
    """Chunked transfer coding -> the body; tolerant of chunk extensions and bare LF. Returns whatever
    was decoded and whether the terminating zero-size chunk was seen."""
    out = bytearray()
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end == -1:
            break
        size_field = data[pos:end].split(b";", 1)[0].strip()
        try:
            size = int(size_field, 16)
        except ValueError:
            return bytes(out), False
        if size == 0:
            return bytes(out), True
        start = end + 1
        out += data[start : start + size]
        if len(out) > cap:
            return bytes(out[:cap]), False
        pos = start + size
        if data[pos : pos + 2] == b"\r\n":
            pos += 2
        elif data[pos : pos + 1] == b"\n":
            pos += 1
    return bytes(out), False


def decode_content_encoding(headers: Headers, body: bytes, where: Where, budget: Budget) -> bytes | None:
    """Undo Content-Encoding (a list, applied in order, so undone in reverse). None when any coding is
    unknown or corrupt: then the body is recorded as undecodable, never scanned as compressed bytes."""
    tokens = [t.strip().lower() for t in header(headers, "content-encoding").split(",")]
    for token in reversed([t for t in tokens if t and t != "identity"]):
        if token not in decompress.METHODS or token in ("zlib", "lzma", "bzip2", "xz"):
            budget.skip(where.location, Reason.UNDECODABLE_BODY, "unknown Content-Encoding")
            return None
        try:
            body = decompress.decompress(token, body, budget)
        except LimitHit as exc:
            budget.hit(where.location, exc)
            return None
        except DecodeError:
            budget.skip(where.location, Reason.UNDECODABLE_BODY, "corrupt Content-Encoding")
            return None
    return body


def _content_type(value: str) -> email.message.Message:
    m = email.message.Message()
    if value:
        m["Content-Type"] = value
    return m


# A field name shown as-is in a location: a short identifier without long digit runs. Anything else
# could itself be the data (locations reach incidents and the console), so it is named by its index
# and scanned as content.
_SAFE_NAME = re.compile(r"^(?!.*\d{4})[A-Za-z_][A-Za-z0-9_.\-\[\]]{0,39}$")


def field_location(kind: str, name: str, index: int) -> str:
    return f"{kind}:{name}" if _SAFE_NAME.match(name) else f"{kind}[{index}]"


def body_into(headers: Headers, body: bytes, where: Where, budget: Budget) -> None:
    """A request body: content decoding, then form / multipart / JSON / file by content."""
    decoded = decode_content_encoding(headers, body, where, budget)
    if decoded is None:
        return
    ct = _content_type(header(headers, "content-type"))
    ctype = ct.get_content_type() if header(headers, "content-type") else ""
    charset = ct.get_content_charset()
    prefix = _prefix(where)
    if ctype == "application/x-www-form-urlencoded":
        text = decode_text(decoded, charset)
        for index, (key, value) in enumerate(parse_qsl(text, keep_blank_values=True)):
            location = prefix + field_location("form", key, index)
            if not _SAFE_NAME.match(key):  # `curl -d @file` sends the whole file as one field *name*
                add_text(key, where.child(f"{location}/name"), budget)
            _field(value, where.child(location), budget)
        return
    if ctype.startswith("multipart/"):
        boundary = ct.get_param("boundary")
        if isinstance(boundary, str) and boundary:
            multipart_into(decoded, boundary, where, budget)
            return
        budget.skip(where.location, Reason.AMBIGUOUS_MIME, "multipart body without a boundary")
    if ctype == "application/json" or ctype.endswith("+json") or not ctype or ctype.startswith("text/"):
        document = parse_json(decode_text(decoded, charset)) if decoded.lstrip()[:1] in (b"{", b"[") else None
        if document is not None:
            walk_json(document, prefix, where, budget)
            return
    extract_bytes(decoded, where, budget, content_type=ctype, charset=charset)


def _field(value: str, where: Where, budget: Budget) -> None:
    if not value:
        return
    document = parse_json(value) if value.lstrip()[:1] in ("{", "[") else None
    if document is not None:
        walk_json(document, f"{where.location}/", where, budget)
    else:
        add_text(value, where, budget)


def multipart_into(body: bytes, boundary: str, where: Where, budget: Budget) -> None:
    """multipart/form-data (or mixed) split on its boundary; fields as text, files through the pipeline."""
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    pieces = body.split(delimiter)
    if len(pieces) < 3:
        budget.skip(where.location, Reason.AMBIGUOUS_MIME, "multipart body without its boundaries")
        add_text(decode_text(body), where, budget)
        return
    prefix = _prefix(where)
    for index, piece in enumerate(pieces[1:]):
        if piece.startswith(b"--"):
            break
        piece = piece[2:] if piece.startswith(b"\r\n") else piece.lstrip(b"\n")
        split = _HEAD_END.search(piece)
        head, content = (piece[: split.start()], piece[split.end() :]) if split else (b"", piece)
        content = content[:-2] if content.endswith(b"\r\n") else content.removesuffix(b"\n")
        part_headers = BytesHeaderParser(policy=compat32).parsebytes(head + b"\r\n\r\n")
        name = decode_header_value(part_headers.get_param("name", "", header="content-disposition") or "")
        filename = decode_header_value(part_headers.get_filename() or "")
        ctype = part_headers.get_content_type() if part_headers.get("content-type") else ""
        location = prefix + field_location("form", name, index)
        if name and not _SAFE_NAME.match(name):
            add_text(name, where.child(f"{location}/name"), budget)
        if filename or (ctype and not ctype.startswith("text/plain")):
            encoded = [(k, str(v)) for k, v in part_headers.items()]
            sub = where.child(location)
            if header(encoded, "content-encoding"):
                decoded = decode_content_encoding(encoded, content, sub, budget)
                if decoded is None:
                    continue
                content = decoded
            extract_bytes(content, sub, budget, name=filename, content_type=ctype,
                          charset=part_headers.get_content_charset())
        else:
            _field(decode_text(content, part_headers.get_content_charset()), where.child(location), budget)
