"""The SMTP relay service for `dlp serve`: listens, admits sessions, drains on shutdown.

The protocol (dlp.channels.smtp_protocol) runs on the serve event loop via loop.create_server, not
aiosmtpd's threaded Controller; enforcement lives in dlp.channels.smtp_relay, replies in
dlp.channels.smtp_replies. See docs/smtp-relay.md.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from dlp import metrics
from dlp.channels import smtp_faults as faults
from dlp.channels import smtp_replies as replies
from dlp.channels.smtp_auth import AuthConfigError, Authenticator, load_users
from dlp.channels.smtp_limits import SessionLimiter, valid_hostname
from dlp.channels.smtp_protocol import ProtocolOptions, RelaySMTP
from dlp.channels.smtp_relay import RelayConfig, RelayHandler
from dlp.durable import purge_temporaries
from dlp.logs import get_logger
from dlp.next_hop import NextHopPool, PoolLimits

log = get_logger("dlp.smtp")

FAIL_MODES = ("tempfail", "open")
_NEXT_HOP = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+):[0-9]{1,5}")
QUARANTINE_REPLIES = ("accept", "reject")


class SmtpConfigError(Exception):
    """The [smtp] settings cannot work; the message names the key."""


def _startup_error(message: str) -> Exception:
    try:
        from dlp.serve import ServeError
    except ImportError:  # pragma: no cover - serve is always there in the package
        return SmtpConfigError(message)
    return ServeError(message)


class SmtpService:
    name = "smtp"

    def __init__(self, runtime: Any, options: ProtocolOptions, config: RelayConfig) -> None:
        self.runtime = runtime
        self.options = options
        self.config = config
        smtp = config.smtp
        self.limiter = SessionLimiter(smtp.max_sessions, smtp.max_sessions_per_ip)
        self.sessions: set[RelaySMTP] = set()
        self.draining = False
        self._all_closed = asyncio.Event()
        self._all_closed.set()
        self._commits: set[asyncio.Task[str]] = set()
        self.executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dlp-smtp-outbox")
        self.next_hop = NextHopPool(
            smtp.next_hop, helo=smtp.hostname, timeout=smtp.forward_timeout_seconds,
            limits=PoolLimits(smtp.next_hop_connections, smtp.next_hop_messages_per_connection,
                              smtp.next_hop_idle_seconds),
        ) if smtp.next_hop else None
        self.handler = RelayHandler(runtime.pipeline, config, self.executor, self._track, self.next_hop)
        self.server: asyncio.Server | None = None

    # ------------------------------------------------------------------------------ Gate
    def admit(self, protocol: RelaySMTP, address: str) -> str | None:
        if self.draining:
            return replies.SHUTTING_DOWN
        refusal = self.limiter.admit(address)
        if refusal is None:
            self.sessions.add(protocol)
            self._all_closed.clear()
            metrics.SMTP_SESSIONS.set(len(self.sessions))
        return refusal

    def release(self, protocol: RelaySMTP, address: str) -> None:
        self.limiter.release(address)
        self.sessions.discard(protocol)
        metrics.SMTP_SESSIONS.set(len(self.sessions))
        if not self.sessions:
            self._all_closed.set()

    def _track(self, task: asyncio.Task[str]) -> None:
        self._commits.add(task)
        task.add_done_callback(self._commits.discard)

    def protocol(self) -> RelaySMTP:
        return RelaySMTP(self.handler, self, self.options)

    # ------------------------------------------------------------------------------ Service
    @property
    def address(self) -> tuple[str, int]:
        assert self.server is not None
        sockname = self.server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    def describe(self) -> str:
        host, port = self.address
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if self.config.smtp.next_hop:
            target = f"next hop {self.config.smtp.next_hop}"
        else:
            target = f"outbox folder {self.config.outbox} (demo default: no next hop configured)"
        extras = []
        if self.options.tls_context is not None:
            extras.append("STARTTLS")
        if self.options.authenticator is not None:
            extras.append("AUTH")
        if self.config.smtp.fail_mode == "open":
            extras.append("FAIL-OPEN")
        return f"{where} -> {target}" + (f" [{', '.join(extras)}]" if extras else "")

    async def stop(self, grace: float) -> None:
        """Stop accepting; idle sessions get 421 now; transactions get `grace` to finish, then 421."""
        if self.draining:
            return
        self.draining = True
        if self.server is not None:
            self.server.close()
        for session in list(self.sessions):
            if session.idle:
                session.close_with(replies.SHUTTING_DOWN)
        deadline = time.monotonic() + grace
        try:
            await asyncio.wait_for(self._all_closed.wait(), grace)
        except TimeoutError:
            log.warning("smtp_drain_timeout", sessions=len(self.sessions))
            for session in list(self.sessions):
                session.close_with(replies.SHUTTING_DOWN)
            try:
                await asyncio.wait_for(self._all_closed.wait(), 1.0)
            except TimeoutError:  # a peer that does not read (or answer a TLS close_notify)
                for session in list(self.sessions):
                    session.abort()
        pending = set(self._commits)
        if pending:
            # Commits whose client is gone still finish (shielded), within what is left of the grace.
            await asyncio.wait(pending, timeout=max(0.1, deadline - time.monotonic()))
        if self.next_hop is not None:
            await self.next_hop.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        log.info("smtp_stopped")


def _tls_context(cert: str, key: str) -> ssl.SSLContext | None:
    if not cert and not key:
        return None
    if not (cert and key):
        raise _startup_error("smtp: tls_cert and tls_key must be set together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise _startup_error(f"smtp: cannot load tls_cert / tls_key: {getattr(exc, 'strerror', None) or exc}") from None
    return context


def build_options(settings: Any) -> ProtocolOptions:
    smtp = settings.smtp
    if not valid_hostname(smtp.hostname):
        raise _startup_error(f"smtp.hostname must be a dotted DNS name, got {smtp.hostname!r}")
    if smtp.fail_mode not in FAIL_MODES:
        raise _startup_error(f"smtp.fail_mode must be one of {', '.join(FAIL_MODES)}")
    if smtp.quarantine_reply not in QUARANTINE_REPLIES:
        raise _startup_error(f"smtp.quarantine_reply must be one of {', '.join(QUARANTINE_REPLIES)}")
    if smtp.next_hop and not _NEXT_HOP.fullmatch(smtp.next_hop):
        raise _startup_error(f"smtp.next_hop must be HOST:PORT (IPv6 as [addr]:port), got {smtp.next_hop!r}")
    if smtp.next_hop_connections < 1 or smtp.next_hop_messages_per_connection < 1:
        raise _startup_error("smtp.next_hop_connections and smtp.next_hop_messages_per_connection must be >= 1")
    if smtp.next_hop_idle_seconds < 0:
        raise _startup_error("smtp.next_hop_idle_seconds must be >= 0")
    tls_context = _tls_context(smtp.tls_cert, smtp.tls_key)
    if smtp.require_tls and tls_context is None:
        raise _startup_error("smtp.require_tls needs smtp.tls_cert and smtp.tls_key")
    authenticator = None
    if smtp.auth_users_file:
        try:
            authenticator = Authenticator(load_users(smtp.auth_users_file))
        except AuthConfigError as exc:
            raise _startup_error(f"smtp: {exc}") from None
        if tls_context is None and not smtp.auth_allow_plaintext:
            raise _startup_error("smtp.auth_users_file needs STARTTLS (tls_cert / tls_key) "
                                 "or smtp.auth_allow_plaintext = true")
    return ProtocolOptions(
        hostname=smtp.hostname,
        max_message_bytes=smtp.max_message_bytes,
        max_line_length=smtp.max_line_length,
        idle_timeout=smtp.idle_timeout_seconds,
        tls_context=tls_context,
        require_tls=smtp.require_tls,
        authenticator=authenticator,
        auth_required=smtp.auth_required,
        auth_allow_plaintext=smtp.auth_allow_plaintext,
    )


async def start_service(runtime: Any, host: str, port: int) -> SmtpService:
    settings = runtime.settings
    options = build_options(settings)
    if runtime.store is None:
        # Never accept mail that could not be held (adversarial A13).
        raise _startup_error("smtp: no incident store is open; refusing to accept mail it could not quarantine")
    faults.arm()
    data_dir = Path(settings.data_dir)
    outbox = data_dir / "outbox"
    if not settings.smtp.next_hop:
        outbox.mkdir(parents=True, exist_ok=True, mode=0o700)
        purge_temporaries(outbox)
    config = RelayConfig(settings.smtp, data_dir, outbox)
    service = SmtpService(runtime, options, config)
    loop = asyncio.get_running_loop()
    service.server = await loop.create_server(service.protocol, host, port)
    log.info("smtp_listening", address=service.describe())
    return service
