"""SMTP transactions from both halves of a reassembled session: EHLO/MAIL/RCPT/DATA with dot-unstuffing,
BDAT (CHUNKING), RSET; AUTH PLAIN / LOGIN credentials sent in clear (reported, never kept); STARTTLS.
Server replies are matched to commands in order (pipelining) so that a refused DATA or a STARTTLS that
succeeded is read as the server read it."""

from __future__ import annotations

import base64
import binascii
import re
from collections import deque

from dlp.channels.passive.transaction import Emit, Transaction, encrypted_session
from dlp.model import ContentKind, Reason

_ADDRESS = re.compile(rb"<([^<>\r\n]{0,320})>")
_END_OF_DATA = re.compile(rb"\n\.\r?\n")
_REPLY = re.compile(rb"^(\d{3})([ -]?)")
_MAX_LINE = 64 * 1024


class SmtpParser:
    def __init__(self, emit: Emit, client: str, server: str, max_bytes: int) -> None:
        self.emit = emit
        self.client = client
        self.server = server
        self.max_bytes = max_bytes
        self.buf = bytearray()
        self.replies = bytearray()
        self.state = "command"  # command | data | bdat | auth_plain | auth_login_user | auth_login_pass | encrypted
        self.awaiting: deque[str] = deque()  # commands sent, oldest first, whose final reply is due
        self.greeted = False
        self.sender = ""
        self.recipients: list[str] = []
        self.message = bytearray()
        self.kept = b""  # the first max_bytes of a message too large to hold
        self.scan_from = 0
        self.remaining = 0  # BDAT chunk bytes still to read
        self.last_chunk = False
        self.current: Transaction | None = None
        self.login_user = b""
        self.starttls = False

    def buffered(self) -> int:
        return len(self.buf) + len(self.message) + len(self.kept) + len(self.replies)

    # ------------------------------------------------------------------------------ client side

    def feed(self, data: bytes) -> None:
        if self.state == "encrypted":
            return
        if self.starttls and not self.buf and data[:2] == b"\x16\x03":
            self._encrypted("STARTTLS: the rest of the session is encrypted")
            return
        self.buf += data
        while self.buf and self.state != "encrypted":
            if self.state == "data":
                if not self._data():
                    return
            elif self.state == "bdat":
                if not self._bdat():
                    return
            else:
                nl = self.buf.find(b"\n")
                if nl < 0:
                    if len(self.buf) > _MAX_LINE:
                        self.buf.clear()
                    return
                line = bytes(self.buf[:nl]).rstrip(b"\r")
                del self.buf[: nl + 1]
                self._line(line)

    def _line(self, line: bytes) -> None:
        state = self.state
        if state == "auth_plain":
            self.state = "command"
            if line != b"*":
                self._plain(line)
            return
        if state == "auth_login_user":
            self.login_user = _b64(line)
            self.state = "auth_login_pass" if line != b"*" else "command"
            return
        if state == "auth_login_pass":
            self.state = "command"
            if line != b"*":
                self._credentials("SMTP AUTH LOGIN", self.login_user + b"\x00" + _b64(line))
            self.login_user = b""
            return
        if state == "auth_other":
            self.state = "command"
            return
        verb, _, arg = line.partition(b" ")
        verb_text = verb.upper().decode("latin-1")
        self.awaiting.append(verb_text)
        if verb_text in ("EHLO", "HELO", "LHLO", "RSET"):
            self._reset()
        elif verb_text == "MAIL":
            self._reset()
            self.sender = _address(arg)
        elif verb_text == "RCPT":
            self.recipients.append(_address(arg))
        elif verb_text == "DATA":
            self._start("DATA")
            self.state = "data"
            self.scan_from = 0
            self.message = bytearray(b"\r\n")  # a virtual line end, so "." on the first line ends DATA
        elif verb_text == "BDAT":
            parts = arg.split()
            try:
                self.remaining = int(parts[0]) if parts else -1
            except ValueError:
                self.remaining = -1
            if self.remaining < 0:
                return
            self.last_chunk = len(parts) > 1 and parts[1].upper() == b"LAST"
            if self.current is None:
                self._start("BDAT")
                self.message = bytearray()
            self.state = "bdat"
        elif verb_text == "AUTH":
            mechanism, _, initial = arg.strip().partition(b" ")
            mech = mechanism.upper()
            initial = initial.strip()
            if mech == b"PLAIN":
                if initial and initial != b"=":
                    self._plain(initial)
                else:
                    self.state = "auth_plain"
            elif mech == b"LOGIN":
                if initial:
                    self.login_user = _b64(initial)
                    self.state = "auth_login_pass"
                else:
                    self.state = "auth_login_user"
            elif not initial:
                self.state = "auth_other"  # CRAM-MD5 and friends: no password on the wire
        elif verb_text == "STARTTLS":
            self.starttls = True

    def _data(self) -> bool:
        self.message += self.buf
        self.buf.clear()
        match = _END_OF_DATA.search(self.message, max(self.scan_from - 4, 0))
        if match is None:
            self.scan_from = len(self.message)
            if len(self.message) + len(self.kept) > self.max_bytes:
                self._overflow()
            return False
        rest = bytes(self.message[match.end() :])
        body = bytes(self.message[: match.start() + 1])
        self.message = bytearray()
        self._complete(_unstuff(body)[2:] if not self.kept else self.kept)
        self.state = "command"
        self.buf += rest
        return True

    def _overflow(self) -> None:
        if not self.kept:
            self.kept = _unstuff(bytes(self.message[: self.max_bytes]))[2:]
            if self.current is not None:
                self.current.missing(Reason.TRUNCATED, "message", "message beyond the flow memory cap")
        del self.message[:-8]  # keep enough to recognise the end of DATA
        self.scan_from = 0

    def _bdat(self) -> bool:
        take = min(self.remaining, len(self.buf))
        room = self.max_bytes - len(self.message)
        if room < take and self.current is not None:
            self.current.missing(Reason.TRUNCATED, "message", "message beyond the flow memory cap")
        self.message += self.buf[: max(0, min(take, room))]
        del self.buf[:take]
        self.remaining -= take
        if self.remaining:
            return False
        self.state = "command"
        if self.last_chunk:
            body, self.message = bytes(self.message), bytearray()
            self._complete(body)
        return True

    # ------------------------------------------------------------------------------ server side

    def server_data(self, data: bytes) -> None:
        if self.state == "encrypted":
            return
        self.replies += data
        while True:
            nl = self.replies.find(b"\n")
            if nl < 0:
                if len(self.replies) > _MAX_LINE:
                    self.replies.clear()
                return
            line = bytes(self.replies[:nl])
            del self.replies[: nl + 1]
            match = _REPLY.match(line)
            if match is None or match.group(2) == b"-":
                continue  # not a reply, or a continuation line
            self._reply(int(match.group(1)))

    def _reply(self, code: int) -> None:
        if not self.greeted and not self.awaiting:
            self.greeted = True
            return
        self.greeted = True
        if not self.awaiting:
            return
        verb = self.awaiting.popleft()
        if verb == "DATA" and code != 354 and self.state == "data" and len(self.message) <= 2:
            self.state = "command"  # refused: what follows are commands again
            self.current = None
            self.message = bytearray()
        elif verb == "STARTTLS":
            if code == 220:
                self._encrypted("STARTTLS: the rest of the session is encrypted")
            else:
                self.starttls = False

    # ------------------------------------------------------------------------------ gaps, end

    def gap(self, missing: int, from_client: bool) -> None:
        if not from_client:
            self.replies.clear()
            self.awaiting.clear()
            return
        if self.state in ("data", "bdat") and self.current is not None:
            self.current.missing(Reason.REASSEMBLY_GAP, "message", f"{missing} bytes missing from the capture")
            if self.state == "bdat":
                self.remaining = max(self.remaining - missing, 0)
            return
        # Between transactions: a whole command sequence, even a whole message, may be missing.
        record = Transaction("smtp", method="gap", url=self.server, sender=self.sender,
                             recipients=list(self.recipients))
        record.missing(Reason.REASSEMBLY_GAP, "session", f"{missing} bytes of the client's commands missing")
        self.emit(record)
        self.buf.clear()
        if self.state.startswith("auth"):
            self.state = "command"

    def close(self, reason: str) -> None:
        if self.current is not None and self.state in ("data", "bdat"):
            if reason == "evicted":
                self.current.missing(Reason.EVICTED, "message", "flow evicted by the memory cap")
            else:
                self.current.missing(Reason.TRUNCATED, "message", "the capture ended before the end of DATA")
            body = self.kept or _unstuff(bytes(self.message))[2 if self.state == "data" else 0 :]
            self._complete(body)
        self.state = "encrypted"
        self.buf.clear()
        self.message = bytearray()

    # ------------------------------------------------------------------------------ helpers

    def _reset(self) -> None:
        self.sender, self.recipients, self.current = "", [], None
        self.kept = b""

    def _start(self, verb: str) -> None:
        self.current = Transaction("smtp", kind=ContentKind.EMAIL, method=verb, url=self.server,
                                   sender=self.sender, recipients=list(self.recipients))
        self.kept = b""

    def _complete(self, body: bytes) -> None:
        tx = self.current or Transaction("smtp", kind=ContentKind.EMAIL, method="DATA", url=self.server)
        tx.raw = body
        self.current = None
        self.kept = b""
        self.recipients = []
        self.sender = ""
        self.emit(tx)

    def _plain(self, token: bytes) -> None:
        decoded = _b64(token)
        # authzid NUL authcid NUL password: the secret material is the identity and the password
        self._credentials("SMTP AUTH PLAIN", decoded.split(b"\x00", 1)[-1] if b"\x00" in decoded else decoded)

    def _credentials(self, mechanism: str, secret: bytes) -> None:
        record = Transaction("smtp", method="AUTH", url=self.server, credential_mechanism=mechanism,
                             credential_secret=secret)
        self.emit(record)

    def _encrypted(self, detail: str) -> None:
        self.state = "encrypted"
        self.buf.clear()
        self.replies.clear()
        self.emit(encrypted_session(self.server, detail))


def _address(arg: bytes) -> str:
    match = _ADDRESS.search(arg)
    raw = match.group(1) if match else arg.partition(b":")[2].strip().split(b" ")[0]
    text = raw.decode("utf-8", errors="replace")
    return "".join(ch for ch in text if ch.isprintable())[:320]


def _b64(token: bytes) -> bytes:
    try:
        return base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return token.strip()


def _unstuff(data: bytes) -> bytes:
    return data.replace(b"\n..", b"\n.")
