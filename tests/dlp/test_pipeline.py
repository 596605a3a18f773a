"""The pipeline: an inspection failure is raised to the channel (which applies its failure mode) and
also reaches the SIEM as an alert that carries no content (adversarial A11)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from helpers.smtp_relay import ScriptedDetector, scripted_inspector

from dlp.alerts import AlertDispatcher
from dlp.config import load_settings
from dlp.inspect import InspectionFailed, InspectionPool
from dlp.model import Channel, ContentKind, Envelope, Message
from dlp.pipeline import Pipeline


def test_inspection_failure_is_raised_and_alerted_without_content(tmp_path: Path) -> None:
    settings = load_settings(overrides={"data_dir": str(tmp_path), "inspection.workers": -1}, environ={})
    pool = InspectionPool(settings, scripted_inspector(ScriptedDetector("raise"))(settings))
    alerts = AlertDispatcher(settings)
    pipeline = Pipeline(pool, None, alerts)
    message = Message(Channel.SMTP, b"Subject: x\r\n\r\ncard 4111 1111 1111 1111\r\n", ContentKind.EMAIL,
                      Envelope(sender="agent@cc.example", recipients=("x@out.example",)))
    with pytest.raises(InspectionFailed):
        asyncio.run(pipeline.inspect(message))
    alerts.close()
    [line] = (tmp_path / "alerts.jsonl").read_text().splitlines()
    alert = json.loads(line)
    assert alert["rules"] == ["inspection-failed"] and alert["severity"] == "high"
    assert alert["uninspected"][0]["reason"] == "inspection_error"
    assert alert["envelope"]["sender"] == "agent@cc.example"
    assert "4111" not in line and "injected" not in line
