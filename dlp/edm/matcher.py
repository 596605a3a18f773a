"""Finding customer records in text: candidate values, keyed lookups, and the same-record proximity rule.

The text is cut once into candidates that do not depend on any client (words, digit runs, e-mail
addresses, dates). Then, per client: single words are checked against the index's word filter, word
n-grams are formed only from words that passed (so common prose costs one hash per distinct word), every
candidate is hashed with the client's key and looked up with one vectorised binary search.

A record matches when at least `min_fields` of its fields, one of them identifying, occur within
`window_chars` of each other. A value shared by many records (a first name, a city) is never expanded:
it is only checked against the records that an identifying value already proposed.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from dlp.edm.hashing import TOKEN_KIND
from dlp.edm.index import EdmIndex
from dlp.edm.normalize import (
    COMPACT,
    DATE,
    DIGITS,
    EMAIL,
    EMAIL_RE,
    MAX_WORDS,
    MIN_DIGITS,
    PHONE,
    WORD,
    WORDS,
    PhoneRegion,
    text_dates,
)

# Digits with the separators people put inside numbers: "4111 1111-1111.1111", "(555) 201-4567".
_DIGIT_RUN = re.compile(r"\+?\d(?:[ \t./\-()]{0,3}\d)*")
_DIGIT_GROUP = re.compile(r"\d+")
_MAX_NUMBER_DIGITS = 19  # the longest card number; longer digit strings are split into groups
_MAX_WORD_GAP = 3  # "Smith, John" and CSV's `"Smith","John"` still form a two-word name
_EXPAND_LIMIT = 64  # a key shared by more records than this is common: only probed, never a seed


@dataclass(frozen=True, slots=True)
class Config:
    """Per-client matching rule."""

    min_fields: int = 2
    window_chars: int = 300


@dataclass(frozen=True, slots=True)
class RecordMatch:
    client: str
    record: int
    fingerprint: int
    fields: tuple[int, ...]  # indexes into the index's fields
    start: int  # span in the text given to `Candidates`
    end: int


class Candidates:
    """The client-independent pieces of one (normalised) text."""

    __slots__ = ("keyed", "numbers", "words")

    def __init__(self, text: str) -> None:
        # Words: (folded word, start, end).
        self.words: list[tuple[str, int, int]] = []
        for m in WORD.finditer(text):
            w = m.group().lower()
            if "'" in w or "’" in w:
                w = w.replace("'", "").replace("’", "")
            self.words.append((w, m.start(), m.end()))
        # Keyed values that need no word filter: (kind, value, start, end).
        keyed: list[tuple[str, str, int, int]] = []
        for m in EMAIL_RE.finditer(text):
            keyed.append((EMAIL, m.group().lower(), m.start(), m.end()))
        for iso, start, end in text_dates(text):
            keyed.append((DATE, iso, start, end))
        for w, start, end in self.words:
            if any(c.isdigit() for c in w) and (len(w) >= 3 and not (w.isdigit() and len(w) < MIN_DIGITS)):
                keyed.append((COMPACT, w, start, end))
        for (w1, s1, e1), (w2, s2, e2) in zip(self.words, self.words[1:], strict=False):
            joined = w1 + w2
            if s2 - e1 <= 1 and 5 <= len(joined) <= 10 and any(c.isdigit() for c in joined) and not joined.isdigit():
                keyed.append((COMPACT, joined, s1, e2))
        self.keyed = keyed
        # Numbers: (digits, start, end, written with a leading "+").
        self.numbers: list[tuple[str, int, int, bool]] = []
        for m in _DIGIT_RUN.finditer(text):
            run = m.group()
            if sum(c.isdigit() for c in run) < MIN_DIGITS:
                continue
            groups = [(g.group(), m.start() + g.start(), m.start() + g.end()) for g in _DIGIT_GROUP.finditer(run)]
            plus = run.startswith("+")
            seen: set[tuple[int, int]] = set()
            for i in range(len(groups)):
                digits = ""
                for j in range(i, len(groups)):
                    digits += groups[j][0]
                    if len(digits) > _MAX_NUMBER_DIGITS:
                        break
                    if len(digits) >= MIN_DIGITS and (i, j) not in seen:
                        seen.add((i, j))
                        self.numbers.append((digits, groups[i][1], groups[j][2], plus and i == 0))


class Matcher:
    """One client's index and rule, applied to Candidates."""

    def __init__(self, index: EdmIndex, config: Config) -> None:
        self.index = index
        self.config = config
        self.client = index.client
        self.phone = PhoneRegion.for_region(index.options.region)
        self._keys = index.keys
        self._tokens = index.tokens
        self._identifying = [f.identifying for f in index.fields]

    def match(self, cand: Candidates) -> list[RecordMatch]:
        if not len(self._keys):
            return []
        h64 = self.index.hasher.h64
        cache: dict[tuple[str, str], int] = {}

        def key(kind: str, value: str) -> int:
            k = (kind, value)
            h = cache.get(k)
            if h is None:
                h = cache[k] = h64(kind, value)
            return h

        hashes: list[int] = []
        spans: list[tuple[int, int]] = []

        def add(kind: str, value: str, start: int, end: int) -> None:
            hashes.append(key(kind, value))
            spans.append((start, end))

        # Words: only those in the client's word filter may start or continue an n-gram.
        words = cand.words
        if words and len(self._tokens):
            distinct = list({w for w, _, _ in words})
            token_hashes = np.fromiter((h64(TOKEN_KIND, w) for w in distinct), dtype=np.uint64, count=len(distinct))
            pos = np.searchsorted(self._tokens, token_hashes)
            pos[pos >= len(self._tokens)] = 0
            known = {w for w, hit in zip(distinct, self._tokens[pos] == token_hashes, strict=True) if hit}
            if known:
                for i, (w, start, _end) in enumerate(words):
                    if w not in known:
                        continue
                    gram = [w]
                    end = words[i][2]
                    add(WORDS, w, start, end)
                    for j in range(i + 1, min(i + MAX_WORDS, len(words))):
                        nw, ns, ne = words[j]
                        if nw not in known or ns - end > _MAX_WORD_GAP:
                            break
                        gram.append(nw)
                        end = ne
                        ordered = " ".join(gram)
                        add(WORDS, ordered, start, end)
                        ordered_sorted = " ".join(sorted(gram))
                        if ordered_sorted != ordered:
                            add(WORDS, ordered_sorted, start, end)
        for kind, value, start, end in cand.keyed:
            add(kind, value, start, end)
        for digits, start, end, plus in cand.numbers:
            add(DIGITS, digits, start, end)
            if 7 <= len(digits) <= 15:
                for e164 in self.phone.candidates(digits, plus):
                    add(PHONE, e164, start, end)
        if not hashes:
            return []
        return self._records(np.fromiter(hashes, dtype=np.uint64, count=len(hashes)), spans)

    def _records(self, hashes: np.ndarray, spans: list[tuple[int, int]]) -> list[RecordMatch]:
        keys, records, field_of = self._keys, self.index.records, self.index.field_of
        lo = np.searchsorted(keys, hashes, side="left")
        hi = np.searchsorted(keys, hashes, side="right")
        hit = np.nonzero(hi > lo)[0]
        if not len(hit):
            return []
        # Expanded hits per record, and common keys kept as ranges to probe.
        by_record: dict[int, list[tuple[int, int, int]]] = {}  # record -> [(field, start, end)]
        seeds: list[tuple[int, int, int]] = []  # (record, start, end) of identifying hits
        common: list[tuple[int, int, int, int]] = []  # (start, end, lo, hi)
        for i in hit.tolist():
            a, b = int(lo[i]), int(hi[i])
            start, end = spans[i]
            if b - a > _EXPAND_LIMIT:
                common.append((start, end, a, b))
                continue
            for r, f in zip(records[a:b].tolist(), field_of[a:b].tolist(), strict=True):
                by_record.setdefault(r, []).append((f, start, end))
                if self._identifying[f]:
                    seeds.append((r, start, end))
        if not seeds:
            return []
        common.sort()
        common_starts = [c[0] for c in common]
        window = self.config.window_chars
        out: list[RecordMatch] = []
        done: set[int] = set()
        for record, s_start, s_end in seeds:
            if record in done:
                continue
            lo_pos, hi_pos = s_start - window, s_end + window
            near = [(f, s, e) for f, s, e in by_record[record] if s >= lo_pos and e <= hi_pos]
            for c_start, c_end, a, b in common[bisect_left(common_starts, lo_pos):bisect_right(common_starts, hi_pos)]:
                if c_end > hi_pos:
                    continue
                near.extend((f, c_start, c_end) for f in self._probe(record, a, b))
            fields = {f for f, _, _ in near}
            if len(fields) >= self.config.min_fields and any(self._identifying[f] for f in fields):
                done.add(record)
                out.append(RecordMatch(
                    client=self.client,
                    record=record,
                    fingerprint=int(self.index.prints[record]),
                    fields=tuple(sorted(fields)),
                    start=min(s for _, s, _ in near),
                    end=max(e for _, _, e in near),
                ))
        return out

    def _probe(self, record: int, a: int, b: int) -> Iterable[int]:
        """Fields of `record` among the postings [a, b) of one common key (sorted by record)."""
        records = self.index.records
        i = a + int(np.searchsorted(records[a:b], record, side="left"))
        while i < b and int(records[i]) == record:
            yield int(self.index.field_of[i])
            i += 1
