"""RFC 5322 / MIME messages -> Parts: content-bearing headers (RFC 2047 / 2231 decoded), every text
part (any charset, HTML to text), attachments through the file pipeline, attached messages
recursively; and the ambiguous cases (duplicate transfer encodings, broken boundaries) inspected in
every plausible view."""

from __future__ import annotations

import binascii
import email.errors
import email.message
import re
from dataclasses import dataclass, field
from email.header import decode_header
from email.parser import BytesParser
from email.policy import compat32
from email.utils import getaddresses

from dlp.extract.budget import Budget
from dlp.extract.charset import decode_text
from dlp.extract.files import Where, add_text, extract_bytes
from dlp.extract.html import html_to_text
from dlp.extract.names import label, scan_name
from dlp.extract.uu import UU_ENCODINGS, decode_lines, inline_blocks
from dlp.model import Reason

ADDRESS_HEADERS = frozenset({"from", "to", "cc", "bcc", "reply-to", "sender", "resent-from", "resent-to",
                             "resent-cc", "disposition-notification-to"})
# Headers that only carry routing, identifiers or structure; every other header is scanned.
STRUCTURAL_HEADERS = frozenset({
    "received", "date", "message-id", "in-reply-to", "references", "mime-version", "return-path",
    "dkim-signature", "domainkey-signature", "authentication-results", "received-spf", "delivered-to",
    "arc-seal", "arc-message-signature", "arc-authentication-results", "x-received", "resent-date",
    "resent-message-id", "content-type", "content-transfer-encoding", "content-disposition", "content-id",
    "content-length", "content-location", "content-language", "precedence", "importance", "priority",
    "x-priority", "list-id", "list-unsubscribe", "list-unsubscribe-post", "auto-submitted", "x-mailer",
    "user-agent", "x-originating-ip", "x-ms-has-attach", "x-ms-tnef-correlator", "thread-index",
    "x-ms-exchange-organization-scl", "feedback-id",
})
_BOUNDARY_DEFECTS = (
    email.errors.NoBoundaryInMultipartDefect,
    email.errors.StartBoundaryNotFoundDefect,
    email.errors.CloseBoundaryNotFoundDefect,
    email.errors.MultipartInvariantViolationDefect,
)
# S/MIME (application/pkcs7-mime) is not listed: its body says whether it is signed or encrypted, and
# signed content is read (dlp.extract.pkcs7).
_ENCRYPTED_TYPES = frozenset({"multipart/encrypted", "application/pgp-encrypted"})
_TNEF_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})


def join(where: Where, suffix: str) -> str:
    return f"{where.location}/{suffix}" if where.location else suffix


@dataclass
class _Walk:
    raw: bytes
    where: Where  # the message's own position; part locations hang off it
    budget: Budget
    leaves: int = 0
    raw_scanned: bool = False
    boundaries: list[str] = field(default_factory=list)


def extract_message_into(raw: bytes, where: Where, budget: Budget) -> None:
    """Extract one message whose part locations are prefixed with `where.location` (empty at the top)."""
    try:
        message = BytesParser(policy=compat32).parsebytes(raw)
    except Exception:
        budget.skip(where.location or "message", Reason.PARSE_ERROR, "message could not be parsed")
        add_text(decode_text(raw), where.child(join(where, "raw")), budget)
        return
    walk = _Walk(raw, where, budget)
    headers(message, where, budget)
    _entity(message, walk, where, top=True)


def headers(message: email.message.Message, where: Where, budget: Budget) -> None:
    """Subject, display names and every non-structural header (X-* and the like), decoded."""
    for name, value in message.items():
        key = name.lower()
        if key in STRUCTURAL_HEADERS:
            continue
        if key in ADDRESS_HEADERS:
            raw = str(value)
            names = [decode_header_value(n) for n, _ in getaddresses([raw]) if n]
            if not names and "=?" in raw:
                names = [decode_header_value(raw)]
            text = "; ".join(names)
        else:
            text = decode_header_value(value)
        budget.add(join(where, f"header:{name.strip()[:60]}"), text, "text/plain")


def decode_header_value(value: object) -> str:
    """RFC 2047 encoded words (any charset, lenient), and raw 8-bit header bytes, as text."""
    text = str(value)
    if any("\udc80" <= c <= "\udcff" for c in text):
        text = decode_text(text.encode("ascii", "surrogateescape"))
    if "=?" not in text:
        return text
    try:
        pieces = decode_header(text)
    except (ValueError, LookupError, email.errors.HeaderParseError, binascii.Error):
        return text
    out = []
    for piece, charset in pieces:
        out.append(decode_text(piece, charset) if isinstance(piece, bytes) else piece)
    return "".join(out)


def _raw_payload(part: email.message.Message) -> bytes:
    # get_payload() would already decode 8-bit bytes with the declared charset; the stored payload
    # keeps them as surrogate escapes, which give back the exact bytes.
    payload = part._payload  # type: ignore[attr-defined]
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8", "surrogateescape")
    return b""


def decode_transfer(raw: bytes, encoding: str) -> bytes:
    if encoding == "base64":
        cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", raw)
        cleaned = cleaned[: len(cleaned) - (len(cleaned) % 4 == 1)]
        return binascii.a2b_base64(cleaned + b"=" * (-len(cleaned) % 4))
    if encoding == "quoted-printable":
        return binascii.a2b_qp(raw)
    if encoding in UU_ENCODINGS:
        return decode_lines(raw.decode("latin-1"))
    return raw


def transfer_views(part: email.message.Message) -> tuple[list[tuple[str, bytes]], bool]:
    """One decoded view per distinct Content-Transfer-Encoding header; ambiguous when they disagree."""
    raw = _raw_payload(part)
    declared = [str(v).strip().lower() for v in part.get_all("Content-Transfer-Encoding") or []]
    encodings = list(dict.fromkeys(declared)) or ["7bit"]
    views = []
    for encoding in encodings:
        try:
            views.append((encoding, decode_transfer(raw, encoding)))
        except (binascii.Error, ValueError):
            views.append((encoding, raw))
    return views, len(encodings) > 1


def _entity(part: email.message.Message, walk: _Walk, where: Where, *, top: bool = False) -> None:
    budget = walk.budget
    if budget.expired():
        budget.skip(join(walk.where, "body"), Reason.TIMEOUT, "time budget exhausted")
        return
    if where.mime_depth > budget.limits.mime_depth:
        budget.skip(join(walk.where, "body"), Reason.MIME_DEPTH_EXCEEDED, "MIME nested deeper than the limit")
        return
    ctype = part.get_content_type()
    defects = [d for d in part.defects if isinstance(d, _BOUNDARY_DEFECTS)]
    if defects:
        _ambiguous(walk, f"multipart structure defect: {type(defects[0]).__name__}")
    if ctype == "message/partial":
        budget.skip(join(walk.where, "body"), Reason.MESSAGE_PARTIAL, "message/partial fragment cannot be reassembled")
    if part.is_multipart():
        if ctype == "message/rfc822" or part.get_content_maintype() == "message":
            _attached_messages(part, walk, where)
            return
        boundary = part.get_boundary()
        if boundary and boundary in walk.boundaries:
            _ambiguous(walk, "nested multipart reuses its parent's boundary")
        walk.boundaries.append(boundary or "")
        for extra in (part.preamble, part.epilogue):
            if extra and extra.strip():
                text = decode_text(extra.encode("ascii", "surrogateescape"))
                add_text(text, where.child(join(walk.where, "body/preamble")), budget)
        if ctype in _ENCRYPTED_TYPES:
            budget.skip(join(walk.where, "body"), Reason.ENCRYPTED_CONTENT, "encrypted message (PGP/MIME)")
        for child in part.get_payload():
            if isinstance(child, email.message.Message):
                _entity(child, walk, where.child(where.location, mime=1))
        walk.boundaries.pop()
        return
    _leaf(part, walk, where, ctype, top)


def _attached_messages(part: email.message.Message, walk: _Walk, where: Where) -> None:
    index = walk.leaves
    walk.leaves += 1
    name = part.get_filename() or "message.eml"
    for sub in part.get_payload():
        if not isinstance(sub, email.message.Message):
            continue
        inner = where.child(join(walk.where, f"attachment[{index}]:{label(decode_header_value(name))}"), mime=1)
        scan_name(decode_header_value(part.get_filename() or ""), inner.location, walk.budget)
        if inner.mime_depth > walk.budget.limits.mime_depth:
            walk.budget.skip(inner.location, Reason.MIME_DEPTH_EXCEEDED, "MIME nested deeper than the limit")
            return
        headers(sub, inner, walk.budget)
        _entity(sub, _Walk(walk.raw, inner, walk.budget, raw_scanned=True), inner, top=True)


def _leaf(part: email.message.Message, walk: _Walk, where: Where, ctype: str, top: bool) -> None:
    budget = walk.budget
    index = walk.leaves
    walk.leaves += 1
    filename = decode_header_value(part.get_filename() or "")
    maintype = part.get_content_maintype()
    disposition = part.get_content_disposition()
    inline_text = maintype == "text" and not filename and disposition != "attachment"
    if top:
        location = join(walk.where, "body")
    elif inline_text:
        location = join(walk.where, f"body[{index}]:{ctype}")
    else:
        location = join(walk.where, f"attachment[{index}]:{label(filename) or ctype}")
        scan_name(filename, location, budget)
    if ctype == "message/partial":
        budget.skip(location, Reason.MESSAGE_PARTIAL, "message/partial fragment cannot be reassembled")
    if ctype in _ENCRYPTED_TYPES:
        budget.skip(location, Reason.ENCRYPTED_CONTENT, "encrypted message (PGP)")
        return
    if maintype == "multipart":  # declared multipart, but no usable boundary: scan what is there
        _ambiguous(walk, "multipart without a usable boundary")
    views, ambiguous = transfer_views(part)
    if ambiguous:
        budget.skip(location, Reason.AMBIGUOUS_MIME, "conflicting Content-Transfer-Encoding headers")
    charset = part.get_content_charset()
    for encoding, data in views:
        view_where = where.child(f"{location}/cte:{encoding}" if ambiguous else location)
        if ctype in _TNEF_TYPES or filename.lower() == "winmail.dat":
            from dlp.extract.tnef import extract_tnef

            extract_tnef(data, view_where, budget)
        elif inline_text or (top and maintype in ("text", "multipart")):
            _inline_text(data, ctype, charset, view_where, budget)
        else:
            extract_bytes(data, view_where, budget, name=filename, content_type=ctype, charset=charset)


def _inline_text(data: bytes, ctype: str, charset: str | None, where: Where, budget: Budget) -> None:
    text = decode_text(data, charset)
    if ctype == "text/html":
        text = html_to_text(text)
    for name, content in inline_blocks(text):
        inner = where.child(f"{where.location}/uuencode:{label(name)}", archive=1)
        scan_name(name, inner.location, budget)
        extract_bytes(content, inner, budget, name=name)
    add_text(text, where, budget, ctype)


def _ambiguous(walk: _Walk, detail: str) -> None:
    """Record the ambiguity once and scan the whole raw message as text, so nothing hides in a view the
    parser did not take (blobs in it are decoded opportunistically)."""
    walk.budget.skip(join(walk.where, "body"), Reason.AMBIGUOUS_MIME, detail)
    if not walk.raw_scanned:
        walk.raw_scanned = True
        add_text(decode_text(walk.raw), walk.where.child(join(walk.where, "raw")), walk.budget)
