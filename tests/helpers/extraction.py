"""Views of an Extraction that the extraction tests assert on, and the zip files they feed it."""

from __future__ import annotations

import io
import zipfile

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


def make_zip(members: dict[str, str | bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip file of these members, in this order."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()
