"""The analysts' CLI end to end: `dlp incidents`, `dlp audit`, `dlp purge`, `dlp keys` on a real store."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import sys
from pathlib import Path

import pytest

from dlp.cli import main
from dlp.config import Settings
from dlp.inspect import Inspector
from dlp.model import Channel, ContentKind, Envelope, Message
from dlp.store import open_store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
from storekit import CANARIES, RecordingSmtpServer, canary_email


@pytest.fixture(scope="module")
def inspector(tmp_path_factory: pytest.TempPathFactory) -> Inspector:
    return Inspector.from_settings(Settings(data_dir=str(tmp_path_factory.mktemp("inspector"))))


@pytest.fixture
def data(tmp_path: Path, inspector: Inspector, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    """A data directory with three held e-mails (two senders) and one web block."""
    monkeypatch.delenv("DLP_QUARANTINE_KEY", raising=False)
    monkeypatch.delenv("DLP_SMTP_NEXT_HOP", raising=False)
    data_dir = tmp_path / "data"
    store = open_store(Settings(data_dir=str(data_dir)))
    ids = []
    for sender in ("agent1@cc.example", "agent1@cc.example", "agent2@cc.example"):
        raw = canary_email(sender)
        message = Message(Channel.SMTP, raw, ContentKind.EMAIL, Envelope(sender, ("buyer@gmail.example",)))
        verdict = inspector.inspect(message)
        store.record(message, verdict, raw)
        ids.append(verdict.incident_id)
    web = Message(Channel.WEB, b"card=4111111111111111", envelope=Envelope(destination="https://paste.example/x"))
    verdict = inspector.inspect(web)
    store.record(web, verdict, web.raw)
    ids.append(verdict.incident_id)
    store.close()
    return data_dir, ids


def dlp(capsys: pytest.CaptureFixture[str], data_dir: Path, *argv: str) -> tuple[int, str, str]:
    try:
        code = main([*argv, "--data-dir", str(data_dir), "--actor", "rita"])
    except SystemExit as exc:  # argparse refusing the arguments
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _no_canary(text: str) -> None:
    for canary in CANARIES:
        assert canary not in text


def test_list_filters_and_json(data, capsys) -> None:
    data_dir, ids = data
    code, out, _ = dlp(capsys, data_dir, "incidents", "list")
    assert code == 0 and all(i in out for i in ids) and "4 of 4 shown" in out
    _no_canary(out)
    code, out, _ = dlp(capsys, data_dir, "incidents", "list", "--sender", "agent1@cc.example", "--format", "json")
    listing = json.loads(out)
    assert listing["total"] == 2 and {i["id"] for i in listing["incidents"]} == set(ids[:2])
    code, out, _ = dlp(capsys, data_dir, "incidents", "list", "--channel", "web", "--format", "json")
    assert [i["id"] for i in json.loads(out)["incidents"]] == [ids[3]]
    assert json.loads(out)["incidents"][0]["destination"] == "https://paste.example"
    code, out, _ = dlp(capsys, data_dir, "incidents", "list", "--entity", "US_SSN", "--since", "1h",
                       "--severity", "high", "--status", "new", "--format", "json")
    assert json.loads(out)["total"] == 3
    code, _, err = dlp(capsys, data_dir, "incidents", "list", "--since", "yesterday-ish")
    assert code == 2 and "--since" in err


def test_show_is_masked_and_reveal_needs_a_reason_and_is_audited(data, capsys) -> None:
    data_dir, ids = data
    code, out, _ = dlp(capsys, data_dir, "incidents", "show", ids[0])
    assert code == 0 and "411111******1111" in out and "history:" in out
    _no_canary(out)
    code, out, err = dlp(capsys, data_dir, "incidents", "show", ids[0], "--reveal")
    assert code == 2 and "--reason" in err and not out
    code, out, _ = dlp(capsys, data_dir, "audit", "list", "--format", "json")
    assert out == ""  # the refused reveal was not even attempted
    code, out, _ = dlp(capsys, data_dir, "incidents", "show", ids[0], "--reveal", "--reason", "ticket 4711")
    assert code == 0 and "4111 1111 1111 1111" in out
    code, out, _ = dlp(capsys, data_dir, "audit", "list", "--format", "json")
    record = json.loads(out)
    assert (record["actor"], record["action"], record["incident_id"], record["reason"]) == (
        "rita", "view_original", ids[0], "ticket 4711")
    code, out, _ = dlp(capsys, data_dir, "incidents", "show", "INC-NOPE", "--format", "json")
    assert code == 1


def test_triage_actions_and_release_to_a_real_next_hop(data, capsys, monkeypatch) -> None:
    data_dir, ids = data
    sink = RecordingSmtpServer().start()
    monkeypatch.setenv("DLP_SMTP_NEXT_HOP", sink.address)
    try:
        assert dlp(capsys, data_dir, "incidents", "assign", ids[0], "bob")[0] == 0
        assert dlp(capsys, data_dir, "incidents", "comment", ids[0], "called the agent")[0] == 0
        code, out, err = dlp(capsys, data_dir, "incidents", "release", ids[0])
        assert code == 2 and "--reason" in err
        code, out, _ = dlp(capsys, data_dir, "incidents", "release", ids[0], ids[0], "--reason", "approved")
        assert code == 0 and out.splitlines() == [f"{ids[0]}: released", f"{ids[0]}: already released"]
        assert len(sink.messages) == 1 and sink.messages[0][2] == canary_email("agent1@cc.example")
        code, out, err = dlp(capsys, data_dir, "incidents", "release", ids[3], "--reason", "web?")
        assert code == 1 and "not an e-mail" in err
        assert dlp(capsys, data_dir, "incidents", "mark-false-positive", ids[1], "--reason", "test data")[0] == 0
        assert dlp(capsys, data_dir, "incidents", "confirm", ids[2])[0] == 0
        assert dlp(capsys, data_dir, "incidents", "delete", ids[2], "--reason", "done")[0] == 0
        code, out, _ = dlp(capsys, data_dir, "incidents", "show", ids[2], "--format", "json")
        shown = json.loads(out)
        assert shown["status"] == "deleted" and shown["disposition"] == "confirmed" and not shown["has_original"]
        code, out, _ = dlp(capsys, data_dir, "incidents", "show", ids[0], "--format", "json")
        shown = json.loads(out)
        assert shown["status"] == "released" and shown["assignee"] == "bob"
        assert shown["comments"][0]["text"] == "called the agent"
    finally:
        sink.stop()
    code, out, _ = dlp(capsys, data_dir, "audit", "verify")
    assert code == 0 and "intact" in out


def test_export_json_and_csv_carry_no_raw_values(data, capsys, tmp_path) -> None:
    data_dir, ids = data
    code, out, _ = dlp(capsys, data_dir, "incidents", "export", "--format", "json", "--since", "1d")
    exported = json.loads(out)
    assert {i["id"] for i in exported} == set(ids) and exported[0]["findings"][0]["masked"]
    _no_canary(out)
    target = tmp_path / "out.csv"
    code, _, _ = dlp(capsys, data_dir, "incidents", "export", "--format", "csv", "--sender", "agent2@cc.example",
                     "-o", str(target))
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [r["id"] for r in rows] == [ids[2]] and "411111******1111" in rows[0]["findings"]
    _no_canary(target.read_text())
    _code, out, _ = dlp(capsys, data_dir, "audit", "list", "--action", "export")
    assert out.count("export") == 2


def test_audit_verify_fails_on_tampering(data, capsys) -> None:
    data_dir, ids = data
    dlp(capsys, data_dir, "incidents", "confirm", ids[0])
    dlp(capsys, data_dir, "incidents", "confirm", ids[1])
    conn = sqlite3.connect(data_dir / "store" / "incidents.db", isolation_level=None)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET reason = 'nothing to see' WHERE seq = 1")
    conn.close()
    code, out, _ = dlp(capsys, data_dir, "audit", "verify", "--format", "json")
    assert code == 1 and json.loads(out)["first_bad_seq"] == 1


def test_purge_and_key_rotation(data, capsys) -> None:
    data_dir, ids = data
    code, out, _ = dlp(capsys, data_dir, "keys", "rotate", "--reencrypt")
    assert code == 0 and "re-encrypted 4 originals" in out
    code, out, _ = dlp(capsys, data_dir, "keys", "status", "--format", "json")
    status = json.loads(out)
    assert status["originals_per_key"] == {status["current"]: 4} and len(status["known"]) == 2
    code, out, _ = dlp(capsys, data_dir, "incidents", "show", ids[0], "--reveal", "--reason", "after rotation")
    assert "4111 1111 1111 1111" in out
    code, out, _ = dlp(capsys, data_dir, "purge", "--format", "json")
    assert json.loads(out) == {"originals_removed": 0, "incidents_removed": 0}  # all younger than 30 days
    code, out, _ = dlp(capsys, data_dir, "purge", "--original-days", "0")
    assert code == 0 and "purged 4 originals" in out
    code, out, _ = dlp(capsys, data_dir, "audit", "list", "--action", "purge", "--format", "json")
    assert len(out.splitlines()) == 2
