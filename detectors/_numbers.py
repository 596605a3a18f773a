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


class Group:
    """A maximal run of digits inside a candidate, with its offsets in the normalised text. (A plain
    class: compiled (setup.py), building one costs a fraction of a named tuple.)"""

    __slots__ = ("digits", "end", "start")

    def __init__(self, digits: str, start: int, end: int) -> None:
        self.digits = digits
        self.start = start
        self.end = end

    def __repr__(self) -> str:
        return f"Group({self.digits!r}, {self.start}, {self.end})"


# The digit groups of one number run, in order.
Run = list[Group]


class RunShape:
    """A number run's digit groups, its digit count, and its layout: one character per group, chr(48 +
    its length) ("4444" for a grouped card, "324" for an SSN), so that a detector rejects a run by its
    layout with one substring test. Built in one pass for all the numeric detectors."""

    __slots__ = ("digits", "groups", "shape")

    def __init__(self, groups: Run, digits: int, shape: str) -> None:
        self.groups = groups
        self.digits = digits
        self.shape = shape


def run_shape(text: str, start: int, end: int) -> RunShape:
    # One loop over the characters: compiled (setup.py), it costs a third of a regex and its match objects.
    groups: Run = []
    layout: list[str] = []
    digits = 0
    i = start
    while i < end:
        if 48 <= ord(text[i]) <= 57:
            j = i + 1
            while j < end and 48 <= ord(text[j]) <= 57:
                j += 1
            groups.append(Group(text[i:j], i, j))
            layout.append(chr(48 + j - i))
            digits += j - i
            i = j
        else:
            i += 1
    return RunShape(groups, digits, "".join(layout))



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


def has_word(window: str, words: re.Pattern[str]) -> bool:
    """Whether any of the words compiled by `word_pattern` occurs in `window`."""
    return words.search(window) is not None


def word_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    """One alternation matching any of `words` as a whole word, for `has_word`."""
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
