"""The normaliser: what it folds, and that every offset maps back into the original text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dlp.normalize import fold_term, normalize


@pytest.mark.parametrize(("original", "folded"), [
    ("４１１１", "4111"),  # full-width digits (NFKC)
    ("٤١١١", "4111"),  # Arabic-Indic digits (unicodedata.decimal; NFKC keeps them)
    ("४१११", "4111"),  # Devanagari
    ("۴۱۱۱", "4111"),  # Extended Arabic-Indic (Persian)
    ("41\u200b11", "4111"),  # ZWSP
    ("41\u200d11\u2060", "4111"),  # ZWJ, WJ
    ("41\u00ad11\ufeff", "4111"),  # soft hyphen, BOM
    ("4111\u00a01111", "4111 1111"),  # NBSP
    ("4111\u20131111\u20141111\u22121111", "4111-1111-1111-1111"),  # en dash, em dash, minus
    ("4111\u202f1111\u20091111", "4111 1111 1111"),  # narrow NBSP, thin space
    ("cоnfidentiаl", "confidential"),  # Cyrillic о, а
    ("ϲοnfіdеntіаl", "confidential"),
    ("cönfidéntial", "confidential"),  # accents stripped
    ("ﬁle", "file"),  # ligature
    ("line\u2028break", "line\nbreak"),
])
def test_folds(original, folded):
    assert normalize(original).text == folded


def test_ascii_is_returned_as_is_without_a_map():
    n = normalize("plain 4111 text")
    assert n.text == "plain 4111 text"
    assert n.offsets is None
    assert n.to_original(6, 10) == (6, 10)


def test_offsets_map_back_across_dropped_and_expanded_characters():
    original = "x ４1\u200b1１ ﬁ y"
    n = normalize(original)
    start = n.text.index("4")
    s, e = n.to_original(start, start + 4)
    assert original[s:e] == "４1\u200b1１"
    fi = n.text.index("fi")
    assert n.to_original(fi, fi + 2) == (original.index("ﬁ"), original.index("ﬁ") + 1)


def test_fold_term():
    assert fold_term("  Strictly   CONFIDENTIAL ") == "strictly confidential"


@given(st.text(max_size=200))
def test_every_offset_maps_inside_the_original(text):
    n = normalize(text)
    if n.offsets is None:
        assert n.text == text
        return
    assert len(n.offsets) == len(n.text)
    assert all(0 <= o < len(text) for o in n.offsets)
    assert list(n.offsets) == sorted(n.offsets)
