"""Find raw sensitive values (canaries) in texts and files, whatever format they were written in.

Used by leak tests: send known values through a channel, then `find_canaries(values, [log text, metrics
page, SMTP reply, block page, alert file, ...])` must come back empty. A value is found when it appears:

- as is, or case-insensitively (addresses, tokens);
- as its digits with any separators in between (`4111 1111 1111 1111`, `4111-1111-1111-1111`,
  `4111.1111.1111.1111`, `4111\u200b1111...`, full-width digits) when the value is mostly digits;
- after URL-decoding, HTML-unescaping or JSON-unescaping the text (`john%40example.com`, `&#64;`, `\\u0040`).

Import with `from helpers.canary import find_canaries` (tests/ is on sys.path through its conftest).
"""

from __future__ import annotations

import contextlib
import html
import re
import unicodedata
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# What may sit between the digits of a written number: spaces, dashes, dots, slashes, parentheses,
# zero-width characters (at most a few in a row).
_GAP = r"[\s\-./()_+\u00ad\u200b-\u200d\u2010-\u2015\u2060\u2212\ufeff]{0,3}"


@dataclass(frozen=True, slots=True)
class Hit:
    value: str  # the canary that was found
    source: str  # the name or path of the text it was found in
    how: str  # "exact" | "casefold" | "digits" (+ "/url", "/html", "/json" when found after decoding)
    offset: int  # where in the (decoded) text

    def __str__(self) -> str:
        return f"{self.source}@{self.offset}: {self.value!r} ({self.how})"


def _digits(value: str) -> str:
    return "".join(str(unicodedata.digit(c)) for c in value if c.isdigit())


def _digit_pattern(digits: str) -> re.Pattern[str]:
    # \d matches every Unicode decimal digit; the digit itself is checked after folding to ASCII.
    return re.compile(r"(?<!\d)" + _GAP.join(r"\d" for _ in digits) + r"(?!\d)")


def _decodings(text: str) -> list[tuple[str, str]]:
    out = [("", text)]
    url = urllib.parse.unquote_plus(text)
    if url != text:
        out.append(("/url", url))
    unescaped = html.unescape(text)
    if unescaped != text:
        out.append(("/html", unescaped))
    if "\\u" in text or "\\x" in text:
        with contextlib.suppress(UnicodeError):
            out.append(("/json", text.encode("latin-1", "backslashreplace").decode("unicode_escape")))
    return out


def find_in_text(values: Iterable[str], text: str, source: str = "<text>") -> list[Hit]:
    hits: list[Hit] = []
    for value in values:
        digits = _digits(value)
        # Mostly-digit values (cards, SSNs, account and phone numbers) are searched by their digits.
        numeric = len(digits) >= 6 and len(digits) >= 0.6 * len(re.sub(r"\s", "", value))
        pattern = _digit_pattern(digits) if numeric else None
        for suffix, candidate in _decodings(text):
            hit = _find_one(value, digits, pattern, candidate)
            if hit is not None:
                hits.append(Hit(value, source, hit[0] + suffix, hit[1]))
                break  # one hit per value and text is enough to fail a test
    return hits


def _find_one(value: str, digits: str, pattern: re.Pattern[str] | None, text: str) -> tuple[str, int] | None:
    index = text.find(value)
    if index >= 0:
        return "exact", index
    index = text.casefold().find(value.casefold())
    if index >= 0:
        return "casefold", index
    if pattern is not None:
        for m in pattern.finditer(text):
            if _digits(m.group()) == digits:
                return "digits", m.start()
    return None


def find_canaries(values: Iterable[str], sources: Iterable[str | bytes | Path | tuple[str, str | bytes]]) -> list[Hit]:
    """Scan texts, bytes, files (a Path: a file, or every file under a directory) or (name, text) pairs."""
    values = [v for v in values if v]
    hits: list[Hit] = []
    for n, source in enumerate(sources):
        for name, text in _texts(source, n):
            hits.extend(find_in_text(values, text, name))
    return hits


def _texts(source: str | bytes | Path | tuple[str, str | bytes], n: int) -> Iterable[tuple[str, str]]:
    if isinstance(source, tuple):
        name, body = source
        yield name, _decode(body)
    elif isinstance(source, Path):
        files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
        for path in files:
            yield str(path), _decode(path.read_bytes())
    else:
        yield f"<source {n}>", _decode(source)


def _decode(body: str | bytes) -> str:
    if isinstance(body, str):
        return body
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("latin-1")


def formats(value: str) -> list[str]:
    """Common ways a value is written, for tests that send a canary in several shapes."""
    digits = _digits(value)
    if len(digits) < 6:
        return [value]
    shapes = {value, digits}
    if len(digits) == 9:  # SSN-like
        shapes |= {f"{digits[:3]}-{digits[3:5]}-{digits[5:]}", f"{digits[:3]} {digits[3:5]} {digits[5:]}"}
    groups = [digits[i:i + 4] for i in range(0, len(digits), 4)]
    for sep in (" ", "-", ".", "\u00a0"):
        shapes.add(sep.join(groups))
    return sorted(shapes)
