"""Fast text from XML parts (OOXML, OpenDocument, plain XML) without building a tree: paragraph and
cell ends become line breaks and tabs, other tags are dropped, entities unescaped. No entity is ever
expanded, so DTD tricks (billion laughs, external entities) have nothing to work with."""

from __future__ import annotations

import html
import re

# Ends of paragraphs/rows and explicit breaks -> newline; cells and tabs -> tab. Covers WordprocessingML
# (w:), DrawingML (a:), SpreadsheetML and OpenDocument (text:, table:).
_CELL_END = re.compile(r"</(?:w:p|text:p)>\s*(?=</(?:w:tc|table:table-cell)>)")
_TRAILING_TABS = re.compile(r"\t+\n")
_NEWLINE = re.compile(
    r"</(?:w:p|a:p|text:p|text:h|table:table-row|w:tr|a:tr|row|p|tr|li|div|h\d)>|<(?:w:br|w:cr|a:br|text:line-break)\b[^<>]*/>",
    re.I,
)
_TAB = re.compile(r"</(?:w:tc|a:tc|table:table-cell|c|td|th)>|<(?:w:tab|text:tab)\b[^<>]*/>", re.I)
_SPACE = re.compile(r"<text:s\b[^<>]*/>")
# `[^<>]` rather than `[^>]`: a run of "<" with no ">" would otherwise make every match attempt scan to
# the end of the text (quadratic: 80 KB of "<a" took 2 s).
_TAG = re.compile(r"<[^<>]*>")
_DECLARATIONS = re.compile(r"<!(?:DOCTYPE|ENTITY)[^<>]*>|<\?[^<>]*\?>")
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


def cut_sections(text: str, start: str, end: str) -> str:
    """`text` without its start...end sections, in one linear pass (a lazy regex for this is quadratic
    on many unterminated starts). An unterminated section is kept: better scanned than dropped."""
    found = text.find(start)
    if found < 0:
        return text
    out = []
    pos = 0
    while found >= 0:
        close = text.find(end, found + len(start))
        if close < 0:
            break
        out.append(text[pos:found])
        pos = close + len(end)
        found = text.find(start, pos)
    out.append(text[pos:])
    return "".join(out)


def markup_text(xml: str) -> str:
    text = _DECLARATIONS.sub("", cut_sections(xml, "<!--", "-->"))
    text = _CELL_END.sub("", text)  # a cell's last paragraph ends with the cell: one tab, no line break
    text = _NEWLINE.sub("\n", text)
    text = _TAB.sub("\t", text)
    text = _SPACE.sub(" ", text)
    text = _TAG.sub("", text)
    text = _TRAILING_TABS.sub("\n", text)
    text = html.unescape(text) if "&" in text else text
    return _BLANK_LINES.sub("\n\n", text).strip()
