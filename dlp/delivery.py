"""Hand a message to the next hop (an SMTP server) or, with none configured, to the demo outbox folder.

The outcome says exactly what the client may be told: delivered (250), a temporary failure, a
permanent refusal, or "unknown" when the next hop vanished after the final dot (possibly delivered).
Recipients are all-or-nothing: if the next hop refuses any recipient, the transaction is reset and
nothing is sent, so a 250 never covers a recipient that was dropped.

The DATA command is split in two stages: a failure before the next hop's 354 is an ordinary temporary
failure (nothing was sent), a failure after the final dot went out is UNKNOWN (the next hop may have
queued it: the caller counts a possible duplicate). TLS to the next hop is opportunistic and not
verified, like Postfix's default `smtp_tls_security_level = may`.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import os
import re
import secrets
import smtplib
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

from dlp.durable import write_atomic

# CR, LF, NUL or other controls in an address would let it smuggle commands into the next hop's session.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EOLS = re.compile(rb"\r\n|\n|\r")
_LEADING_DOT = re.compile(rb"(?m)^\.")


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    TEMPFAIL = "tempfail"
    REJECTED = "rejected"
    UNKNOWN = "unknown"  # the next hop may or may not have the message


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    outcome: Outcome
    code: int  # the SMTP reply code the client should get
    status: str  # the enhanced status code, e.g. "4.4.1"
    kind: str = ""  # a fixed label for metrics: refused, timeout, disconnected, reply_4xx, reply_5xx, ...
    refused: dict[str, int] = field(default_factory=dict)  # recipient -> code the next hop gave

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.DELIVERED


def failure(outcome: Outcome, code: int, status: str, kind: str,
            refused: dict[str, int] | None = None) -> DeliveryResult:
    return DeliveryResult(outcome, code, status, kind, refused or {})


DELIVERED = DeliveryResult(Outcome.DELIVERED, 250, "2.0.0")
BAD_ADDRESS = DeliveryResult(Outcome.REJECTED, 553, "5.1.7", "bad_address")


def has_bad_address(sender: str, recipients: list[str] | tuple[str, ...]) -> bool:
    return bool(_CONTROL.search(sender)) or any(_CONTROL.search(r) for r in recipients)


def mail_options(sender: str, recipients: list[str], data: bytes, extensions: set[str]) -> list[str] | DeliveryResult:
    """MAIL FROM parameters the message needs, or the refusal when the next hop lacks an extension it needs
    (lower-case EHLO keywords in `extensions`)."""
    options: list[str] = []
    if not data.isascii():
        if "8bitmime" not in extensions:
            return failure(Outcome.REJECTED, 554, "5.6.3", "8bit_unsupported")
        options.append("BODY=8BITMIME")
    if not sender.isascii() or not all(r.isascii() for r in recipients):
        if "smtputf8" not in extensions:
            return failure(Outcome.REJECTED, 553, "5.6.7", "smtputf8_unsupported")
        options.append("SMTPUTF8")
    return options


def deliver(
    next_hop: str,
    sender: str,
    recipients: list[str] | tuple[str, ...],
    data: bytes,
    *,
    outbox: Path | None = None,
    timeout: float = 120.0,
    helo: str = "dlp.localhost",
) -> DeliveryResult:
    """Blocking delivery; run it in a thread from async code."""
    if has_bad_address(sender, recipients):
        return BAD_ADDRESS
    if not next_hop:
        if outbox is None:
            raise ValueError("no next hop and no outbox")
        return _to_outbox(outbox, sender, recipients, data)
    host, _, port = next_hop.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    deadline = time.monotonic() + timeout
    try:
        client = smtplib.SMTP(host, int(port), local_hostname=helo, timeout=timeout)
    except ConnectionRefusedError:
        return failure(Outcome.TEMPFAIL, 451, "4.4.1", "refused")
    except TimeoutError:
        return failure(Outcome.TEMPFAIL, 451, "4.4.1", "timeout")
    except (OSError, smtplib.SMTPException):
        return failure(Outcome.TEMPFAIL, 451, "4.4.1", "connect_error")
    try:
        return _transaction(client, sender, list(recipients), data, deadline)
    finally:
        with contextlib.suppress(OSError):
            client.close()


def _transaction(client: smtplib.SMTP, sender: str, recipients: list[str], data: bytes,
                 deadline: float) -> DeliveryResult:
    stage = "greeting"
    try:
        code, _ = client.ehlo()
        if code != 250:
            code, _ = client.helo()
            if code != 250:
                return mirror(code, "helo")
        if client.has_extn("starttls"):
            stage = "starttls"
            client.starttls(context=opportunistic_tls())
            client.ehlo()
        options = mail_options(sender, recipients, data, set(client.esmtp_features))
        if isinstance(options, DeliveryResult):
            return options
        stage = "mail"
        code, _ = client.mail(sender, options)
        if code != 250:
            return mirror(code, "mail")
        stage = "rcpt"
        refused: dict[str, int] = {}
        for rcpt in recipients:
            code, _ = client.rcpt(rcpt)
            if code not in (250, 251):
                refused[rcpt] = code
        if refused:
            client.rset()
            permanent = all(c >= 500 for c in refused.values()) and set(refused) == set(recipients)
            if permanent:
                return failure(Outcome.REJECTED, 550, "5.1.1", "rcpt_refused", refused)
            return failure(Outcome.TEMPFAIL, 451, "4.5.3", "rcpt_refused", refused)
        stage = "data"
        _set_timeout(client, deadline)
        client.putcmd("data")
        code, _ = client.getreply()
        if code != 354:
            return mirror(code, "data")
        stage = "dot"
        client.send(dot_stuffed(data))
        code, _ = client.getreply()
        if code == 250:
            return DELIVERED
        return mirror(code, "dot")
    except smtplib.SMTPServerDisconnected:
        if stage == "dot":
            return failure(Outcome.UNKNOWN, 451, "4.4.2", "disconnected_after_data")
        return failure(Outcome.TEMPFAIL, 451, "4.4.2", "disconnected")
    except TimeoutError:
        if stage == "dot":
            return failure(Outcome.UNKNOWN, 451, "4.4.2", "timeout_after_data")
        return failure(Outcome.TEMPFAIL, 451, "4.4.2", "timeout")
    except (OSError, smtplib.SMTPException, ssl.SSLError):
        if stage == "dot":
            return failure(Outcome.UNKNOWN, 451, "4.4.2", "error_after_data")
        return failure(Outcome.TEMPFAIL, 451, "4.4.2", "protocol_error")


@functools.cache
def opportunistic_tls() -> ssl.SSLContext:
    """Encrypt when offered, verify nothing (Postfix's `may`). Built once: making a context per message
    (create_default_context loads the CA store) cost more than the rest of a loopback hand-off."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def dot_stuffed(data: bytes) -> bytes:
    """CRLF line endings, leading dots doubled, and the final dot (RFC 5321 4.5.2)."""
    # Counting is C speed; the regexes only run when there is something to change (never for what the
    # relay forwards: its reader refused bare CR / LF already).
    crlf_only = data.count(b"\r\n") == data.count(b"\n") == data.count(b"\r")
    out = data if crlf_only else _EOLS.sub(b"\r\n", data)
    if out.startswith(b".") or b"\n." in out:
        out = _LEADING_DOT.sub(b"..", out)
    if not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out + b".\r\n"


def _set_timeout(client: smtplib.SMTP, deadline: float) -> None:
    if client.sock is not None:
        client.sock.settimeout(max(1.0, deadline - time.monotonic()))


def mirror(code: int, stage: str) -> DeliveryResult:
    """Pass on the class of the next hop's reply, with our own fixed text (never the next hop's text)."""
    if 400 <= code < 500:
        return failure(Outcome.TEMPFAIL, 451, "4.4.0", f"reply_4xx_{stage}")
    if code >= 500:
        return failure(Outcome.REJECTED, 554 if stage in ("data", "dot") else 550, "5.0.0", f"reply_5xx_{stage}")
    return failure(Outcome.TEMPFAIL, 451, "4.4.0", f"unexpected_reply_{stage}")


def _to_outbox(outbox: Path, sender: str, recipients: list[str] | tuple[str, ...], data: bytes) -> DeliveryResult:
    """The demo default: one .eml file per message with the envelope in X-DLP-Envelope-* headers."""
    name = f"{time.time_ns()}-{os.getpid()}-{secrets.token_hex(4)}.eml"  # unique across threads too
    head = f"X-DLP-Envelope-From: <{sender}>\r\n".encode() + b"".join(
        f"X-DLP-Envelope-To: <{r}>\r\n".encode() for r in recipients
    )
    try:
        write_atomic(outbox / name, head + data)
    except OSError:
        return failure(Outcome.TEMPFAIL, 451, "4.3.0", "outbox_write_error")
    return DELIVERED
