"""Helpers for the store tests: canary values, real messages through the real Inspector, a tree grep."""

from __future__ import annotations

from pathlib import Path

from dlp.config import Settings
from dlp.inspect import Inspector
from dlp.model import Channel, ContentKind, Envelope, Message, Verdict

CARD = "4111 1111 1111 1111"
CARD_DIGITS = "4111111111111111"
SSN = "078-05-1120"
EMAIL = "canary.person.7f3a@example.org"
CANARIES = (CARD, CARD_DIGITS, SSN, SSN.replace("-", ""), EMAIL)


def canary_email(sender: str = "agent7@callcenter.example", recipients: tuple[str, ...] = ("buyer@gmail.example",),
                 subject: str = "notes") -> bytes:
    return (f"From: {sender}\r\nTo: {', '.join(recipients)}\r\nSubject: {subject}\r\n\r\n"
            f"customer card {CARD} exp 12/29\r\nssn {SSN}\r\nreach them at {EMAIL}\r\n").encode()


class Factory:
    """Real messages through the real Inspector."""

    def __init__(self, settings: Settings) -> None:
        self.inspector = Inspector.from_settings(settings)

    def message(self, sender: str = "agent7@callcenter.example",
                recipients: tuple[str, ...] = ("buyer@gmail.example",), channel: Channel = Channel.SMTP,
                raw: bytes | None = None, destination: str = "") -> tuple[Message, Verdict, bytes]:
        raw = raw if raw is not None else canary_email(sender, recipients)
        kind = ContentKind.EMAIL if channel is Channel.SMTP else ContentKind.AUTO
        message = Message(channel, raw, kind, Envelope(sender, recipients, "10.0.0.7", "agent7", destination, "DATA"))
        verdict = self.inspector.inspect(message)
        assert verdict.incident_id, verdict
        return message, verdict, raw


def grep_tree(root: Path, needles: tuple[str, ...]) -> list[tuple[str, str]]:
    """Every (file, needle) where a raw value occurs in any file under root (bytes, several encodings)."""
    hits = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        for needle in needles:
            for encoded in (needle.encode(), needle.encode("utf-16-le")):
                if encoded in data:
                    hits.append((str(path), needle))
    return hits
