"""CUSTOMER_RECORD: exact data match against the clients' indexed customer exports (dlp edm index).

Options (set by the Inspector from the settings and the policy): `data_dir`, where `edm/<client>.idx`
and `keys/edm-<client>.key` live, and `edm`, the policy's `edm:` section (matching rule per client).
Every index is memory-mapped at construction; without any index the detector does nothing.

A match reports the record's fingerprint (a keyed id, never a value) and the label
"<client>: <field types>", for example "acme: account+name".
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from detectors.base import Detector
from dlp.edm.config import parse_edm
from dlp.edm.hashing import client_key
from dlp.edm.index import EdmIndex, EdmIndexError
from dlp.edm.matcher import Candidates, Matcher
from dlp.model import Match
from dlp.normalize import normalize

ENTITY = "CUSTOMER_RECORD"


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


class CustomerRecordDetector(Detector):
    name = "customer_record"
    entities = (ENTITY,)

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        data_dir = self.options.get("data_dir")
        self.matchers = load_matchers(Path(data_dir), self.options.get("edm")) if data_dir else []

    def scan(self, text: str) -> list[Match]:
        if not self.matchers or not text:
            return []
        normalized = normalize(text)
        candidates = Candidates(normalized.text)
        out: list[Match] = []
        for matcher in self.matchers:
            for found in matcher.match(candidates):
                start, end = normalized.to_original(found.start, found.end)
                score = min(1.0, 0.85 + 0.05 * (len(found.fields) - 2))
                out.append(Match(
                    entity=ENTITY,
                    start=start,
                    end=end,
                    score=score,
                    value=f"{matcher.client}:{found.fingerprint:016x}",
                    detector=self.name,
                    label=record_label(matcher, found.fields),
                ))
        return out
