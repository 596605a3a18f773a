"""Extraction: raw bytes -> readable Parts (text with a location) and what could not be inspected.

Entry points, each usable on its own by a channel:
- `extract(raw, kind)`: a whole message of any kind (AUTO: mail headers -> email, an HTTP/1.x request
  line -> http, anything else -> file);
- `extract_email`, `extract_http_request`: one RFC 5322 message, one raw HTTP/1.x request;
- `extract_http_body(headers, body)`: a body a proxy has already separated from its request;
- `extract_file(data, name)`: one attachment or upload, typed by its magic bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlp.config import Limits
from dlp.extract.budget import Budget
from dlp.extract.files import Where, extract_bytes
from dlp.extract.sniff import looks_like_email, looks_like_http_request
from dlp.model import ContentKind, Part, Reason, Uninspected

__all__ = [
    "Extraction",
    "extract",
    "extract_email",
    "extract_file",
    "extract_http_body",
    "extract_http_request",
    "sniff_kind",
]


@dataclass(frozen=True, slots=True)
class Extraction:
    kind: ContentKind  # what the input turned out to be
    parts: tuple[Part, ...]
    uninspected: tuple[Uninspected, ...] = ()


def sniff_kind(raw: bytes) -> ContentKind:
    if looks_like_http_request(raw):
        return ContentKind.HTTP
    if looks_like_email(raw):
        return ContentKind.EMAIL
    return ContentKind.FILE


def extract(
    raw: bytes,
    kind: ContentKind = ContentKind.AUTO,
    limits: Limits | None = None,
    *,
    name: str = "",
    deadline: float | None = None,
) -> Extraction:
    """Turn one message's raw bytes into parts. Never raises for bad input: problems become Uninspected."""
    if kind is ContentKind.AUTO:
        kind = sniff_kind(raw)
    if kind is ContentKind.EMAIL:
        return extract_email(raw, limits, deadline)
    if kind is ContentKind.HTTP:
        return extract_http_request(raw, limits, deadline)
    return extract_file(raw, name, limits, deadline=deadline)


def _finish(kind: ContentKind, budget: Budget) -> Extraction:
    return Extraction(kind, tuple(budget.parts), tuple(budget.uninspected))


def _guarded(budget: Budget, location: str, work: object) -> None:
    """Last line of defence: a bug on hostile input becomes `extraction_failed`, never an exception."""
    try:
        work()  # type: ignore[operator]
    except RecursionError:
        budget.skip(location, Reason.EXTRACTION_FAILED, "structure nested too deeply")
    except Exception:
        budget.skip(location, Reason.EXTRACTION_FAILED, "extraction failed")


def extract_email(raw: bytes, limits: Limits | None = None, deadline: float | None = None) -> Extraction:
    """One RFC 5322 message: headers, every text part, attachments, attached messages."""
    from dlp.extract.mime import extract_message_into

    budget = Budget.start(limits, deadline)
    _guarded(budget, "message", lambda: extract_message_into(raw, Where(""), budget))
    return _finish(ContentKind.EMAIL, budget)


def extract_http_request(raw: bytes, limits: Limits | None = None, deadline: float | None = None) -> Extraction:
    """One raw HTTP/1.x request: request line, query, headers, (chunked, encoded) body."""
    from dlp.extract.http import extract_request_into

    budget = Budget.start(limits, deadline)
    _guarded(budget, "request", lambda: extract_request_into(raw, Where(""), budget))
    return _finish(ContentKind.HTTP, budget)


def extract_http_body(
    headers: list[tuple[str, str]],
    body: bytes,
    limits: Limits | None = None,
    *,
    location: str = "body",
    deadline: float | None = None,
) -> Extraction:
    """A request (or websocket) body already separated from its framing. Content-Encoding is decoded
    here, with caps; then forms, multipart, JSON or a file by content."""
    from dlp.extract.http import body_into

    budget = Budget.start(limits, deadline)
    _guarded(budget, location, lambda: body_into(headers, body, Where(location), budget))
    return _finish(ContentKind.HTTP, budget)


def extract_file(
    data: bytes,
    name: str = "",
    limits: Limits | None = None,
    *,
    location: str = "",
    content_type: str = "",
    deadline: float | None = None,
) -> Extraction:
    """One file of any type (archive, document, text, mail...), typed by its content, not its name."""
    budget = Budget.start(limits, deadline)
    where = Where(location or name or "body")
    _guarded(budget, where.location, lambda: extract_bytes(data, where, budget, name=name, content_type=content_type))
    return _finish(ContentKind.FILE, budget)
