"""Opportunistic, bounded decoding of encoded runs inside text: base64, hex and percent-encoding.
Only decodings that turn out to be text or a known file type are kept."""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from urllib.parse import unquote_plus

import re2

from dlp.extract.budget import Budget
from dlp.extract.sniff import FileType, sniff

# re2 scans in linear time and ~10x faster than `re` here: these run over every text part. Runs of 20+
# (not 16) keep bare card numbers from being tried as base64.
_BASE64_RUN = re2.compile(r"(?:[A-Za-z0-9+/_-]{20,}={0,2}[ \t]*\r?\n?)+")
_HEX_RUN = re2.compile(r"[0-9A-Fa-f]{24,}")
_PERCENT = re2.compile(r"%[0-9A-Fa-f]{2}")
_WHITESPACE = re.compile(r"\s+")
_ANY_LONG_RUN = re.compile(r"[A-Za-z0-9+/_-]{20}")  # every base64 or hex run above contains one
_ANY_LONG_RUN_RE2 = re2.compile(_ANY_LONG_RUN.pattern)
_PRECHECK_MAX = 384
MIN_BASE64 = 24
MAX_BLOB_NESTING = 2

# Called with decoded bytes and the location they get; the file pipeline takes them from there.
Emit = Callable[[bytes, str], None]


def _b64(run: str) -> bytes | None:
    s = _WHITESPACE.sub("", run).rstrip("=")
    if len(s) < MIN_BASE64:
        return None
    if "-" in s or "_" in s:
        s = s.replace("-", "+").replace("_", "/")
    s = s[: len(s) - (len(s) % 4 == 1)]
    try:
        return binascii.a2b_base64(s + "=" * (-len(s) % 4))
    except (binascii.Error, ValueError):
        return None


def _worth_keeping(data: bytes) -> bool:
    kind = sniff(data)
    if kind is FileType.BINARY:
        return False
    if kind in (FileType.TEXT, FileType.HTML):
        # Decodings of ordinary words are mostly control and high bytes; real text is printable.
        printable = sum(1 for b in data[:2048] if 32 <= b < 127 or b in (9, 10, 13))
        return printable >= 0.9 * min(len(data), 2048)
    return True


def decode_blobs(text: str, location: str, budget: Budget, emit: Emit, nesting: int = 0) -> None:
    """Find encoded runs in `text` and hand each useful decoding to `emit` at `location/<encoding>`."""
    if nesting >= MAX_BLOB_NESTING or len(text) < 16:
        return
    allowance = budget.limits.blob_decode_bytes
    found: dict[str, int] = {}

    def take(data: bytes | None, encoding: str) -> bool:
        nonlocal allowance
        if not data or len(data) > allowance or not _worth_keeping(data):
            return allowance > 0
        allowance -= len(data)
        index = found.get(encoding, 0)
        found[encoding] = index + 1
        emit(data, f"{location}/{encoding}" + (f"[{index}]" if index else ""))
        return allowance > 0

    # Cheap pre-checks: most texts have no long run at all. On short texts by `re` (re2's Python layer
    # costs more per call on a miss); from ~300 characters on `re`, which tries every position (~19 ns a
    # character), loses to one re2 search (its DFA, ~1 ms per 600 KB), which spares the two scans.
    any_long_run = _ANY_LONG_RUN_RE2 if len(text) > _PRECHECK_MAX else _ANY_LONG_RUN
    long_run = any_long_run.search(text) is not None
    for m in _BASE64_RUN.finditer(text) if long_run else ():
        if len(m.group()) >= MIN_BASE64 and not take(_b64(m.group()), "base64"):
            return
        if budget.expired():
            return
    for m in _HEX_RUN.finditer(text) if long_run else ():
        run = m.group()
        if not take(binascii.unhexlify(run[: len(run) - len(run) % 2]), "hex"):
            return
    if "%" in text and len(_PERCENT.findall(text[:1_000_000])) >= 3:
        decoded = text
        for _ in range(2):  # double encoding is a common evasion; two rounds cover it
            decoded = unquote_plus(decoded)
            if not _PERCENT.search(decoded):
                break
        if decoded != text:
            data = decoded.encode("utf-8", "surrogatepass")
            if len(data) <= allowance:
                emit(data, f"{location}/percent")
