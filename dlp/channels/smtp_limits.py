"""What the relay refuses before any content is read: too many sessions, hostile addresses, a full disk."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

from dlp.channels import smtp_replies as replies

# C0 controls (CR, LF, NUL, TAB, ESC, ...) and DEL: never part of a mailbox; CR/LF in an address is how
# commands get injected into the next hop's session (aiosmtplib GHSA-v3q9-hj7j-63hq).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HOSTNAME = re.compile(r"[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+")


def has_control_characters(text: str) -> bool:
    return bool(_CONTROL.search(text))


def valid_hostname(name: str) -> bool:
    """A dotted DNS name: the only shape our greeting, EHLO reply and loop header may carry."""
    return bool(_HOSTNAME.fullmatch(name)) and len(name) <= 253


class SessionLimiter:
    """Caps open sessions overall and per client address; extras get a 421 and are closed at once."""

    def __init__(self, max_sessions: int, max_per_address: int) -> None:
        self.max_sessions = max_sessions
        self.max_per_address = max_per_address
        self._per_address: Counter[str] = Counter()
        self.open = 0

    def admit(self, address: str) -> str | None:
        """None when the session may proceed (and is counted), else the refusal to send."""
        if self.open >= self.max_sessions:
            return replies.TOO_MANY_SESSIONS
        if self._per_address[address] >= self.max_per_address:
            return replies.TOO_MANY_FROM_ADDRESS
        self.open += 1
        self._per_address[address] += 1
        return None

    def release(self, address: str) -> None:
        self.open -= 1
        self._per_address[address] -= 1
        if self._per_address[address] <= 0:
            del self._per_address[address]


def low_on_space(directory: Path, min_free_bytes: int) -> bool:
    """True below the low-water mark (Postfix queue_minfree): refuse new mail rather than fail to hold it."""
    if min_free_bytes <= 0:
        return False
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free < min_free_bytes
    except OSError:
        return True
