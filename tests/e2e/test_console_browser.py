"""The console in a real headless Chromium against a real `dlp serve`: the agent's release request from
the notification link, sign in, work the queue, release a quarantined message that then arrives at a
recording next hop, a viewer refused (403), an admin's overview and audit log.

Screenshots go to tests/artifacts/ (gitignored) for a person to look at.
"""

from __future__ import annotations

import email
import email.policy
import re
import shutil
import smtplib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.smtp_sinks import RecordingSink

from dlp.console.users import Role, UserStore

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = REPO / "tests" / "artifacts"
PASSWORD = "correct horse battery staple"
CARD = "4111 1111 1111 1111"
RAW = (f"From: agent7@callcenter.example\r\nTo: buyer@gmail.example\r\nSubject: order 5521\r\n\r\n"
       f"Hi, the customer's card is {CARD} exp 12/29.\r\n").encode()

pytestmark = pytest.mark.skipif(not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)),
                                reason="chromium and chromedriver are installed by scripts/install-test-tools")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def sink() -> Iterator[RecordingSink]:
    with RecordingSink() as s:
        yield s


def shot(driver: object, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"console-{name}.png"))  # type: ignore[attr-defined]


def sign_in(driver: object, base: str, name: str) -> None:
    driver.get(f"{base}/login")  # type: ignore[attr-defined]
    driver.find_element(By.NAME, "username").send_keys(name)  # type: ignore[attr-defined]
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)  # type: ignore[attr-defined]
    driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()  # type: ignore[attr-defined]
    WebDriverWait(driver, 20).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".who .user")))


def add_user_with_cli(data_dir: Path, name: str, role: str) -> None:
    result = subprocess.run([sys.executable, "-m", "dlp", "users", "add", name, "--role", role, "--password-stdin",
                             "--data-dir", str(data_dir), "--actor", "setup"],
                            input=PASSWORD + "\n", capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr


def test_analyst_releases_a_quarantined_mail_and_a_viewer_is_refused(
        dlp_server: Callable[..., Any], sink: RecordingSink, browser: object, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    add_user_with_cli(data_dir, "anna", "analyst")
    UserStore(data_dir).add("vera", Role.VIEWER, PASSWORD)
    UserStore(data_dir).add("adam", Role.ADMIN, PASSWORD)
    server = dlp_server("--next-hop", sink.address, data_dir=data_dir)
    host, port = server.address("console")
    base = f"http://{host}:{port}"
    smtp_host, smtp_port = server.address("smtp")
    with smtplib.SMTP(smtp_host, smtp_port, timeout=60) as client:
        client.sendmail("agent7@callcenter.example", ["buyer@gmail.example"], RAW)  # 250 = durably held
    # Held: the recipient gets nothing; the agent gets a notification with a signed release-request link.
    notification = email.message_from_bytes(sink.wait_for(1, timeout=60)[0].data, policy=email.policy.default)
    assert [m.recipients for m in sink.messages] == [["agent7@callcenter.example"]]
    body = notification.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    link = re.search(r"/release-request/(\S+)", body)
    assert link and CARD not in body

    driver = browser
    # The agent follows the link (its host is console.public_url; here the test's port) and explains.
    driver.get(f"{base}/release-request/{link.group(1)}")  # type: ignore[attr-defined]
    driver.find_element(By.NAME, "justification").send_keys(  # type: ignore[attr-defined]
        "The customer asked for this order confirmation by e-mail.")
    shot(driver, "release-request")
    driver.find_element(By.CSS_SELECTOR, "form button.primary").click()  # type: ignore[attr-defined]
    WebDriverWait(driver, 20).until(expected_conditions.text_to_be_present_in_element(
        (By.CSS_SELECTOR, "h1"), "Request sent"))
    driver.delete_all_cookies()  # type: ignore[attr-defined]

    driver.get(f"{base}/incidents")  # type: ignore[attr-defined]
    assert "/login" in driver.current_url  # type: ignore[attr-defined]
    shot(driver, "login")
    sign_in(driver, base, "anna")
    driver.get(f"{base}/incidents")  # type: ignore[attr-defined]
    rows = driver.find_elements(By.CSS_SELECTOR, "table.queue tbody tr td.id a")  # type: ignore[attr-defined]
    assert len(rows) == 1
    assert CARD not in driver.page_source  # type: ignore[attr-defined]
    assert "release requested" in driver.page_source  # type: ignore[attr-defined]
    shot(driver, "queue")
    rows[0].click()
    WebDriverWait(driver, 20).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "table.findings")))
    incident_id = driver.find_element(By.CSS_SELECTOR, "h1").text.split()[0]  # type: ignore[attr-defined]
    assert "411111******1111" in driver.page_source and CARD not in driver.page_source  # type: ignore[attr-defined]
    assert "order confirmation by e-mail" in driver.page_source  # type: ignore[attr-defined]
    shot(driver, "incident")

    # Work it: assign to myself, then release with a reason (the confirm dialog is accepted).
    driver.find_element(By.CSS_SELECTOR, "form[action$='/assign'] button").click()  # type: ignore[attr-defined]
    WebDriverWait(driver, 20).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".flash-ok")))
    release = driver.find_element(By.CSS_SELECTOR, "form[action$='/release']")  # type: ignore[attr-defined]
    release.find_element(By.NAME, "reason").send_keys("customer asked for the order confirmation")
    release.find_element(By.CSS_SELECTOR, "button").click()
    WebDriverWait(driver, 10).until(expected_conditions.alert_is_present()).accept()
    WebDriverWait(driver, 60).until(expected_conditions.text_to_be_present_in_element(
        (By.CSS_SELECTOR, ".flash-ok"), "Released"))
    shot(driver, "released")
    received = [m for m in sink.wait_for(2, timeout=60) if m.recipients == ["buyer@gmail.example"]]
    assert len(received) == 1 and received[0].sender == "agent7@callcenter.example"
    assert CARD.encode() in received[0].data and b"order 5521" in received[0].data
    assert "released" in driver.find_element(By.CSS_SELECTOR, "h1").text  # type: ignore[attr-defined]

    # Every step is in the audit log, as `dlp audit list` shows it.
    audit = subprocess.run([sys.executable, "-m", "dlp", "audit", "list", "--data-dir", str(data_dir)],
                           capture_output=True, text=True, cwd=REPO, timeout=120)
    assert audit.returncode == 0, audit.stderr
    for action in ("user_add", "release_request", "login", "assign", "release"):
        assert action in audit.stdout, action
    assert incident_id in audit.stdout and CARD not in audit.stdout

    # A viewer sees the masked queue but is refused the analysts' actions and the admin pages.
    driver.delete_all_cookies()  # type: ignore[attr-defined]
    sign_in(driver, base, "vera")
    driver.get(f"{base}/admin/users")  # type: ignore[attr-defined]
    assert "Not allowed" in driver.page_source and "403" in driver.page_source  # type: ignore[attr-defined]
    shot(driver, "viewer-403")
    driver.get(f"{base}/incidents/{incident_id}")  # type: ignore[attr-defined]
    assert not driver.find_elements(By.CSS_SELECTOR, "form[action$='/delete']")  # type: ignore[attr-defined]
    assert CARD not in driver.page_source  # type: ignore[attr-defined]

    # An admin's overview and audit log (screenshots for people; the chain verifies).
    driver.delete_all_cookies()  # type: ignore[attr-defined]
    sign_in(driver, base, "adam")
    driver.get(f"{base}/?period=24h")  # type: ignore[attr-defined]
    assert driver.find_elements(By.CSS_SELECTOR, "svg.chart rect.seg-quarantine")  # type: ignore[attr-defined]
    shot(driver, "overview")
    driver.get(f"{base}/admin/audit")  # type: ignore[attr-defined]
    assert "Chain verified" in driver.page_source and "access_denied" in driver.page_source  # type: ignore[attr-defined]
    shot(driver, "audit")
    assert CARD not in server.log_text
