"""docs/metrics.md lists every dlp metric defined in dlp/metrics.py, with its labels."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import REGISTRY

import dlp.metrics  # noqa: F401  (registers the metrics)

DOC = Path(__file__).resolve().parents[2] / "docs/metrics.md"
_SUFFIX = {"counter": "_total", "info": "_info"}


def test_every_metric_is_documented_with_its_labels() -> None:
    text = DOC.read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(dlp_\w+)` \| \w+ \|([^|]*)\|", text, re.M)}
    missing, wrong_labels = [], []
    for collector in list(REGISTRY._collector_to_names):
        for family in getattr(collector, "describe", list)():
            if not family.name.startswith("dlp_"):
                continue
            name = family.name + _SUFFIX.get(family.type, "")
            if name not in rows:
                missing.append(name)
                continue
            labels = tuple(getattr(collector, "_labelnames", ()))
            documented = tuple(x.strip() for x in rows[name].split(",") if x.strip())
            if family.type != "info" and documented != labels:
                wrong_labels.append((name, labels, documented))
    assert not missing, f"add to docs/metrics.md: {missing}"
    assert not wrong_labels, wrong_labels
