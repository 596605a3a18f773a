"""The relay inside a real `dlp serve`: swaks and smtplib clients, SIGTERM drain, SIGKILL checkpoints."""

from __future__ import annotations

import shutil
import signal
import smtplib
import subprocess
import threading
from pathlib import Path

import pytest
from helpers.smtp_sinks import Received, RecordingSink, SinkBehaviour, free_port

from dlp.channels import smtp_replies as replies

CLEAN = b"From: agent@callcenter.test\r\nTo: client@example.org\r\nSubject: hi\r\n\r\nTicket closed.\r\n"
CARD = (b"From: agent@callcenter.test\r\nTo: client@example.org\r\nSubject: card\r\n\r\n"
        b"Card 4111 1111 1111 1111 exp 12/29\r\n")
ONLY_SMTP = ("--proxy-listen", "off", "--console-listen", "off", "--metrics-listen", "off")


def send(address: tuple[str, int], data: bytes) -> tuple[int, str]:
    """One transaction; the reply to the final dot. (A draining relay may answer QUIT with 421.)"""
    client = smtplib.SMTP(*address, timeout=60)
    try:
        client.ehlo("agent.test")
        client.mail("agent@callcenter.test")
        client.rcpt("client@example.org")
        code, text = client.data(data)
        return code, f"{code} {text.decode()}"
    finally:
        client.close()


def relayed(sink: RecordingSink) -> list[Received]:
    """What the relay forwarded; sender notifications about held mail go out with a null sender (<>)."""
    return [m for m in sink.messages if m.sender != "<>"]


def dlp_cli(data_dir: Path, *args: str) -> str:
    import sys

    out = subprocess.run([sys.executable, "-m", "dlp", *args, "--data-dir", str(data_dir)], capture_output=True,
                         text=True, timeout=60, cwd=Path(__file__).resolve().parents[3])
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")
def test_swaks_clean_mail_is_delivered_and_card_is_quarantined(dlp_server, tmp_path: Path) -> None:
    with RecordingSink() as sink:
        srv = dlp_server("--next-hop", sink.address, *ONLY_SMTP)
        host, port = srv.address("smtp")
        assert f"{host}:{port} -> next hop {sink.address}" in srv.log_text
        clean = subprocess.run(["swaks", "--server", f"{host}:{port}", "--from", "agent@callcenter.test",
                                "--to", "client@example.org", "--body", "Ticket closed."],
                               capture_output=True, text=True, timeout=60)
        assert clean.returncode == 0, clean.stdout
        assert f"<-  {replies.ACCEPTED}" in clean.stdout
        [got] = sink.wait_for(1)
        assert got.data.startswith(b"X-DLP-Inspected: dlp.localhost; verdict=pass; id=m-")
        card = subprocess.run(["swaks", "--server", f"{host}:{port}", "--from", "agent@callcenter.test",
                               "--to", "client@example.org", "--body", "Card 4111 1111 1111 1111 exp 12/29"],
                              capture_output=True, text=True, timeout=60)
        assert card.returncode == 0 and f"<-  {replies.ACCEPTED}" in card.stdout
        listing = dlp_cli(srv.data_dir, "incidents", "list")
        assert "quarantine" in listing and "4111 1111" not in listing
        assert len(relayed(sink)) == 1
        assert "4111" not in srv.log_text


def test_next_hop_down_is_451(dlp_server) -> None:
    srv = dlp_server("--next-hop", f"127.0.0.1:{free_port()}", *ONLY_SMTP)
    assert send(srv.address("smtp"), CLEAN) == (451, replies.NEXT_HOP_UNAVAILABLE)


def test_a16_sigterm_lets_the_in_flight_transaction_finish_and_refuses_new_ones(dlp_server) -> None:
    with RecordingSink(SinkBehaviour(data_delay=1.5)) as sink:
        srv = dlp_server("--next-hop", sink.address, *ONLY_SMTP)
        address = srv.address("smtp")
        idle = smtplib.SMTP(*address, timeout=30)
        idle.ehlo("idle.test")
        result: list[tuple[int, str]] = []
        worker = threading.Thread(target=lambda: result.append(send(address, CLEAN)))
        worker.start()
        assert sink.dot_seen.wait(30)
        srv.proc.send_signal(signal.SIGTERM)
        worker.join(30)
        assert result == [(250, replies.ACCEPTED)]  # finished within the grace, after the next hop's 250
        assert idle.docmd("NOOP")[0] == 421  # the idle session was told at once that we are shutting down
        assert srv.proc.wait(30) == 0
        with pytest.raises(OSError):
            smtplib.SMTP(*address, timeout=5)
        assert len(sink.messages) == 1


def _crash_and_retry(dlp_server, tmp_path: Path, checkpoint: str, data: bytes, next_hop: str) -> Path:
    """Send once with the relay set to SIGKILL itself at `checkpoint`; the client must not get a 250.
    Restart on the same data directory and send again, as the sending MTA would."""
    data_dir = tmp_path / "data"
    srv = dlp_server("--next-hop", next_hop, *ONLY_SMTP, data_dir=data_dir, env={"DLPTEST_SMTP_CRASH_AT": checkpoint})
    with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError)):
        send(srv.address("smtp"), data)
    assert srv.proc.wait(30) == -signal.SIGKILL
    assert f"test crash checkpoint {checkpoint} reached" in srv.log_text
    again = dlp_server("--next-hop", next_hop, *ONLY_SMTP, data_dir=data_dir)
    assert send(again.address("smtp"), data)[0] == 250
    again.stop()
    return data_dir


def _quarantined(data_dir: Path) -> list[str]:
    return [line for line in dlp_cli(data_dir, "incidents", "list").splitlines() if "quarantine" in line]


@pytest.mark.parametrize("checkpoint", ["data-received", "mid-quarantine-write", "after-fsync-before-reply",
                                        pytest.param("verdict", marks=pytest.mark.slow)])
def test_a9_sigkill_at_a_quarantine_checkpoint_loses_nothing(dlp_server, tmp_path: Path, checkpoint: str) -> None:
    with RecordingSink() as sink:
        data_dir = _crash_and_retry(dlp_server, tmp_path, checkpoint, CARD, sink.address)
        held = _quarantined(data_dir)
        # The retry is held; a crash after the original was durable leaves a second (unanswered) held copy.
        assert len(held) == (2 if checkpoint == "after-fsync-before-reply" else 1)
        assert [p for p in (data_dir / "quarantine").iterdir() if p.name.startswith(".tmp-")] == []
        assert relayed(sink) == []


def test_a9_sigkill_after_next_hop_250_may_duplicate_but_never_loses(dlp_server, tmp_path: Path) -> None:
    with RecordingSink() as sink:
        _crash_and_retry(dlp_server, tmp_path, "after-next-hop-250", CLEAN, sink.address)
        got = sink.wait_for(2)
        assert len(got) == 2 and all(m.data.endswith(CLEAN) for m in got)


@pytest.mark.slow
def test_a9_sigkill_before_forwarding_forwards_exactly_once(dlp_server, tmp_path: Path) -> None:
    with RecordingSink() as sink:
        _crash_and_retry(dlp_server, tmp_path, "data-received", CLEAN, sink.address)  # both relays are gone now
        assert len(sink.messages) == 1
