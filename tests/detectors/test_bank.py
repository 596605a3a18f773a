"""IBANs (length + mod-97), ABA routing numbers (checksum + context), US bank account numbers (context)."""

from __future__ import annotations

import random

import pytest

from dlp.bench.corpus import iban as make_iban
from tests.detectors.conftest import found

IBANS = [
    ("IBAN GB82 WEST 1234 5698 7654 32 thanks", "GB82WEST12345698765432"),
    ("DE89370400440532013000", "DE89370400440532013000"),
    ("de89 3704 0044 0532 0130 00", "DE89370400440532013000"),
    ("FR14 2004 1010 0505 0001 3M02 606", "FR1420041010050500013M02606"),
    ("NO9386011117947", "NO9386011117947"),
]
NOT_IBANS = [
    "GB82WEST12345698765433",  # mod-97 fails
    "GB82WEST123456987654",  # too short for GB
    "ZZ82WEST12345698765432",  # no such country
    "DE89370400440532013000123",  # runs on
]


@pytest.mark.parametrize(("text", "value"), IBANS)
def test_iban(engine, text, value):
    hits = found(engine, text, "IBAN_CODE")
    assert [h.value for h in hits] == [value]


@pytest.mark.parametrize("text", NOT_IBANS)
def test_not_iban(engine, text):
    assert found(engine, f"account {text} x", "IBAN_CODE", min_score=0.0) == []


def test_iban_recall(engine):
    rng = random.Random(3)
    truth = [make_iban(rng) for _ in range(300)]
    hits = sum({m.value for m in found(engine, text, "IBAN_CODE")} == {value} for text, value in truth)
    assert hits / len(truth) >= 0.99


@pytest.mark.parametrize(("text", "should_flag"), [
    ("routing number 021000021", True),
    ("ABA: 011000015", True),
    ("routing number 021000022", False),  # checksum
    ("reference 021000021", False),  # no context
    ("routing 131000021", False),  # prefix 13 is not a Federal Reserve district
])
def test_aba(engine, text, should_flag):
    assert bool(found(engine, text, "ABA_ROUTING_NUMBER")) == should_flag


@pytest.mark.parametrize(("text", "should_flag"), [
    ("checking account 12345678901", True),
    ("acct # 0012-3456-7890", True),
    ("order 12345678901", False),
    ("mail to x@client-bank.example Order #4968882234480572", False),
    ("account 1111111111", False),  # one repeated digit
])
def test_us_bank_number(engine, text, should_flag):
    assert bool(found(engine, text, "US_BANK_NUMBER")) == should_flag


def test_two_ibans_a_few_words_apart_are_both_found(engine):
    """The letters and digits after one IBAN may look like the rest of it ("... 8 Refund to IBAN PL11"):
    the second IBAN is still read from its own start."""
    text = ("Bank details: CH60 1358 8654 1798 2346 8 Refund to IBAN PL11 7590 3312 1025 5723 4567 5878 please. "
            "Or NL74KCII1068945106 Refund to IBAN DE85 4469 6787 9142 6094 43 please.")
    values = {h.value for h in found(engine, text, "IBAN_CODE")}
    assert {"PL11759033121025572345675878", "DE85446967879142609443"} <= values
