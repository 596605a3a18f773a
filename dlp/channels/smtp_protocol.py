"""The relay's SMTP protocol: aiosmtpd's state machine with the limits and replies a DLP relay needs.

Differences from stock aiosmtpd, each for an attack or a failure it would otherwise let through:
- every reply goes through the catalogue (`smtp_replies.translate`): no exception or client text echoed;
- sessions over the global / per-address cap get 421 at connect; draining sessions get 421 at MAIL;
- control characters in MAIL FROM / RCPT TO are refused (aiosmtpd would accept `<a\\rb@x>`);
- DATA is read by our own loop: lines longer than the limit or a body over the size limit are read to
  the end and refused (never truncated); a bare CR, bare LF or NUL anywhere refuses the message with
  550 5.6.0, so no SMTP-smuggling sequence can reach the next hop; the idle timer restarts per line;
- AUTH is offered only when a users file is configured, and only after STARTTLS unless allowed.
"""

from __future__ import annotations

import asyncio
import collections
import re
import ssl
from dataclasses import dataclass
from email._header_value_parser import get_addr_spec, get_angle_addr
from email.errors import HeaderParseError
from typing import Any, Protocol

from aiosmtpd.smtp import SMTP

from dlp import metrics
from dlp.channels import smtp_replies as replies
from dlp.channels.smtp_limits import has_control_characters

AUTH_FAILURE_LIMIT = 3
# `<dot-atom@dot-atom>`: what nearly every MTA sends, and what aiosmtpd's RFC 5322 parser would return
# unchanged; anything else still goes through that parser.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(rf"<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>")


class Gate(Protocol):
    """What the service decides for every session: admission, and whether it is draining."""

    draining: bool

    def admit(self, protocol: RelaySMTP, address: str) -> str | None: ...

    def release(self, protocol: RelaySMTP, address: str) -> None: ...


@dataclass(frozen=True, slots=True)
class ProtocolOptions:
    hostname: str
    max_message_bytes: int
    max_line_length: int
    idle_timeout: float
    tls_context: ssl.SSLContext | None = None
    require_tls: bool = False
    authenticator: Any = None
    auth_required: bool = False
    auth_allow_plaintext: bool = False


_READ_SIZE = 64 * 1024
_STUFFED_DOT = re.compile(rb"(?:^|(?<=\n))\.")  # a transparency dot at the start of a line (RFC 5321 4.5.2)


def _check_block(block: bytes, partial: bytes, size: int, limit: int, line_limit: int) -> tuple[str | None, str]:
    """A refusal (and its metric reason) for complete CRLF lines (`block`, ending at `size` bytes read) and an
    unfinished line, or (None, ""). Counting is C speed; only a block with a problem is walked line by line,
    so that the refusal is the one a line reader would have given (the first problem wins)."""
    crlf = block.count(b"\r\n")
    unfinished = len(partial) - partial.endswith(b"\r")  # a trailing CR may be the start of the CRLF
    clean = (size <= limit and unfinished <= line_limit and b"\x00" not in block
             and block.count(b"\r") == crlf and block.count(b"\n") == crlf
             and (len(block) <= line_limit + 2 or max(map(len, block.split(b"\r\n"))) <= line_limit))
    if clean:
        return None, ""
    size -= len(block)
    for line in block.split(b"\r\n")[:-1]:
        if len(line) > line_limit:
            return replies.LINE_TOO_LONG, "line_too_long"
        size += len(line) + 2
        if size > limit:
            return replies.MESSAGE_TOO_BIG, "message_too_big"
        if b"\r" in line or b"\n" in line or b"\x00" in line:
            return replies.BARE_LINE_ENDING, "bare_line_ending"
    return replies.LINE_TOO_LONG, "line_too_long"  # only the unfinished line is left


class _Refused(Exception):
    """Raised inside the DATA reader to finish reading and then send a catalogue refusal."""


class RelaySMTP(SMTP):
    def __init__(self, handler: Any, gate: Gate, options: ProtocolOptions) -> None:
        # Both must exist before aiosmtpd's __init__ reads them: the stream limit is one line plus CRLF
        # and a transparency dot; the size-limit map is per instance (aiosmtpd's is a shared class dict).
        self.line_length_limit = options.max_line_length + 3
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        self._gate = gate
        self._options = options
        self._admitted_as: str | None = None
        self._refused = False
        self._auth_failures = 0
        self.in_transaction = False  # a DATA body is being read or its verdict enforced
        super().__init__(
            handler,
            data_size_limit=options.max_message_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=options.hostname,
            ident="ESMTP dlp",
            tls_context=options.tls_context,
            require_starttls=options.require_tls,
            timeout=options.idle_timeout,
            auth_required=options.auth_required and options.authenticator is not None,
            auth_require_tls=not options.auth_allow_plaintext,
            authenticator=options.authenticator,
            loop=asyncio.get_running_loop(),
        )

    # ------------------------------------------------------------------------------ connection
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self._original_transport is None and self.transport is None
        if first:
            peer = transport.get_extra_info("peername")
            address = str(peer[0]) if peer else ""
            refusal = self._gate.admit(self, address)
            if refusal is not None:
                self._refused = True
                metrics.SMTP_REJECTED.labels("session_limit").inc()
                transport.write(refusal.encode("ascii") + b"\r\n")  # type: ignore[attr-defined]
                transport.close()
                return
            self._admitted_as = address
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        if self._admitted_as is not None:
            self._gate.release(self, self._admitted_as)
            self._admitted_as = None
        super().connection_lost(error)

    def close_with(self, reply: str) -> None:
        """Send a final reply and close, from outside the session's own task (drain, shutdown)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(replies.translate(reply).encode("ascii") + b"\r\n")  # type: ignore[attr-defined]
        transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()  # type: ignore[attr-defined]

    @property
    def idle(self) -> bool:
        return not self.in_transaction and not (self.envelope is not None and self.envelope.mail_from)

    # ------------------------------------------------------------------------------ replies
    async def push(self, status: str | bytes) -> None:
        text = status.decode("ascii", "replace") if isinstance(status, bytes) else status
        await super().push(replies.translate(text))

    # ------------------------------------------------------------------------------ commands
    async def smtp_EHLO(self, hostname: str) -> None:
        if not hostname:
            await self.push(replies.PARAMETER_ERROR)
            return
        assert self.session is not None
        self._set_rset_state()
        self.session.extended_smtp = True
        self.session.host_name = hostname
        # Room for " SIZE=<n>", " BODY=8BITMIME" and " SMTPUTF8" on MAIL FROM.
        self.command_size_limits["MAIL"] = SMTP.command_size_limit + 26 + 14 + 10
        lines = [f"250-{self.hostname}", f"250-SIZE {self._options.max_message_bytes}", "250-8BITMIME", "250-SMTPUTF8"]
        if self.tls_context and not self._tls_protocol:
            lines.append("250-STARTTLS")
        if self._options.authenticator is not None and (self._tls_protocol or self._options.auth_allow_plaintext):
            lines.append("250-AUTH LOGIN PLAIN")
        lines.append("250 ENHANCEDSTATUSCODES")
        for line in lines:
            await self.push(line)

    async def smtp_AUTH(self, arg: str) -> None:
        if self._options.authenticator is None:
            await self.push(replies.NOT_IMPLEMENTED)
            return
        await super().smtp_AUTH(arg)
        assert self.session is not None
        if arg and not self.session.authenticated:
            self._auth_failures += 1
            if self._auth_failures >= AUTH_FAILURE_LIMIT:
                metrics.SMTP_REJECTED.labels("auth_failures").inc()
                await self.push(replies.TOO_MANY_AUTH_FAILURES)
                assert self.transport is not None
                self.transport.close()

    async def smtp_MAIL(self, arg: str | None) -> None:
        if self._gate.draining:
            await self.push(replies.SHUTTING_DOWN)
            assert self.transport is not None
            self.transport.close()
            return
        if arg and has_control_characters(arg):
            metrics.SMTP_REJECTED.labels("control_characters").inc()
            await self.push(replies.CONTROL_CHARACTERS)
            return
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str | None) -> None:
        if arg and has_control_characters(arg):
            metrics.SMTP_REJECTED.labels("control_characters").inc()
            await self.push(replies.CONTROL_CHARACTERS)
            return
        await super().smtp_RCPT(arg)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's address parsing, without its cost per command: it defines a typing.Protocol class on
        every call, and runs the RFC 5322 parser even for a plain `<user@domain>`."""
        if not arg:
            return "", ""
        plain = _PLAIN_ADDRESS.match(arg)
        rest = arg[plain.end():].lstrip(" \t") if plain else ""
        if plain and not rest.startswith("("):  # the parser also swallows a comment after the address
            address = plain.group(1)
        else:
            try:
                token, rest = (get_angle_addr if arg.lstrip().startswith("<") else get_addr_spec)(arg)
            except (HeaderParseError, IndexError):  # the parser indexes past the end of "<" (aiosmtpd: a 500)
                return None, None
            address = token.addr_spec
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest

    async def smtp_VRFY(self, arg: str) -> None:
        await self.push(replies.CANNOT_VRFY if arg else replies.PARAMETER_ERROR)

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push(replies.BAD_SEQUENCE)
            return
        if arg:
            await self.push(replies.PARAMETER_ERROR)
            return
        await self.push(replies.START_DATA)
        self.in_transaction = True
        try:
            try:
                content = await self._read_data()
            except _Refused as refusal:
                self._set_post_data_state()
                await self.push(str(refusal))
                return
            self.envelope.content = content
            self.envelope.original_content = content
            status = await self.event_handler.handle_DATA(self, self.session, self.envelope)
            self._set_post_data_state()
            await self.push(status)
        finally:
            self.in_transaction = False
        if self._gate.draining:
            await self.push(replies.SHUTTING_DOWN)
            assert self.transport is not None
            self.transport.close()

    async def _read_data(self) -> bytes:
        """The body up to the final dot, unstuffed; raises _Refused (after reading it all) when refused.

        Reads whatever has arrived and checks it a block of complete lines at a time with C-speed bytes
        operations (a line at a time was most of the relay's CPU for a 10 KB message). The rules are those
        of a line reader: a line longer than the limit, a bare CR, bare LF or NUL, or a body over the
        size limit refuses the message once the final dot has been read; the idle timer restarts as data
        arrives. Bytes after the final dot (a client that did not wait for our reply) stay unread.
        """
        limit = self._options.max_message_bytes
        line_limit = self.line_length_limit  # like StreamReader.readuntil: longer content before a CRLF fails
        blocks: list[bytes] = []
        size = 0
        refusal: str | None = None
        reason = ""
        pending = b""  # an incomplete line (normal mode), or the last bytes seen (once refused)
        rearm = min(1.0, self._timeout_duration / 10)  # re-arming the idle timer per read costs; per second is enough
        armed = self.loop.time()
        while self.transport is not None:
            chunk = await self._reader.read(_READ_SIZE)
            if not chunk:
                raise ConnectionResetError("connection lost in DATA")
            if self.loop.time() - armed >= rearm:
                self._reset_timeout()
                armed = self.loop.time()
            buffer = pending + chunk
            if refusal is None and buffer.startswith(b".\r\n"):  # normal mode: buffer starts a line
                end = 0
            else:
                found = buffer.find(b"\r\n.\r\n")
                end = found + 2 if found >= 0 else -1
            last_crlf = buffer.rfind(b"\r\n")
            complete = end if end >= 0 else (last_crlf + 2 if last_crlf >= 0 else 0)
            if refusal is not None:
                pending = buffer[-4:]  # enough to find a final dot split between reads
            else:
                block, pending = buffer[:complete], buffer[complete:]
                size += len(block)
                refusal, reason = _check_block(block, pending if end < 0 else b"", size, limit, line_limit)
                if refusal is None:
                    if block.startswith(b".") or b"\n." in block:
                        block = _STUFFED_DOT.sub(b"", block)
                    blocks.append(block)
                else:
                    blocks.clear()
                    pending = buffer[-4:]
            if end >= 0:
                rest = buffer[end + 3:]
                if rest:  # give back what followed the final dot, for the command loop
                    self._reader._buffer[0:0] = rest  # type: ignore[attr-defined]
                break
        if refusal is not None:
            metrics.SMTP_REJECTED.labels(reason).inc()
            raise _Refused(refusal)
        return b"".join(blocks)
