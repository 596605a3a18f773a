"""The shared vocabulary: Message, Part, Finding, Uninspected and Verdict, as immutable values."""

from __future__ import annotations

import enum
import itertools
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit


class Channel(enum.StrEnum):
    SMTP = "smtp"
    WEB = "web"
    PASSIVE = "passive"
    SCAN = "scan"  # `dlp scan` and replays: no enforcement


class ContentKind(enum.StrEnum):
    """How the raw bytes of a message are to be read."""

    EMAIL = "email"  # an RFC 5322 message
    HTTP = "http"  # a raw HTTP/1.x request (request line, headers, body)
    FILE = "file"  # anything else: an attachment, an upload, a websocket payload
    AUTO = "auto"  # let extraction decide by content


class Action(enum.StrEnum):
    """What a channel does with a message; ordered by severity (the most severe matching rule wins)."""

    PASS = "pass"
    ALERT = "alert"
    QUARANTINE = "quarantine"
    BLOCK = "block"

    @property
    def rank(self) -> int:
        return _ACTION_RANK[self]

    @staticmethod
    def most_severe(actions: list[Action] | tuple[Action, ...]) -> Action:
        return max(actions, key=lambda a: a.rank, default=Action.PASS)


_ACTION_RANK = {Action.PASS: 0, Action.ALERT: 1, Action.QUARANTINE: 2, Action.BLOCK: 3}


class Severity(enum.StrEnum):
    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


class Reason(enum.StrEnum):
    """Why some content was not (fully) inspected. A fixed set: these are metric label values."""

    PARSE_ERROR = "parse_error"
    EXTRACTION_FAILED = "extraction_failed"
    TIMEOUT = "timeout"
    TRUNCATED = "truncated"
    ENCRYPTED_ARCHIVE = "encrypted_archive"
    ENCRYPTED_CONTENT = "encrypted_content"
    ARCHIVE_LIMITS_EXCEEDED = "archive_limits_exceeded"
    ARCHIVE_DEPTH_EXCEEDED = "archive_depth_exceeded"
    DECOMPRESSION_RATIO_EXCEEDED = "decompression_ratio_exceeded"
    UNDECODABLE_ARCHIVE = "undecodable_archive"
    UNSUPPORTED_ARCHIVE = "unsupported_archive"
    AMBIGUOUS_ARCHIVE = "ambiguous_archive"
    MIME_DEPTH_EXCEEDED = "mime_depth_exceeded"
    AMBIGUOUS_MIME = "ambiguous_mime"
    MESSAGE_PARTIAL = "message_partial"
    UNDECODABLE_TNEF = "undecodable_tnef"
    UNDECODABLE_BODY = "undecodable_body"
    NOT_INSPECTED_IMAGE = "not_inspected_image"
    BINARY_CONTENT = "binary_content"
    TLS_PASSTHROUGH = "tls_passthrough"
    ENCRYPTED_SESSION = "encrypted_session"
    REASSEMBLY_GAP = "reassembly_gap"
    OVERLAP_DIFFERENT_DATA = "overlap_different_data"
    EVICTED = "evicted"
    INSPECTION_ERROR = "inspection_error"
    UNSUPPORTED_PROTOCOL = "unsupported_protocol"


_id_source: tuple[int, str, itertools.count[int]] = (0, "", itertools.count())


def new_message_id() -> str:
    """Unique per process and across processes (a random prefix per process, renewed after a fork),
    without a system call per message."""
    global _id_source
    pid = os.getpid()
    if _id_source[0] != pid:
        _id_source = (pid, secrets.token_hex(5), itertools.count())
    return f"m-{_id_source[1]}{next(_id_source[2]):06x}"


def new_incident_id(now: datetime | None = None) -> str:
    """Short, sortable, unguessable: INC-20261128-8F3A1C2D."""
    now = now or datetime.now(UTC)
    return f"INC-{now:%Y%m%d}-{secrets.token_hex(4).upper()}"


def destination_host(destination: str) -> str:
    """`scheme://host[:port]` of a URL (credentials, path and query dropped: they can carry personal
    data); anything that is not a URL (an SMTP next hop, a server address) as it is."""
    if "://" not in destination:
        return destination
    parts = urlsplit(destination)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}" if parts.netloc else ""


@dataclass(frozen=True, slots=True)
class Envelope:
    """Who sent what where. Only channel metadata; never content."""

    sender: str = ""
    recipients: tuple[str, ...] = ()
    client_address: str = ""
    user: str = ""  # authenticated user / agent id, when the channel knows it
    destination: str = ""  # web: the URL; smtp: the next hop; passive: server address
    method: str = ""  # HTTP method, or the SMTP verb that carried the data

    @property
    def agent(self) -> str:
        """The identity that aggregation windows count against."""
        return self.user or self.sender or self.client_address


@dataclass(frozen=True, slots=True)
class Message:
    """One unit of outbound content as a channel hands it to the inspection core."""

    channel: Channel
    raw: bytes
    kind: ContentKind = ContentKind.AUTO
    envelope: Envelope = field(default_factory=Envelope)
    id: str = field(default_factory=new_message_id)
    received: datetime = field(default_factory=lambda: datetime.now(UTC))
    name: str = ""  # a file name or source label, when there is one


@dataclass(frozen=True, slots=True)
class Part:
    """A piece of extracted text with a location a person can read (`attachment[2]:clients.zip/a.csv`)."""

    location: str
    text: str
    content_type: str = ""


@dataclass(frozen=True, slots=True)
class Uninspected:
    """Content that could not be inspected (fully), and why. `detail` is fixed text, never content."""

    location: str
    reason: Reason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Match:
    """A detector's raw hit in one text: `value` is the normalised value, used only for hashing."""

    entity: str
    start: int
    end: int
    score: float
    value: str
    detector: str = ""
    label: str = ""  # a safe extra fact, such as the card network or the secret type


@dataclass(frozen=True, slots=True)
class Finding:
    """What was found, where, in a form safe to store and show: never the raw value."""

    entity: str
    detector: str
    score: float
    location: str
    start: int
    end: int
    masked: str
    value_id: str
    label: str = ""
    context: str = ""  # the surrounding text with every finding in it masked


@dataclass(frozen=True, slots=True)
class Verdict:
    """The inspection core's decision for one message."""

    action: Action
    severity: Severity = Severity.NONE
    rules: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()
    uninspected: tuple[Uninspected, ...] = ()
    incident_id: str | None = None
    monitor_only: bool = False  # computed action is recorded but not enforced
    enforced_action: Action | None = None  # what the channel should do; defaults to `action`
    kind: str = ""  # what extraction found the input to be (email, http, file)

    @property
    def effective_action(self) -> Action:
        return self.enforced_action if self.enforced_action is not None else self.action

    @property
    def entities(self) -> tuple[str, ...]:
        return tuple(sorted({f.entity for f in self.findings}))
