"""The headers the relay prepends to what it forwards, and loop detection from them.

Headers are only ever prepended as raw bytes: the original message follows byte for byte (adversarial
B11), so nothing the sender wrote is re-encoded or re-folded. Our header is forgeable by whoever sends
mail, so it is never a reason to skip inspection; it only counts hops to stop a routing loop.
"""

from __future__ import annotations

import re

INSPECTED = b"X-DLP-Inspected"
UNSCANNED = b"X-DLP-Unscanned"
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_SAFE_VALUE = re.compile(r"[A-Za-z0-9_.\-]+")


def _token(value: str) -> str:
    if not _SAFE_VALUE.fullmatch(value):
        raise ValueError("header values are fixed tokens")
    return value


def inspected_header(hostname: str, verdict: str, message_id: str, incident: str | None = None) -> bytes:
    """`X-DLP-Inspected: <host>; verdict=<action>; id=<message id>[; incident=<id>]`."""
    parts = [_token(hostname), f"verdict={_token(verdict)}", f"id={_token(message_id)}"]
    if incident:
        parts.append(f"incident={_token(incident)}")
    return INSPECTED + b": " + "; ".join(parts).encode("ascii") + b"\r\n"


def unscanned_header(reason: str) -> bytes:
    return UNSCANNED + b": " + _token(reason).encode("ascii") + b"\r\n"


def hops(raw: bytes, hostname: str) -> int:
    """How many of our own X-DLP-Inspected headers (from this host) the top header block carries."""
    end = _HEADER_END.search(raw)
    block = raw[: end.start()] if end else raw
    prefix = INSPECTED.lower() + b":"
    mine = hostname.lower().encode("ascii", "replace")
    count = 0
    for line in block.split(b"\n"):
        if line.lower().startswith(prefix):
            value = line[len(prefix):].strip().lower()
            if value.split(b";", 1)[0].strip() == mine:
                count += 1
    return count
