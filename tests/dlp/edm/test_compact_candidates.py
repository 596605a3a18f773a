"""The digit-driven postcode candidates of ASCII text are exactly what the two postcode patterns find."""

from __future__ import annotations

import random

import pytest

from dlp.edm.matcher import _COMPACT_ONE, _COMPACT_TWO, Candidates, _ascii_compact
from dlp.edm.normalize import COMPACT, MIN_DIGITS


def by_patterns(lower: str) -> list[tuple[str, str, int, int]]:
    out = [(COMPACT, m.group(), m.start(), m.end()) for m in _COMPACT_ONE.finditer(lower)
           if not (m.group().isdigit() and len(m.group()) < MIN_DIGITS)]
    for m in _COMPACT_TWO.finditer(lower):
        joined = m.group(1) + m.group(2)
        if not joined.isdigit() and any(c.isdigit() for c in joined):
            out.append((COMPACT, joined, m.start(), m.end()))
    return out


@pytest.mark.parametrize("text", [
    "ship to sw1a 1aa today", "zip 94110-1234 and 10001x", "ab cd 1e fg", "cd 1e", "ab cd ef 12 34",
    "a1 b2 c3 d4 e5", "x_12 ab-9z", "12 34", "1234 5678", "abcde1 12345678901", "", "9", "w1",
])
def test_known_shapes(text: str) -> None:
    assert _ascii_compact(text) == by_patterns(text)


def test_random_ascii_texts() -> None:
    rng = random.Random(11)
    pieces = ["a", "b", "1", "2", " ", "-", "_", ",", ".", "\n", "sw1a", "1aa", "ab", "abc", "abcd", "abcde",
              "12", "123", "12345", "x9", "  "]
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 16)))
        assert _ascii_compact(text) == by_patterns(text), text


def test_non_ascii_text_uses_the_patterns() -> None:
    text = "code ¹2ab and sw1a 1aa, ｚ9 9ｚ"
    assert Candidates(text).compact == by_patterns(text.lower())


def test_random_digit_group_texts() -> None:
    """Chains of digit groups with a few letters among them (the shortcut for pairs of digits only)."""
    rng = random.Random(12)
    pieces = ["2024", "09", "21", "9400", "613", "5", " ", " ", "-", "-", ":", "ab", "x1", "acct", "q", "  "]
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 24)))
        assert _ascii_compact(text) == by_patterns(text), text


def test_a_window_gives_the_candidates_inside_it() -> None:
    """Cut between low and high, the candidates are those of the whole text that lie inside (pairs still
    follow their chain from outside the window)."""
    rng = random.Random(14)
    pieces = ["ab", "x1", "1aa", "sw1a", "12", "2024", "09", "12345", "abcde", " ", " ", "-", ",", "\n"]
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 24)))
        low, high = sorted((rng.randint(0, len(text)), rng.randint(0, len(text))))
        inside = [c for c in _ascii_compact(text) if c[2] >= low and c[3] <= high]
        assert _ascii_compact(text, low, high) == inside, (text, low, high)
