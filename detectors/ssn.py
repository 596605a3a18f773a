"""US Social Security numbers (US_SSN), validated against the SSA's rules.

Improves on presidio's UsSsnRecognizer, which accepts areas 900-999 (never issued: that range is ITINs
and invalid). A candidate is 3-2-4 digits joined by one kind of separator (dash, space or dot), or a
bare 9-digit number with a context word nearby ("ssn", "social security", ...). Rejected outright:
area 000, 666 or 900-999, group 00, serial 0000, one repeated digit. Numbers known to be invalid or
published (123-45-6789, 078-05-1120 from the Woolworth wallet card, 219-09-9999, 987-65-432x) are
reported with a low score (0.3): real forms and tests use them, and a real SSN is never one of them.
"""

from __future__ import annotations

from collections.abc import Iterable

from detectors._numbers import NUMBER_RUN, has_word, separators_between, word_pattern
from detectors.base import Detector, Pattern, ScanText
from dlp.model import Match

CONTEXT = ("ssn", "social security", "social sec", "soc sec", "ss#", "ss #", "ss no", "ssa", "taxpayer",
           "social")
_CONTEXT = word_pattern(CONTEXT)
KNOWN_INVALID = frozenset({"123456789", "078051120", "219099999", *(f"98765432{d}" for d in range(10))})


def ssa_valid(digits: str) -> bool:
    area, group, serial = int(digits[:3]), digits[3:5], digits[5:]
    if area == 0 or area == 666 or area >= 900:
        return False
    return group != "00" and serial != "0000" and len(set(digits)) > 1


class SsnDetector(Detector):
    name = "us_ssn"
    entities = ("US_SSN",)
    context_words = (CONTEXT,)

    def patterns(self) -> list[Pattern]:
        return [Pattern("run", NUMBER_RUN)]

    def validate(self, text: ScanText, key: str, start: int, end: int) -> Iterable[Match]:
        t = text.text
        shape = text.shape(start, end).shape
        if "9" not in shape and "324" not in shape:
            return  # neither a 9-digit group nor 3-2-4 groups: nothing below can match
        groups = text.digit_groups(start, end)
        for i, g in enumerate(groups):
            if len(g.digits) == 9:
                candidate, first, last, sep = g.digits, i, i, ""
            elif shape.startswith("324", i):
                seps = separators_between(t, groups, i, i + 2)
                if seps[0] != seps[1] or seps[0] not in ("-", " ", "."):
                    continue
                sep = seps[0]
                # A neighbouring group joined by the same separator makes this part of a longer id.
                if i > 0 and t[groups[i - 1].end : g.start] == sep:
                    continue
                if i + 3 < len(groups) and t[groups[i + 2].end : groups[i + 3].start] == sep:
                    continue
                candidate, first, last = g.digits + groups[i + 1].digits + groups[i + 2].digits, i, i + 2
            else:
                continue
            s, e = groups[first].start, groups[last].end
            if (s > 0 and t[s - 1].isalnum()) or (e < len(t) and t[e].isalnum()):
                continue
            if not ssa_valid(candidate):
                continue
            if not sep and (not text.mentions(CONTEXT) or _after_reference(text.clause_before(s, 16))):
                continue  # a bare 9-digit number is an SSN only when something says so
            context = has_word(text.clause_before(s, 40), _CONTEXT) or has_word(text.after(e, 16), _CONTEXT)
            if not sep and not context:
                continue
            if candidate in KNOWN_INVALID:
                score = 0.3
            elif context:
                score = 1.0
            else:
                score = 0.85 if sep == "-" else 0.6
            yield Match("US_SSN", s, e, score, candidate, self.name)


def _after_reference(before: str) -> bool:
    """A number right after "id", "case", "order", "#" names a record, not a person."""
    words = before.replace(":", " ").split()
    return bool(words) and (words[-1].strip(".") in ("id", "case", "order", "ref", "ticket", "invoice", "no")
                            or words[-1].endswith("#"))
