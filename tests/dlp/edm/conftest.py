"""Shared EDM fixtures: a data directory with a synthetic client export indexed through the real CLI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from dlp.cli import main
from dlp.edm.synthetic import COLUMNS, Customer, write_export


@dataclass(frozen=True)
class Indexed:
    data_dir: Path
    export: Path
    customers: list[Customer]  # the first hundred rows of the export


def index_client(data_dir: Path, client: str, count: int, seed: int, tmp: Path) -> Indexed:
    export = tmp / f"{client}.csv"
    customers = write_export(export, count, seed=seed)
    assert main(["edm", "index", "--client", client, str(export), "--columns", COLUMNS,
                 "--data-dir", str(data_dir)]) == 0
    return Indexed(data_dir, export, customers)


@pytest.fixture(scope="session")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Indexed:
    """2,000 customers of client `acme`, indexed once for the session."""
    tmp = tmp_path_factory.mktemp("edm-acme")
    return index_client(tmp / "data", "acme", 2000, 7, tmp)
