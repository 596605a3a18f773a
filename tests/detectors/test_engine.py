"""The DetectorSet engine: registry, options, overlaps, plain detectors, threads."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from detectors.base import Detector, DetectorSet, Pattern, build_detectors, load_all
from dlp.model import Match


def test_every_family_is_registered_by_a_stable_name():
    names = set(load_all())
    assert {"payment_cards", "us_ssn", "iban", "aba_routing", "us_bank_number", "email", "phone", "ip_address",
            "secrets", "keywords"} <= names


def test_disabled_detector_is_skipped():
    engine = build_detectors({"payment_cards": {"enabled": False}})
    assert "payment_cards" not in {d.name for d in engine.detectors}
    assert [m for m in engine.scan("card 4111 1111 1111 1111") if m.entity == "CREDIT_CARD"] == []


def test_card_is_not_also_a_phone_or_bank_number(engine):
    matches = engine.scan("account card 4111 1111 1111 1111 call")
    assert [m.entity for m in matches] == ["CREDIT_CARD"]


def test_plain_detector_without_patterns_still_runs():
    class Lookup(Detector):
        name = "test_lookup_only"
        entities = ("CUSTOMER_RECORD",)

        def scan(self, text: str) -> list[Match]:
            i = text.find("ACME-42")
            return [Match("CUSTOMER_RECORD", i, i + 7, 1.0, "ACME-42")] if i >= 0 else []

    try:
        engine = DetectorSet([Lookup()])
        (m,) = engine.scan("record ACME-42 here")
        assert m.detector == "test_lookup_only"
    finally:
        Detector.registry.pop("test_lookup_only", None)


def test_empty_and_odd_text(engine):
    assert engine.scan("") == []
    assert engine.scan("\ud800 lone surrogate 4111 1111 1111 1111")[0].value == "4111111111111111"
    assert engine.scan("\x00" * 1000) == []


def test_match_at_the_very_end(engine):
    text = "card 4111111111111111"
    (m,) = engine.scan(text)
    assert (m.start, m.end) == (5, len(text))


def test_threads_share_one_engine(engine):
    text = "card 4111 1111 1111 1111, ssn 536-22-1234, mail a.b@example.com " * 20
    expected = sorted((m.entity, m.start) for m in engine.scan(text))
    barrier = threading.Barrier(4)

    def work(_: int) -> list:
        barrier.wait()
        return [sorted((m.entity, m.start) for m in engine.scan(text)) for _ in range(50)]

    with ThreadPoolExecutor(4) as pool:
        for results in pool.map(work, range(4)):
            assert all(r == expected for r in results)


def test_strong_match_claims_its_span_and_a_following_phone_is_still_found(engine):
    # The phone validator skips the card's and the SSN's groups (they are claimed), not the numbers after.
    found = {(m.entity, m.value) for m in engine.scan("card 4111 1111 1111 1111 +44 20 7946 0958 thanks")}
    assert found == {("CREDIT_CARD", "4111111111111111"), ("PHONE_NUMBER", "+442079460958")}
    found = {(m.entity, m.value) for m in engine.scan("ssn 536-22-1234 (415) 446-8074")}
    assert found == {("US_SSN", "536221234"), ("PHONE_NUMBER", "+14154468074")}


def test_claimed_span_containment():
    from detectors.base import ScanText
    from dlp.normalize import normalize

    view = ScanText(normalize("x" * 40))
    view.claimed.append((5, 21))
    assert view.is_claimed(5, 21) and view.is_claimed(8, 12)
    assert not view.is_claimed(4, 12) and not view.is_claimed(20, 22)


def test_context_words_found_when_lowercasing_changes_the_text_length(engine):
    # "İ" lowercases to two characters: context lookups fall back from the cached lowercase text.
    for prefix in ("", "İİİ "):
        found = {(m.entity, m.value) for m in engine.scan(f"{prefix}customer ssn 536221234 and routing 021000021")}
        assert found == {("US_SSN", "536221234"), ("ABA_ROUTING_NUMBER", "021000021")}, prefix


def test_context_words_from_the_pass_equal_the_lowercase_search(engine):
    # ASCII texts get their context-word occurrences from the Hyperscan pass (caseless literals): the
    # lists must be exactly those that ScanText builds itself with str.find on the lowercased text.
    from detectors.base import ScanText
    from dlp.normalize import normalize

    text = "Routing: 021000021. SSN 536221234, ACCT# 12345678 (Checking), routing#021000021 Social"
    seen: dict[tuple[str, ...], list[int]] = {}

    lists = tuple(words for d in engine.detectors for words in d.context_words)
    assert len(lists) >= 3, "SSN, routing and account detectors declare their context words"

    class Spy(Detector):
        context_words = lists

        def patterns(self):
            return [Pattern("digit", "[0-9]")]

        def validate(self, view, key, start, end):
            seen.update({words: list(found) for words, found in view._mentions.items()})
            return ()

    DetectorSet([Spy()]).scan(text)
    reference = ScanText(normalize(text))
    for words in lists:
        assert seen[words] == reference._occurrences(words), words
    found = {(m.entity, m.value) for m in engine.scan(text)}
    assert {("ABA_ROUTING_NUMBER", "021000021"), ("US_SSN", "536221234"), ("US_BANK_NUMBER", "12345678")} <= found
