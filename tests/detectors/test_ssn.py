"""US SSNs: SSA rules, separators, context for bare numbers, known-invalid numbers."""

from __future__ import annotations

import random

import pytest

from detectors.ssn import ssa_valid
from tests.detectors.conftest import found

CASES = [
    ("SSN 536-22-1234 on file", True),
    ("ssn: 536 22 1234", True),
    ("536.22.1234", True),
    ("536-22-1234", True),  # 3-2-4 with dashes needs no context
    ("social security number 536221234", True),
    ("my SSN is 536221234.", True),
    ("Customer id 536221234 in the CRM", False),  # bare 9 digits without context
    ("SSN 901-22-1234", False),  # area 900-999 never issued (presidio accepts it)
    ("SSN 999-22-1234", False),
    ("SSN 987-65-4321", False),  # the advertising range is in 900-999 anyway
    ("SSN 666-22-1234", False),
    ("SSN 000-22-1234", False),
    ("SSN 536-00-1234", False),
    ("SSN 536-22-0000", False),
    ("SSN 111-11-1111", False),
    ("SSN 536-22 1234", False),  # mixed separators
    ("phone 2024-536-22-1234-77", False),  # inside a longer dashed id
    ("Invoice INV536-22-1234", False),
]


@pytest.mark.parametrize(("text", "should_flag"), CASES)
def test_ssn_table(engine, text, should_flag):
    assert bool(found(engine, text, "US_SSN")) == should_flag


@pytest.mark.parametrize("number", ["123-45-6789", "078-05-1120", "219-09-9999"])
def test_known_invalid_numbers_score_low(engine, number):
    (hit,) = found(engine, f"SSN {number}", "US_SSN", min_score=0.0)
    assert hit.score < 0.5


def test_value_is_digits_only_and_offsets_match(engine):
    text = "ssn: 536 22 1234."
    (hit,) = found(engine, text, "US_SSN")
    assert hit.value == "536221234"
    assert text[hit.start : hit.end] == "536 22 1234"


def test_ssa_rules():
    assert ssa_valid("536221234")
    assert not ssa_valid("900221234")
    assert not ssa_valid("666221234")


@pytest.mark.parametrize("layout", ["-", " ", "."])
def test_recall_over_formats(engine, layout):
    rng = random.Random(layout)
    hits = total = 0
    for _ in range(200):
        area = rng.choice([a for a in range(1, 900) if a != 666])
        digits = f"{area:03d}{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}"
        text = f"Verified SSN {digits[:3]}{layout}{digits[3:5]}{layout}{digits[5:]} today."
        got = {m.value for m in found(engine, text, "US_SSN")}
        total += 1
        hits += got == {digits}
    assert hits / total >= 0.99
