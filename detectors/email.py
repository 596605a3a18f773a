"""E-mail addresses (EMAIL_ADDRESS). Match.value is the address lowercased, so that one address in any
case hashes to one value id."""

from __future__ import annotations

import re
from collections.abc import Iterable

from detectors.base import Detector, Pattern, ScanText
from dlp.model import Match

# Reported without start-of-match (much faster): the validator walks back from the "@" itself.
EMAIL_TAIL = r"[A-Za-z0-9._%+\-]@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}[^A-Za-z0-9\-]"
_ADDRESS = re.compile(r"@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}(?![A-Za-z0-9\-])")
_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
MAX_LOCAL = 64


class EmailDetector(Detector):
    name = "email"
    entities = ("EMAIL_ADDRESS",)

    def patterns(self) -> list[Pattern]:
        return [Pattern("email", EMAIL_TAIL, som=False)]

    def validate(self, text: ScanText, key: str, start: int, end: int) -> Iterable[Match]:
        t = text.text
        at = t.rfind("@", max(0, end - 300), end)
        if at <= 0:
            return
        start = at
        while start > 0 and at - start < MAX_LOCAL and t[start - 1] in _LOCAL_CHARS:
            start -= 1
        while start < at and t[start] in ".-+%_":
            start += 1
        tail = _ADDRESS.match(t, at)
        if tail is None or start == at:
            return
        end = tail.end()
        address = t[start:end]
        local, _, domain = address.partition("@")
        if not local or ".." in address or local.endswith(".") or domain.startswith(("-", ".")):
            return
        if end < len(t) and (t[end].isalnum() or t[end] == "@"):
            return
        yield Match("EMAIL_ADDRESS", start, end, 1.0, address.lower(), self.name)
