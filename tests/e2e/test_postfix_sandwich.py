"""A real Postfix (unpacked, configured in a temporary directory) with dlp as its after-queue content filter.

Postfix :submission -> queue -> dlp-filter -> dlp relay -> reinjection smtpd -> queue -> relayhost (a
recording sink). The shipped deploy/postfix/*.content-filter snippets are used as they are, with only
the loopback ports changed. Needs root (Postfix drops privileges to `mail`) and the unpacked binaries.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.smtp_sinks import POSTFIX_LIBS, POSTFIX_ROOT, RecordingSink, free_port, wait_listening

REPO = Path(__file__).resolve().parents[2]
POSTFIX = POSTFIX_ROOT / "usr" / "sbin" / "postfix"
ONLY_SMTP = ("--proxy-listen", "off", "--console-listen", "off", "--metrics-listen", "off")


def _usable() -> str:
    if not POSTFIX.exists():
        return "Postfix binaries not unpacked under .cache/postfix"
    if os.geteuid() != 0:
        return "a Postfix instance needs root to start (it switches to the mail user)"
    try:
        pwd.getpwnam("mail")
    except KeyError:
        return "no 'mail' user to run Postfix as"
    return ""


pytestmark = [pytest.mark.skipif(bool(_usable()), reason=_usable() or "ok")]


class TempPostfix:
    def __init__(self, root: Path, submission: int, filter_port: int, reinject: int, relayhost: str) -> None:
        self.root = root
        self.etc = root / "etc"
        self.submission, self.filter_port, self.reinject = submission, filter_port, reinject
        self.maillog = root / "maillog"
        self.relayhost = relayhost
        self.proc: subprocess.Popen[bytes] | None = None

    def configure(self) -> None:
        for d in ("etc", "queue", "data"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        os.chown(self.root / "data", pwd.getpwnam("mail").pw_uid, -1)
        deploy = REPO / "deploy" / "postfix"
        main = f"""
compatibility_level = 3.6
queue_directory = {self.root / 'queue'}
data_directory = {self.root / 'data'}
command_directory = {POSTFIX_ROOT / 'usr/sbin'}
daemon_directory = {POSTFIX_ROOT / 'usr/lib/postfix/sbin'}
shlib_directory = {POSTFIX_LIBS}
meta_directory = {POSTFIX_ROOT / 'etc/postfix'}
mail_owner = mail
setgid_group = nogroup
default_privs = daemon
myhostname = mta.test
mydomain = test
myorigin = mta.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8
relayhost = [{self.relayhost.rpartition(':')[0]}]:{self.relayhost.rpartition(':')[2]}
alias_maps =
alias_database =
maillog_file_prefixes = /tmp, {self.root}
maillog_file = {self.maillog}
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C LD_LIBRARY_PATH
export_environment = TZ MAIL_CONFIG LANG LD_LIBRARY_PATH
smtp_tls_security_level = none
smtpd_tls_security_level = none
# retry quickly: the relay-killed test waits for Postfix to try again
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
smtp_connect_timeout = 2s
"""
        shipped_main = (deploy / "main.cf.content-filter").read_text().replace("10025", str(self.filter_port))
        (self.etc / "main.cf").write_text(main + shipped_main)
        shipped_master = (deploy / "master.cf.content-filter").read_text().replace("10026", str(self.reinject))
        services = "".join(f"{name} unix {flags} {command}\n" for name, flags, command in [
            ("pickup", "n - n 60 1", "pickup"), ("cleanup", "n - n - 0", "cleanup"), ("qmgr", "n - n 300 1", "qmgr"),
            ("rewrite", "- - n - -", "trivial-rewrite"), ("bounce", "- - n - 0", "bounce"),
            ("defer", "- - n - 0", "bounce"), ("trace", "- - n - 0", "bounce"), ("verify", "- - n - 1", "verify"),
            ("flush", "n - n 1000? 0", "flush"), ("proxymap", "- - n - -", "proxymap"),
            ("smtp", "- - n - -", "smtp"), ("relay", "- - n - -", "smtp"), ("showq", "n - n - -", "showq"),
            ("error", "- - n - -", "error"), ("retry", "- - n - -", "error"), ("discard", "- - n - -", "discard"),
            ("anvil", "- - n - 1", "anvil"), ("scache", "- - n - 1", "scache"),
        ])
        master = (f"127.0.0.1:{self.submission} inet n - n - - smtpd\n" + services
                  + "postlog unix-dgram n - n - 1 postlogd\n" + shipped_master)
        (self.etc / "master.cf").write_text(master)

    def _postfix(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([str(POSTFIX), "-c", str(self.etc), *args], capture_output=True, timeout=60,
                              env={**os.environ, "LD_LIBRARY_PATH": str(POSTFIX_LIBS)})

    def start(self) -> None:
        self.configure()
        env = {**os.environ, "LD_LIBRARY_PATH": str(POSTFIX_LIBS)}
        self.proc = subprocess.Popen([str(POSTFIX), "-c", str(self.etc), "start-fg"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, env=env)
        wait_listening(self.submission, timeout=30)
        wait_listening(self.reinject, timeout=30)

    def stop(self) -> None:
        self._postfix("stop")
        if self.proc is not None:
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def flush(self) -> None:
        """Retry the deferred queue now (`postfix flush`), as an operator would after fixing a filter."""
        self._postfix("flush")

    def log(self) -> str:
        return self.maillog.read_text(errors="replace") if self.maillog.exists() else ""

    def wait_log(self, pattern: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.log()):
            if time.monotonic() > deadline:
                raise AssertionError(f"Postfix never logged {pattern!r}:\n{self.log()[-3000:]}")
            time.sleep(0.1)


@pytest.fixture
def mta() -> Iterator[tuple[TempPostfix, RecordingSink]]:
    # Not under tmp_path: pytest's base directory is 0700 root, and Postfix's daemons run as `mail`.
    root = Path(tempfile.mkdtemp(prefix="dlp-postfix-"))
    root.chmod(0o755)
    with RecordingSink() as sink:
        postfix = TempPostfix(root, free_port(), free_port(), free_port(), sink.address)
        try:
            postfix.start()
            yield postfix, sink
        finally:
            postfix.stop()
            shutil.rmtree(root, ignore_errors=True)


def submit(postfix: TempPostfix, body: str, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", postfix.submission, timeout=30) as client:
        head = f"From: agent@callcenter.test\r\nTo: client@example.org\r\nSubject: {subject}\r\n\r\n"
        client.sendmail("agent@callcenter.test", ["client@example.org"], f"{head}{body}\r\n")


def incidents(data_dir: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "dlp", "incidents", "list", "--data-dir", str(data_dir)],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    return out.stdout


def test_clean_is_delivered_card_is_quarantined_through_real_postfix(dlp_server, mta, tmp_path: Path) -> None:
    postfix, sink = mta
    srv = dlp_server("--smtp-listen", f"127.0.0.1:{postfix.filter_port}",
                     "--next-hop", f"127.0.0.1:{postfix.reinject}", *ONLY_SMTP)
    submit(postfix, "Your ticket is closed.", "clean")
    [got] = sink.wait_for(1, timeout=60)
    assert b"X-DLP-Inspected: dlp.localhost; verdict=pass" in got.data and b"Subject: clean" in got.data
    submit(postfix, "Card 4111 1111 1111 1111 exp 12/29", "card")
    postfix.wait_log(rf"relay=127\.0\.0\.1\[127\.0\.0\.1\]:{postfix.filter_port}.*status=sent.*\n(.*\n)*"
                     rf".*relay=127\.0\.0\.1\[127\.0\.0\.1\]:{postfix.filter_port}.*status=sent")
    assert "quarantine" in incidents(srv.data_dir)
    # the card never left; the sender's notification about it (null sender) may have
    assert [m for m in sink.messages if m.sender != "<>"] == [got]


def test_relay_killed_mid_message_postfix_retries_and_nothing_is_lost(dlp_server, mta, tmp_path: Path) -> None:
    postfix, sink = mta
    data_dir = tmp_path / "dlp"
    listen = ("--smtp-listen", f"127.0.0.1:{postfix.filter_port}", "--next-hop", f"127.0.0.1:{postfix.reinject}")
    crashing = dlp_server(*listen, *ONLY_SMTP, data_dir=data_dir, env={"DLPTEST_SMTP_CRASH_AT": "data-received"})
    submit(postfix, "Kept safe by the queue.", "retry me")
    assert crashing.proc.wait(60) != 0  # killed itself after reading the message, before any reply
    postfix.wait_log(r"status=deferred")
    assert sink.messages == []
    dlp_server(*listen, *ONLY_SMTP, data_dir=data_dir)
    postfix.flush()  # do not depend on the backoff timers of a loaded machine
    [got] = sink.wait_for(1, timeout=90)
    assert b"Subject: retry me" in got.data and b"verdict=pass" in got.data
