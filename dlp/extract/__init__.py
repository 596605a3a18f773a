"""Extraction: raw bytes -> readable Parts (text with a location) and what could not be inspected.

PLACEHOLDER: decodes the input as text. The real extractor (MIME, HTTP, archives, documents) replaces
the body of `extract` and keeps its signature.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from dlp.config import Limits
from dlp.model import ContentKind, Part, Uninspected


@dataclass(frozen=True, slots=True)
class Extraction:
    kind: ContentKind  # what the input turned out to be
    parts: tuple[Part, ...]
    uninspected: tuple[Uninspected, ...] = ()


def extract(
    raw: bytes,
    kind: ContentKind = ContentKind.AUTO,
    limits: Limits | None = None,
    *,
    name: str = "",
    deadline: float | None = None,
) -> Extraction:
    """Turn one message's raw bytes into parts. Never raises for bad input: problems become Uninspected."""
    limits = limits or Limits()
    deadline = deadline or time.monotonic() + limits.time_budget_seconds
    text = raw.decode("utf-8", errors="replace")
    return Extraction(kind if kind is not ContentKind.AUTO else ContentKind.FILE, (Part(name or "body", text),))
