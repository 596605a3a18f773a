"""Keyword dictionaries (KEYWORD, label = the list's name): whole-word, case-insensitive, homoglyph-proof.

Lists come from the policy's `keywords:` section (`options["lists"] = {list_name: [terms...]}`). Every
term becomes one literal-like expression in the engine's Hyperscan database, so thousands of terms cost
one pass over the text, not one per term. Because the engine scans the normalised text (dlp.normalize:
NFKC, invisible characters dropped, accents stripped, a confusables skeleton), "cоnfidentiаl" with a
Cyrillic о and а (case E6) matches "confidential". Terms are folded the same way; the words of a
multi-word term may be separated by any run of white space, including a line break.
Match.value is the folded term (so each term has one value id).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import hyperscan

from detectors.base import Detector, Pattern, ScanText
from dlp.model import Match
from dlp.normalize import fold_term

_KEY_JOIN = "\x00"


def _expression(term: str) -> str:
    words = ["".join(c if c.isalnum() else f"\\x{{{ord(c):x}}}" for c in w) for w in term.split(" ")]
    return r"\s+".join(words)


class KeywordsDetector(Detector):
    name = "keywords"
    entities = ("KEYWORD",)

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        lists = self.options.get("lists") or {}
        if not isinstance(lists, Mapping):
            raise ValueError("detectors.keywords.lists must map a list name to its terms")
        self._patterns: list[Pattern] = []
        for list_name, terms in lists.items():
            for term in terms or ():
                folded = fold_term(str(term))
                if not folded:
                    continue
                flags = hyperscan.HS_FLAG_CASELESS
                if not folded.isascii():
                    flags |= hyperscan.HS_FLAG_UTF8 | hyperscan.HS_FLAG_UCP
                self._patterns.append(Pattern(f"{list_name}{_KEY_JOIN}{folded}", _expression(folded), flags))

    def patterns(self) -> list[Pattern]:
        return self._patterns

    def scan(self, text: str) -> list[Match]:
        return super().scan(text) if self._patterns else []

    def validate(self, text: ScanText, key: str, start: int, end: int) -> Iterable[Match]:
        t = text.text
        if (start > 0 and t[start - 1].isalnum()) or (end < len(t) and t[end].isalnum()):
            return
        list_name, _, term = key.partition(_KEY_JOIN)
        yield Match("KEYWORD", start, end, 1.0, term, label=list_name)
