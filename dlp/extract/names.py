"""Names that come from the content itself — attachment file names, archive members, uuencode names:
they are scanned as text (a card number can be a file name), and shown in locations only with
anything shaped like data redacted (locations reach incidents, alerts and the console)."""

from __future__ import annotations

from dlp.extract.budget import Budget
from dlp.logs import redact_text

MAX_LABEL = 120


def label(name: str) -> str:
    return redact_text(name)[:MAX_LABEL]


def scan_name(name: str, location: str, budget: Budget) -> None:
    """Scan a name that could carry a detectable value (five or more digits, an address); plain names
    (`report.xlsx`, `f1.txt`) add nothing."""
    if "@" in name or sum(c.isdigit() for c in name) >= 5:
        budget.add(f"{location}/name", name, "text/plain")
