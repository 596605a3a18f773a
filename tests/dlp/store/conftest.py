"""Fixtures for the store tests: settings in a temporary data directory, an open store, a message factory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from storekit import Factory

from dlp.config import Settings
from dlp.inspect import Inspector
from dlp.store import Store, open_store


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("DLP_QUARANTINE_KEY", raising=False)
    return Settings(data_dir=str(tmp_path / "data"))


@pytest.fixture(scope="session")
def inspector(tmp_path_factory: pytest.TempPathFactory) -> Inspector:
    """Built once: compiling the detectors takes most of a second."""
    return Inspector.from_settings(Settings(data_dir=str(tmp_path_factory.mktemp("inspector"))))


@pytest.fixture
def factory(inspector: Inspector) -> Factory:
    return Factory(inspector)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = open_store(settings)
    yield s
    s.close()
