"""Fixtures for the console tests (helpers in consolekit: a uniquely named module, not `conftest`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from consolekit import ConsoleUnderTest, make_console

from dlp.config import Settings
from dlp.inspect import Inspector


@pytest.fixture(scope="session")
def inspector(tmp_path_factory: pytest.TempPathFactory) -> Inspector:
    return Inspector.from_settings(Settings(data_dir=str(tmp_path_factory.mktemp("inspector"))))


@pytest.fixture
def console(tmp_path: Path, inspector: Inspector, monkeypatch: pytest.MonkeyPatch) -> Iterator[ConsoleUnderTest]:
    monkeypatch.delenv("DLP_QUARANTINE_KEY", raising=False)
    yield from make_console(tmp_path / "data", inspector)
