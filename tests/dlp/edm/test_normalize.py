"""Field normalisation: different spellings of one value meet; the scan side derives the same keys."""

from __future__ import annotations

import pytest

from dlp.edm.matcher import Candidates
from dlp.edm.normalize import (
    COMPACT,
    DATE,
    DIGITS,
    EMAIL,
    PHONE,
    WORDS,
    DateOrder,
    FieldOptions,
    FieldType,
    PhoneRegion,
    normalize_field,
    phone_e164,
)

US = FieldOptions("US", DateOrder.MDY)


@pytest.mark.parametrize(("field_type", "spellings", "key"), [
    (FieldType.NAME, ["John Smith", "SMITH, John", "  john   smith ", "Smith John", "Jöhn Smith"],
     (WORDS, "john smith")),
    (FieldType.NAME, ["Mary O'Brien", "O’BRIEN, MARY", "Mary OBrien"], (WORDS, "mary obrien")),
    (FieldType.TEXT, ["12 High Street", "12, HIGH STREET"], (WORDS, "12 high street")),
    (FieldType.ACCOUNT, ["00123456", "0012-3456", "ACC 0012 3456", "００１２３４５６"], (DIGITS, "00123456")),
    (FieldType.CARD, ["4929 1234 5678 9012", "4929-1234-5678-9012"], (DIGITS, "4929123456789012")),
    (FieldType.SSN, ["123-45-6789", "123 45 6789"], (DIGITS, "123456789")),
    (FieldType.EMAIL, ["John.Smith@Example.COM", " john.smith@example.com "], (EMAIL, "john.smith@example.com")),
    (FieldType.PHONE, ["(555) 201-4567", "555.201.4567", "+1 555 201 4567", "1-555-201-4567", "+15552014567"],
     (PHONE, "+15552014567")),
    (FieldType.DATE, ["03/12/1985", "1985-03-12", "March 12, 1985", "12 Mar 1985", "1985-03-12T00:00:00"],
     (DATE, "1985-03-12")),
    (FieldType.POSTCODE, ["SW1A 1AA", "sw1a1aa", "SW1A-1AA"], (COMPACT, "sw1a1aa")),
])
def test_spellings_of_one_value_share_a_key(field_type, spellings, key):
    for spelling in spellings:
        assert normalize_field(field_type, spelling, US) == [key], spelling


@pytest.mark.parametrize(("field_type", "value"), [
    (FieldType.ACCOUNT, "1234"),  # under five digits: too common to mean anything
    (FieldType.EMAIL, "not an address"),
    (FieldType.PHONE, "12"),
    (FieldType.DATE, "31/31/1985"),
    (FieldType.DATE, "03/12/85"),  # two-digit year: ambiguous, left out
    (FieldType.POSTCODE, "12"),
    (FieldType.NAME, "J"),
    (FieldType.NAME, "   "),
])
def test_unusable_values_are_left_out(field_type, value):
    assert normalize_field(field_type, value, US) == []


def test_date_order_option_reads_numeric_dates():
    assert normalize_field(FieldType.DATE, "03/12/1985", FieldOptions("GB", DateOrder.DMY)) == [(DATE, "1985-12-03")]


def test_phone_region_option():
    assert normalize_field(FieldType.PHONE, "020 7946 0958", FieldOptions("GB")) == [(PHONE, "+442079460958")]


@pytest.mark.parametrize(("region", "written"), [
    ("US", "(555) 201-4567"), ("US", "1 555 201 4567"), ("US", "+1 555-201-4567"), ("US", "011 44 20 7946 0958"),
    ("GB", "020 7946 0958"), ("GB", "+44 20 7946 0958"), ("GB", "0044 20 7946 0958"), ("FR", "01 23 45 67 89"),
])
def test_scan_side_phone_candidates_include_the_indexed_form(region, written):
    indexed = phone_e164(written, region)
    assert indexed
    cand = Candidates(f"call {written} today")
    region_rule = PhoneRegion.for_region(region)
    derived = set()
    for digits, _s, _e, plus in cand.numbers:
        if 7 <= len(digits) <= 15:
            derived |= region_rule.candidates(digits, plus)
    assert indexed in derived


def test_scan_side_dates_cover_both_orders():
    cand = Candidates("born 03/12/1985")
    assert {v for k, v, _s, _e in cand.dates if k == DATE} == {"1985-03-12", "1985-12-03"}


def test_short_numbers_are_not_candidates():
    assert Candidates("room 1234, floor 12, ext 99").numbers == []
