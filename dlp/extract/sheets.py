"""The vectorised xlsx reading (issue 3 throughput): shared strings and worksheets as numpy work over
the part's bytes, giving what documents.shared_strings / sheet_text give without Python work per cell.
Excel's own layout is read by byte-pattern searches; other regular markup by the tag scan
(xmltext.scan_tags); anything else returns None, and documents._xlsx reads the whole workbook the
general way. tests/dlp/extract/test_fast_scan.py holds the readings to the same output."""

from __future__ import annotations

import html

import numpy as np

from dlp.extract.xmltext import (
    FAST_SCAN_LIMIT,
    NEWLINE,
    SEPARATOR_BYTES,
    TAB,
    Segments,
    Tags,
    drop_trailing_tabs,
    gather,
    keys8,
    merge_segments,
    scan_tags,
    tidy,
)

_SLASH, _QUOTE, _APOSTROPHE = 47, 34, 39


def _is(tags: Tags, offset: int, literal: bytes) -> np.ndarray:
    """Tags whose bytes from `offset` after the "<" are `literal`."""
    hit = tags.byte(offset) == literal[0]
    for i, value in enumerate(literal[1:], start=offset + 1):
        hit &= tags.byte(i) == value
    return hit


def _either(tags: Tags, offset: int, values: bytes) -> np.ndarray:
    return _any_of(tags.byte(offset), values)


def _any_of(column: np.ndarray, values: bytes) -> np.ndarray:
    hit = column == values[0]
    for value in values[1:]:
        hit |= column == value
    return hit


_TAIL_DOUBLE = np.uint64(int.from_bytes(b' t="s">', "little"))
_TAIL_SINGLE = np.uint64(int.from_bytes(b" t='s'>", "little"))
_WINDOW = 256  # longest cell tag searched for t="s" in the middle; a longer one: the general path


def _has_shared_type(tags: Tags, owners: np.ndarray) -> np.ndarray:
    """Whether each of these tags carries t="s" / t='s' after a space, anywhere in it."""
    return _shared_attribute(tags.array, tags.lt[owners], tags.gt[owners])


_ROWS = 4096  # tags searched per window block: a block's index array stays under 8 MB


def _shared_attribute(array: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Whether the tag from each start ("<") to its end (">") holds t="s" or t='s' after a space."""
    out = np.zeros(len(starts), bool)
    if not len(starts):
        return out
    if int((ends - starts).max()) + 1 > _WINDOW:
        raise _Irregular
    for block in range(0, len(starts), _ROWS):
        first, last = starts[block : block + _ROWS], ends[block : block + _ROWS]
        width = int((last - first).max()) + 1
        window = array[np.minimum(first[:, None] + np.arange(width), len(array) - 1)]
        inside = np.arange(width) < (last - first)[:, None]
        row, column = np.nonzero((window == 116) & inside)  # "t"
        ok = (column >= 1) & (column + 4 < width)
        row, column = row[ok], column[ok]
        quote = window[row, column + 2]
        hit = (_any_of(window[row, column - 1], b" \t\r\n") & (window[row, column + 1] == 61)
               & ((quote == _QUOTE) | (quote == _APOSTROPHE)) & (window[row, column + 3] == 115)
               & (window[row, column + 4] == quote))
        out[block + row[hit]] = True
    return out


_PRESERVE = b'<t xml:space="preserve">'


def _followed(array: np.ndarray, found: np.ndarray, literal: bytes) -> np.ndarray:
    """The positions among `found` (where literal's first two bytes stand) where all of it stands."""
    found = found[found <= len(array) - len(literal)]
    for offset, value in enumerate(literal[2:], start=2):
        found = found[array[found + offset] == value]
    return found


def matches(array: np.ndarray, positions: np.ndarray, literal: bytes) -> np.ndarray:
    """Whether `literal` stands at each position."""
    positions = np.minimum(positions, len(array) - len(literal))
    hit = array[positions] == literal[0]
    for offset, value in enumerate(literal[1:], start=1):
        hit &= array[positions + offset] == value
    return hit


def _has_cdata(tags: Tags) -> bool:
    """A CDATA section reads as a tag to the scan: the general path turns it into text first."""
    marked = np.flatnonzero((tags.byte(1) == 33) & (tags.byte(2) == 91))  # "<!["
    return bool(len(marked))


def keys8_at(array: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The 8 bytes from each position as a little-endian integer (positions >= 0, array padded)."""
    positions = np.maximum(positions, 0)
    out = np.zeros(len(positions), np.uint64)
    for offset in range(8):
        out |= array[positions + offset].astype(np.uint64) << np.uint64(8 * offset)
    return out


def _tag_starts(array: np.ndarray, closes: np.ndarray) -> np.ndarray:
    """The "<" of the tag each ">" position (minus one) belongs to: looked for 32 bytes back, then
    _WINDOW bytes back for the few longer tags; in blocks, so that index arrays stay small."""
    starts = np.full(len(closes), -1, np.int64)
    for block in range(0, len(closes), _ROWS):
        pending = np.arange(block, min(block + _ROWS, len(closes)))
        for width in (32, _WINDOW):
            if not len(pending):
                break
            window = array[np.maximum(closes[pending, None] - np.arange(width), 0)]
            found = window == 60
            hit = found.any(axis=1)
            starts[pending[hit]] = closes[pending[hit]] - found[hit].argmax(axis=1)
            pending = pending[~hit]
        if len(pending):
            raise _Irregular
    return starts


def _shared_type_before(array: np.ndarray, closes: np.ndarray) -> np.ndarray:
    """Whether the tag ending at each ">" is a cell (<c ...>) with t="s" or t='s' anywhere in it. A
    value whose tag is not a cell's (<f .../> before it): not this shape."""
    starts = _tag_starts(array, closes)
    if not (matches(array, starts + 1, b"c") & _any_of(array[starts + 2], b" \t\r\n>")).all():
        raise _Irregular
    return _shared_attribute(array, starts, closes)


def _digits(array: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray | None:
    """The decimal number at each span (1 to 9 digits and nothing else), or None. Column by column: a
    span shorter than the column re-reads its own last digit, and keeps its number."""
    if lengths.min() < 1 or lengths.max() > 9:
        return None
    out = np.zeros(len(starts), np.int64)
    last = lengths - 1
    for column in range(int(lengths.max())):
        digit = array[starts + np.minimum(column, last)].astype(np.int64) - 48
        if np.any((digit < 0) | (digit > 9)):
            return None
        out = np.where(lengths > column, out * 10 + digit, out)
    return out


class _Irregular(Exception):
    """Markup the vectorised reading does not take: the caller reads the general way."""


class FastSheets:
    """One workbook's shared strings, kept as a byte blob (entities escaped, as in shared_strings) with
    each string's span, and which of them a cell has used."""

    def __init__(self, blob: bytes, starts: np.ndarray, lengths: np.ndarray) -> None:
        self.blob = np.frombuffer(blob, np.uint8)
        self.source = np.concatenate((np.frombuffer(SEPARATOR_BYTES, np.uint8), self.blob))  # as gathered from
        self.starts = starts
        self.lengths = lengths
        self.used = np.zeros(len(starts), bool)

    @classmethod
    def read(cls, xml: bytes) -> FastSheets | None:
        """The table from sharedStrings.xml: each <si>'s text nodes, phonetic guides (<rPh>) left out."""
        if b"<si" not in xml:
            return cls(b"", np.zeros(0, np.int64), np.zeros(0, np.int64))
        if b"<sst" not in xml[:4096] or len(xml) > FAST_SCAN_LIMIT:
            return None  # a prefixed namespace (<x:sst>): the general path
        return cls._plain(xml) or cls._tagged(xml)

    @classmethod
    def _plain(cls, xml: bytes) -> FastSheets | None:
        """Excel's own shape, <si><t>text</t></si> (or <t xml:space="preserve">) for every string and no
        other tag in between: each string is then a span of the file itself, found by two pattern
        searches over the tag starts."""
        array = np.frombuffer(xml, np.uint8)
        angle = np.flatnonzero(array == 60)  # every tag, once: both searches below pick from these
        follow = array[np.minimum(angle + 1, len(array) - 1)]
        opened = _followed(array, angle[follow == 115], b"<si>")  # "<s"
        closed = _followed(array, angle[follow == 47], b"</si>")  # "</"
        if not len(opened) or len(closed) != len(opened) or not (opened < closed).all() or not (
                closed[:-1] < opened[1:]).all():
            return None
        plain = matches(array, opened + 4, b"<t>")
        starts = opened + 7
        other = np.flatnonzero(~plain)
        if len(other):
            if not matches(array, opened[other] + 4, _PRESERVE).all():
                return None
            starts[other] = opened[other] + 4 + len(_PRESERVE)
        if not matches(array, closed - 4, b"</t>").all():
            return None
        # Four tags a string, and not one more: no rich-text run, phonetic guide, empty <si/> or CDATA.
        inside = np.searchsorted(angle, closed[-1]) - np.searchsorted(angle, opened[0])
        if inside != 4 * len(opened) - 1:
            return None
        lengths = closed - 4 - starts
        if lengths.min() < 0:
            return None
        return cls(xml, starts, lengths)

    @classmethod
    def _tagged(cls, xml: bytes) -> FastSheets | None:
        """Any other shape, from the tag scan."""
        tags = scan_tags(xml)
        if tags is None or _has_cdata(tags):
            return None
        closing = tags.before_close() == _SLASH
        named_si = _is(tags, 1, b"si")
        opened = named_si & (tags.byte(3) == 62)
        empty = named_si & (tags.byte(3) == _SLASH)
        closed = _is(tags, 1, b"/si>")
        if np.any(named_si & ~opened & ~empty):
            return None  # <si ...> with attributes or spaces: not what writers emit
        phonetic_open = _is(tags, 1, b"rPh") & _either(tags, 4, b"> \t\r\n") & ~closing
        phonetic_close = _is(tags, 1, b"/rPh>")
        depth = np.cumsum(opened.astype(np.int32) - closed)
        phonetic = np.cumsum(phonetic_open.astype(np.int32) - phonetic_close)
        if depth.min() < 0 or depth.max() > 1 or phonetic.min() < 0 or phonetic.max() > 1:
            return None
        # Text before tag i (i >= 1) belongs to string number (opened or empty before it) - 1, when it
        # lies inside an <si> and outside an <rPh>.
        starts = tags.gt[:-1] + 1
        lengths = tags.lt[1:] - starts
        keep = (depth[:-1] == 1) & (phonetic[:-1] == 0) & (lengths > 0)
        number = np.cumsum(opened | empty)[:-1] - 1
        count = int(np.count_nonzero(opened | empty))
        per_string = np.bincount(number[keep], weights=lengths[keep], minlength=count).astype(np.int64)
        blob = gather(tags.array, starts[keep], lengths[keep])
        return cls(blob, np.cumsum(per_string) - per_string, per_string)

    def sheet_text(self, xml: bytes) -> str | None:
        """Rows as lines, cells joined by tabs, shared strings spliced in, formulas left out: what
        documents.sheet_text gives. None: irregular markup, or a cell this does not read (the caller
        then reads the workbook the general way). Tags are told apart on small subsets picked by their
        first byte: a full-length array operation costs as much as the whole subset work."""
        head = xml.find(b"<sheetData")
        if head < 0 or b"<worksheet" not in xml[:head] or len(xml) > FAST_SCAN_LIMIT:
            return None  # no cells, or a prefixed namespace: the general path
        try:
            plain = self._plain_sheet_text(xml)
        except _Irregular:  # e.g. a shared formula (<f .../>) before a value: the tag scan reads those
            plain = None
        if plain is not None:
            return plain
        try:
            return self._sheet_text(xml)
        except _Irregular:
            return None

    def _plain_sheet_text(self, xml: bytes) -> str | None:
        """Excel's own shape: every text node is a cell value (<v>), every non-empty cell is
        <c ...><v>..</v></c>, no whitespace between tags. Then values, empty cells and row ends are
        found by pattern searches over the bytes, and tags are never listed one by one (that costs as
        much as everything else here together)."""
        array = np.frombuffer(xml + b"\0" * 16, np.uint8)
        size = len(xml)
        body = array[:size]
        # Byte masks go through one scratch buffer: a fresh sheet-sized temporary per step costs more in
        # page faults than the comparison itself.
        angle = np.equal(body, 60)
        scratch = np.empty(size, bool)
        if np.count_nonzero(angle) != np.count_nonzero(np.equal(body, 62, out=scratch)):
            return None
        # Every text node ("X" in ">X") must be a value, but for whitespace outside the root.
        pair = scratch[: size - 1]
        np.logical_and(pair, ~angle[1:], out=pair)
        texts = np.flatnonzero(pair) + 1
        np.equal(body[1:], 118, out=pair)
        np.logical_and(pair, angle[:-1], out=pair)
        values = _followed(body, np.flatnonzero(pair), b"<v>") + 3
        np.equal(body[1:], 47, out=pair)
        np.logical_and(pair, angle[:-1], out=pair)
        closing = np.flatnonzero(pair)  # every "</"
        ends = _followed(body, closing, b"</v></c>")
        if len(ends) != len(values) or not len(values) or not (values <= ends).all() or not (
                ends[:-1] < values[1:] - 3).all():
            return None
        if len(_followed(body, closing, b"</c>")) != len(values):
            return None  # a cell closed with no value (inline string, empty pair)
        row_ends = _followed(body, closing, b"</row>")
        np.equal(body[:-1], 47, out=pair)
        np.logical_and(pair, np.equal(body[1:], 62), out=pair)
        closers = np.flatnonzero(pair)  # every "/>"
        del scratch, pair, angle
        lengths = ends - values
        # The text nodes are the non-empty values, with at most a little whitespace before and after.
        filled = values[lengths > 0]
        lead = int(np.searchsorted(texts, filled[0])) if len(filled) else len(texts)
        if lead > 2 or len(texts) - lead - len(filled) > 2 or not np.array_equal(texts[lead : lead + len(filled)],
                                                                                  filled):
            return None  # text outside the values (inline strings, formulas, headers) or a "<" in a value
        loose = np.concatenate((texts[:lead], texts[lead + len(filled) :]))
        loose_ends = [xml.find(b"<", int(t)) for t in loose]
        loose_ends = [e if e >= 0 else size for e in loose_ends]
        if any(not xml[int(t) : e].isspace() for t, e in zip(loose, loose_ends, strict=True)):
            return None
        # The tag before each value is its cell's: t="s" at its end (Excel), else looked for inside.
        if not (body[values - 4] == 62).all():
            return None
        tail = keys8_at(array, values - 11) >> np.uint64(8)
        shared = (tail == _TAIL_DOUBLE) | (tail == _TAIL_SINGLE)
        others = np.flatnonzero(~shared)
        if len(others):
            shared[others] = _shared_type_before(array, values[others] - 4)
        # Empty cells and rows: self-closing tags, read back to their "<".
        starts = _tag_starts(array, closers)
        empty_cells = starts[matches(array, starts + 1, b"c") & _any_of(array[starts + 2], b" /\t\r\n")]
        empty_rows = starts[matches(array, starts + 1, b"row") & _any_of(array[starts + 4], b" /\t\r\n")]
        # Segments in document order: loose text, each value then its tab, empty cells' tabs, rows' breaks.
        base = size + len(SEPARATOR_BYTES)
        value_starts, value_lengths = values.copy(), lengths.copy()
        picked = np.flatnonzero(shared)
        if len(picked):
            index = _digits(array, values[picked], lengths[picked])
            if index is None:
                return None
            known = index < len(self.starts)
            self.used[index[known]] = True
            index = np.where(known, index, 0)
            value_starts[picked] = base + self.starts[index]
            value_lengths[picked] = np.where(known, self.lengths[index], 0)
        tab, newline = size + 1, size  # where SEPARATOR_BYTES sits in the gather source
        loose_text = b"".join(xml[int(t) : e] for t, e in zip(loose, loose_ends, strict=True))
        simple = self._simple_segments(values, value_starts, value_lengths, row_ends, loose, loose_ends,
                                       len(empty_cells) + len(empty_rows), tab, newline)
        if simple is not None:
            return self._finish(simple, body, loose_text.count(b"\t"), loose_text.count(b"\n"))
        tabs = np.concatenate((ends, empty_cells))
        breaks = np.concatenate((row_ends, empty_rows))
        order = np.concatenate((loose, values, tabs, breaks))
        seg_starts = np.concatenate((loose, value_starts, np.full(len(tabs), tab), np.full(len(breaks), newline)))
        seg_lengths = np.concatenate((np.array(loose_ends, np.int64) - loose, value_lengths,
                                      np.ones(len(tabs) + len(breaks), np.int64)))
        kinds = np.concatenate((np.zeros(len(loose) + len(values), np.uint8), np.full(len(tabs), TAB, np.uint8),
                                np.full(len(breaks), NEWLINE, np.uint8)))
        sequence = np.argsort(order, kind="stable")
        live = sequence[seg_lengths[sequence] > 0]
        segments = tidy(Segments(seg_starts[live], seg_lengths[live], kinds[live]), cell_paragraphs=False)
        return self._finish(segments, body, loose_text.count(b"\t"), loose_text.count(b"\n"))

    @staticmethod
    def _simple_segments(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray, row_ends: np.ndarray,
                         loose: np.ndarray, loose_ends: list[int], empties: int, tab: int,
                         newline: int) -> Segments | None:
        """The usual sheet, built without sorting or tidying: no empty cell or row, no empty value, at
        most one row end between two values, loose whitespace only around the rows. Each value is then
        followed by a tab, or by a line break where its row ends (the tab before it would go)."""
        if empties or not len(values) or not lengths.all():
            return None
        lead = int(np.count_nonzero(loose < values[0]))
        if np.count_nonzero(loose > values[-1]) + lead != len(loose):
            return None
        rows_before = np.searchsorted(row_ends, values)  # row ends before each value
        between = np.diff(np.append(rows_before, len(row_ends)))  # row ends after each value, before the next
        if rows_before[0] or between.max() > 1:
            return None
        count = len(loose) + 2 * len(values)
        out_starts = np.empty(count, np.int64)
        out_lengths = np.ones(count, np.int64)
        kinds = np.zeros(count, np.uint8)
        loose_lengths = np.array(loose_ends, np.int64) - loose
        out_starts[:lead], out_lengths[:lead] = loose[:lead], loose_lengths[:lead]
        tail = count - (len(loose) - lead)
        out_starts[tail:], out_lengths[tail:] = loose[lead:], loose_lengths[lead:]
        out_starts[lead:tail:2], out_lengths[lead:tail:2] = starts, lengths
        breaks = between == 1
        out_starts[lead + 1 : tail : 2] = np.where(breaks, newline, tab)
        kinds[lead + 1 : tail : 2] = np.where(breaks, NEWLINE, TAB)
        return Segments(out_starts, out_lengths, kinds)

    def _finish(self, segments: Segments, body: np.ndarray, loose_tabs: int = -1, loose_breaks: int = 0) -> str:
        """The text of `segments`, whose starts index [body | SEPARATOR_BYTES | blob]. The body's pieces
        are copied out first, so that the sheet is never copied whole into the gather source."""
        size = len(body)
        starts = segments.starts - size
        in_body = np.flatnonzero(starts < 0)
        if len(in_body):
            taken = segments.lengths[in_body]
            pieces = np.frombuffer(gather(body, segments.starts[in_body], taken), np.uint8)
            starts[in_body] = len(self.source) + np.cumsum(taken) - taken
            source = np.concatenate((self.source, pieces))
        else:
            source = self.source
        raw = gather(source, starts, segments.lengths)
        text = raw.decode("utf-8", "replace")
        kinds = segments.kinds
        if loose_tabs < 0 or raw.count(b"\t") != np.count_nonzero(kinds == TAB) + loose_tabs or raw.count(
                b"\n") != np.count_nonzero(kinds == NEWLINE) + loose_breaks:
            # Text with tabs or line breaks of its own (the one after the XML declaration, at least).
            # Dropping tabs before a line break does not depend on which went first, so the string
            # rule after the separators' gives what it gives on the whole text.
            text = drop_trailing_tabs(text)
        text = text.rstrip("\t\n")
        return html.unescape(text) if "&" in text else text

    def _sheet_text(self, xml: bytes) -> str | None:
        tags = scan_tags(xml)
        if tags is None or _has_cdata(tags):
            return None
        array, lt = tags.array, tags.lt
        b1, b2 = tags.byte(1), tags.byte(2)
        last = tags.before_close()
        codes = np.zeros(len(lt), np.uint8)
        # </c> and </row>
        closing = np.flatnonzero(b1 == _SLASH)
        third = array[lt[closing] + 3]
        second = b2[closing]
        codes[closing[(second == 99) & (third == 62)]] = TAB
        rows = closing[(second == 114) & (third == 111)]
        codes[rows[(array[lt[rows] + 4] == 119) & (array[lt[rows] + 5] == 62)]] = NEWLINE
        # <c .../> and <row .../>: empty cells and rows
        empty = np.flatnonzero(last == _SLASH)
        first, second = b1[empty], b2[empty]
        codes[empty[(first == 99) & _any_of(second, b" /\t\r\n")]] = TAB
        rows = empty[(first == 114) & (second == 111)]
        codes[rows[(array[lt[rows] + 3] == 119) & _any_of(array[lt[rows] + 4], b" /\t\r\n")]] = NEWLINE
        starts, lengths = tags.text_starts(), tags.text_lengths()
        # <f>: a formula's text is not the cell's value (its <v> is)
        formulas = np.flatnonzero(b1 == 102)
        formulas = formulas[_any_of(b2[formulas], b"> \t\r\n") & (last[formulas] != _SLASH)]
        lengths[formulas + 1] = 0
        # <v>: a shared-string cell's value is an index into the table
        values = np.flatnonzero(b1 == 118)
        if np.any((b2[values] != 62) & (last[values] != _SLASH)):
            return None  # <v ...> with attributes
        values = values[b2[values] == 62]
        if len(values) and values[-1] + 1 >= len(lt):
            return None
        shared = values[self._in_shared_cell(tags, b1, b2, last, values)]
        if len(shared):
            index = self._indices(tags, starts[shared + 1], lengths[shared + 1])
            if index is None:
                return None
            known = index < len(self.starts)
            self.used[index[known]] = True
            index = np.where(known, index, 0)
            starts[shared + 1] = tags.size + len(SEPARATOR_BYTES) + self.starts[index]
            lengths[shared + 1] = np.where(known, self.lengths[index], 0)
        segments = tidy(merge_segments(starts, lengths, codes, tags.size), cell_paragraphs=False)
        return self._finish(segments, tags.array[: tags.size])  # exactness unknown: the string rule checks

    @staticmethod
    def _in_shared_cell(tags: Tags, b1: np.ndarray, b2: np.ndarray, last: np.ndarray,
                        values: np.ndarray) -> np.ndarray:
        """For each <v> tag, whether its cell has t="s" (or t='s'), wherever the attribute stands."""
        owner = values - 1  # <c ...><v>: the usual layout
        direct = (b1[owner] == 99) & (last[owner] != _SLASH) & _any_of(b2[owner], b" >\t\r\n")
        if not direct.all():  # <c><f>..</f><v>, <c><is>..: the last cell opened before the value
            opened = np.flatnonzero((b1 == 99) & (last != _SLASH) & _any_of(b2, b" >\t\r\n"))
            before = np.searchsorted(opened, values) - 1
            owner = np.where(before >= 0, opened[np.maximum(before, 0)], -1)
        valid = owner >= 0
        owner = np.maximum(owner, 0)
        # Excel puts t="s" last: its 7 bytes before the ">"
        tail = keys8(tags, tags.gt[owner] - 7) >> np.uint64(8)
        shared = valid & ((tail == _TAIL_DOUBLE) | (tail == _TAIL_SINGLE))
        other = np.flatnonzero(valid & ~shared)
        if len(other):
            shared[other] = _has_shared_type(tags, owner[other])
        return shared

    @staticmethod
    def _indices(tags: Tags, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray | None:
        """The decimal numbers at each span (1 to 9 digits, nothing else), or None."""
        if not len(starts):
            return np.zeros(0, np.int64)
        if lengths.min() < 1 or lengths.max() > 9:
            return None
        out = np.zeros(len(starts), np.int64)
        for digit in range(int(lengths.max())):
            active = lengths > digit
            value = tags.array[np.where(active, starts + digit, 0)].astype(np.int64) - 48
            if np.any(active & ((value < 0) | (value > 9))):
                return None
            out = np.where(active, out * 10 + value, out)
        return out

    def orphans(self) -> list[str]:
        """Strings no cell used (Excel drops them; a crafted file need not)."""
        unused = np.flatnonzero(~self.used & (self.lengths > 0))
        if not len(unused):
            return []
        blob = self.blob.tobytes()
        return [blob[self.starts[i] : self.starts[i] + self.lengths[i]].decode("utf-8", "replace") for i in unused]
