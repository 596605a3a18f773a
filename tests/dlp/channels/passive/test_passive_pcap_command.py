"""`dlp pcap` end to end on the project's captures and on real captures recorded elsewhere."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import pytest

from dlp.cli import main

REPO = Path(__file__).resolve().parents[4]
PCAPS = REPO / "pcaps"
REAL_PCAPS = REPO.parent / "shared" / "pcaps-real"


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["pcap", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _json(out: str) -> tuple[list[dict], dict]:
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert "summary" in lines[-1]
    return lines[:-1], lines[-1]["summary"]


def test_demo_capture_reports_cards_post_and_encrypted_session(tmp_path, capsys):
    code, out, err = _run(capsys, "--data-dir", str(tmp_path), "--format", "json", str(PCAPS / "demo.pcap"))
    assert code == 1, err
    records, summary = _json(out)
    by_method = {r["envelope"]["method"]: r for r in records}
    mail, post, tls = by_method["DATA"], by_method["POST"], by_method["tls"]
    cards = [f for f in mail["findings"] if f["entity"] == "CREDIT_CARD"]
    assert len(cards) == 10 and all("customers.xlsx" in f["location"] for f in cards)
    assert mail["envelope"]["recipients"] == ["someone@freemail.example"]
    assert [f["entity"] for f in post["findings"]] == ["CREDIT_CARD"]
    assert post["envelope"]["destination"] == "http://paste.example/api/notes"
    assert [u["reason"] for u in tls["uninspected"]] == ["encrypted_session"] and tls["action"] == "alert"
    assert all(r["enforced_action"] in ("pass", "alert") for r in records)
    assert summary["encrypted_sessions"] == 1 and summary["incidents"] == 3
    # no raw card number anywhere in the output
    from pcaps_generate import CARDS, POST_CARD  # loaded by the gen fixture's module import below

    assert not any(c in out for c in [*CARDS, POST_CARD])


@pytest.fixture(autouse=True)
def _generator(gen):
    return gen


def test_incidents_are_recorded_in_the_store(tmp_path, capsys):
    code, out, _ = _run(capsys, "--data-dir", str(tmp_path), str(PCAPS / "smtp-auth.pcap"))
    assert code == 1
    assert "credentials-in-clear" in out and "S3cr3t-pass" not in out
    from dlp.config import load_settings
    from dlp.store import open_store

    store = open_store(load_settings(None, {"data_dir": str(tmp_path)}))
    try:
        assert store.count() == 3
    finally:
        store.close()
    alerts = (tmp_path / "alerts.jsonl").read_text()
    assert alerts.count("CLEARTEXT_CREDENTIALS") >= 2 and "S3cr3t" not in alerts


@pytest.mark.parametrize("name", ["vlan.pcap", "ipv6.pcapng", "sll.pcap", "fragments.pcap", "wraparound.pcap",
                                  "retransmissions.pcap", "insertion.pcap"])
def test_each_link_and_network_variant_finds_the_card(name, tmp_path, capsys):
    code, out, _ = _run(capsys, "--no-record", "--data-dir", str(tmp_path), "--format", "json", str(PCAPS / name))
    records, summary = _json(out)
    assert code == 1
    assert [f["entity"] for r in records for f in r["findings"]].count("CREDIT_CARD") >= 1
    assert summary["decode_errors"] == 0


def test_unreadable_inputs_exit_2_with_a_clear_message(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a capture\n")
    zipped = tmp_path / "c.pcap.gz"
    zipped.write_bytes(gzip.compress((PCAPS / "gap.pcap").read_bytes()))
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    for path, words in ((text, "not a capture file"), (zipped, "gzip"), (empty, "empty"),
                        (tmp_path / "missing.pcap", "No such file")):
        code, _out, err = _run(capsys, "--no-record", "--data-dir", str(tmp_path), str(path))
        assert code == 2 and words in err and "Traceback" not in err, err


def test_truncated_capture_is_read_up_to_the_cut_and_says_so(tmp_path, capsys):
    cut = tmp_path / "cut.pcap"
    cut.write_bytes((PCAPS / "demo.pcap").read_bytes()[:-700])
    code, out, _ = _run(capsys, "--no-record", "--data-dir", str(tmp_path), str(cut))
    assert "truncated record" in out
    assert code == 1


def test_modified_pcap_written_here_is_read(tmp_path, capsys):
    """Rewrite a classic pcap as the a1b2cd34 variant (24-byte record headers) and read it."""
    data = (PCAPS / "vlan.pcap").read_bytes()
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2CD34, 2, 4, 0, 0, 262144, 1))
    offset = 24
    while offset < len(data):
        sec, usec, caplen, length = struct.unpack_from("<IIII", data, offset)
        out += struct.pack("<IIIIIHBB", sec, usec, caplen, length, 2, 0x0800, 0, 0)
        out += data[offset + 16 : offset + 16 + caplen]
        offset += 16 + caplen
    path = tmp_path / "modified.pcap"
    path.write_bytes(bytes(out))
    code, text, _ = _run(capsys, "--no-record", "--data-dir", str(tmp_path), str(path))
    assert code == 1 and "modified pcap" in text and "CREDIT_CARD" in text


# ------------------------------------------------------------------------------------ real captures

real = pytest.mark.skipif(not REAL_PCAPS.is_dir(), reason="../shared/pcaps-real not present")


@real
@pytest.mark.parametrize("path", sorted(REAL_PCAPS.glob("*.pcap")) if REAL_PCAPS.is_dir() else [],
                         ids=lambda p: Path(p).name)
def test_real_captures_are_read_without_a_traceback(path, tmp_path, capsys):
    code, out, err = _run(capsys, "--no-record", "--data-dir", str(tmp_path), "--format", "json", str(path))
    assert code in (0, 1) and "Traceback" not in err
    _records, summary = _json(out)
    assert summary["packets"] > 0 and summary["decode_errors"] == 0


@real
def test_real_smtp_session_yields_transactions_and_the_auth_login_finding(tmp_path, capsys):
    code, out, _ = _run(capsys, "--no-record", "--data-dir", str(tmp_path), "--format", "json",
                        str(REAL_PCAPS / "smtp-modified-format.pcap"))
    records, summary = _json(out)
    mails = [r for r in records if r["envelope"]["method"] == "DATA"]
    auths = [r for r in records if r["envelope"]["method"] == "AUTH"]
    assert mails and all(r["envelope"]["sender"] and r["envelope"]["recipients"] for r in mails)
    assert auths and all([f["entity"] for f in r["findings"]] == ["CLEARTEXT_CREDENTIALS"] for r in auths)
    assert all(f["masked"] == "****" for r in auths for f in r["findings"])
    assert code == 1 and summary["protocols"] == {"smtp": summary["flows"]}


@real
def test_real_mixed_capture_yields_smtp_and_http(tmp_path, capsys):
    _code, out, _ = _run(capsys, "--no-record", "--data-dir", str(tmp_path), "--format", "json",
                        str(REAL_PCAPS / "http-ftp-smtp-bt-modified-format.pcap"))
    records, summary = _json(out)
    methods = {r["envelope"]["method"] for r in records}
    assert {"DATA", "AUTH", "GET", "POST"} <= methods
    assert summary["protocols"]["smtp"] >= 30 and summary["protocols"]["http"] >= 50


@real
def test_real_ehlo_quit_has_no_transaction(tmp_path, capsys):
    code, out, _ = _run(capsys, "--no-record", "--data-dir", str(tmp_path), "--format", "json",
                        str(REAL_PCAPS / "smtp-ehlo-quit.pcap"))
    records, summary = _json(out)
    assert code == 0 and records == [] and summary["protocols"] == {"smtp": 1}


@real
def test_real_wget_yields_its_get(tmp_path, capsys):
    code, out, _ = _run(capsys, "--no-record", "--data-dir", str(tmp_path), "--format", "json",
                        str(REAL_PCAPS / "http-wget.pcap"))
    records, _ = _json(out)
    assert [(r["envelope"]["method"], r["envelope"]["destination"]) for r in records] == [
        ("GET", "http://packetlife.net/images/layout/logo.png")]
    assert code == 0


def _passive_messages() -> float:
    from prometheus_client import REGISTRY

    return sum(REGISTRY.get_sample_value("dlp_messages_total", {"channel": "passive", "action": action}) or 0.0
               for action in ("pass", "alert", "quarantine", "block"))


def test_offline_runs_skip_per_message_metrics_the_live_monitor_counts_them(tmp_path, capsys, passive_env):
    """`dlp pcap` serves no metrics, so it does not pay for per-message updates; the Monitor `dlp sniff`
    builds (the default) counts every transaction."""
    from dlp.channels.passive.monitor import Monitor
    from dlp.channels.passive.reader import Capture

    before = _passive_messages()
    code, _out, err = _run(capsys, "--data-dir", str(tmp_path), "--no-record", str(PCAPS / "demo.pcap"))
    assert code == 1, err
    assert _passive_messages() == before
    inspector, key = passive_env
    monitor = Monitor(inspector, key)
    with Capture(PCAPS / "demo.pcap") as capture:
        monitor.feed(capture)
    stats = monitor.finish()
    assert stats.transactions >= 2 and _passive_messages() >= before + stats.transactions
