"""CUSTOMER_RECORD: exact data match against the clients' indexed customer exports (dlp edm index).

Options (set by the Inspector from the settings and the policy): `data_dir`, where `edm/<client>.idx`
and `keys/edm-<client>.key` live, and `edm`, the policy's `edm:` section (matching rule per client).
Every index is memory-mapped at construction; without any index the detector does nothing.

In the engine, the detector shares the numeric detectors' number runs from the one Hyperscan pass (its
`validate` only collects them) and matches the whole text in `finish`; it cuts its own digit runs only
when some index holds numbers shorter than the shared runs (seven digits).

A match reports the record's fingerprint (a keyed id, never a value) and the label
"<client>: <field types>", for example "acme: account+name".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from detectors._numbers import NUMBER_RUN
from detectors.base import Detector, Pattern, ScanText
from dlp.edm.config import parse_edm
from dlp.edm.hashing import client_key
from dlp.edm.index import EdmIndex, EdmIndexError
from dlp.edm.matcher import Candidates, Matcher
from dlp.edm.normalize import DIGITS, EMAIL, PHONE
from dlp.model import Match
from dlp.normalize import normalize

ENTITY = "CUSTOMER_RECORD"
SHARED_RUN_DIGITS = 7  # NUMBER_RUN's shortest run


def load_matchers(data_dir: Path, edm_section: Any = None) -> list[Matcher]:
    """One matcher per index under `data_dir/edm`; raises EdmIndexError for an unusable one."""
    settings = parse_edm(edm_section)
    folder = data_dir / "edm"
    if not folder.is_dir():
        return []
    matchers = []
    for path in sorted(folder.glob("*.idx")):
        client = path.stem
        try:
            key = client_key(data_dir, client, create=False)
        except FileNotFoundError:
            raise EdmIndexError(f"{path}: its key keys/edm-{client}.key is missing; re-index the client") from None
        index = EdmIndex(path, key)
        if index.client != client:
            raise EdmIndexError(f"{path}: holds client {index.client!r}, not {client!r}")
        matchers.append(Matcher(index, settings.config_for(client)))
    return matchers


def record_label(matcher: Matcher, fields: tuple[int, ...]) -> str:
    types = sorted({str(matcher.index.fields[f].type) for f in fields})
    return f"{matcher.client}: {'+'.join(types)}"


_LABELS_KEPT = 4096  # labels depend only on the client and the field indexes: a handful per client


class CustomerRecordDetector(Detector):
    name = "customer_record"
    entities = (ENTITY,)

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        data_dir = self.options.get("data_dir")
        self.matchers = load_matchers(Path(data_dir), self.options.get("edm")) if data_dir else []
        counts = frozenset().union(*(m.number_counts for m in self.matchers))
        self._wanted: frozenset[int] = counts
        self._shared_runs = bool(self.matchers) and all(n >= SHARED_RUN_DIGITS for n in counts)
        # When every client is proposed only by numbers (the shared runs) and e-mail addresses, a text with
        # neither a run nor an "@" has nothing to look up: most messages stop here.
        seed_kinds = frozenset().union(*(m.seed_kinds for m in self.matchers))
        self._quick_exit = self._shared_runs and seed_kinds <= {DIGITS, PHONE, EMAIL}
        self._email_seeds = EMAIL in seed_kinds
        self._labels: dict[tuple[str, tuple[int, ...]], str] = {}

    def patterns(self) -> list[Pattern]:
        return [Pattern("run", NUMBER_RUN)] if self._shared_runs else []

    def validate(self, text: ScanText, key: str, start: int, end: int) -> Iterable[Match]:
        text.notes.setdefault(self.name, []).append((start, end))
        return ()

    def finish(self, text: ScanText) -> list[Match]:
        spans = text.notes.get(self.name)
        if not spans and self._quick_exit and not (self._email_seeds and "@" in text.normalized.text):
            return []
        return self._matches(Candidates(text.normalized.text, text, self._wanted, spans))

    def scan(self, text: str) -> list[Match]:
        if not self.matchers or not text:
            return []
        if self._shared_runs:
            return super().scan(text)  # the engine's pass over this detector alone
        normalized = normalize(text)
        out = []
        for m in self._matches(Candidates(normalized.text, None, self._wanted)):
            start, end = normalized.to_original(m.start, m.end)
            out.append(Match(m.entity, start, end, m.score, m.value, m.detector, m.label))
        return out

    def _matches(self, candidates: Candidates) -> list[Match]:
        """Matches in the offsets of the text given to Candidates."""
        out: list[Match] = []
        for matcher in self.matchers:
            for found in matcher.match(candidates):
                score = min(1.0, 0.85 + 0.05 * (len(found.fields) - 2))
                out.append(Match(
                    entity=ENTITY,
                    start=found.start,
                    end=found.end,
                    score=score,
                    value=f"{matcher.client}:{found.fingerprint:016x}",
                    detector=self.name,
                    label=self._label(matcher, found.fields),
                ))
        return out

    def _label(self, matcher: Matcher, fields: tuple[int, ...]) -> str:
        key = (matcher.client, fields)
        label = self._labels.get(key)
        if label is None:
            if len(self._labels) >= _LABELS_KEPT:
                self._labels.clear()
            label = self._labels[key] = record_label(matcher, fields)
        return label
