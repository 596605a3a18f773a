"""markup_text: text nodes by the fast scan, structure tags as separators, malformed markup kept."""

from __future__ import annotations

import html
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from dlp.extract.xmltext import markup_text

PAN = "4556737586899855"


def test_word_structure_becomes_lines_and_tabs() -> None:
    xml = ('<w:document><w:body><w:p><w:r><w:t>Dear Bob</w:t></w:r><w:r><w:br w:type="page"/><w:t>after break'
           '</w:t></w:r></w:p><w:tbl><w:tr><w:tc><w:p><w:r><w:t>SSN</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r>'
           '<w:t xml:space="preserve">123-45-6789</w:t></w:r></w:p></w:tc></w:tr></w:tbl><w:p><w:r><w:t>a</w:t>'
           '<w:tab/><w:t>b</w:t><w:br/><w:t>c &amp; d</w:t></w:r></w:p></w:body></w:document>')
    assert markup_text(xml) == "Dear Bob\nafter break\nSSN\t123-45-6789\na\tb\nc & d"
    assert markup_text(xml.encode()) == markup_text(xml)


def test_drawingml_text_box_in_a_word_body_keeps_its_lines() -> None:
    # A text box far down a letter: its paragraphs end lines even though no "<a:" is in the part's head.
    filler = "<w:p><w:r><w:t>x</w:t></w:r></w:p>" * 3000
    xml = (f'<w:document><w:body>{filler}<w:p><w:r><w:drawing><a:txBody><a:p><a:r><a:t>4111 1111</a:t></a:r>'
           '</a:p><a:p><a:r><a:t>1111 1111</a:t></a:r></a:p></a:txBody></w:drawing></w:r></w:p></w:body></w:document>')
    assert markup_text(xml).endswith("x\n4111 1111\n1111 1111")


def test_opendocument_spaces_with_counts_and_comments_dropped() -> None:
    xml = ('<office:text><text:p>card<text:s text:c="1"/>4111<text:s/>1111</text:p><!-- <text:p>hidden'
           ' in a comment</text:p> --><text:h>Title</text:h></office:text>')
    assert markup_text(xml) == "card 4111 1111\nTitle"


def test_stray_angle_bracket_does_not_hide_text() -> None:
    # Not XML, but a recipient can still read it: the text after a "<" that opens no tag is kept.
    for xml in (f"<w:p><w:t>card <{PAN}</w:t></w:p>", f"<w:t>x</w:t><{PAN}", f"lead {PAN}<w:t>x</w:t>"):
        assert PAN in markup_text(xml), xml


def test_non_ascii_text_survives_bytes_scan() -> None:
    xml = "<w:p><w:t>Zoë Ďurová 東京 €</w:t></w:p>"
    assert markup_text(xml.encode()) == "Zoë Ďurová 東京 €"
    assert markup_text(b"<t>\xff bad byte</t>") == "\ufffd bad byte"


_TAG = re.compile(r"<[^<>]*>")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='<>ab 9/&;="\n', max_size=80))
def test_same_text_as_deleting_every_tag(xml: str) -> None:
    """Without structure tags, the fast text-node scan must equal the plain tag deletion, malformed
    input included (the scan falls back to deletion when a "<" opens no tag)."""
    expected = _TAG.sub("", xml)
    expected = html.unescape(expected) if "&" in expected else expected
    expected = re.sub(r"\n[ \t]*\n(?:[ \t]*\n)+", "\n\n", expected).strip()
    assert markup_text(xml) == expected
