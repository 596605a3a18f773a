"""The vectorised xlsx reading (issue 3 throughput): shared strings and worksheets through numpy tag
scans (xmltext.scan_tags), giving exactly what documents.shared_strings / sheet_text give, without
Python work per cell. Anything it does not recognise returns None and the caller takes that exact path."""

from __future__ import annotations

import html

import numpy as np

from dlp.extract.xmltext import (
    NEWLINE,
    SEPARATOR_BYTES,
    TAB,
    Tags,
    drop_trailing_tabs,
    gather,
    gather_text,
    keys8,
    scan_tags,
    tidy_separators,
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
    lt, gt = tags.lt[owners], tags.gt[owners]
    width = int((gt - lt).max()) + 1
    if width > _WINDOW:
        raise _Irregular
    window = tags.array[np.minimum(lt[:, None] + np.arange(width), len(tags.array) - 1)]
    inside = np.arange(width) < (gt - lt)[:, None]
    row, column = np.nonzero((window == 116) & inside)  # "t"
    ok = (column >= 1) & (column + 4 < width)
    row, column = row[ok], column[ok]
    quote = window[row, column + 2]
    hit = (_any_of(window[row, column - 1], b" \t\r\n") & (window[row, column + 1] == 61)
           & ((quote == _QUOTE) | (quote == _APOSTROPHE)) & (window[row, column + 3] == 115)
           & (window[row, column + 4] == quote))
    out = np.zeros(len(owners), bool)
    out[row[hit]] = True
    return out


class _Irregular(Exception):
    """Markup the vectorised reading does not take: the caller reads the general way."""


class FastSheets:
    """One workbook's shared strings, kept as a byte blob (entities escaped, as in shared_strings) with
    each string's span, and which of them a cell has used."""

    def __init__(self, blob: bytes, starts: np.ndarray, lengths: np.ndarray) -> None:
        self.blob = np.frombuffer(blob, np.uint8)
        self.starts = starts
        self.lengths = lengths
        self.used = np.zeros(len(starts), bool)

    @classmethod
    def read(cls, xml: bytes) -> FastSheets | None:
        """The table from sharedStrings.xml: each <si>'s text nodes, phonetic guides (<rPh>) left out."""
        if b"<si" not in xml:
            return cls(b"", np.zeros(0, np.int64), np.zeros(0, np.int64))
        if b"<sst" not in xml[:4096]:
            return None  # a prefixed namespace (<x:sst>): the general path
        tags = scan_tags(xml)
        if tags is None:
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
        if head < 0 or b"<worksheet" not in xml[:head]:
            return None  # no cells, or a prefixed namespace: the general path
        try:
            return self._sheet_text(xml)
        except _Irregular:
            return None

    def _sheet_text(self, xml: bytes) -> str | None:
        tags = scan_tags(xml)
        if tags is None:
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
        tidy = tidy_separators(codes, lengths, cell_paragraphs=False)
        raw = gather_text(tags, tidy, starts, lengths, self.blob)
        text = raw.decode("utf-8", "replace")
        if raw.count(b"\t") != np.count_nonzero(tidy == TAB) or raw.count(b"\n") != np.count_nonzero(
                tidy == NEWLINE):
            # Text nodes with tabs or line breaks of their own (the one after the XML declaration, at
            # least). Dropping tabs before a line break does not depend on which went first, so the
            # string rule after the separators' gives what it gives on the whole text.
            text = drop_trailing_tabs(text)
        text = text.rstrip("\t\n")
        return html.unescape(text) if "&" in text else text

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
