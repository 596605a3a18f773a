"""Shared pieces for numeric detectors: the digit-run pattern, digit groups, Luhn and context words.

Cards, SSNs, bank and routing numbers and phone numbers all start from the same candidate: a run of
digits joined by up to three separator characters (space, dash, dot, slash, backslash, parentheses,
and the newline, tab or "|" that split a number across lines or table cells, case E7). The engine
compiles the expression once and hands every run to each numeric detector, which splits it into digit
groups and tries the group-aligned windows that fit its format: a number is never cut out of the
middle of a longer group of digits.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

SEPARATORS = " \t\r\n\\-./|()"
_SEP_CLASS = r"[ \t\r\n\\\-./|()]"
# At least 7 digits, leading "+" for international phone numbers, then what ends the run: a character
# that is neither digit nor separator, four separators, or up to three separators before such a
# character or the end (the engine's newline sentinel). Hyperscan therefore reports each run once, at
# its end, instead of once per digit group (a third of the callbacks and nothing to merge); validators
# take the digit groups, so the terminating characters never reach a match.
_NOT_RUN = r"[^0-9 \t\r\n\\\-./|()]"
NUMBER_RUN = (rf"\+?[0-9](?:{_SEP_CLASS}{{0,3}}[0-9]){{6,}}"
              rf"(?:{_NOT_RUN}|{_SEP_CLASS}{{4}}|{_SEP_CLASS}{{1,3}}(?:{_NOT_RUN}|$))")
_DIGITS = re.compile(r"[0-9]+")


class Group(NamedTuple):
    """A maximal run of digits inside a candidate, with its offsets in the normalised text. (A named
    tuple: several are built per number run, and a frozen dataclass costs three times as much.)"""

    digits: str
    start: int
    end: int


# The digit groups of one number run, in order.
Run = list[Group]


class RunShape(NamedTuple):
    """A number run's digit count and its layout: one character per group, chr(48 + its length) ("4444"
    for a grouped card, "324" for an SSN), so that a detector rejects a run by its layout with one
    substring test."""

    digits: int
    shape: str


def run_shape(text: str, start: int, end: int) -> RunShape:
    found = _DIGITS.findall(text, start, end)
    return RunShape(sum(map(len, found)), "".join([chr(48 + len(g)) for g in found]))


def digit_groups(text: str, start: int, end: int) -> Run:
    return [Group(m.group(), m.start(), m.end()) for m in _DIGITS.finditer(text, start, end)]


def shape_of(groups: Run) -> RunShape:
    return RunShape(sum([g.end - g.start for g in groups]), "".join([chr(48 + g.end - g.start) for g in groups]))


def windows(groups: list[Group], shortest: int, longest: int):
    """Yield (first, last, digits) for every run of consecutive groups with shortest..longest digits.
    Bounded: each start extends only while the digit count can still fit."""
    n = len(groups)
    for i in range(n):
        digits = ""
        for j in range(i, n):
            digits += groups[j].digits
            size = len(digits)
            if size > longest:
                break
            if size >= shortest:
                yield i, j, digits


def separators_between(text: str, groups: list[Group], first: int, last: int) -> list[str]:
    return [text[groups[k].end : groups[k + 1].start] for k in range(first, last)]


def luhn_ok(digits: str) -> bool:
    total = 0
    parity = len(digits) % 2
    for index, ch in enumerate(digits):
        d = ord(ch) - 48
        if index % 2 == parity:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def has_word(window: str, words: tuple[str, ...]) -> bool:
    """Whether any of `words` occurs in `window` (one compiled alternation per word list)."""
    return _alternation(words).search(window) is not None


@lru_cache(maxsize=64)
def _alternation(words: tuple[str, ...]) -> re.Pattern[str]:
    def bounded(word: str) -> str:
        # Whole words, and not inside an address or host name ("client-bank.example"). The check on the
        # character before comes after the word's first letter, so that every alternative starts with a
        # literal and `re` skips ahead to the possible first letters (ten times faster than a leading
        # look-behind on context windows).
        tail = r"(?![\w\-]|\.\w)" if word[-1].isalnum() else ""
        if word[0].isalnum():
            return re.escape(word[0]) + r"(?<![\w@.\-].)" + re.escape(word[1:]) + tail
        return re.escape(word) + tail

    return re.compile("|".join(bounded(w) for w in sorted(words, key=len, reverse=True)))


def boundary_ok(text: str, start: int, end: int) -> bool:
    """The span is not glued to a letter or digit on either side (e.g. part of an id like AB1234...)."""
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return not (before.isalnum() or after.isalnum())
