"""A transaction: one unit a protocol parser hands to the monitor (an HTTP request, a mail, an AUTH
exchange, an encrypted session, the other version of overlapping bytes) with what it could not see."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dlp.model import ContentKind, Reason, Uninspected


@dataclass(slots=True)
class Transaction:
    protocol: str  # "http" | "smtp" | "tls" | "tcp" (overlap versions, gaps between transactions)
    kind: ContentKind = ContentKind.AUTO
    raw: bytes = b""  # what the inspector reads; empty when there is nothing to read
    method: str = ""  # GET/POST..., DATA/BDAT/AUTH, or what the record is about ("gap", "overlap")
    url: str = ""
    sender: str = ""
    recipients: list[str] = field(default_factory=list)
    uninspected: list[Uninspected] = field(default_factory=list)
    # Cleartext credentials seen (SMTP AUTH PLAIN/LOGIN, HTTP Basic): the mechanism and the secret
    # material, used only to compute a keyed value id. Never printed, logged or stored.
    credential_mechanism: str = ""
    credential_secret: bytes = field(default=b"", repr=False)

    def missing(self, reason: Reason, location: str, detail: str) -> None:
        if not any(u.reason is reason and u.location == location for u in self.uninspected):
            self.uninspected.append(Uninspected(location, reason, detail))


Emit = Callable[[Transaction], None]


def encrypted_session(server: str, detail: str) -> Transaction:
    """The record of a session nobody can read on the wire (TLS, STARTTLS): uninspected, never clean."""
    record = Transaction("tls", method="tls", url=server)
    record.missing(Reason.ENCRYPTED_SESSION, "session", detail)
    return record
