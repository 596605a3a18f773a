"""tests/helpers/canary.py finds raw values in every common written form, and only those."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.canary import find_canaries, find_in_text, formats

CARD = "4111111111111111"
EMAIL = "jane.doe@example.com"


@pytest.mark.parametrize("text", [
    f"x {CARD} y", "x 4111 1111 1111 1111 y", "4111-1111-1111-1111", "4111.1111.1111.1111",
    "4111\u200b1111\u200b1111\u200b1111", "４１１１ １１１１ １１１１ １１１１", "card=4111%201111%201111%201111",
    "&#52;111111111111111", "\\u0034111111111111111",
])
def test_card_found_in_any_format(text: str) -> None:
    assert find_in_text([CARD], text), text


@pytest.mark.parametrize("text", [f"to {EMAIL}", "to JANE.DOE@EXAMPLE.COM", "to jane.doe%40example.com",
                                  "to jane.doe&#64;example.com"])
def test_email_found_in_any_format(text: str) -> None:
    assert find_in_text([EMAIL], text), text


@pytest.mark.parametrize("text", ["411111******1111", "[redacted:16d]", "4111 1111 1111 111", "1111 4111 1111 1111",
                                  "jane.doe@example.org"])
def test_near_misses_are_not_hits(text: str) -> None:
    assert find_in_text([CARD, EMAIL], text) == []


def test_sources_files_directories_and_pairs(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/alerts.jsonl").write_bytes(f'{{"to": "{EMAIL}"}}\n'.encode())
    (tmp_path / "clean.log").write_text("nothing here\n")
    sources = [tmp_path, ("smtp reply", "250 ok 4111 1111 1111 1111"), b"\xff" + CARD.encode()]
    hits = find_canaries([CARD, EMAIL], sources)
    assert {(h.value, h.source.rsplit("/", 1)[-1]) for h in hits} == {
        (EMAIL, "alerts.jsonl"), (CARD, "smtp reply"), (CARD, "<source 2>")}


def test_formats_cover_common_shapes() -> None:
    shapes = formats(CARD)
    assert {"4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111"} <= set(shapes)
    assert "123-45-6789" in formats("123456789")
    for shape in shapes:
        assert find_in_text([CARD], f"x {shape} y")
