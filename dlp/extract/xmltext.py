"""Fast text from XML parts (OOXML, OpenDocument, plain XML) without building a tree: paragraph and
cell ends become line breaks and tabs, other tags are dropped, entities unescaped. No entity is ever
expanded, so DTD tricks (billion laughs, external entities) have nothing to work with."""

from __future__ import annotations

import functools
import html
import re
from dataclasses import dataclass

import numpy as np
import re2

try:  # the compiled scanner for regular markup (setup.py); without it, the Python paths below
    from dlp.extract import _markup
except ImportError:
    _markup = None

# Structure tags, each rewritten in place to a tag of the same length followed by its separator
# ("</w:p>" -> "<w:p>\n"): a same-length bytes.replace is a copy plus patches, so cheap. Covers
# WordprocessingML (w:), DrawingML (a:), OpenDocument (text:, table:) and XHTML-like plain XML. A family
# is applied when its prefix shows up in the part's head (where the root declares its namespaces);
# missing one only costs a line break (text merges), never text.

def _separators(**tags: tuple[bytes, ...]) -> dict[bytes, bytes]:
    names = {"line": b"\n", "cell": b"\t", "space": b" "}
    return {tag: names[kind] for kind, group in tags.items() for tag in group}


_Family = tuple[bytes, dict[bytes, bytes], dict[bytes, bytes]]
_FAMILIES: tuple[_Family, ...] = (
    # (probe, {tag: separator}, {start of a self-closing tag with attributes: separator})
    (b"<w:", _separators(line=(b"</w:p>", b"</w:tr>", b"<w:br/>", b"<w:cr/>"), cell=(b"</w:tc>", b"<w:tab/>")),
     {b"<w:br ": b"\n"}),  # <w:br w:type="page"/>
    (b"<a:", _separators(line=(b"</a:p>", b"</a:tr>", b"<a:br/>"), cell=(b"</a:tc>",)), {}),
    (b"<text:", _separators(line=(b"</text:p>", b"</text:h>", b"<text:line-break/>"), cell=(b"<text:tab/>",),
                            space=(b"<text:s/>",)),
     {b"<text:s ": b" ", b"<text:tab ": b"\t"}),  # <text:s text:c="3"/>
    (b"<table:", _separators(line=(b"</table:table-row>",), cell=(b"</table:table-cell>",)), {}),
)
_PLAIN = _separators(line=(b"</p>", b"</tr>", b"</li>", b"</div>", b"</row>", b"</h1>", b"</h2>", b"</h3>", b"</h4>",
                           b"</h5>", b"</h6>"), cell=(b"</c>", b"</td>", b"</th>"))
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
    """({structure tag: separator}, {start of a self-closing tag with attributes: separator}) of the
    families whose prefix shows in the part's head; the plain XML tags when none does."""
    head = data[:_HEAD]
    tags: dict[bytes, bytes] = {}
    attributed: dict[bytes, bytes] = {}
    for probe, family, family_attributed in _FAMILIES:
        if probe in head:
            tags.update(family)
            attributed.update(family_attributed)
    return (tags, attributed) if tags else (_PLAIN, {})


def _mark_structure(data: bytes) -> bytes:
    return _mark(data, *structure_rules(data))


def markup_text(xml: str | bytes) -> str:
    data = xml.encode("utf-8", "surrogatepass") if isinstance(xml, str) else xml
    scanned = _markup.text(data, *structure_rules(data), True) if _markup is not None else None
    fast = (scanned, True) if scanned is not None else _fast_markup(data)
    if fast is None and b"<![CDATA[" in data:
        data = inline_cdata(data)
        fast = _fast_markup(data)
    raw, tidied = fast if fast is not None else (_general_markup(data), False)
    text = raw.decode("utf-8", "surrogatepass" if isinstance(xml, str) else "replace")
    if not tidied and "\t" in text:
        # A cell's last paragraph ends with the cell: one tab, no line break. (Pretty-printed XML puts
        # whitespace between the two and keeps a line break there: harmless, and not worth a regex pass.)
        # The fast scan has done this on its separators; again here when text nodes hold tabs or breaks.
        text = text.replace("\n\t", "\t") if "\n\t" in text else text
        text = drop_trailing_tabs(text)
    text = html.unescape(text) if "&" in text else text
    return _BLANK_LINES.sub("\n\n", text).strip()


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
    out = []
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


# ------------------------------------------------------------------ vectorised scan (the common case)
#
# Python's regex engine costs ~40 ns at every ">" of a document, and most of an OOXML part is tags. When
# the markup is regular - every "<" closed by a ">" before the next "<", no ">" outside a tag - the tag
# boundaries are two numpy searches, tags are told apart by their first and last bytes, and the text
# comes out as one gather: no Python work per tag, about half the CPU on a Word body. Anything irregular
# (a ">" in text or in an attribute value, a comment holding tags, a stray "<") takes the general path
# above, which is exact; tests/dlp/extract/test_fast_scan.py holds the two to the same output.

# Position arrays cost up to ~20 bytes per input byte on tag-dense (hostile) parts (the general path:
# ~6): bigger parts go the general way.
FAST_SCAN_LIMIT = 8 * 1024 * 1024
FAST_SCAN_MIN = 8 * 1024  # below this, numpy's fixed cost per call is more than the regex scan's
SEPARATOR_BYTES = b"\n\t "
_SEPARATOR_CODE = {b"\n": 1, b"\t": 2, b" ": 3}


@dataclass(frozen=True, slots=True)
class Tags:
    """Where each tag of a regular document starts ("<") and ends (">"), over its bytes."""

    array: np.ndarray  # the document's bytes, zero-padded to whole 8-byte words plus one
    words: np.ndarray  # the same memory as little-endian 8-byte words
    size: int
    lt: np.ndarray
    gt: np.ndarray

    def byte(self, offset: int) -> np.ndarray:
        """Each tag's byte at `offset` from its "<"."""
        return self.array[self.lt + offset]

    def before_close(self) -> np.ndarray:
        """Each tag's byte before its ">" ("/" for a self-closing tag)."""
        return self.array[self.gt - 1]

    def text_starts(self) -> np.ndarray:
        """Start of the text before each tag, and of the text after the last one."""
        return np.concatenate(([0], self.gt + 1))

    def text_lengths(self) -> np.ndarray:
        return np.concatenate((self.lt, [self.size])) - self.text_starts()


def scan_tags(data: bytes) -> Tags | None:
    if not data or len(data) > FAST_SCAN_LIMIT:
        return None
    padded = data + b"\0" * (16 - len(data) % 8)
    array = np.frombuffer(padded, np.uint8)
    lt = np.flatnonzero(array == 60)
    gt = np.flatnonzero(array == 62)
    if not len(lt) or len(lt) != len(gt) or not (lt < gt).all() or not (gt[:-1] < lt[1:]).all():
        return None
    return Tags(array, np.frombuffer(padded, "<u8"), len(data), lt, gt)


_GATHER_PIECE = 1 << 16  # output bytes per indexed copy: its index array (8 bytes an entry) stays in reused memory


def gather(source: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> bytes:
    """The concatenation of source[start : start + length] for each segment. An indexed copy, in pieces:
    one index array for the whole output costs more in page faults than the copying itself."""
    keep = lengths > 0
    if not keep.all():
        starts, lengths = starts[keep], lengths[keep]
    ends = np.cumsum(lengths)
    total = int(ends[-1]) if len(ends) else 0
    if not total:
        return b""
    pieces = []
    cuts = np.searchsorted(ends, np.arange(_GATHER_PIECE, total + _GATHER_PIECE, _GATHER_PIECE), "left") + 1
    first = 0
    for last in np.minimum(cuts, len(ends)).tolist():
        if last <= first:
            continue
        piece_lengths = lengths[first:last]
        offset = int(ends[first - 1]) if first else 0
        index = np.repeat(starts[first:last] - (ends[first:last] - piece_lengths - offset), piece_lengths)
        index += np.arange(len(index), dtype=index.dtype)
        pieces.append(source[index].tobytes())
        first = last
    return b"".join(pieces)


def keys8(tags: Tags, positions: np.ndarray) -> np.ndarray:
    """The 8 bytes from each position as one little-endian integer: two aligned 8-byte words, shifted
    together (a 2-D byte gather costs five times more)."""
    positions = np.maximum(positions, 0)
    word = positions >> 3
    low, high = tags.words[word], tags.words[word + 1]
    shift = ((positions & 7) << 3).astype(np.uint64)
    return np.where(shift == 0, low, (low >> shift) | (high << ((np.uint64(64) - shift) & np.uint64(63))))


def _key(literal: bytes) -> tuple[int, int]:
    """(value, mask) of a literal's first 8 bytes, as keys8 reads them."""
    head = literal[:8]
    return int.from_bytes(head.ljust(8, b"\0"), "little"), (1 << (8 * len(head))) - 1


def _tag_codes(tags: Tags) -> np.ndarray:
    """The separator code (see _SEPARATOR_CODE) each tag stands for, by the families in use (as in
    _mark_structure, but a family counts when any of its tags occurs, not only in the head). Every
    structure tag closes something ("</w:p>") or closes itself ("<w:tab/>"), so only those are looked
    at. Tags of up to 8 bytes are looked up at once by their bytes (a sorted table and one search);
    longer ones match on their length, first 8 and last 8 bytes; self-closing tags with attributes on
    their start."""
    self_closing = tags.before_close() == 47
    second = tags.byte(1)
    candidates = np.flatnonzero((second == 47) | self_closing)
    codes = np.zeros(len(tags.lt), np.uint8)
    if not len(candidates):
        return codes
    first = keys8(tags, tags.lt[candidates])
    families = [(t, a) for probe, t, a in _FAMILIES if _opens(tags, second, probe)] or [(_PLAIN, {})]
    short = {tag: separator for literal, _ in families for tag, separator in literal.items() if len(tag) <= 8}
    lengths = tags.gt[candidates] - tags.lt[candidates] + 1
    table = np.array(sorted(_key(tag)[0] for tag in short), np.uint64)
    codes_by_key = np.array([_SEPARATOR_CODE[short[tag]] for tag in sorted(short, key=lambda t: _key(t)[0])],
                            np.uint8)
    found = np.zeros(len(candidates), np.uint8)
    if short:
        own = first & _LENGTH_MASKS[np.minimum(lengths, 8)]  # each tag's own bytes (tags under 8 bytes)
        spot = np.minimum(np.searchsorted(table, own), len(table) - 1)
        hit = (table[spot] == own) & (lengths <= 8)
        found[hit] = codes_by_key[spot[hit]]
    last = None
    closing = self_closing[candidates]
    for literal, attributed in families:
        for tag, separator in literal.items():
            if len(tag) <= 8:
                continue
            value, mask = _key(tag)
            last = keys8(tags, tags.gt[candidates] - 7) if last is None else last
            hit = ((lengths == len(tag)) & ((first & np.uint64(mask)) == np.uint64(value))
                   & (last == np.uint64(_key(tag[-8:])[0])))
            found |= hit.view(np.uint8) * np.uint8(_SEPARATOR_CODE[separator])
        for start, separator in attributed.items():
            value, mask = _key(start)
            hit = closing & ((first & np.uint64(mask)) == np.uint64(value))
            found |= hit.view(np.uint8) * np.uint8(_SEPARATOR_CODE[separator])
    codes[candidates] = found
    return codes


_LENGTH_MASKS = np.array([(1 << (8 * n)) - 1 for n in range(8)] + [(1 << 64) - 1], np.uint64)


NEWLINE, TAB, SPACE = 1, 2, 3  # separator codes, as _SEPARATOR_CODE gives them (0: text)


@dataclass(frozen=True, slots=True)
class Segments:
    """The pieces of the output in document order, none empty: text spans and separators. `kinds` is
    0 for text, else the separator's code; starts index the gather source (document bytes, then
    SEPARATOR_BYTES, then whatever follows)."""

    starts: np.ndarray
    lengths: np.ndarray
    kinds: np.ndarray


def merge_segments(text_starts: np.ndarray, text_lengths: np.ndarray, codes: np.ndarray, size: int) -> Segments:
    """Text i (before tag i) and the separator of tag j, ordered (text i first when i <= j), empties
    left out: merged by rank, never sorted."""
    texts = np.flatnonzero(text_lengths)
    separators = np.flatnonzero(codes)
    text_at = np.arange(len(texts)) + np.searchsorted(separators, texts, "left")
    separator_at = np.arange(len(separators)) + np.searchsorted(texts, separators, "right")
    count = len(texts) + len(separators)
    starts = np.empty(count, np.int64)
    lengths = np.ones(count, np.int64)
    kinds = np.zeros(count, np.uint8)
    starts[text_at] = text_starts[texts]
    lengths[text_at] = text_lengths[texts]
    kind = codes[separators]
    starts[separator_at] = size - 1 + kind.astype(np.int64)
    kinds[separator_at] = kind
    return Segments(starts, lengths, kinds)


def tidy(segments: Segments, *, cell_paragraphs: bool) -> Segments:
    """The string rules of markup_text / sheet_text applied to the separators before any text exists
    (a pass over the whole text each, otherwise): a line break right before a tab goes when
    `cell_paragraphs` (a cell's last paragraph ends with the cell), and a run of tabs right before a
    line break goes (empty trailing cells). Exact as long as no text span holds a tab or a line break
    itself; see exact()."""
    kinds = segments.kinds
    keep = np.ones(len(kinds), bool)
    if cell_paragraphs and len(kinds) > 1:
        keep[:-1] = ~((kinds[:-1] == NEWLINE) & (kinds[1:] == TAB))
        segments = Segments(segments.starts[keep], segments.lengths[keep], kinds[keep])
        kinds = segments.kinds
        keep = np.ones(len(kinds), bool)
    tab = np.flatnonzero(kinds == TAB)
    if not len(tab):
        return segments
    after = np.zeros(len(tab), np.uint8)  # the kind of the segment after each tab (0 at the end: text-like)
    inside = tab + 1 < len(kinds)
    after[inside] = kinds[tab[inside] + 1]
    dropped = after == NEWLINE
    chained = np.flatnonzero(after == TAB)
    if len(chained):  # runs of tabs: what follows the run decides
        not_tab = np.flatnonzero(kinds != TAB)
        following = np.searchsorted(not_tab, tab[chained])
        ends_run = following < len(not_tab)
        dropped[chained[ends_run]] = kinds[not_tab[following[ends_run]]] == NEWLINE
    keep[tab[dropped]] = False
    return Segments(segments.starts[keep], segments.lengths[keep], kinds[keep])


def exact(raw: bytes, segments: Segments) -> bool:
    """No tab or line break in `raw` but the separators' (so tidy() was exact)."""
    kinds = segments.kinds
    return raw.count(b"\t") == np.count_nonzero(kinds == TAB) and raw.count(b"\n") == np.count_nonzero(
        kinds == NEWLINE)


def gather_segments(document: np.ndarray, segments: Segments, extra: np.ndarray | None = None) -> bytes:
    parts = [document, np.frombuffer(SEPARATOR_BYTES, np.uint8)]
    source = np.concatenate([*parts, extra] if extra is not None else parts)
    return gather(source, segments.starts, segments.lengths)


def _opens(tags: Tags, second: np.ndarray, prefix: bytes) -> bool:
    """Whether any tag starts with `prefix` ("<w:"): checked byte by byte on the tags whose second byte
    (`second`, each tag's) is right."""
    found = tags.lt[second == prefix[1]]
    for offset, value in enumerate(prefix[2:], start=2):
        found = found[tags.array[found + offset] == value]
    return bool(len(found))


def _fast_markup(data: bytes) -> tuple[bytes, bool] | None:
    """(text, whether the tab rules are already applied), or None for irregular markup."""
    if len(data) < FAST_SCAN_MIN:
        return None
    tags = scan_tags(data)
    if tags is None:
        return None
    if np.any((tags.byte(1) == 33) & (tags.byte(2) == 91)):  # "<![": CDATA, which the general path inlines first
        return None
    codes = _tag_codes(tags)
    starts, lengths = tags.text_starts(), tags.text_lengths()
    _drop_prolog_space(data, tags, lengths)
    merged = merge_segments(starts, lengths, codes, tags.size)
    segments = tidy(merged, cell_paragraphs=True)
    raw = gather_segments(tags.array[: tags.size], segments)
    if exact(raw, segments):
        return raw, True
    # Text nodes with tabs or breaks of their own: the string rules on the untidied text, as the general
    # path has them (a break dropped before a tab can make a new "\n\t" pair the string rule would not).
    return gather_segments(tags.array[: tags.size], merged), False


def _drop_prolog_space(data: bytes, tags: Tags, lengths: np.ndarray) -> None:
    """The line breaks between the XML declaration (or a doctype) and the root: the result is stripped
    anyway, and left in they would make every part look as if its text held line breaks of its own."""
    if data[: int(tags.lt[0])].strip():
        return  # text before the first tag: what follows is not at the start of the result
    for index in range(min(len(tags.lt), 4)):
        start = int(tags.lt[index])
        if data[start + 1 : start + 2] not in (b"?", b"!"):
            return
        after = int(tags.gt[index]) + 1  # the text after this tag is text segment index + 1
        if not data[after : after + int(lengths[index + 1])].isspace():
            return  # text: from here on the result has begun
        lengths[index + 1] = 0
