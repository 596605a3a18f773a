"""Shared fixtures: one engine with every detector and the shipped policy's options, built once."""

from __future__ import annotations

import pytest

from detectors.base import DetectorSet, build_detectors
from dlp.model import Match
from dlp.policy import load_policy


@pytest.fixture(scope="session")
def engine() -> DetectorSet:
    return build_detectors(load_policy(None).detectors)


def found(engine: DetectorSet, text: str, entity: str, min_score: float = 0.5) -> list[Match]:
    return [m for m in engine.scan(text) if m.entity == entity and m.score >= min_score]
