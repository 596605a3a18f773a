"""The Detector contract, the registry that finds every detector by its stable name, and the scan engine.

The engine (`DetectorSet`) makes one pass over each text: it normalises the text (dlp.normalize), runs
one Hyperscan database holding every enabled detector's patterns over it, merges the raw reports into
candidate spans, and hands each candidate to its detector's `validate` (Luhn, mod-97, SSA rules,
context words). Python code therefore runs only on candidates, never per character. Offsets in the
returned matches point into the text given to `scan`, whatever the normaliser changed.

A detector that declares no patterns (say, one backed by a lookup table) still works: the engine calls
its `scan` on the original text.
"""

from __future__ import annotations

import bisect
import importlib
import pkgutil
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import hyperscan
from mypy_extensions import mypyc_attr

from detectors._numbers import Run, RunShape, run_shape
from dlp.model import Match
from dlp.normalize import Normalized, normalize

# Which entity wins when two matches overlap: a lower-priority match inside a higher-priority one is
# dropped (a card number is not also a phone number and a bank account number).
ENTITY_PRIORITY = {
    "SECRET": 90,
    "CREDIT_CARD": 80,
    "IBAN_CODE": 80,
    "US_SSN": 70,
    "ABA_ROUTING_NUMBER": 60,
    "EMAIL_ADDRESS": 50,
    "US_BANK_NUMBER": 40,
    "PHONE_NUMBER": 30,
    "IP_ADDRESS": 20,
}


@dataclass(frozen=True, slots=True)
class Pattern:
    """One expression for the multi-pattern pass. `key` tells the detector which of its patterns hit.

    Expressions are Hyperscan syntax over the normalised text (ASCII, or UTF-8 for the rare non-ASCII
    character left after folding), which always ends with a newline sentinel (so that a pattern may end
    on a terminator character, reporting once per run rather than once per character). Two detectors
    may share an expression: it is compiled once.
    """

    key: str
    expression: str
    flags: int = 0
    som: bool = True  # report the start of each match; False is much faster for patterns such as
    # e-mail addresses whose start is a long run of common characters: the validator then gets an
    # empty span at the match's end and finds the start itself.


# Entities at or above this priority claim their span: a weaker candidate inside it is dropped later
# anyway (see _drop_overlapped), so the engine validates strong detectors first and weaker validators
# may skip their expensive checks (phone number parsing) inside a claimed span.
STRONG = 60


def compiled() -> bool:
    """Whether the engine runs compiled by mypyc (setup.py) rather than as plain Python."""
    return not __file__.endswith(".py")


def priority(detector: Detector) -> int:
    return max((ENTITY_PRIORITY.get(e, 0) for e in detector.entities), default=0)


class SpanIndex:
    """Answers "is [start, end) inside one of these spans?" in O(log n): spans sorted by start with a
    running maximum of their ends. Rebuilt lazily after additions (spans are added in one phase and
    queried in a later one)."""

    __slots__ = ("_dirty", "_max_end", "_starts", "spans")

    def __init__(self) -> None:
        self.spans: list[tuple[int, int]] = []
        self._starts: list[int] = []
        self._max_end: list[int] = []
        self._dirty = False

    def append(self, span: tuple[int, int]) -> None:
        self.spans.append(span)
        self._dirty = True

    def contains(self, start: int, end: int) -> bool:
        if self._dirty:
            self.spans.sort()
            self._starts = [s for s, _ in self.spans]
            running, self._max_end = -1, []
            for _, e in self.spans:
                running = max(running, e)
                self._max_end.append(running)
            self._dirty = False
        i = bisect.bisect_right(self._starts, start)
        return i > 0 and self._max_end[i - 1] >= end


class ScanText:
    """The normalised text of one scan, with helpers validators share (context windows, offsets, the
    spans that stronger detectors already claimed)."""

    __slots__ = ("_lower", "_mentions", "_shapes", "claimed", "normalized", "notes", "text")

    def __init__(self, normalized: Normalized) -> None:
        self.normalized = normalized
        self.text = normalized.text + "\n"  # the sentinel the patterns saw
        self._shapes: dict[tuple[int, int], RunShape] = {}
        self._lower: str | None = None
        self._mentions: dict[tuple[str, ...], list[int]] = {}
        self.claimed = SpanIndex()  # spans of strong matches found so far
        self.notes: dict[str, Any] = {}  # per-text state a detector's validate() leaves for its finish()

    def _occurrences(self, words: tuple[str, ...]) -> list[int]:
        """Sorted start offsets of every occurrence of `words` in the lowercased text (inside other words
        too), found once per text: the cheap necessary condition for a context word near a candidate."""
        found = self._mentions.get(words)
        if found is None:
            lower = self.lower()
            found = []
            for w in words:
                at = lower.find(w)
                while at >= 0:
                    found.append(at)
                    at = lower.find(w, at + 1)
            found.sort()
            self._mentions[words] = found
        return found

    def lower(self) -> str:
        """The lowercased text, computed once; "" when lowercasing changed its length (a rare character
        such as "İ" whose lower case is two characters), since offsets would no longer line up."""
        lower = self._lower
        if lower is None:
            lower = self.text.lower()
            lower = self._lower = lower if len(lower) == len(self.text) else ""
        return lower

    def mentions(self, words: tuple[str, ...]) -> bool:
        """Whether any of `words` occurs anywhere in the lowercased text, even inside another word: a
        text that has none can skip every context test for these words."""
        return bool(self._occurrences(words)) or self._lower == ""

    def mentions_near(self, words: tuple[str, ...], start: int, chars: int) -> bool:
        """Whether one of `words` starts within `chars` characters before `start`: false means that no
        context window of that size before `start` can hold one of them."""
        found = self._occurrences(words)
        if self._lower == "":
            return True  # lowercasing changed the length (rare non-ASCII): no offsets, no shortcut
        i = bisect.bisect_left(found, start - chars)
        return i < len(found) and found[i] < start

    def is_claimed(self, start: int, end: int) -> bool:
        """Whether [start, end) lies inside a match of a strong entity (card, IBAN, SSN, routing number,
        secret): a weaker match there would be dropped, so it need not be validated."""
        claimed = self.claimed
        return bool(claimed.spans) and claimed.contains(start, end)

    def shape(self, start: int, end: int) -> RunShape:
        """A number run's digit groups, digit count and layout (see detectors._numbers.RunShape), built
        once for all the numeric detectors: the layout alone rejects most runs."""
        key = (start, end)
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._shapes[key] = run_shape(self.text, start, end)
        return shape

    def digit_groups(self, start: int, end: int) -> Run:
        """The digit groups of a number run."""
        return self.shape(start, end).groups

    def before(self, start: int, chars: int = 48) -> str:
        """The lowercased text just before `start` (context words)."""
        lower = self._lower if self._lower is not None else self.lower()
        return lower[max(0, start - chars) : start] if lower else self.text[max(0, start - chars) : start].lower()

    def clause_before(self, start: int, chars: int = 40) -> str:
        """The lowercased text before `start` back to the start of its sentence or line: context words
        from the previous sentence do not count."""
        window = self.before(start, chars)
        cut = max(window.rfind(". "), window.rfind("\n"), window.rfind("? "), window.rfind("! "))
        return window[cut + 1 :] if cut >= 0 else window

    def after(self, end: int, chars: int = 32) -> str:
        lower = self._lower if self._lower is not None else self.lower()
        return lower[end : end + chars] if lower else self.text[end : end + chars].lower()

    def around(self, start: int, end: int, before: int = 48, after: int = 32) -> str:
        return self.before(start, before) + " " + self.after(end, after)


@mypyc_attr(allow_interpreted_subclasses=True)  # detectors elsewhere are not compiled
class Detector:
    """A family of sensitive data. Subclasses set `name` and `entities`, compile in `__init__`, and
    either declare `patterns()` + `validate()` (the fast path: one shared pass per text) or override
    `scan`. No I/O on the hot path: everything a detector needs is prepared at construction.

    `options` come from the policy (`detectors: {name: {...}}`), for example the keyword lists.
    """

    name: ClassVar[str] = ""
    entities: ClassVar[tuple[str, ...]] = ()
    # The word lists this detector passes to ScanText.mentions / mentions_near: the engine finds their
    # occurrences in its Hyperscan pass (caseless literals) instead of one str.find per word per text.
    context_words: ClassVar[tuple[tuple[str, ...], ...]] = ()
    registry: ClassVar[dict[str, type[Detector]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            if cls.name in Detector.registry and Detector.registry[cls.name] is not cls:
                raise ValueError(f"two detectors are named {cls.name!r}")
            Detector.registry[cls.name] = cls

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = dict(options or {})
        self._alone: DetectorSet | None = None

    def patterns(self) -> Sequence[Pattern]:
        """The expressions whose hits this detector validates. Empty: the engine calls `scan` instead."""
        return ()

    def validate(self, text: ScanText, key: str, start: int, end: int) -> Iterable[Match]:
        """Turn one candidate span [start, end) of the normalised text into matches (offsets in the
        normalised text; the engine maps them back)."""
        return ()

    def finish(self, text: ScanText) -> Iterable[Match]:
        """Text-level matches, called once per text after every candidate was validated, for detectors
        that override it (exact data match: its validate() only collects the pass's candidates in
        `text.notes`, and the proximity rule needs all of them). Offsets in the normalised text."""
        return ()

    def scan(self, text: str) -> list[Match]:
        """This detector alone over one text (tests, tools). The engine does not call this for
        pattern-based detectors."""
        if not self.patterns():
            raise NotImplementedError(f"{type(self).__name__} declares no patterns and no scan()")
        if self._alone is None:
            self._alone = DetectorSet([self])
        return self._alone.scan(text)


def load_all() -> dict[str, type[Detector]]:
    """Import every module in this package so that each detector registers itself."""
    import detectors

    for info in pkgutil.iter_modules(detectors.__path__):
        if info.name != "base" and not info.name.startswith("_"):
            importlib.import_module(f"detectors.{info.name}")
    return dict(Detector.registry)


class DetectorSet:
    """All enabled detectors, scanning one text in one Hyperscan pass. Thread-safe: each thread gets
    its own Hyperscan scratch space."""

    def __init__(self, detectors: list[Detector]) -> None:
        self.detectors = detectors
        self._plain = [d for d in detectors if not d.patterns()]
        routes: dict[tuple[str, int, bool], list[tuple[Detector, str]]] = {}
        for d in detectors:
            for p in d.patterns():
                routes.setdefault((p.expression, p.flags, p.som), []).append((d, p.key))
        # Strong detectors first: their matches claim spans that weaker validators may skip.
        self._routes = [sorted(r, key=lambda pair: -priority(pair[0])) for r in routes.values()]
        self._strong = [[(d, k) for d, k in r if priority(d) >= STRONG] for r in self._routes]
        self._weak = [[(d, k) for d, k in r if priority(d) < STRONG] for r in self._routes]
        self._som = [som for _, _, som in routes]
        self._finishers = [d for d in detectors if d.patterns() and type(d).finish is not Detector.finish]
        # Context words, one caseless literal each, compiled after the routes (ids len(routes)...): their
        # reports sort after every route's and become ScanText's occurrence lists (ASCII texts only).
        word_lists = sorted({words for d in detectors if d.patterns() for words in d.context_words})
        words = sorted({w for wl in word_lists for w in wl})
        self._word_lists = word_lists
        self._word_len = [len(w) for w in words]
        self._word_in = [[k for k, wl in enumerate(word_lists) if w in wl] for w in words]
        self._db: hyperscan.Database | None = None
        self._local = threading.local()
        if routes:
            db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            db.compile(
                expressions=[expr.encode() for expr, _, _ in routes] + [re.escape(w).encode() for w in words],
                ids=list(range(len(routes) + len(words))),
                flags=[flags | (hyperscan.HS_FLAG_SOM_LEFTMOST if som else 0) for _, flags, som in routes]
                + [hyperscan.HS_FLAG_CASELESS] * len(words),
            )
            self._db = db

    def _scratch(self) -> hyperscan.Scratch:
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = hyperscan.Scratch(self._db)
        return scratch

    def scan(self, text: str) -> list[Match]:
        out: list[Match] = []
        if self._db is not None and text:
            out.extend(self._scan_patterns(text))
        for d in self._plain:
            for m in d.scan(text):
                out.append(m if m.detector else replace(m, detector=d.name))
        return _drop_overlapped(out)

    def _scan_patterns(self, text: str) -> list[Match]:
        normalized = normalize(text)
        folded = normalized.text
        ascii_only = folded.isascii()
        data = (folded.encode("ascii") if ascii_only else folded.encode("utf-8", errors="replace")) + b"\n"
        reports: list[tuple[int, int, int]] = []
        append = reports.append

        def on_match(pid: int, start: int, end: int, flags: int, context: object) -> None:
            append((pid, start, end))

        assert self._db is not None
        # Positional arguments: the extension looks each keyword up by name, a tenth of the scan's cost.
        self._db.scan(data, on_match, 0, None, self._scratch())
        word_reports: list[tuple[int, int, int]] = []
        if self._word_lists and reports:
            reports.sort()
            cut = bisect.bisect_left(reports, (len(self._som), -1, -1))
            word_reports = reports[cut:]
            del reports[cut:]
        if not reports and not self._finishers:
            return []
        char_at = None if ascii_only else _byte_to_char(data)
        view = ScanText(normalized)
        if ascii_only and self._word_lists:
            # Same lists as ScanText._occurrences would build: for ASCII text, a caseless literal match
            # is an occurrence in text.lower(), byte offsets are character offsets.
            occurrences: list[list[int]] = [[] for _ in self._word_lists]
            first_word = len(self._som)
            for pid, _, end in word_reports:
                w = pid - first_word
                at = end - self._word_len[w]
                for k in self._word_in[w]:
                    occurrences[k].append(at)
            for wl, places in zip(self._word_lists, occurrences, strict=True):
                places.sort()
                view._mentions[wl] = places
        limit = len(folded)
        found: dict[tuple[str, int, int, str], Match] = {}
        spans = _merge(reports, self._som) if reports else []
        if char_at is not None:
            spans = [(pid, char_at(start), char_at(end)) for pid, start, end in spans]
        claimed = view.claimed
        for routes in (self._strong, self._weak):
            for pid, start, end in spans:
                for detector, key in routes[pid]:
                    for m in detector.validate(view, key, start, end):
                        if routes is self._strong:
                            claimed.append((m.start, m.end))
                        s, e = normalized.to_original(min(m.start, limit), min(m.end, limit))
                        name = m.detector or detector.name
                        slot = (m.entity, s, e, name)
                        if slot not in found:
                            # Built again only when normalisation moved it or the detector left its name out.
                            found[slot] = m if (s, e, name) == (m.start, m.end, m.detector) else Match(
                                m.entity, s, e, m.score, m.value, name, m.label)
        for detector in self._finishers:
            for m in detector.finish(view):
                s, e = normalized.to_original(min(m.start, limit), min(m.end, limit))
                name = m.detector or detector.name
                found.setdefault((m.entity, s, e, name), Match(m.entity, s, e, m.score, m.value, name, m.label))
        return list(found.values())


def _merge(reports: list[tuple[int, int, int]], som: list[bool]) -> list[tuple[int, int, int]]:
    """Hyperscan reports every end of every match; fold them into maximal spans per pattern. A pattern
    without start-of-match reporting yields one empty span per distinct end."""
    reports.sort()
    merged: list[tuple[int, int, int]] = []
    cur_pid, cur_start, cur_end = reports[0]
    if not som[cur_pid]:
        cur_start = cur_end
    for pid, start, end in reports[1:]:
        if not som[pid]:
            start = end
        if pid == cur_pid and start < cur_end:
            if end > cur_end:
                cur_end = end
            continue
        merged.append((cur_pid, cur_start, cur_end))
        cur_pid, cur_start, cur_end = pid, start, end
    merged.append((cur_pid, cur_start, cur_end))
    return merged


def _byte_to_char(data: bytes):  # -> Callable[[int], int]
    """Map UTF-8 byte offsets to character offsets (only for the rare text left non-ASCII)."""
    import numpy as np

    raw = np.frombuffer(data, dtype=np.uint8)
    starts = np.concatenate(([0], np.cumsum((raw & 0xC0) != 0x80)))
    return lambda offset: int(starts[offset])


def _drop_overlapped(matches: list[Match]) -> list[Match]:
    """Drop a match that lies inside a match of a higher-priority entity (O(n log n): one span index
    per priority level, and there are only a few levels)."""
    if len(matches) < 2:
        return matches
    by_level: dict[int, SpanIndex] = {}
    for m in matches:
        level = ENTITY_PRIORITY.get(m.entity, 0)
        if level >= STRONG:
            by_level.setdefault(level, SpanIndex()).append((m.start, m.end))
    if not by_level:
        return matches
    out = []
    for m in matches:
        rank = ENTITY_PRIORITY.get(m.entity, 0)
        if any(level > rank and index.contains(m.start, m.end) for level, index in by_level.items()):
            continue
        out.append(m)
    return out


def build_detectors(options: Mapping[str, Mapping[str, Any]] | None = None) -> DetectorSet:
    """Instantiate every registered detector with its options from the policy; `enabled: false` skips."""
    options = options or {}
    chosen = []
    for name, cls in sorted(load_all().items()):
        opts = options.get(name, {})
        if opts.get("enabled", True) is False:
            continue
        chosen.append(cls(opts))
    return DetectorSet(chosen)
