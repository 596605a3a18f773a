"""Adversarial cases E1-E8 (shared/adversarial-cases.md, section E): text-level evasions.

E9 (a PAN split across two messages) is a documented limitation: each message is inspected alone.
E10 (base64 / hex / percent-encoded text) is decoded by extraction; E11 belongs to exact data match.
"""

from __future__ import annotations

import pytest

from detectors.cards import CardDetector
from tests.detectors.conftest import found

PAN = "4111111111111111"


def _card(engine, text: str, min_score: float = 0.5):
    hits = found(engine, text, "CREDIT_CARD", min_score)
    assert [h.value for h in hits] == [PAN], text
    return hits[0]


@pytest.mark.parametrize("text", ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111"])
def test_e1_spaces_and_dashes(engine, text):
    _card(engine, f"card {text} thanks")


@pytest.mark.parametrize("text", [
    "4111.1111.1111.1111", "4111/1111/1111/1111", "4111  1111  1111  1111", "4111\u00a01111\u00a01111\u00a01111",
    "4111\u20131111\u20131111\u20131111", "4111 - 1111 - 1111 - 1111", "4111\u20141111\u20141111\u20141111",
])
def test_e2_other_separators(engine, text):
    _card(engine, f"card {text} thanks")


def test_e3_full_width_digits(engine):
    text = "card ４１１１ １１１１ １１１１ １１１１ ok"
    hit = _card(engine, text)
    assert text[hit.start : hit.end] == "４１１１ １１１１ １１１１ １１１１"


@pytest.mark.parametrize("digits", [
    "٤١١١١١١١١١١١١١١١",  # Arabic-Indic
    "४१११ ११११११११११११",  # Devanagari
    "۴۱۱۱-۱۱۱۱-۱۱۱۱-۱۱۱۱",  # Extended Arabic-Indic
])
def test_e4_other_scripts_digits(engine, digits):
    text = f"card {digits} ok"
    hit = _card(engine, text)
    assert text[hit.start : hit.end] == digits


@pytest.mark.parametrize("invisible", ["\u200b", "\u200d", "\u2060", "\u00ad", "\ufeff", "\u200c"])
def test_e5_invisible_characters(engine, invisible):
    text = f"card 4{invisible}111 11{invisible}11 1111 111{invisible}1 ok"
    hit = _card(engine, text)
    assert text[hit.start : hit.end].startswith("4") and text[hit.start : hit.end].endswith("1")


def test_e6_homoglyph_keyword(engine):
    hits = found(engine, "This file is Cоnfidentiаl.", "KEYWORD")
    assert [h.label for h in hits] == ["confidential_markers"]


def test_e6_letter_for_digit_swaps_are_low_confidence(engine):
    hits = found(engine, "card 4lll 1111 1111 1111 ok", "CREDIT_CARD", min_score=0.0)
    assert [h.value for h in hits] == [PAN]
    assert hits[0].score < 0.5  # flagged for hunting, below the shipped policy's threshold
    assert found(engine, "card 4111 O111 1111 1111 ok", "CREDIT_CARD", 0.0) == []  # Luhn still applies


@pytest.mark.parametrize("text", [
    "card 4111 1111\n1111 1111 end",
    "card 4111 1111\r\n1111 1111 end",
    "| 4111 | 1111 | 1111 | 1111 |",
    "4111\t1111\t1111\t1111",
    "card:\n4111\n1111\n1111\n1111\n",
])
def test_e7_split_across_lines_and_cells(engine, text):
    _card(engine, text)


@pytest.mark.parametrize("text", [
    "order 4111 1111 1111 1112",  # Luhn-invalid 16 digits
    "id 5105 1051 0510 5101",
    "ticket 1234567812345678",
])
def test_e8_luhn_invalid_ids_are_not_cards(engine, text):
    assert found(engine, text, "CREDIT_CARD", min_score=0.0) == []


@pytest.mark.parametrize("pan", ["4111111111111111", "4242424242424242", "5555555555554444", "378282246310005"])
def test_e8_vendor_test_pans_excluded_when_configured(pan):
    assert CardDetector({"exclude_test_numbers": True}).scan(f"card {pan}") == []
    assert CardDetector().scan(f"card {pan}")  # default: reported (see detectors/cards.py)


def test_e2_to_e5_combined_keeps_value_id_stable(engine):
    plain = found(engine, "4111 1111 1111 1111", "CREDIT_CARD")[0].value
    evasive = found(engine, "４1\u200b11–1111\u00a0١١١١ 1111", "CREDIT_CARD")[0].value
    assert plain == evasive == PAN
