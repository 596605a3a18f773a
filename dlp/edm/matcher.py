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
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any, NamedTuple, Protocol

import numpy as np

from dlp.edm.hashing import TOKEN_KIND
from dlp.edm.index import EdmIndex
from dlp.edm.normalize import (
    COMPACT,
    DATE,
    DIGITS,
    EMAIL,
    EMAIL_RE,
    KIND_OF,
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


class RecordMatch(NamedTuple):
    """One customer record found in a text (a named tuple: one is built per customer message)."""

    client: str
    record: int
    fingerprint: int
    fields: tuple[int, ...]  # indexes into the index's fields
    start: int  # span in the text given to `Candidates`
    end: int


# Postcode-like pieces: one token with a digit ("94110", "10001x"), or two short tokens ("SW1A 1AA").
_COMPACT_ONE = re.compile(r"(?<![^\W_])(?=[^\W_]*\d)[^\W_]{3,10}(?![^\W_])")
_COMPACT_TWO = re.compile(r"(?<![^\W_])([^\W_]{2,4})[ \-]([^\W_]{2,4})(?![^\W_])")
_NOT_WORDS_CACHE = 200_000  # words known to be in no index's word filter (never a customer's word)
_TOKEN_SET_LIMIT = 65_536  # about 4 MiB a worker as a Python set


_PAIR_SEPARATORS = " -"


# bytes.translate table for ASCII text: each letter "a", each digit "0", anything else "." (token bounds
# are then one str.find or str.rfind of ".", in C, instead of a Python loop over characters).
_CLASSES = bytes(48 if 48 <= i <= 57 else 97 if i < 128 and chr(i).isalpha() else 46 for i in range(256))


def _short_token_before(text: str, classes: str, start: int) -> int:
    """Start of the 2-4 character token just before the token at `start`, joined to it by one space or
    hyphen (the pairs `_COMPACT_TWO` reads); -1 when there is none. ASCII text and its `_CLASSES`."""
    if start < 3 or text[start - 1] not in _PAIR_SEPARATORS or classes[start - 2] == ".":
        return -1
    i = classes.rfind(".", 0, start - 1) + 1
    return i if 2 <= start - 1 - i <= 4 else -1


def _short_token_after(text: str, classes: str, end: int) -> int:
    """End of the 2-4 character token just after the token ending at `end`, joined by one space or
    hyphen; -1 when there is none. ASCII text and its `_CLASSES`."""
    n = len(text)
    if end + 2 >= n or text[end] not in _PAIR_SEPARATORS:
        return -1
    j = classes.find(".", end + 1)
    if j < 0:
        j = n
    return j if 2 <= j - end - 1 <= 4 else -1


def _ascii_compact(lower: str, low: int = 0, high: int = -1) -> list[tuple[str, str, int, int]]:
    """`Candidates.compact` of ASCII text, the same list as the two patterns give, found from the digits
    only: a postcode-like piece needs one, and prose has few, while the patterns try every word.

    `_COMPACT_TWO` pairs short tokens left to right without overlap, so in a chain of short tokens
    joined by single separators the pairs are (1st, 2nd), (3rd, 4th)...: a token's partner follows from
    its place in its chain. With `low` and `high`: only the candidates inside [low, high) (the chains
    are still followed outside, for the pairing)."""
    singles: list[tuple[str, str, int, int]] = []
    pairs: dict[int, tuple[str, str, int, int]] = {}
    place_at: dict[int, int] = {}  # start -> place in its chain, of the short tokens already placed
    n = len(lower)
    high = n if high < 0 else min(n, high)
    classes = lower.encode().translate(_CLASSES).decode()
    # Digits are found with str.find over the classes, in C: a regex scan costs tens of nanoseconds a
    # character, and that is most of the work in a message of a few hundred characters.
    first_digit = classes.find("0", low, high)
    while first_digit >= 0:
        start = classes.rfind(".", 0, first_digit) + 1
        end = classes.find(".", first_digit)
        if end < 0:
            end = n
        digits_only = start == first_digit and lower[start:end].isdigit()
        first_digit = classes.find("0", end, high)
        if start < low or end > high:
            continue  # straddles the window's edge: no candidate of it lies inside
        size = end - start
        if 3 <= size <= 10 and not (digits_only and size < MIN_DIGITS):
            singles.append((COMPACT, lower[start:end], start, end))
        if not 2 <= size <= 4:
            continue
        if digits_only:
            # A pair of digits only is never kept: without a letter in a short neighbour ("9400 6131",
            # "2024-09-21"), this token's pair, whichever it is, would be dropped.
            before = _short_token_before(lower, classes, start)
            after = _short_token_after(lower, classes, end)
            if (before < 0 or lower[before:start - 1].isdigit()) and (after < 0 or lower[end + 1:after].isdigit()):
                continue
        place, first = 0, start  # the token's place in its chain of short tokens
        while (before := _short_token_before(lower, classes, first)) >= 0:
            known = place_at.get(before)
            if known is not None:  # "9400 6131 8609": each group's place follows from the last one's
                place += known + 1
                break
            place += 1
            first = before
        place_at[start] = place
        if place % 2:  # the second of a pair
            a = _short_token_before(lower, classes, start)
            a_end, b, b_end = start - 1, start, end
        else:
            b_end = _short_token_after(lower, classes, end)
            if b_end < 0:
                continue
            a, a_end, b = start, end, end + 1
        joined = lower[a:a_end] + lower[b:b_end]
        if not joined.isdigit() and a >= low and b_end <= high:
            pairs[a] = (COMPACT, joined, a, b_end)
    return singles + [pairs[a] for a in sorted(pairs)]


# bytes.translate table: ASCII letters and digits kept, everything else a space (str.translate with a
# mapping is three times slower).
_ASCII_NON_ALNUM_TO_SPACE = bytes(i if i < 128 and chr(i).isalnum() else 32 for i in range(256))


_NOT_ASCII_DIGIT = bytes(i for i in range(256) if not 48 <= i <= 57)


def _fold_word(w: str) -> str:
    return w.replace("'", "").replace("’", "") if ("'" in w or "’" in w) else w


@lru_cache(maxsize=4096)
def _number_windows(shape: str, wanted: frozenset[int] | None) -> tuple[tuple[int, int, int, int], ...]:
    """(first group, last group, first digit, end digit) of each window of consecutive digit groups with a
    wanted digit count, for a run's layout (its group lengths, one character each:
    detectors._numbers.RunShape); the digit offsets index the run's digits run together. Layouts repeat
    ("4444", "334") and hold no digit of the number, so they are remembered."""
    lengths = [ord(c) - 48 for c in shape]
    offsets = [0]
    for n in lengths:
        offsets.append(offsets[-1] + n)
    windows = []
    for i in range(len(lengths)):
        for j in range(i, len(lengths)):
            total = offsets[j + 1] - offsets[i]
            if total > _MAX_NUMBER_DIGITS:
                break
            if total >= MIN_DIGITS and (wanted is None or total in wanted):
                windows.append((i, j, offsets[i], offsets[j + 1]))
    return tuple(windows)


class PhoneReader:
    """The E.164 readings of digit runs (PhoneRegion.candidates) that have a length the index holds,
    with the readings a digit count cannot give skipped before any string is built."""

    def __init__(self, phone: PhoneRegion, indexed: frozenset[int]) -> None:
        self.phone = phone
        self.indexed = indexed
        cc, prefix = len(phone.country_code), len(phone.national_prefix)
        national = phone.national_lengths
        # Per digit count: can the international prefix, national prefix, country code or national
        # reading give an indexed length?
        self.rules = {
            n: (any(8 <= n - len(p) <= 15 and n - len(p) + 1 in indexed for p in phone.international_prefixes),
                bool(prefix) and n - prefix in national and cc + n - prefix + 1 in indexed,
                n - cc in national and n + 1 in indexed, n in national and cc + n + 1 in indexed)
            for n in range(_MAX_NUMBER_DIGITS + 1)}
        # Digit counts (7..15) with a reading of an indexed length, written without "+" and with one (the
        # number itself, or without a trunk 0).
        self.viable = frozenset(n for n in range(7, 16) if any(self.rules[n]))
        self.viable_plus = frozenset(n for n in range(7, 16) if {n, n + 1} & indexed)

    def readings(self, digits: str, plus: bool) -> list[str]:
        """For a run of `viable` (or with "+", `viable_plus`) digits."""
        phone, indexed = self.phone, self.indexed
        if plus:
            return [e for e in phone.candidates(digits, True) if len(e) in indexed]
        n = len(digits)
        intl_ok, prefix_ok, cc_ok, national_ok = self.rules[n]
        out = []
        if intl_ok:
            for intl in phone.international_prefixes:
                if digits.startswith(intl) and 8 <= n - len(intl) <= 15:
                    if n - len(intl) + 1 in indexed:
                        out.append("+" + digits[len(intl):])
                    break
        if prefix_ok and digits.startswith(phone.national_prefix):
            out.append("+" + phone.country_code + digits[len(phone.national_prefix):])
        if cc_ok and digits.startswith(phone.country_code):
            out.append("+" + digits)
        if national_ok:
            out.append("+" + phone.country_code + digits)
        return out if len(out) < 2 else list(dict.fromkeys(out))


class RunSource(Protocol):
    """The engine's view of a text (detectors.base.ScanText): the layouts and digit groups of the number
    runs its shared Hyperscan pass found, computed once for every numeric detector."""

    def shape(self, start: int, end: int) -> Any: ...  # detectors._numbers.RunShape
    def digit_groups(self, start: int, end: int) -> Any: ...  # detectors._numbers.Run


class Candidates:
    """The client-independent pieces of one (normalised) text, each cut on first use: a matcher first
    looks only at the kinds its identifying fields use (numbers, e-mail addresses) and stops there when
    none is in its index, which is what almost every message looks like. Word positions are looked for
    only when some client's word filter knows one of the text's words, and then only for those words."""

    def __init__(self, text: str, runs: RunSource | None = None, wanted: frozenset[int] | None = None,
                 spans: list[tuple[int, int]] | None = None) -> None:
        """`runs` and `spans`: the number runs the engine's shared Hyperscan pass already found (runs of at
        least seven digits), instead of cutting them again here; `wanted`: the digit counts some index
        uses (others are never looked up, so they are not cut out)."""
        self.text = text
        self._runs = runs
        self._spans = spans or []
        self._wanted = wanted
        self._number_refs: list[tuple[int, int, int, int]] = []

    @cached_property
    def lower(self) -> str:
        lower = self.text.lower()
        if len(lower) != len(self.text):  # a rare character whose lowercase is longer: keep offsets exact
            lower = "".join(c.lower() if len(c.lower()) == 1 else c for c in self.text)
        return lower

    @cached_property
    def distinct_words(self) -> set[str]:
        lower = self.lower
        if "'" in lower or "’" in lower:
            return {_fold_word(w) for w in WORD.findall(lower)}
        if lower.isascii():  # words are the runs of letters and digits: what WORD finds, without the regex
            return set(lower.encode().translate(_ASCII_NON_ALNUM_TO_SPACE).decode().split())
        return set(WORD.findall(lower))  # no apostrophe: folding changes no word

    def words_in(self, low: int, high: int) -> set[str]:
        """`distinct_words`, of the text between `low` and `high` when that is shorter (the words a window
        holds, perhaps with a piece of a word at each edge, which only costs a filter test)."""
        lower = self.lower
        if (low <= 0 and high >= len(lower)) or not lower.isascii() or "'" in lower:
            return self.distinct_words
        return set(lower[max(0, low):high].encode().translate(_ASCII_NON_ALNUM_TO_SPACE).decode().split())

    @cached_property
    def emails(self) -> list[tuple[str, str, int, int]]:
        if "@" not in self.text:
            return []
        return [(EMAIL, m.group(), m.start(), m.end()) for m in EMAIL_RE.finditer(self.lower)]

    @cached_property
    def dates(self) -> list[tuple[str, str, int, int]]:
        return [(DATE, iso, start, end) for iso, start, end in text_dates(self.text, self.lower)]

    def compact_in(self, low: int, high: int) -> list[tuple[str, str, int, int]]:
        """The `compact` candidates inside [low, high), cut only there in ASCII text."""
        lower = self.lower
        if (low <= 0 and high >= len(lower)) or not lower.isascii():
            return self.compact
        return _ascii_compact(lower, max(0, low), high)

    @cached_property
    def compact(self) -> list[tuple[str, str, int, int]]:
        lower = self.lower
        if lower.isascii():
            return _ascii_compact(lower)
        out = []
        for m in _COMPACT_ONE.finditer(lower):
            w = m.group()
            if not (w.isdigit() and len(w) < MIN_DIGITS):
                out.append((COMPACT, w, m.start(), m.end()))
        for m in _COMPACT_TWO.finditer(lower):
            joined = m.group(1) + m.group(2)
            # Mostly two short words of prose ("to be"): letters only, never a digit.
            if not joined.isalpha() and not joined.isdigit() and any(c.isdigit() for c in joined):
                out.append((COMPACT, joined, m.start(), m.end()))
        return out

    @cached_property
    def numbers(self) -> list[tuple[str, int, int, bool]]:
        """(digits, start, end, written with a leading "+"): every run of digit groups of 5 to 19 digits
        (of the wanted counts, when given)."""
        if self._runs is not None:
            return self._numbers_of_runs(self._runs)
        wanted = self._wanted
        out: list[tuple[str, int, int, bool]] = []
        for m in _DIGIT_RUN.finditer(self.text):
            run = m.group()
            if len(run) < MIN_DIGITS:
                continue
            if run.isdigit():  # the common case: one group, no separators
                out.append((run, m.start(), m.end(), False))
                continue
            groups = [(g.group(), m.start() + g.start(), m.start() + g.end()) for g in _DIGIT_GROUP.finditer(run)]
            if len(groups) == 1:
                out.append((groups[0][0], groups[0][1], groups[0][2], run[0] == "+"))
                continue
            plus = run[0] == "+"
            for i in range(len(groups)):
                digits = ""
                for j in range(i, len(groups)):
                    digits += groups[j][0]
                    if len(digits) > _MAX_NUMBER_DIGITS:
                        break
                    if len(digits) >= MIN_DIGITS:
                        out.append((digits, groups[i][1], groups[j][2], plus and i == 0))
        if wanted is not None:
            out = [n for n in out if len(n[0]) in wanted]
        return out

    @cached_property
    def number_values(self) -> list[tuple[str, bool]]:
        """(digits, written with a leading "+") of each of `numbers`, in the same order, without cutting
        the runs into groups for their spans: the first phase hashes the digits and needs a span only
        when the seed filter passes one (`numbers` then)."""
        runs = self._runs
        if runs is None:
            return [(digits, plus) for digits, _start, _end, plus in self.numbers]
        wanted, text = self._wanted, self.text
        out: list[tuple[str, bool]] = []
        refs = self._number_refs = []
        for start, end in self._spans:
            windows = _number_windows(runs.shape(start, end).shape, wanted)
            if not windows:
                continue
            # The run's digits run together (digit_groups finds [0-9]+ in the same span): bytes.translate
            # deletes the rest in one call, and UTF-8 never puts an ASCII digit inside another character.
            digits = text[start:end].encode().translate(None, _NOT_ASCII_DIGIT).decode()
            plus = text[start] == "+"
            for i, j, a, b in windows:
                out.append((digits[a:b], plus and i == 0))
                refs.append((start, end, i, j))
        return out

    def number_span(self, k: int) -> tuple[int, int]:
        """The span of `number_values[k]` (its groups cut only now)."""
        if self._runs is None:
            number = self.numbers[k]
            return number[1], number[2]
        start, end, i, j = self._number_refs[k]
        groups = self._runs.digit_groups(start, end)
        return groups[i].start, groups[j].end

    def _numbers_of_runs(self, runs: RunSource) -> list[tuple[str, int, int, bool]]:
        """`numbers` from the shared pass's runs: each run's layout (group lengths, computed once for all
        numeric detectors) says which windows of consecutive groups have a wanted digit count, and
        only those runs are cut into groups."""
        wanted = self._wanted
        text = self.text
        out: list[tuple[str, int, int, bool]] = []
        for start, end in self._spans:
            windows = _number_windows(runs.shape(start, end).shape, wanted)
            if not windows:
                continue
            groups = runs.digit_groups(start, end)
            digits = groups[0].digits if len(groups) == 1 else "".join([g.digits for g in groups])
            plus = text[start] == "+"
            for i, j, a, b in windows:
                out.append((digits[a:b], groups[i].start, groups[j].end, plus and i == 0))
        return out

    def occurrences(self, known: set[str], low: int = 0, high: int = -1) -> list[tuple[str, int, int]]:
        """(word, start, end) of every occurrence of the known words (inside [low, high) when given), in
        text order, plus the words in between when they matter. Found with str.find: a message rarely
        holds more than a few known words."""
        lower = self.lower
        if "'" in lower or "’" in lower:  # folded words ("o'brien" -> "obrien") are not substrings
            return [(_fold_word(m.group()), m.start(), m.end()) for m in WORD.finditer(lower)]
        found: list[tuple[str, int, int]] = []
        n = len(lower)
        low = max(0, low)
        high = n if high < 0 else min(n, high)
        for w in known:
            i = lower.find(w, low, high)
            while i >= 0:
                end = i + len(w)
                if (i == 0 or not lower[i - 1].isalnum()) and (end == n or not lower[end].isalnum()):
                    found.append((w, i, end))
                i = lower.find(w, i + 1, high)
        found.sort(key=lambda o: o[1])
        return found


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
        self._kinds = {KIND_OF[f.type] for f in index.fields}
        lengths = index.header.get("lengths") or {}
        self._digit_lengths = frozenset(lengths.get(DIGITS, range(MIN_DIGITS, _MAX_NUMBER_DIGITS + 1)))
        self._phone_lengths = frozenset(lengths.get(PHONE, range(8, 17)))
        self._phones = PhoneReader(self.phone, self._phone_lengths)
        self._phone_digit_counts = self._phones.viable | self._phones.viable_plus
        # Digit counts this client ever looks up; under seven, the engine's shared number runs miss some.
        self.number_counts = (self._digit_lengths if DIGITS in self._kinds else frozenset()) | (
            self._phone_digit_counts if PHONE in self._kinds else frozenset())
        seed_kinds = {KIND_OF[f.type] for f in index.fields if f.identifying}
        # Numbers first (inline in `match`), then the other kinds identifying fields use.
        self._seed_digits, self._seed_phones = DIGITS in seed_kinds, PHONE in seed_kinds
        self._seed_emails = EMAIL in seed_kinds
        self._seed_kinds = [k for k in (COMPACT, DATE, WORDS) if k in seed_kinds]
        # The second phase: the kinds of the other fields (words first: names corroborate most often).
        self._second_kinds = [k for k in (WORDS, DIGITS, PHONE, EMAIL, DATE, COMPACT)
                              if k in self._kinds and k not in seed_kinds]
        self._keys_count = len(index.keys)
        self._h64 = index.hasher.h64
        self._seed_filter = index.seeds
        self.seed_kinds = frozenset(seed_kinds)
        # Words of past messages that are in none of this client's name or text values ("the", "refund").
        # Only such words are remembered, so the cache never holds a customer's word.
        self._not_words: set[str] = set()
        # A small word filter (the distinct words of names and cities) is tested as a set of ints, cheaper
        # than numpy's search for a few words; a large one stays a shared memory map.
        self._token_set = frozenset(self._tokens.tolist()) if len(self._tokens) <= _TOKEN_SET_LIMIT else None

    def known_words(self, words: set[str]) -> set[str]:
        """The words that occur in this client's name or text fields (by the keyed word filter)."""
        if not len(self._tokens):
            return set()
        unknown = list(words - self._not_words)
        if not unknown:
            return set()
        h64 = self.index.hasher.h64
        if self._token_set is not None:
            known = set()
            for w in unknown:
                if h64(TOKEN_KIND, w) in self._token_set:
                    known.add(w)
                else:
                    self._not_words.add(w)
            if len(self._not_words) > _NOT_WORDS_CACHE:
                self._not_words.clear()
            return known
        hashes = np.fromiter((h64(TOKEN_KIND, w) for w in unknown), dtype=np.uint64, count=len(unknown))
        pos = np.searchsorted(self._tokens, hashes)
        pos[pos >= len(self._tokens)] = 0
        hits = (self._tokens[pos] == hashes).tolist()
        if len(self._not_words) > _NOT_WORDS_CACHE:
            self._not_words.clear()
        known = set()
        for w, hit in zip(unknown, hits, strict=True):
            if hit:
                known.add(w)
            else:
                self._not_words.add(w)
        return known

    def match(self, cand: Candidates) -> list[RecordMatch]:
        if not self._keys_count:
            return []
        h64 = self._h64
        hashes: list[int] = []
        # First the kinds identifying fields use: without one of those in the index, nothing can match.
        # Numbers and e-mail addresses (the usual identifying kinds) inline: this runs on every message.
        # A number's span is cut only when it is needed (a seed, a hit): `where` holds its place in
        # `cand.number_values` (an int) until then, other kinds their span.
        where: list[tuple[int, int] | int] = []
        numbers = cand.number_values if self._seed_digits or self._seed_phones else ()
        if numbers and self._seed_digits:
            lengths = self._digit_lengths
            for k, (digits, _plus) in enumerate(numbers):
                if len(digits) in lengths:
                    hashes.append(h64(DIGITS, digits))
                    where.append(k)
        if numbers and self._seed_phones:
            phones = self._phones
            viable, viable_plus, readings = phones.viable, phones.viable_plus, phones.readings
            for k, (digits, plus) in enumerate(numbers):
                if len(digits) in (viable_plus if plus else viable):
                    for e164 in readings(digits, plus):
                        hashes.append(h64(PHONE, e164))
                        where.append(k)
        if self._seed_emails and "@" in cand.text:
            for _kind, address, start, end in cand.emails:
                hashes.append(h64(EMAIL, address))
                where.append((start, end))
        if self._seed_kinds:
            self._more_seeds(cand, hashes, where)
        if not hashes:
            return []
        # The seed filter (two bit probes per hash) rejects almost every message; the exact check reads the index.
        seed_filter = self._seed_filter
        maybe = [i for i, h in enumerate(hashes) if h in seed_filter]
        if not maybe:
            return []
        seeds = self._seeds(cand, [hashes[i] for i in maybe], [where[i] for i in maybe])
        if not seeds:
            return []
        return self._second_phase(cand, seeds, hashes, where)

    def _more_seeds(self, cand: Candidates, hashes: list[int], spans: list[tuple[int, int] | int]) -> None:
        """Seeds of the rarer identifying kinds (a name or a postcode declared identifying)."""
        h64 = self._h64

        def add(kind: str, value: str, start: int, end: int) -> None:
            hashes.append(h64(kind, value))
            spans.append((start, end))

        for kind in self._seed_kinds:
            self._candidates(kind, cand, add)

    def _second_phase(self, cand: Candidates, seeds: list[tuple[int, int, int]], hashes: list[int],
                      spans: list[tuple[int, int] | int]) -> list[RecordMatch]:
        """The other fields of the proposed records: only their own keys matter, a dict test each, and
        only candidates inside some seed's window are hashed."""
        wanted: dict[int, list[tuple[int, int]]] = {}  # key -> [(record, field)]
        record = low = high = -1
        for record, start, end in seeds:
            low, high = (start, end) if low < 0 else (min(low, start), max(high, end))
            keys, fields = self.index.record(record)
            for key, field in zip(keys, fields, strict=True):
                hits = wanted.get(key)
                if hits is None:
                    wanted[key] = [(record, field)]
                elif (record, field) not in hits:  # a record proposed twice (its account and its phone)
                    hits.append((record, field))
        window = self.config.window_chars
        low -= window
        high += window
        h64 = self._h64

        def add(kind: str, value: str, start: int, end: int) -> None:
            if start >= low and end <= high:
                hashes.append(h64(kind, value))
                spans.append((start, end))

        for kind in self._second_kinds:
            self._candidates(kind, cand, add, low, high)
        return self._records(cand, seeds, wanted, hashes, spans)

    def _seeds(self, cand: Candidates, hashes: list[int], where: list[tuple[int, int] | int]
               ) -> list[tuple[int, int, int]]:
        """(record, start, end) for each identifying value of few enough records to propose them."""
        index = self.index
        out: list[tuple[int, int, int]] = []
        for h, w in zip(hashes, where, strict=True):
            a, b = index.find(h, _EXPAND_LIMIT)
            if a == b or b - a > _EXPAND_LIMIT:
                # A false positive of the filter, or a value many records share (a switchboard number):
                # never proposes one.
                continue
            start, end = cand.number_span(w) if isinstance(w, int) else w
            out.extend((r, start, end) for r in index.records_of(a, b))
        return out

    def _candidates(self, kind: str, cand: Candidates, add, low: int = 0, high: int = -1) -> None:
        """Hash the candidates of one kind through `add(kind, value, start, end)`; with `low` and `high`,
        the kinds that can be cut from a part of the text only are cut from [low, high) (the caller's
        `add` filters by the window anyway)."""
        if high < 0:
            high = len(cand.text)
        if kind == DIGITS:
            lengths = self._digit_lengths
            for digits, start, end, _plus in cand.numbers:
                if len(digits) in lengths:
                    add(DIGITS, digits, start, end)
        elif kind == PHONE:
            phones = self._phones
            for digits, start, end, plus in cand.numbers:
                if len(digits) in (phones.viable_plus if plus else phones.viable):
                    for e164 in phones.readings(digits, plus):
                        add(PHONE, e164, start, end)
        elif kind == EMAIL:
            for item in cand.emails:
                add(*item)
        elif kind == DATE:
            for item in cand.dates:
                add(*item)
        elif kind == COMPACT:
            for item in cand.compact_in(low, high):
                add(*item)
        elif kind == WORDS:
            self._word_candidates(cand, add, low, high)

    def _word_candidates(self, cand: Candidates, add, low: int, high: int) -> None:
        """Words and 2..4-word n-grams (in text order and sorted) of the words in the word filter."""
        known = self.known_words(cand.words_in(low, high))
        if not known:
            return
        words = cand.occurrences(known, low, high)
        lower = cand.lower
        for i, (w, start, end) in enumerate(words):
            if w not in known:
                continue
            gram = [w]
            add(WORDS, w, start, end)
            for j in range(i + 1, min(i + MAX_WORDS, len(words))):
                nw, ns, ne = words[j]
                # Adjacent: a short gap with no other word in it ("Smith, John").
                if nw not in known or ns - end > _MAX_WORD_GAP or any(c.isalnum() for c in lower[end:ns]):
                    break
                gram.append(nw)
                end = ne
                ordered = " ".join(gram)
                add(WORDS, ordered, start, end)
                ordered_sorted = " ".join(sorted(gram))
                if ordered_sorted != ordered:
                    add(WORDS, ordered_sorted, start, end)

    def _records(self, cand: Candidates, seeds: list[tuple[int, int, int]], wanted: dict[int, list[tuple[int, int]]],
                 hashes: list[int], spans: list[tuple[int, int] | int]) -> list[RecordMatch]:
        """The proposed records with at least `min_fields` fields, one identifying, near one of their seeds."""
        found: dict[int, list[tuple[int, int, int]]] = {}  # record -> [(field, start, end)]
        for h, w in zip(hashes, spans, strict=True):
            hits = wanted.get(h)
            if hits is None:
                continue
            start, end = cand.number_span(w) if isinstance(w, int) else w
            for record, field in hits:
                found.setdefault(record, []).append((field, start, end))
        window, identifying = self.config.window_chars, self._identifying
        out: list[RecordMatch] = []
        done: set[int] = set()
        for record, s_start, s_end in seeds:
            if record in done:
                continue
            lo_pos, hi_pos = s_start - window, s_end + window
            near = [(f, s, e) for f, s, e in found.get(record, ()) if s >= lo_pos and e <= hi_pos]
            fields = {f for f, _, _ in near}
            if len(fields) >= self.config.min_fields and any(identifying[f] for f in fields):
                done.add(record)
                out.append(RecordMatch(
                    client=self.client,
                    record=record,
                    fingerprint=self.index.fingerprint(record),
                    fields=tuple(sorted(fields)),
                    start=min(s for _, s, _ in near),
                    end=max(e for _, _, e in near),
                ))
        return out
