"""The Detector contract and the registry that finds every detector by its stable name."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from typing import Any, ClassVar

from dlp.model import Match


class Detector:
    """A family of sensitive data. Subclasses set `name` and `entities`, compile in `__init__`, and
    implement `scan`. No I/O on the hot path: everything a detector needs is prepared at construction.

    `options` come from the policy (`detectors: {name: {...}}`), for example the keyword lists.
    """

    name: ClassVar[str] = ""
    entities: ClassVar[tuple[str, ...]] = ()
    registry: ClassVar[dict[str, type[Detector]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            if cls.name in Detector.registry and Detector.registry[cls.name] is not cls:
                raise ValueError(f"two detectors are named {cls.name!r}")
            Detector.registry[cls.name] = cls

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = dict(options or {})

    def scan(self, text: str) -> list[Match]:
        raise NotImplementedError


def load_all() -> dict[str, type[Detector]]:
    """Import every module in this package so that each detector registers itself."""
    import detectors

    for info in pkgutil.iter_modules(detectors.__path__):
        if info.name != "base" and not info.name.startswith("_"):
            importlib.import_module(f"detectors.{info.name}")
    return dict(Detector.registry)


class DetectorSet:
    """All enabled detectors, scanning one text. PLACEHOLDER engine: each detector scans in turn; the
    real engine runs one multi-pattern pass and validates candidates only."""

    def __init__(self, detectors: list[Detector]) -> None:
        self.detectors = detectors

    def scan(self, text: str) -> list[Match]:
        out: list[Match] = []
        for d in self.detectors:
            for m in d.scan(text):
                out.append(m if m.detector else _with_detector(m, d.name))
        return out


def _with_detector(m: Match, name: str) -> Match:
    from dataclasses import replace

    return replace(m, detector=name)


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
