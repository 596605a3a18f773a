"""Text normalisation against evasion, with a map from every normalised offset back to the original text.

What the detectors see is not what an agent typed: the normaliser folds the tricks that break naive
pattern matching (adversarial cases E2-E6) into plain ASCII before the multi-pattern pass:

- NFKC (full-width digits and letters, ligatures, NBSP and other compatibility spaces);
- Unicode format characters (category Cf: ZWSP, ZWJ, ZWNJ, WJ, soft hyphen, BOM, bidi marks) dropped;
- every Unicode decimal digit (Arabic-Indic, Devanagari, Bengali, Thai, ...) mapped to ASCII through
  `unicodedata.decimal`, which NFKC alone does not do;
- dash-like characters (en and em dash, minus sign, hyphen, ...) to "-" and every space separator to " ";
- accents stripped (NFKD without combining marks) so that "cönfidential" reads "confidential";
- a confusables skeleton for letters that look like ASCII ones (Cyrillic "о", "с", Greek "ο", ...);
- any other non-ASCII character is lowercased, so keyword lists in other scripts still match.

Pure ASCII text (the common case) is returned as is, without a map: the separators inside numbers
(space, dash, dot, slash, newline, tab, "|") are handled by the detectors' patterns, not here.
Characters are mapped one at a time, so a combining sequence is folded only as far as its base letter.
"""

from __future__ import annotations

import re
import unicodedata
from array import array
from functools import lru_cache

# Letters that render like ASCII letters (from Unicode's confusables.txt, the subset that matters for
# Latin-script keywords). Lower and upper case; NFKC has already folded full-width forms.
_CONFUSABLES = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w",
    "һ": "h", "ӏ": "l", "ո": "n", "ս": "u",
    "А": "A", "В": "B", "Е": "E", "Ё": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
    "Т": "T", "У": "Y", "Х": "X", "Ѕ": "S", "І": "I", "Ї": "I", "Ј": "J", "Ԛ": "Q", "Ԝ": "W", "Һ": "H",
    "Ӏ": "l",
    # Greek
    "α": "a", "ο": "o", "ρ": "p", "ν": "v", "υ": "u", "ι": "i", "κ": "k", "τ": "t", "χ": "x", "ε": "e",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
    "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X", "ϲ": "c", "Ϲ": "C", "ϳ": "j", "ϱ": "p",
    # Latin look-alikes outside ASCII
    "ı": "i", "ɡ": "g", "ɑ": "a", "ℓ": "l", "ſ": "s", "ꞵ": "b", "ɩ": "i", "ο̇": "o",
}

_DASHES = set("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2043\ufe58\ufe63\uff0d\u30fc")

_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


class Normalized:
    """Normalised text and, when it differs from the original, each character's original offset. (A
    plain class: compiled (setup.py), it is built in a fraction of a dataclass's time, once per text.)"""

    __slots__ = ("offsets", "original", "text")

    def __init__(self, text: str, original: str, offsets: array | None = None) -> None:
        self.text = text
        self.original = original
        self.offsets = offsets  # offsets[i] = index in `original` of normalised character i

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a [start, end) span of the normalised text back to a span of the original text."""
        offsets = self.offsets
        if offsets is None:
            return start, end
        if end <= start:
            pos = offsets[start] if start < len(offsets) else len(self.original)
            return pos, pos
        return offsets[start], offsets[end - 1] + 1


@lru_cache(maxsize=65536)
def fold_char(ch: str) -> str:
    """The normalised form of one non-ASCII character (possibly empty, possibly several characters)."""
    if ch in _CONFUSABLES:  # before NFKC, which maps some look-alikes elsewhere (lunate sigma ϲ -> ς)
        return _CONFUSABLES[ch]
    out = []
    for c in unicodedata.normalize("NFKC", ch):
        if c < "\x80":
            out.append(c)
            continue
        category = unicodedata.category(c)
        if category == "Cf":
            continue  # invisible: ZWSP, ZWJ, WJ, SHY, BOM, bidi marks
        digit = unicodedata.decimal(c, None)
        if digit is not None:
            out.append(str(digit))
        elif c in _DASHES or category == "Pd":
            out.append("-")
        elif category == "Zs":
            out.append(" ")
        elif category in ("Zl", "Zp"):
            out.append("\n")
        elif c in _CONFUSABLES:
            out.append(_CONFUSABLES[c])
        elif category == "Mn":
            continue  # a combining mark on its own: the base letter was already emitted
        else:
            base = "".join(b for b in unicodedata.normalize("NFKD", c) if unicodedata.category(b) != "Mn")
            if base.isascii() and base:
                out.append(base)
            else:
                out.append(_CONFUSABLES.get(c.lower(), c.lower() if len(c.lower()) == 1 else c))
    return "".join(out)


def normalize(text: str) -> Normalized:
    """Fold `text` for detection. ASCII text comes back unchanged, without an offset map."""
    if text.isascii():
        return Normalized(text, text)
    pieces: list[str] = []
    offsets = array("l")
    cursor = 0
    for run in _NON_ASCII_RUN.finditer(text):
        start, end = run.span()
        if start > cursor:
            pieces.append(text[cursor:start])
            offsets.extend(range(cursor, start))
        for index in range(start, end):
            folded = fold_char(text[index])
            if folded:
                pieces.append(folded)
                offsets.extend([index] * len(folded))
        cursor = end
    if cursor < len(text):
        pieces.append(text[cursor:])
        offsets.extend(range(cursor, len(text)))
    return Normalized("".join(pieces), text, offsets)


def fold_term(term: str) -> str:
    """A keyword as the normaliser would present it in text: folded, lowercased, single-spaced."""
    folded = normalize(term).text.lower()
    return " ".join(folded.split())
