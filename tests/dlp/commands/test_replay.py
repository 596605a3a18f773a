"""`dlp replay`: the difference a candidate policy makes, over files and stored originals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dlp.config import load_settings
from dlp.inspect import Inspector
from dlp.model import Channel, ContentKind, Envelope, Message
from dlp.store import open_store

CARD_MAIL = b"From: a@cc.example\r\nTo: billing@client.example\r\nSubject: x\r\n\r\ncard 4111 1111 1111 1111\r\n"
MARKER_MAIL = b"From: a@cc.example\r\nTo: b@elsewhere.example\r\nSubject: y\r\n\r\nThis is CONFIDENTIAL.\r\n"
CLEAN_MAIL = b"From: a@cc.example\r\nTo: b@elsewhere.example\r\nSubject: z\r\n\r\nSee you at 10.\r\n"
CANDIDATE = """
destinations:
  client_systems:
    domains: [client.example]
rules:
  - name: confidentiality-marker
    classes: [confidential_marker]
    action: quarantine
    severity: high
"""


def dlp(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dlp", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=120)


def test_replay_over_files_reports_transitions_rules_and_workload(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "card.eml").write_bytes(CARD_MAIL)
    (corpus / "marker.eml").write_bytes(MARKER_MAIL)
    (corpus / "clean.eml").write_bytes(CLEAN_MAIL)
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(CANDIDATE)
    result = dlp("replay", "--policy", str(candidate), "--format", "json", str(corpus), data_dir=tmp_path / "d")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["total"] == 3 and report["changed"] == 2
    transitions = {(t["from"], t["to"]): t["count"] for t in report["transitions"]}
    assert transitions == {("quarantine", "pass"): 1, ("alert", "quarantine"): 1}
    assert report["rules_removed"] == {"sensitive-data-leaving": 1}
    assert report["workload"]["quarantined"] == {"before": 1, "after": 1}
    assert report["workload"]["incidents"] == {"before": 2, "after": 1}
    assert "4111" not in result.stdout
    text = dlp("replay", "--policy", str(candidate), str(corpus), data_dir=tmp_path / "d").stdout
    assert "verdicts changed: 2" in text and "quarantine -> pass" in text


def test_replay_of_stored_originals_is_audited(tmp_path: Path) -> None:
    data = tmp_path / "d"
    settings = load_settings(overrides={"data_dir": str(data)}, environ={})
    inspector = Inspector.from_settings(settings)
    message = Message(Channel.SMTP, CARD_MAIL, ContentKind.EMAIL,
                      Envelope(sender="a@cc.example", recipients=("billing@client.example",)))
    verdict = inspector.inspect(message)
    with open_store(settings) as store:
        store.record(message, verdict, message.raw)
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(CANDIDATE)
    result = dlp("replay", "--policy", str(candidate), "--stored", "--actor", "tuner", "--format", "json",
                 data_dir=data)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["sources"] == {"stored": 1}
    assert report["changes"][0]["source"] == verdict.incident_id
    assert report["changes"][0]["before"] == "quarantine" and report["changes"][0]["after"] == "pass"
    with open_store(settings) as store:
        reads = [r for r in store.audit_records(incident_id=verdict.incident_id) if r.actor == "tuner"]
    assert reads and reads[0].reason == "policy replay"


def test_replay_needs_inputs(tmp_path: Path) -> None:
    candidate = tmp_path / "c.yaml"
    candidate.write_text("{}\n")
    result = dlp("replay", "--policy", str(candidate), data_dir=tmp_path / "d")
    assert result.returncode == 2 and "nothing to replay" in result.stderr


PCAPS = Path(__file__).resolve().parents[3] / "pcaps"
# Passive traffic under a tightened policy: cards on the wire call for quarantine (the passive monitor
# still only alerts; replay compares what the rules call for), encrypted sessions stop being incidents.
CAPTURE_CANDIDATE = """
rules:
  - name: sensitive-data-leaving
    classes: [payment_card, national_id, bank_account, secret, customer_record]
    allow: [client_systems]
    action: {smtp: quarantine, web: block, passive: quarantine, default: block}
    severity: high
  - name: credentials-in-clear
    classes: [credentials_in_clear]
    action: {passive: quarantine, default: alert}
    severity: high
uninspected:
  reasons:
    encrypted_session: {action: pass}
"""


def test_replay_over_a_capture_uses_the_passive_monitor(tmp_path: Path) -> None:
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(CAPTURE_CANDIDATE)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "demo.pcap").write_bytes((PCAPS / "demo.pcap").read_bytes())
    (corpus / "marker.eml").write_bytes(MARKER_MAIL)  # files and captures in one run
    result = dlp("replay", "--policy", str(candidate), "--format", "json", str(corpus), str(PCAPS / "smtp-auth.pcap"),
                 data_dir=tmp_path / "d")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["sources"] == {"capture": 3 + 3, "file": 1}
    changes = {c["source"].replace(f"{corpus}/", "").replace(f"{PCAPS}/", ""): (c["before"], c["after"])
               for c in report["changes"]}
    assert changes == {
        # demo.pcap: the mail with 10 cards in an xlsx, the 1-byte-segment JSON POST, the TLS session
        "demo.pcap#1 DATA from <agent7@callcenter.example> to someone@freemail.example": ("alert", "quarantine"),
        "demo.pcap#2 POST http://paste.example": ("alert", "quarantine"),
        "demo.pcap#3 encrypted session": ("alert", "pass"),
        # smtp-auth.pcap: the credentials finding exists only in the passive monitor (not in the content)
        "smtp-auth.pcap#1 AUTH (SMTP AUTH LOGIN) in clear": ("alert", "quarantine"),
        "smtp-auth.pcap#2 AUTH (SMTP AUTH PLAIN) in clear": ("alert", "quarantine"),
        "smtp-auth.pcap#3 encrypted session": ("alert", "pass"),
    }
    transitions = {(t["from"], t["to"]): t["count"] for t in report["transitions"]}
    assert transitions == {("alert", "quarantine"): 4, ("alert", "pass"): 2}
    assert report["rules_removed"] == {"uninspected:encrypted_session": 2}
    assert report["workload"]["quarantined"] == {"before": 0, "after": 4}
    assert "marker.eml" not in result.stdout  # unchanged under the candidate
    assert "4111" not in result.stdout and "5555" not in result.stdout


def test_a_damaged_capture_is_a_clear_error(tmp_path: Path) -> None:
    damaged = tmp_path / "cut.pcap"
    damaged.write_bytes((PCAPS / "demo.pcap").read_bytes()[:10])
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(CAPTURE_CANDIDATE)
    result = dlp("replay", "--policy", str(candidate), str(damaged), data_dir=tmp_path / "d")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "cut.pcap" in result.stderr
