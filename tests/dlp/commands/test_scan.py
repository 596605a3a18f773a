"""`dlp scan`: the JSON contract, exit codes, input kinds, and no raw value in its logs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CARD = "4111111111111111"
SSN = "536-22-1234"
MAIL = (f"From: Agent <agent@cc.example>\r\nTo: friend@gmail.example\r\nSubject: list\r\n\r\n"
        f"card {CARD[:4]} {CARD[4:8]} {CARD[8:12]} {CARD[12:]} and SSN {SSN}\r\n").encode()
REQUEST = (f"POST /paste HTTP/1.1\r\nHost: paste.example\r\nContent-Type: application/x-www-form-urlencoded\r\n"
           f"Content-Length: 21\r\n\r\ntext={CARD}").encode()
FINDING_FIELDS = {"entity", "detector", "score", "location", "start", "end", "masked", "value_id"}


def scan(*args: str, data_dir: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "dlp", "scan", "--data-dir", str(data_dir), *args],
                          input=stdin, capture_output=True, timeout=120)


def test_json_contract_and_exit_code_one(tmp_path: Path) -> None:
    (tmp_path / "mail.eml").write_bytes(MAIL)
    (tmp_path / "req.http").write_bytes(REQUEST)
    (tmp_path / "clean.txt").write_bytes(b"Meeting at 10:30, room 4.\n")
    result = scan("--format", "json", str(tmp_path / "mail.eml"), str(tmp_path / "req.http"),
                  str(tmp_path / "clean.txt"), data_dir=tmp_path / "d")
    assert result.returncode == 1, result.stderr
    records = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [r["kind"] for r in records] == ["email", "http", "file"]
    mail, req, clean = records
    assert set(mail) == {"source", "kind", "action", "severity", "rules", "findings", "uninspected"}
    assert mail["action"] == "quarantine" and "sensitive-data-leaving" in mail["rules"]
    entities = {f["entity"] for f in mail["findings"]}
    assert {"CREDIT_CARD", "US_SSN"} <= entities
    for f in mail["findings"] + req["findings"]:
        assert set(f) == FINDING_FIELDS
    card = next(f for f in mail["findings"] if f["entity"] == "CREDIT_CARD")
    assert card["masked"] == "411111******1111"
    req_card = next(f for f in req["findings"] if f["entity"] == "CREDIT_CARD")
    assert req_card["value_id"] == card["value_id"], "same card, different format -> same value_id"
    assert clean["action"] == "pass" and clean["findings"] == []
    assert CARD.encode() not in result.stdout and SSN.encode() not in result.stdout


def test_clean_input_exits_zero_and_stdin_works(tmp_path: Path) -> None:
    result = scan("-", data_dir=tmp_path / "d", stdin=b"nothing to see here\n")
    assert result.returncode == 0
    assert b"<stdin>: PASS" in result.stdout


def test_value_id_key_is_per_installation(tmp_path: Path) -> None:
    (tmp_path / "mail.eml").write_bytes(MAIL)

    def ids(data: Path) -> set[str]:
        out = scan("--format", "json", str(tmp_path / "mail.eml"), data_dir=data).stdout
        return {f["value_id"] for f in json.loads(out)["findings"]}

    first = ids(tmp_path / "a")
    assert ids(tmp_path / "a") == first
    assert not ids(tmp_path / "b") & first
    key = tmp_path / "a" / "keys" / "value-id.key"
    assert key.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("args", "words"),
    [(["/nonexistent/file"], b"No such file"), (["--policy", "/nonexistent.yaml", "-"], b"cannot read")],
)
def test_usage_and_io_errors_exit_two(tmp_path: Path, args: list[str], words: bytes) -> None:
    result = scan(*args, data_dir=tmp_path / "d", stdin=b"")
    assert result.returncode == 2
    assert words in result.stderr and b"Traceback" not in result.stderr


def test_no_raw_value_in_logs_even_at_debug(tmp_path: Path) -> None:
    (tmp_path / "mail.eml").write_bytes(MAIL)
    env_run = subprocess.run(
        [sys.executable, "-m", "dlp", "scan", "--data-dir", str(tmp_path / "d"), str(tmp_path / "mail.eml")],
        capture_output=True, timeout=120, env={**__import__("os").environ, "DLP_LOG_LEVEL": "debug"},
    )
    everything = env_run.stdout + env_run.stderr
    for raw in (CARD, f"{CARD[:4]} {CARD[4:8]}", SSN, SSN.replace("-", "")):
        assert raw.encode() not in everything


def test_an_unusable_edm_index_is_a_clear_error(tmp_path: Path) -> None:
    """An index dlp cannot use (here: its key is missing) stops `dlp scan` and `dlp serve` with the
    file's name and what to do, not a traceback and not an inspection that silently skips EDM."""
    data = tmp_path / "d"
    (data / "edm").mkdir(parents=True)
    (data / "edm" / "acme.idx").write_bytes(b"not an index")
    (tmp_path / "clean.txt").write_bytes(b"Meeting at 10:30.\n")
    result = scan(str(tmp_path / "clean.txt"), data_dir=data)
    assert result.returncode == 2
    assert "dlp: error:" in result.stderr.decode() and "acme.idx" in result.stderr.decode()
    served = subprocess.run([sys.executable, "-m", "dlp", "serve", "--data-dir", str(data)],
                            capture_output=True, timeout=180)
    assert served.returncode != 0
    assert "acme.idx" in served.stderr.decode() and "re-index" in served.stderr.decode()
