"""Views of an Extraction that the extraction tests assert on."""

from __future__ import annotations

from dlp.extract import Extraction
from dlp.model import Reason


def parts(e: Extraction) -> dict[str, str]:
    """Text by location; parts that share a location are joined in order."""
    out: dict[str, str] = {}
    for p in e.parts:
        out[p.location] = out.get(p.location, "") + p.text
    return out


def reasons(e: Extraction) -> set[Reason]:
    """Why anything was not inspected."""
    return {u.reason for u in e.uninspected}
