"""Keyword dictionaries: whole words, any case, homoglyphs, thousands of terms."""

from __future__ import annotations

import time

import pytest

from detectors.keywords import KeywordsDetector

LISTS = {"lists": {"markers": ["confidential", "internal use only"], "projects": ["Project Nightingale", "données"]}}


@pytest.fixture(scope="module")
def keywords() -> KeywordsDetector:
    return KeywordsDetector(LISTS)


@pytest.mark.parametrize(("text", "label"), [
    ("This is CONFIDENTIAL.", "markers"),
    ("Confidential", "markers"),
    ("cоnfidentiаl", "markers"),  # Cyrillic о and а (case E6)
    ("ϲοnfіdеntіаl", "markers"),  # Greek and Cyrillic mix
    ("conf\u200bidential", "markers"),  # a zero-width space inside
    ("For INTERNAL\nuse   only", "markers"),
    ("re: project nightingale", "projects"),
    ("Données clients", "projects"),
    ("donnees clients", "projects"),  # accents folded
])
def test_keyword_found(keywords, text, label):
    hits = keywords.scan(text)
    assert [h.label for h in hits] == [label]
    assert hits[0].entity == "KEYWORD"


@pytest.mark.parametrize("text", ["nonconfidential", "confidentiality", "internal use", "project"])
def test_whole_words_only(keywords, text):
    assert keywords.scan(text) == []


def test_offsets_in_original_text(keywords):
    text = "xx cоnfidentiаl yy"
    (hit,) = keywords.scan(text)
    assert text[hit.start : hit.end] == "cоnfidentiаl"


def test_no_lists_no_matches():
    assert KeywordsDetector({}).scan("confidential") == []


def test_thousands_of_terms_one_pass():
    terms = [f"codeword{i:05d}" for i in range(5000)]
    detector = KeywordsDetector({"lists": {"codes": terms}})
    text = ("lorem ipsum dolor sit amet " * 4000) + " CODEWORD04999 "
    assert detector.scan("warm up: compiles the 5000 patterns once") == []
    # CPU time of this process, not wall time: the machine running the tests may be busy.
    started = time.process_time()
    hits = detector.scan(text)
    elapsed = time.process_time() - started
    assert [h.value for h in hits] == ["codeword04999"]
    assert elapsed < 0.2  # ~100 KB against 5000 terms: one pass, not one per term


def test_bad_lists_option():
    with pytest.raises(ValueError):
        KeywordsDetector({"lists": ["not", "a", "mapping"]})
