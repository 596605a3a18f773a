"""E-mail addresses (EMAIL_ADDRESS). Match.value is the address lowercased, so that one address in any
case hashes to one value id."""

from __future__ import annotations

from collections.abc import Iterable

from detectors.base import Detector, Pattern, ScanText
from dlp.model import Match

EMAIL_RUN = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}"


class EmailDetector(Detector):
    name = "email"
    entities = ("EMAIL_ADDRESS",)

    def patterns(self) -> list[Pattern]:
        return [Pattern("email", EMAIL_RUN)]

    def validate(self, text: ScanText, key: str, start: int, end: int) -> Iterable[Match]:
        t = text.text
        while start < end and t[start] in ".-+%_":
            start += 1
        while end > start and not t[end - 1].isalpha():
            end -= 1
        address = t[start:end]
        local, _, domain = address.partition("@")
        if not local or ".." in address or local.endswith(".") or domain.startswith(("-", ".")):
            return
        if end < len(t) and (t[end].isalnum() or t[end] == "@"):
            return
        yield Match("EMAIL_ADDRESS", start, end, 1.0, address.lower())
