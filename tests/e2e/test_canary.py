"""The DLP must not become the leak (invariant 3, adversarial H5): canary values sent through every
channel of one real `dlp serve` — the SMTP relay, the web proxy, the console — and through `dlp pcap`
must not appear in logs, SMTP replies, block pages, alerts, metrics, notifications, console pages or
anywhere in the data directory (the quarantine is encrypted)."""

from __future__ import annotations

import re
import smtplib
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import httpx
from helpers.canary import find_canaries
from helpers.http_upstream import RecordingUpstream
from helpers.smtp_sinks import RecordingSink
from scapy.all import IP, TCP, Ether, wrpcap

CARD = "4556737586899855"
SSN = "536-22-1234"
IBAN = "DE89370400440532013000"
CUSTOMER_EMAIL = "jane.roe.canary@customer.example"
TOKEN = "ghp_" + "Zq8vT3nR6kW1pY4sB7dF0hJ2mL5xC9aE8uG1"
CANARIES = [CARD, SSN, IBAN, CUSTOMER_EMAIL, TOKEN]
LEAKY_TEXT = (f"Customer Jane Roe, card {CARD[:4]} {CARD[4:8]} {CARD[8:12]} {CARD[12:]}, SSN {SSN},\n"
              f"IBAN DE89 3704 0044 0532 0130 00, mail {CUSTOMER_EMAIL}, token {TOKEN}\n")
POLICY = """
rules:
  - name: secrets-are-blocked
    classes: [secret]
    action: {smtp: block, default: block}
    severity: critical
"""


def mail(subject: str, body: str, attachment: bytes | None = None) -> EmailMessage:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "agent9@callcenter.test", "friend@outside.example", subject
    m.set_content(body)
    if attachment is not None:
        m.add_attachment(attachment, maintype="text", subtype="csv", filename="customers.csv")
    return m


def capture(path: Path) -> None:
    """An HTTP POST carrying the canaries, as a passive monitor would see it on a SPAN port."""
    body = LEAKY_TEXT.encode()
    request = (b"POST /upload HTTP/1.1\r\nHost: files.example\r\nContent-Type: text/plain\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body)) + body
    client, server = ("10.9.0.5", 40000), ("10.9.0.80", 80)
    ip = IP(src=client[0], dst=server[0])
    packets = [
        Ether() / ip / TCP(sport=client[1], dport=server[1], flags="S", seq=1000),
        Ether() / IP(src=server[0], dst=client[0]) / TCP(sport=80, dport=client[1], flags="SA", seq=5000, ack=1001),
        Ether() / ip / TCP(sport=client[1], dport=80, flags="A", seq=1001, ack=5001),
        Ether() / ip / TCP(sport=client[1], dport=80, flags="PA", seq=1001, ack=5001) / request,
        Ether() / ip / TCP(sport=client[1], dport=80, flags="FA", seq=1001 + len(request), ack=5001),
    ]
    wrpcap(str(path), packets)


def test_no_canary_leaves_through_any_channel_or_rests_in_clear(dlp_server, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    outputs: list[tuple[str, str | bytes]] = []
    with RecordingSink() as sink, RecordingUpstream() as upstream:
        server = dlp_server("--next-hop", sink.address, "--policy", str(policy), "--workers", "1")
        data = server.data_dir

        # SMTP: one message quarantined (card in an attachment), one blocked (a token), one clean.
        host, port = server.address("smtp")
        with smtplib.SMTP(host, port, timeout=60) as client:
            held = client.send_message(mail("callbacks", "see attached", LEAKY_TEXT.replace(TOKEN, "").encode()))
            outputs.append(("smtp reply (held)", repr(held) + repr(client.noop())))
            try:
                client.send_message(mail("keys", f"the deploy token is {TOKEN} and card {CARD}"))
                outputs.append(("smtp reply (blocked)", "accepted?!"))
            except smtplib.SMTPDataError as refused:
                assert refused.smtp_code == 550
                outputs.append(("smtp reply (blocked)", f"{refused.smtp_code} {refused.smtp_error!r}"))
            client.send_message(mail("lunch", "Pizza at 12:30?"))

        # Web: a card upload blocked with the block page (HTML and JSON), a clean one passes.
        proxy = "http://{}:{}".format(*server.address("proxy"))
        with httpx.Client(proxy=proxy, timeout=60) as web:
            page = web.post(upstream.url("/paste"), content=LEAKY_TEXT, headers={"content-type": "text/plain"})
            api = web.post(upstream.url("/api"), json={"note": LEAKY_TEXT}, headers={"accept": "application/json"})
            assert page.status_code == api.status_code == 403
            outputs += [("block page", page.text + str(page.headers)), ("block json", api.text)]
            assert web.post(upstream.url("/ok"), content=b"see you at 10").status_code == 200

        # Passive: the same values seen on the wire.
        pcap = tmp_path / "leak.pcap"
        capture(pcap)
        passive = subprocess.run([sys.executable, "-m", "dlp", "pcap", "--data-dir", str(data), str(pcap)],
                                 capture_output=True, text=True, timeout=120)
        assert passive.returncode == 1, passive.stdout + passive.stderr
        outputs.append(("dlp pcap output", passive.stdout + passive.stderr))

        # CLI views and the console, as an analyst sees them by default.
        listing = subprocess.run([sys.executable, "-m", "dlp", "incidents", "list", "--data-dir", str(data),
                                  "--format", "json"], capture_output=True, text=True, timeout=60)
        ids = re.findall(r"INC-\d{8}-[0-9A-F]{8}", listing.stdout)
        assert len(ids) >= 4, listing.stdout + listing.stderr
        for incident in ids:
            shown = subprocess.run([sys.executable, "-m", "dlp", "incidents", "show", incident, "--data-dir",
                                    str(data)], capture_output=True, text=True, timeout=60)
            outputs.append((f"incidents show {incident}", shown.stdout + shown.stderr))
        outputs.append(("incidents list", listing.stdout + listing.stderr))
        metrics = httpx.get("http://{}:{}/metrics".format(*server.address("metrics")), timeout=30).text
        outputs.append(("metrics", metrics))
        assert 'dlp_messages_total{action="quarantine",channel="smtp"}' in metrics

        # Everything the next hop received: the clean mail and the agent's notifications only.
        sink.wait_for(2)
        assert upstream.wait_for_requests(1)
        outputs += [(f"next hop message {i}", m.data) for i, m in enumerate(sink.messages)]
        outputs.append(("upstream", bytes(upstream.raw)))
    server.stop()
    outputs.append(("dlp serve stdout+stderr", server.log_text))

    hits = find_canaries(CANARIES, [*outputs, data])
    assert not hits, "\n".join(map(str, hits))
    assert "token" not in server.log_text.lower() or TOKEN not in server.log_text
