"""Benchmarks for `dlp bench [TARGET]`: each module here (other than `corpus`) is a target.

A target module exposes `run(args) -> dict` (the results, including a "ratio" key: dlp's throughput
over its anchor's, measured in the same run) and optionally `add_arguments(parser)` for its own
options and `format_text(result) -> str` for the human-readable table. The command's common options
are --size-mb, --seed and --json; targets must not redefine them.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

NOT_TARGETS = frozenset({"corpus"})


def targets() -> dict[str, ModuleType]:
    """Every benchmark target, by name."""
    import dlp.bench

    found = {}
    for info in pkgutil.iter_modules(dlp.bench.__path__):
        if info.name in NOT_TARGETS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"dlp.bench.{info.name}")
        if callable(getattr(module, "run", None)):
            found[info.name] = module
    return found
