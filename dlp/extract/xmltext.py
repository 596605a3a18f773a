"""Fast text from XML parts (OOXML, OpenDocument, plain XML) without building a tree: paragraph and
cell ends become line breaks and tabs, other tags are dropped, entities unescaped. No entity is ever
expanded, so DTD tricks (billion laughs, external entities) have nothing to work with."""

from __future__ import annotations

import functools
import html
import re
from types import ModuleType

import re2

try:  # the C scanner for regular markup (setup.py builds it); without it, the general path below
    from dlp.extract import _markup
except ImportError:
    _markup = None  # type: ignore[assignment]

# Structure tags, each rewritten in place to a tag of the same length followed by its separator
# ("</w:p>" -> "<w:p>\n"): a same-length bytes.replace is a copy plus patches, so cheap. Covers
# WordprocessingML (w:), DrawingML (a:), OpenDocument (text:, table:) and XHTML-like plain XML. The
# prefixed families go together (a Word body holds DrawingML text boxes, OpenDocument both of its own)
# when one of their prefixes shows up in the part's head; the plain tags otherwise. Missing a family
# only costs a line break (text merges), never text.

def _separators(**tags: tuple[bytes, ...]) -> dict[bytes, bytes]:
    names = {"line": b"\n", "cell": b"\t", "space": b" "}
    return {tag: names[kind] for kind, group in tags.items() for tag in group}


_PREFIXES = (b"<w:", b"<a:", b"<text:", b"<table:")
_PREFIXED = _separators(
    line=(b"</w:p>", b"</w:tr>", b"<w:br/>", b"<w:cr/>", b"</a:p>", b"</a:tr>", b"<a:br/>", b"</text:p>", b"</text:h>",
          b"<text:line-break/>", b"</table:table-row>"),
    cell=(b"</w:tc>", b"<w:tab/>", b"</a:tc>", b"<text:tab/>", b"</table:table-cell>"),
    space=(b"<text:s/>",),
)
# Self-closing tags with attributes, by their start: <w:br w:type="page"/>, <text:s text:c="3"/>
_PREFIXED_ATTRIBUTED = {b"<w:br ": b"\n", b"<text:s ": b" ", b"<text:tab ": b"\t"}
_PLAIN = _separators(line=(b"</p>", b"</tr>", b"</li>", b"</div>", b"</row>", b"</h1>", b"</h2>", b"</h3>", b"</h4>",
                           b"</h5>", b"</h6>"), cell=(b"</c>", b"</td>", b"</th>"))
_NOTHING: dict[bytes, bytes] = {}
_HEAD = 65536
# Text nodes: everything from a ">" to the next "<". The literal ">" prefix lets the engine skip through
# tag bodies in its fast search loop, which made this ~6x cheaper than deleting every tag by regex.
_TEXT_NODE = re.compile(rb">([^<]+)")
# `[^<>]` rather than `[^>]`: a run of "<" with no ">" would otherwise make every match attempt scan to
# the end of the text (quadratic: 80 KB of "<a" took 2 s).
_TAG = re.compile(rb"<[^<>]*>")
_ANGLES_ONLY = bytes(c for c in range(256) if c not in b"<>")
_TRAILING_TABS = re.compile(r"\t+\n")
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


def _cut_comments(data: bytes) -> bytes:
    found = data.find(b"<!--")
    if found < 0:
        return data
    out = []
    pos = 0
    while found >= 0:
        close = data.find(b"-->", found + 4)
        if close < 0:
            break
        out.append(data[pos:found])
        pos = close + 3
        found = data.find(b"<!--", pos)
    out.append(data[pos:])
    return b"".join(out)


def _present(data: bytes, candidates: frozenset[bytes]) -> set[bytes]:
    """Which of `candidates` occur in `data`: one re2 (DFA) search per tag found plus one that finds
    none, instead of a substring search per candidate (each a full pass when absent)."""
    found: set[bytes] = set()
    remaining = candidates
    while remaining:
        match = _any_of(remaining).search(data)
        if match is None:
            break
        found.add(match.group())
        remaining = remaining - {match.group()}
    return found


@functools.lru_cache(maxsize=64)
def _any_of(literals: frozenset[bytes]) -> re2._Regexp:
    return re2.compile(b"|".join(re.escape(lit) for lit in sorted(literals)))


def _mark(data: bytes, tags: dict[bytes, bytes], attributed: dict[bytes, bytes]) -> bytes:
    """"</w:p>" -> "<w:p>\n", "<w:tab/>" -> "<w:tab>\t": same length, so the tag stays a tag, and a
    same-length replace is one copy plus patches."""
    for tag in _present(data, frozenset(tags) | frozenset(attributed)):
        if tag in attributed:
            data = _after_tags(data, tag, attributed[tag])
        else:
            data = data.replace(tag, (tag[:1] + tag[2:] if tag[1:2] == b"/" else tag[:-2] + b">") + tags[tag])
    return data


def _after_tags(data: bytes, start: bytes, separator: bytes) -> bytes:
    """`separator` after each self-closing tag that begins with `start` (it has attributes)."""
    found = data.find(start)
    out: list[bytes] = []
    pos = 0
    while found >= 0:
        close = data.find(b">", found)
        if close < 0:
            break
        out += (data[pos : close + 1], separator) if data[close - 1 : close] == b"/" else (data[pos : close + 1],)
        pos = close + 1
        found = data.find(start, pos)
    out.append(data[pos:])
    return b"".join(out)


def structure_rules(data: bytes) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    """({structure tag: separator}, {start of a self-closing tag with attributes: separator}) for this
    part: the prefixed families when one of their prefixes shows in its head, else the plain tags."""
    if any(data.find(prefix, 0, _HEAD) >= 0 for prefix in _PREFIXES):
        return _PREFIXED, _PREFIXED_ATTRIBUTED
    return _PLAIN, _NOTHING


def _mark_structure(data: bytes) -> bytes:
    return _mark(data, *structure_rules(data))


def compiled_scanner() -> ModuleType | None:
    """dlp.extract._markup, or None where it was not built (then every part takes the general path)."""
    return _markup


def markup_text(xml: str | bytes) -> str:
    data = xml.encode("utf-8", "surrogatepass") if isinstance(xml, str) else xml
    raw = _scanned(data)  # declines any CDATA section, even in a comment
    if raw is None and b"<![CDATA[" in data:
        data = inline_cdata(data)
        raw = _scanned(data)
    tidied = raw is not None
    if raw is None:
        raw = _general_markup(data)
    text = raw.decode("utf-8", "surrogatepass" if isinstance(xml, str) else "replace")
    if not tidied and "\t" in text:
        # A cell's last paragraph ends with the cell: one tab, no line break. (Pretty-printed XML puts
        # whitespace between the two and keeps a line break there: harmless, and not worth a regex pass.)
        # The compiled scanner applies the same two rules itself.
        text = text.replace("\n\t", "\t") if "\n\t" in text else text
        text = drop_trailing_tabs(text)
    text = html.unescape(text) if "&" in text else text
    return _BLANK_LINES.sub("\n\n", text).strip()


def _scanned(data: bytes) -> bytes | None:
    """The compiled scanner's reading of regular markup, tab rules applied; None otherwise."""
    scanner = compiled_scanner()
    return scanner.text(data, *structure_rules(_uncommented_head(data)), True) if scanner is not None else None


def _uncommented_head(data: bytes) -> bytes:
    """The part's head as _general_markup sees it when it picks the structure rules: comments cut. A
    comment that starts past the head cannot change it, so the rest of the part is read only when one
    starts in it."""
    if data.find(b"<!--", 0, _HEAD + 3) < 0:
        return data[:_HEAD]
    return _cut_comments(data)[:_HEAD]


_ATTRIBUTE = re.compile(r"""\s[\w:.\-]+\s*=\s*(?:"([^"<]*)"|'([^'<]*)')""")


def attribute_values(xml: str) -> str:
    """The attribute values of plain XML, one per line: data exports often keep their fields there
    (`<customer card="..."/>`), which a text-node reading alone would pass as empty."""
    return "\n".join(html.unescape(a or b) for a, b in _ATTRIBUTE.findall(xml) if (a or b).strip())


def drop_trailing_tabs(text: str) -> str:
    """Tabs right before a line break go (empty last cells). The regex only when a run of two or more
    is there: on tab-heavy text it costs ten times the plain replacement."""
    if "\t\t\n" in text:
        return _TRAILING_TABS.sub("\n", text)
    return text.replace("\t\n", "\n") if "\t\n" in text else text


def inline_cdata(data: bytes) -> bytes:
    """CDATA sections as escaped text: their content is text a reader sees, and left as is the scans
    would take it for a tag (or, with a "<" inside, for several)."""
    out: list[bytes] = []
    pos = 0
    found = data.find(b"<![CDATA[")
    while found >= 0:
        close = data.find(b"]]>", found + 9)
        if close < 0:
            break
        out += (data[pos:found], html.escape(data[found + 9 : close].decode("utf-8", "surrogateescape"), quote=False)
                .encode("utf-8", "surrogateescape"))
        pos = close + 3
        found = data.find(b"<![CDATA[", pos)
    out.append(data[pos:])
    return b"".join(out)


def _general_markup(data: bytes) -> bytes:
    data = _mark_structure(_cut_comments(data))
    first = data.find(b"<")
    if first < 0:
        return data
    angles = data.translate(None, _ANGLES_ONLY)
    if b"<<" in angles or angles.endswith(b"<"):
        # A "<" that opens no tag (malformed, maybe on purpose): the text after it is not behind a
        # ">", so the text-node scan would miss it. The tag-deleting pass keeps it, as text.
        return _TAG.sub(b"", data)
    return data[:first] + b"".join(_TEXT_NODE.findall(data, first))
