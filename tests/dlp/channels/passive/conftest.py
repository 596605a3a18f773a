"""Fixtures for the passive monitor: one inspector per module, the generator helpers from pcaps/."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType

import pytest

from dlp.channels.passive.monitor import Monitor, Result
from dlp.channels.passive.reader import Capture
from dlp.channels.passive.stats import CaptureStats
from dlp.config import PassiveSettings, load_settings
from dlp.inspect import Inspector
from dlp.keys import value_id_key

REPO = Path(__file__).resolve().parents[4]
PCAPS = REPO / "pcaps"
REAL_PCAPS = REPO.parent / "shared" / "pcaps-real"


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pcaps_generate", PCAPS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["pcaps_generate"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def gen() -> ModuleType:
    return _load_generator()


@pytest.fixture(scope="session")
def passive_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Inspector, bytes]:
    data = tmp_path_factory.mktemp("passive-data")
    settings = load_settings(None, {"data_dir": str(data)})
    return Inspector.from_settings(settings), value_id_key(settings.data_path)


class Run:
    def __init__(self, results: list[Result], stats: CaptureStats) -> None:
        self.results = results
        self.stats = stats

    def entities(self) -> list[str]:
        return sorted(f.entity for r in self.results for f in r.verdict.findings)

    def reasons(self) -> list[str]:
        return sorted(str(u.reason) for r in self.results for u in r.verdict.uninspected)


@pytest.fixture
def monitor_run(passive_env: tuple[Inspector, bytes]) -> Callable[..., Run]:
    """Run the monitor over a capture file or a list of scapy packets."""

    def run(source: Path | Iterable, settings: PassiveSettings | None = None) -> Run:
        inspector, key = passive_env
        results: list[Result] = []
        monitor = Monitor(inspector, key, settings, on_result=results.append)
        if isinstance(source, Path):
            with Capture(source) as capture:
                for ts, linktype, frame in capture:
                    monitor.packet(ts, linktype, frame)
        else:
            for pkt in source:
                linktype = {"CookedLinux": 113, "IP": 101, "IPv6": 101}.get(pkt.__class__.__name__, 1)
                monitor.packet(float(pkt.time), linktype, bytes(pkt))
        return Run(results, monitor.finish())

    return run
