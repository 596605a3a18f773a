"""The work budget of one extraction: where parts and skipped content are collected, and the caps on
time, decompressed bytes and text that every extractor checks while it works."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from dlp.config import Limits
from dlp.model import Part, Reason, Uninspected


class LimitHit(Exception):
    """A limit was reached while decoding; the caller records it as Uninspected at its location."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class DecodeError(Exception):
    """The bytes are not what they claim to be (corrupt, truncated, unsupported)."""


@dataclass
class Budget:
    """Collects the results and tracks the shared caps. Single-threaded; one per `extract()` call."""

    limits: Limits
    deadline: float
    parts: list[Part] = field(default_factory=list)
    uninspected: list[Uninspected] = field(default_factory=list)
    extracted_bytes: int = 0  # decompressed or decoded bytes produced so far
    text_chars: int = 0
    members: int = 0  # archive members opened, over all archives
    _seen: set[tuple[str, Reason]] = field(default_factory=set)

    @classmethod
    def start(cls, limits: Limits | None, deadline: float | None) -> Budget:
        limits = limits or Limits()
        return cls(limits, deadline if deadline is not None else time.monotonic() + limits.time_budget_seconds)

    def expired(self) -> bool:
        return time.monotonic() > self.deadline

    def check_time(self) -> None:
        if self.expired():
            raise LimitHit(Reason.TIMEOUT, "time budget exhausted")

    def remaining_bytes(self) -> int:
        return max(0, self.limits.total_extracted_bytes - self.extracted_bytes)

    def charge(self, nbytes: int) -> None:
        """Count bytes produced by decoding; raises once the message's total is spent."""
        self.extracted_bytes += nbytes
        if self.extracted_bytes > self.limits.total_extracted_bytes:
            raise LimitHit(Reason.ARCHIVE_LIMITS_EXCEEDED, "total extracted bytes over the limit")

    def add(self, location: str, text: str, content_type: str = "") -> None:
        """Record one piece of text to scan. Empty text is dropped; text past the budget is cut."""
        if not text or text.isspace():
            return
        room = self.limits.max_text_chars - self.text_chars
        if room <= 0:
            self.skip(location, Reason.TRUNCATED, "extracted text beyond the size budget")
            return
        if len(text) > room:
            text = text[:room]
            self.skip(location, Reason.TRUNCATED, "extracted text beyond the size budget")
        self.text_chars += len(text)
        self.parts.append(Part(location, text, content_type))

    def skip(self, location: str, reason: Reason, detail: str = "") -> None:
        """Record content that was not (fully) inspected; once per location and reason."""
        key = (location, reason)
        if key in self._seen:
            return
        self._seen.add(key)
        self.uninspected.append(Uninspected(location, reason, detail))

    def hit(self, location: str, exc: LimitHit) -> None:
        self.skip(location, exc.reason, exc.detail)
