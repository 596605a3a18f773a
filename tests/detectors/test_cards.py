"""Payment cards: networks, lengths, Luhn, layouts, and hard negatives."""

from __future__ import annotations

import random

import pytest

from detectors.cards import CardDetector, network_of
from dlp.bench.corpus import CARD_PREFIXES, _group, _luhn_complete
from tests.detectors.conftest import found

POSITIVES = [
    ("4111 1111 1111 1111", "4111111111111111", "visa"),
    ("4111-1111-1111-1111", "4111111111111111", "visa"),
    ("4111111111111111", "4111111111111111", "visa"),
    ("4111.1111.1111.1111", "4111111111111111", "visa"),
    ("4222222222222", "4222222222222", "visa"),
    ("5555 5555 5555 4444", "5555555555554444", "mastercard"),
    ("2223 0031 2200 3222", "2223003122003222", "mastercard"),  # 2-series, missed by presidio's pattern
    ("2720 9999 9999 9996", "2720999999999996", "mastercard"),
    ("3782 822463 10005", "378282246310005", "amex"),  # 4-6-5
    ("3714-496353-98431", "371449635398431", "amex"),
    ("6011 1111 1111 1117", "6011111111111117", "discover"),
    ("3530 1113 3330 0000", "3530111333300000", "jcb"),
    ("3056 930902 5904", "30569309025904", "diners"),
    ("6200 0000 0000 0005", "6200000000000005", "unionpay"),
    ("6759 6498 2643 8453", "6759649826438453", "maestro"),
]

NEGATIVES = [
    "4111 1111 1111 1112",  # Luhn fails
    "1234 5678 9012 3456",  # no network
    "2721 0000 0000 0003",  # just past the Mastercard 2-series
    "3782 822463 1000",  # Amex one digit short
    "9400 2611 9553 7215 3974 31",  # USPS tracking number with a Luhn-valid 2-series slice inside
    "INV4111111111111111",  # glued to letters: an identifier
    "41111111111111111111",  # 20 digits
    "Order 2024-03-15 14:22:05",
    "version 4.11.1111.1111",
]


@pytest.mark.parametrize(("text", "value", "network"), POSITIVES)
def test_detects_card(engine, text, value, network):
    hits = found(engine, f"Card: {text}, thanks", "CREDIT_CARD")
    assert [(h.value, h.label) for h in hits] == [(value, network)]
    assert hits[0].detector == "payment_cards"


@pytest.mark.parametrize("text", NEGATIVES)
def test_hard_negative_is_not_a_card(engine, text):
    assert found(engine, f"ref {text} ok", "CREDIT_CARD", min_score=0.0) == []


def test_offsets_point_at_the_card(engine):
    text = "Please charge 3782 822463 10005 today"
    (hit,) = found(engine, text, "CREDIT_CARD")
    assert text[hit.start : hit.end] == "3782 822463 10005"


def test_two_adjacent_cards_are_both_found(engine):
    hits = found(engine, "CC: 4111 1111 1111 1111 5555 5555 5555 4444 are both cards", "CREDIT_CARD")
    assert sorted(h.value for h in hits) == ["4111111111111111", "5555555555554444"]


def test_network_lengths():
    assert network_of("4111111111111111") == "visa"
    assert network_of("411111111111111") is None  # Visa is 13, 16 or 19
    assert network_of("5555555555554444") == "mastercard"
    assert network_of("555555555555444") is None
    assert network_of("2221000000000009") == "mastercard"


def test_test_numbers_reported_by_default_and_excluded_on_request():
    assert CardDetector().scan("4242 4242 4242 4242")
    assert CardDetector({"exclude_test_numbers": True}).scan("4242 4242 4242 4242") == []
    assert CardDetector({"exclude_test_numbers": True}).scan("4000 0000 0000 0002")  # not a published one


@pytest.mark.parametrize("layout", ["none", "space", "dash", "dot"])
def test_recall_and_precision_over_networks_and_layouts(engine, layout):
    rng = random.Random(layout)
    sep = {"none": "", "space": " ", "dash": "-", "dot": "."}[layout]
    hits = total = false = 0
    for network, (prefixes, lengths) in CARD_PREFIXES.items():
        for _ in range(40):
            digits = _luhn_complete(rng, rng.choice(prefixes), rng.choice(lengths))
            sizes = [4, 6, 5] if network == "amex" else [4, 6, 4] if network == "diners" else [4, 4, 4, 4, 3]
            text = f"The card is {_group(digits, sizes, sep)}. Thanks"
            got = {m.value for m in found(engine, text, "CREDIT_CARD")}
            total += 1
            hits += digits in got
            false += len(got - {digits})
            broken = digits[:-1] + str((int(digits[-1]) + 1) % 10)  # Luhn now fails
            # A shorter Luhn-valid slice (16 digits + a 3-digit tail, like a card and its CVV) is a
            # fair hit; the broken number itself must not be reported.
            false += sum(len(m.value) == len(broken) for m in found(
                engine, f"The card is {_group(broken, sizes, sep)}. Thanks", "CREDIT_CARD"))
    assert hits / total >= 0.99
    assert hits / (hits + false) >= 0.99
