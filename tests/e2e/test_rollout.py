"""Issue 11 end to end through a real `dlp serve`: monitor-only mode through the relay and the proxy (the
message arrives, the shadow incident exists), sender notifications through a recording next hop, the
block page's explanation, and precision on /metrics after analysts' verdicts."""

from __future__ import annotations

import email
import re
import smtplib
import subprocess
import sys
import time
from email import policy as email_policy
from pathlib import Path

import httpx
from helpers.http_upstream import RecordingUpstream
from helpers.smtp_sinks import RecordingSink

from dlp.config import load_settings
from dlp.notify import ReleaseLinks
from dlp.store import IncidentQuery, open_store

REPO = Path(__file__).resolve().parents[2]
CARD = "4111 1111 1111 1111"
CARD_DIGITS = CARD.replace(" ", "")
AGENT = "agent7@callcenter.test"


def card_mail(sender: str = AGENT) -> bytes:
    return (f"From: {sender}\r\nTo: someone@freemail.test\r\nSubject: card\r\n\r\n"
            f"Customer card {CARD} exp 12/29\r\n").encode()


def send(address: tuple[str, int], data: bytes, sender: str = AGENT) -> tuple[int, str]:
    with smtplib.SMTP(*address, timeout=60) as client:
        client.ehlo("agent.test")
        client.mail(sender)
        client.rcpt("someone@freemail.test")
        code, text = client.data(data)
        return code, text.decode()


def metrics_text(server) -> str:  # type: ignore[no-untyped-def]
    return httpx.get("http://{}:{}/metrics".format(*server.address("metrics")), timeout=10).text


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one series, whatever order the exposition writes its labels in."""
    for m in re.finditer(rf"^{name}(?:{{(.*)}})? (\S+)$", text, re.M):
        if dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or "")) == labels:
            return float(m.group(2))
    return None


def wait_metric(server, name: str, expected: float, timeout: float = 30, **labels: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = sample(metrics_text(server), name, **labels)
        if value == expected:
            return
        time.sleep(0.1)
    raise AssertionError(f"{name}{labels} = {value}, expected {expected}")


def incidents(data_dir: Path) -> list:  # type: ignore[type-arg]
    settings = load_settings(None, {"data_dir": str(data_dir)}, environ={})
    with open_store(settings) as store:
        return store.list_incidents(IncidentQuery(sort="created", limit=100))


def dlp_cli(data_dir: Path, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "dlp", *args, "--data-dir", str(data_dir)], capture_output=True,
                         text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_monitor_mode_lets_traffic_through_and_records_shadow_verdicts(dlp_server, tmp_path: Path) -> None:
    # The card rule is monitor-only (one line: `mode: monitor`) and the web channel as a whole is too.
    policy = tmp_path / "policy.yaml"
    policy.write_text("""
rules:
  - name: sensitive-data-leaving
    classes: [payment_card, national_id, bank_account, secret, customer_record]
    allow: [client_systems]
    action: {smtp: quarantine, web: block, passive: alert, default: block}
    severity: high
    mode: monitor
monitor:
  channels: [web]
""")
    with RecordingSink() as sink, RecordingUpstream() as upstream:
        server = dlp_server("--policy", str(policy), "--next-hop", sink.address, "--console-listen", "off")
        code, _ = send(server.address("smtp"), card_mail())
        assert code == 250
        [mail] = sink.wait_for(1)  # the message arrived at the next hop
        assert CARD.encode() in mail.data and mail.recipients == ["someone@freemail.test"]
        assert b"verdict=alert" in mail.data.split(b"\r\n\r\n", 1)[0]

        proxy = "http://{}:{}".format(*server.address("proxy"))
        response = httpx.post(upstream.url("/upload"), content=f"card={CARD}".encode(), proxy=proxy, timeout=30,
                              headers={"content-type": "application/x-www-form-urlencoded"})
        assert response.status_code == 200
        [request] = upstream.wait_for_requests(1)  # the upload arrived upstream
        assert request.body == f"card={CARD}".encode()

        wait_metric(server, "dlp_shadow_verdicts_total", 1.0, channel="smtp", action="quarantine")
        wait_metric(server, "dlp_shadow_verdicts_total", 1.0, channel="web", action="block")
        text = metrics_text(server)
        assert sample(text, "dlp_messages_total", channel="smtp", action="alert") == 1.0
        assert sample(text, "dlp_notifications_total", outcome="sent") == 0.0  # no notice for what went out
        assert server.stop() == 0
    assert len(sink.messages) == 1  # and no notification either

    by_channel = {i.channel: i for i in incidents(server.data_dir)}
    smtp, web = by_channel["smtp"], by_channel["web"]
    assert (smtp.action, smtp.enforced_action, smtp.monitor_only) == ("quarantine", "alert", True)
    assert (web.action, web.enforced_action, web.monitor_only) == ("block", "alert", True)
    assert list(smtp.rules) == ["sensitive-data-leaving"]
    listing = dlp_cli(server.data_dir, "incidents", "list")
    assert "alert*" in listing and "monitor-only" in listing
    assert CARD_DIGITS not in server.log_text and CARD not in server.log_text


def test_global_monitor_mode_through_the_relay(dlp_server, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("monitor:\n  all: true\n")
    with RecordingSink() as sink:
        server = dlp_server("--policy", str(policy), "--next-hop", sink.address, "--proxy-listen", "off",
                            "--console-listen", "off")
        assert send(server.address("smtp"), card_mail())[0] == 250
        sink.wait_for(1)
        wait_metric(server, "dlp_shadow_verdicts_total", 1.0, channel="smtp", action="quarantine")
        assert server.stop() == 0
    [incident] = incidents(server.data_dir)
    assert (incident.action, incident.enforced_action, incident.monitor_only) == ("quarantine", "alert", True)


def test_held_mail_notifies_the_sender_block_page_explains_and_precision_follows_verdicts(
        dlp_server, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("""
notifications:
  from: "Security desk <dlp@callcenter.test>"
  subject: "Held: {{ incident_id }}"
  rate_limit_per_hour: 1
""")
    public = "https://dlp.callcenter.test"
    with RecordingSink() as sink, RecordingUpstream() as upstream:
        server = dlp_server("--policy", str(policy), "--next-hop", sink.address, "--console-listen", "off",
                            env={"DLP_CONSOLE_PUBLIC_URL": public, "DLP_METRICS_REFRESH_SECONDS": "0.2"})
        smtp = server.address("smtp")
        assert send(smtp, card_mail())[0] == 250  # held (quarantine_reply = accept)
        [note] = sink.wait_for(1)
        # The notification went to the agent, from the null sender, through the next hop.
        assert note.sender == "<>" and note.recipients == [AGENT]  # aiosmtpd keeps the null path as "<>"
        raw = note.data.decode()
        assert CARD_DIGITS not in raw and CARD not in raw and "411111" not in raw
        parsed = email.message_from_bytes(note.data, policy=email_policy.default)
        incident_id = parsed["X-DLP-Notification"]
        assert parsed["Subject"] == f"Held: {incident_id}" and parsed["From"] == "Security desk <dlp@callcenter.test>"
        assert parsed["Auto-Submitted"] == "auto-generated"
        body = parsed.get_content()
        assert incident_id in body and "CREDIT_CARD ************1111 (in body)" in body
        link = re.search(rf"{re.escape(public)}/release-request/(\S+)", body)
        assert link is not None
        token = ReleaseLinks.for_data_dir(server.data_dir).verify(link.group(1))
        assert (token.incident_id, token.sender) == (incident_id, AGENT)

        # Rate limit: a second held mail from the same agent within the hour is not notified; another
        # agent's is (and comes after it in the same queue, so nothing was queued in between).
        assert send(smtp, card_mail())[0] == 250
        assert send(smtp, card_mail("agent8@callcenter.test"), sender="agent8@callcenter.test")[0] == 250
        second = sink.wait_for(2)[1]
        assert second.recipients == ["agent8@callcenter.test"]
        wait_metric(server, "dlp_notifications_total", 2.0, outcome="sent")
        assert sample(metrics_text(server), "dlp_notifications_total", outcome="rate_limited") == 1.0

        # The web block page carries the same explanation, HTML and JSON.
        proxy = "http://{}:{}".format(*server.address("proxy"))
        page = httpx.post(upstream.url("/upload"), content=f"card={CARD}".encode(), proxy=proxy, timeout=30,
                          headers={"accept": "text/html", "content-type": "application/x-www-form-urlencoded"})
        assert page.status_code == 403
        web_incident = page.headers["x-dlp-incident"]
        assert web_incident in page.text and "CREDIT_CARD" in page.text and "************1111" in page.text
        assert "(in form:card)" in page.text and 'id="next-steps"' in page.text
        assert "4111" not in page.text
        api = httpx.post(upstream.url("/api"), json={"pan": CARD}, proxy=proxy, timeout=30)
        body = api.json()
        assert api.status_code == 403 and body["incident"].startswith("INC-")
        assert body["findings"] == [{"entity": "CREDIT_CARD", "masked": "************1111", "location": "json:$.pan"}]
        assert body["next_steps"] and "4111" not in api.text
        assert upstream.requests == []

        # Precision: analysts' verdicts move the gauges on the running server's /metrics.
        held = [i.id for i in incidents(server.data_dir) if i.channel == "smtp"]
        assert len(held) == 3 and incident_id in held
        dlp_cli(server.data_dir, "incidents", "confirm", held[0], held[1], "--reason", "real card")
        wait_metric(server, "dlp_rule_precision", 1.0, rule="sensitive-data-leaving")
        dlp_cli(server.data_dir, "incidents", "mark-false-positive", held[2], web_incident, "--reason", "test card")
        wait_metric(server, "dlp_rule_precision", 0.5, rule="sensitive-data-leaving")
        wait_metric(server, "dlp_detector_precision", 0.5, detector="payment_cards")
        assert server.stop() == 0
    assert CARD_DIGITS not in server.log_text and CARD not in server.log_text


def test_no_notification_when_the_policy_switches_them_off(dlp_server, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("notifications:\n  enabled: false\n")
    with RecordingSink() as sink:
        server = dlp_server("--policy", str(policy), "--next-hop", sink.address, "--proxy-listen", "off",
                            "--console-listen", "off")
        assert send(server.address("smtp"), card_mail())[0] == 250
        [incident] = incidents(server.data_dir)
        assert incident.enforced_action == "quarantine"
        assert send(server.address("smtp"), b"From: a@callcenter.test\r\n\r\nTicket closed.\r\n")[0] == 250
        [only] = sink.wait_for(1)
        assert b"Ticket closed." in only.data
        assert server.stop() == 0  # stopping delivers whatever notification was queued
    assert len(sink.messages) == 1


def test_a_broken_notification_template_stops_start_up(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text('notifications:\n  body: "{% for x in %}"\n')
    out = subprocess.run([sys.executable, "-m", "dlp", "serve", "--data-dir", str(tmp_path / "d"), "--policy",
                          str(policy), "--smtp-listen", "127.0.0.1:0", "--proxy-listen", "off", "--console-listen",
                          "off", "--metrics-listen", "off"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode != 0 and "notifications" in out.stderr and "Traceback" not in out.stderr
