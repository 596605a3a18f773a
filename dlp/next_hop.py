"""Persistent SMTP connections to the next hop: the relay's delivery path, on the serve event loop.

Outcomes are exactly those of dlp.delivery.deliver (same codes, statuses and kinds; all-or-nothing
recipients; a failure after the final dot went out is UNKNOWN), but a connection, its EHLO and its
opportunistic STARTTLS are paid once and then reused, like Postfix's connection cache:
- a connection carries one transaction at a time (it is checked out of the pool for the whole of it);
- before reuse it must answer RSET with 250, else it is dropped and another one is tried or opened;
- when the next hop advertises PIPELINING (RFC 2920; Postfix does), that RSET, MAIL, the RCPTs and
  DATA go out in one write and their replies are read in order: one round trip and two writes per
  message instead of five. Recipients stay all-or-nothing: if any is refused after DATA already got
  its 354, the connection is dropped before a single message byte, so nothing is delivered;
- it is closed after any error or unexpected reply stream, after `messages_per_connection` transactions,
  and when it sat idle for `idle_seconds`;
- at most `connections` are open (busy or idle); more deliveries wait for one.
A small client on asyncio streams instead of smtplib in threads: no thread hop per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass

from dlp.delivery import (
    BAD_ADDRESS,
    DELIVERED,
    DeliveryResult,
    Outcome,
    dot_stuffed,
    failure,
    has_bad_address,
    mail_options,
    mirror,
    opportunistic_tls,
)

# An RSET that takes longer than this marks a connection not worth reusing (Postfix's smtp_rset_timeout).
_PROBE_SECONDS = 20.0
_MAX_REPLY_LINES = 200
_LINE_LIMIT = 8192  # an SMTP reply line is at most 512 octets; anything near this is not SMTP


@dataclass(frozen=True, slots=True)
class PoolLimits:
    connections: int = 20
    messages_per_connection: int = 100
    idle_seconds: float = 5.0


class _Lost(Exception):
    """The next hop closed the connection."""


class _NotSmtp(Exception):
    """The next hop sent something that is not an SMTP reply."""


class _Stale(Exception):
    """A reused connection failed its pipelined RSET: nothing was accepted on it; use another."""


class _Session:
    """One client connection: commands and replies; the transaction logic lives in NextHopPool."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float) -> None:
        self.reader = reader
        self.writer = writer
        self.timeout = timeout
        self.extensions: set[str] = set()
        self.transactions = 0
        self.idle_since = 0.0
        self.reaper: asyncio.TimerHandle | None = None

    async def reply(self, timeout: float | None = None) -> int:
        """The code of one (possibly multi-line) reply; its text is never passed on."""
        code, _ = await self._reply(timeout)
        return code

    async def _reply(self, timeout: float | None = None) -> tuple[int, list[bytes]]:
        lines: list[bytes] = []
        async with asyncio.timeout(timeout or self.timeout):
            while len(lines) < _MAX_REPLY_LINES:
                line = await self.reader.readline()
                if not line.endswith(b"\n"):
                    raise _Lost
                code, separator = line[:3], line[3:4]
                if not code.isdigit() or separator not in (b" ", b"-", b"\r", b"\n"):
                    raise _NotSmtp
                lines.append(line[4:].rstrip(b"\r\n"))
                if separator != b"-":
                    return int(code), lines
        raise _NotSmtp

    async def command(self, line: bytes, timeout: float | None = None) -> int:
        self.writer.write(line + b"\r\n")
        return await self.reply(timeout)

    async def hello(self, helo: str) -> int:
        """EHLO (HELO if refused); remembers the extensions, lower-cased, like smtplib's has_extn."""
        self.writer.write(b"EHLO " + helo.encode("ascii") + b"\r\n")
        code, lines = await self._reply()
        self.extensions = set()
        if code == 250:
            for line in lines[1:]:  # the first line is the server's name
                words = line.split(None, 1)
                if words:
                    self.extensions.add(words[0].decode("ascii", "replace").lower())
            return code
        return await self.command(b"HELO " + helo.encode("ascii"))

    def close(self) -> None:
        """Polite close (QUIT without waiting for the 221)."""
        self.cancel_reaper()
        if not self.writer.is_closing():
            with contextlib.suppress(Exception):
                self.writer.write(b"QUIT\r\n")
            self.writer.close()

    def abort(self) -> None:
        """The session's state is unknown: drop it without another word."""
        self.cancel_reaper()
        self.writer.transport.abort()

    def cancel_reaper(self) -> None:
        if self.reaper is not None:
            self.reaper.cancel()
            self.reaper = None


class NextHopPool:
    """`await pool.deliver(sender, recipients, data)`; create and use it on one event loop only."""

    def __init__(self, next_hop: str, *, helo: str = "dlp.localhost", timeout: float = 120.0,
                 limits: PoolLimits | None = None) -> None:
        host, _, port = next_hop.rpartition(":")
        self.host = host.strip("[]") or "127.0.0.1"
        self.port = int(port)
        self.helo = helo
        self.timeout = timeout
        self.limits = limits or PoolLimits()
        self._slots = asyncio.Semaphore(self.limits.connections)
        self._idle: list[_Session] = []
        self._closed = False
        self.opened = 0  # connections opened so far (tests and the benchmark read it)

    @property
    def idle(self) -> int:
        return len(self._idle)

    async def deliver(self, sender: str, recipients: list[str] | tuple[str, ...], data: bytes) -> DeliveryResult:
        if has_bad_address(sender, recipients):
            return BAD_ADDRESS
        if self._closed:
            return failure(Outcome.TEMPFAIL, 451, "4.4.1", "shutting_down")
        async with self._slots:
            while True:
                checked_out = await self._checkout()
                if isinstance(checked_out, DeliveryResult):
                    return checked_out
                session, probe = checked_out
                try:
                    result, clean = await self._transaction(session, sender, list(recipients), data, probe)
                except _Stale:
                    session.abort()
                    continue
                except BaseException:  # cancelled mid-transaction: nobody knows where the session stands
                    session.abort()
                    raise
                if clean:
                    self._checkin(session)
                else:
                    session.abort()
                return result

    async def close(self) -> None:
        """Close idle connections now; busy ones close when their transaction ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        for session in idle:
            session.close()

    # ------------------------------------------------------------------------------ connections
    async def _checkout(self) -> tuple[_Session, bool] | DeliveryResult:
        """A session, and whether its RSET probe is still owed (sent pipelined with the transaction)."""
        loop = asyncio.get_running_loop()
        while self._idle:
            session = self._idle.pop()  # the most recently used: the likeliest to be alive
            session.cancel_reaper()
            if session.writer.is_closing() or loop.time() - session.idle_since > self.limits.idle_seconds:
                session.close()
                continue
            if "pipelining" in session.extensions:
                return session, True
            try:
                if await session.command(b"RSET", min(self.timeout, _PROBE_SECONDS)) == 250:
                    return session, False
            except (OSError, TimeoutError, ValueError, _Lost, _NotSmtp):
                pass
            session.abort()
        opened = await self._open()
        return opened if isinstance(opened, DeliveryResult) else (opened, False)

    def _checkin(self, session: _Session) -> None:
        session.transactions += 1
        if self._closed or session.transactions >= self.limits.messages_per_connection:
            session.close()
            return
        loop = asyncio.get_running_loop()
        session.idle_since = loop.time()
        session.reaper = loop.call_later(self.limits.idle_seconds, self._reap, session)
        self._idle.append(session)

    def _reap(self, session: _Session) -> None:
        session.reaper = None
        if session in self._idle:
            self._idle.remove(session)
            session.close()

    async def _open(self) -> _Session | DeliveryResult:
        """A new connection through greeting, EHLO and opportunistic STARTTLS, or why it failed."""
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port, limit=_LINE_LIMIT)
        except ConnectionRefusedError:
            return failure(Outcome.TEMPFAIL, 451, "4.4.1", "refused")
        except TimeoutError:
            return failure(Outcome.TEMPFAIL, 451, "4.4.1", "timeout")
        except OSError:
            return failure(Outcome.TEMPFAIL, 451, "4.4.1", "connect_error")
        self.opened += 1
        session = _Session(reader, writer, self.timeout)
        try:
            result = await self._greet(session)
        except BaseException:
            session.abort()
            raise
        if isinstance(result, DeliveryResult):
            session.abort()
            return result
        return session

    async def _greet(self, session: _Session) -> _Session | DeliveryResult:
        try:
            greeting = await session.reply()
        except TimeoutError:
            return failure(Outcome.TEMPFAIL, 451, "4.4.1", "timeout")
        except (OSError, ValueError, _Lost, _NotSmtp):
            return failure(Outcome.TEMPFAIL, 451, "4.4.1", "connect_error")
        if greeting != 220:
            return failure(Outcome.TEMPFAIL, 451, "4.4.1", "connect_error")
        try:
            code = await session.hello(self.helo)
            if code == 250 and "starttls" in session.extensions:
                if await session.command(b"STARTTLS") != 220:
                    raise _NotSmtp
                async with asyncio.timeout(self.timeout):
                    await session.writer.start_tls(opportunistic_tls(), server_hostname=self.host)
                code = await session.hello(self.helo)
        except (_Lost, ConnectionResetError, BrokenPipeError):
            return failure(Outcome.TEMPFAIL, 451, "4.4.2", "disconnected")
        except TimeoutError:
            return failure(Outcome.TEMPFAIL, 451, "4.4.2", "timeout")
        except (OSError, ValueError, _NotSmtp, ssl.SSLError):
            return failure(Outcome.TEMPFAIL, 451, "4.4.2", "protocol_error")
        if code != 250:
            return mirror(code, "helo")
        return session

    # ------------------------------------------------------------------------------ transaction
    async def _transaction(self, session: _Session, sender: str, recipients: list[str],
                           data: bytes, probe: bool) -> tuple[DeliveryResult, bool]:
        """The outcome, and whether the session is still in a known state (reusable).

        `probe`: the reused session's RSET is owed; it leads the pipelined group, and if it fails the
        session is stale (raises _Stale: nothing was accepted, the caller tries another)."""
        options = mail_options(sender, recipients, data, session.extensions)
        if isinstance(options, DeliveryResult):
            if probe:  # the owed RSET still proves the session before it goes back to the pool
                return options, await self._probe(session)
            return options, True
        encoding = "utf-8" if "SMTPUTF8" in options else "ascii"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        stage = "mail"
        mail = b" ".join([b"MAIL FROM:<" + sender.encode(encoding) + b">", *(o.encode("ascii") for o in options)])
        rcpts = [b"RCPT TO:<" + rcpt.encode(encoding) + b">" for rcpt in recipients]
        try:
            if "pipelining" in session.extensions:
                group = [b"RSET", mail, *rcpts, b"DATA"] if probe else [mail, *rcpts, b"DATA"]
                session.writer.write(b"\r\n".join(group) + b"\r\n")
                if probe:
                    try:
                        if await session.reply(min(self.timeout, _PROBE_SECONDS)) != 250:
                            raise _Stale
                    except (OSError, TimeoutError, ValueError, _Lost, _NotSmtp):
                        raise _Stale from None
                mail_code = await session.reply()
                stage = "rcpt"
                refused = {rcpt: code for rcpt in recipients if (code := await session.reply()) not in (250, 251)}
                stage = "data"
                code = await session.reply(max(1.0, deadline - loop.time()))
                if mail_code != 250 or refused:
                    # A 354 here means the next hop waits for a message we will not send: drop the
                    # connection before any of it (the next hop then discards the transaction).
                    clean = code != 354
                    if mail_code != 250:
                        return mirror(mail_code, "mail"), clean
                    return _refusal(refused, recipients), clean
                if code != 354:
                    return mirror(code, "data"), True
            else:
                code = await session.command(mail)
                if code != 250:
                    return mirror(code, "mail"), True
                stage = "rcpt"
                refused = {}
                for rcpt, line in zip(recipients, rcpts, strict=True):
                    code = await session.command(line)
                    if code not in (250, 251):
                        refused[rcpt] = code
                if refused:
                    await session.command(b"RSET")
                    return _refusal(refused, recipients), True
                stage = "data"
                code = await session.command(b"DATA", max(1.0, deadline - loop.time()))
                if code != 354:
                    return mirror(code, "data"), True
            stage = "dot"
            session.writer.write(dot_stuffed(data))
            remaining = max(1.0, deadline - loop.time())
            async with asyncio.timeout(remaining):
                await session.writer.drain()
            code = await session.reply(max(1.0, deadline - loop.time()))
            return (DELIVERED if code == 250 else mirror(code, "dot")), True
        except (_Lost, ConnectionResetError, BrokenPipeError):
            if stage == "dot":
                return failure(Outcome.UNKNOWN, 451, "4.4.2", "disconnected_after_data"), False
            return failure(Outcome.TEMPFAIL, 451, "4.4.2", "disconnected"), False
        except TimeoutError:
            if stage == "dot":
                return failure(Outcome.UNKNOWN, 451, "4.4.2", "timeout_after_data"), False
            return failure(Outcome.TEMPFAIL, 451, "4.4.2", "timeout"), False
        except (OSError, ValueError, _NotSmtp, ssl.SSLError):
            if stage == "dot":
                return failure(Outcome.UNKNOWN, 451, "4.4.2", "error_after_data"), False
            return failure(Outcome.TEMPFAIL, 451, "4.4.2", "protocol_error"), False

    async def _probe(self, session: _Session) -> bool:
        """The owed RSET on its own: whether the session is fit to go back to the pool."""
        try:
            return await session.command(b"RSET", min(self.timeout, _PROBE_SECONDS)) == 250
        except (OSError, TimeoutError, ValueError, _Lost, _NotSmtp):
            return False


def _refusal(refused: dict[str, int], recipients: list[str]) -> DeliveryResult:
    """All-or-nothing recipients: every one refused for good is a rejection, anything else a tempfail."""
    if all(c >= 500 for c in refused.values()) and set(refused) == set(recipients):  # duplicates count once
        return failure(Outcome.REJECTED, 550, "5.1.1", "rcpt_refused", refused)
    return failure(Outcome.TEMPFAIL, 451, "4.5.3", "rcpt_refused", refused)
