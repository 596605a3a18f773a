"""Per-flow protocol dispatch: decides from the first bytes whether a TCP flow is HTTP, SMTP, TLS or
something we do not read, then feeds the right parser; collects the other versions of overlapping
bytes so that they are inspected too."""

from __future__ import annotations

import socket

from dlp.channels.passive.protocols.http import HttpParser, could_be_http
from dlp.channels.passive.protocols.smtp import SmtpParser
from dlp.channels.passive.reassembly import Flow
from dlp.channels.passive.transaction import Emit, Transaction, encrypted_session
from dlp.model import ContentKind, Reason

_DECIDE_AFTER = 16  # bytes of a direction after which an unrecognised flow is "other"
_SMTP_VERBS = (b"EHLO", b"HELO", b"LHLO", b"MAIL", b"RCPT", b"DATA", b"AUTH", b"STARTTLS", b"QUIT", b"NOOP",
               b"RSET")
_MAX_OTHER_VERSIONS = 1024 * 1024


def endpoint(address: tuple[bytes, int]) -> str:
    ip, port = address
    family = socket.AF_INET if len(ip) == 4 else socket.AF_INET6
    text = socket.inet_ntop(family, ip)
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"


def _is_tls(prefix: bytes) -> bool:
    return len(prefix) >= 3 and prefix[0] == 0x16 and prefix[1] == 0x03 and prefix[2] <= 0x04


class FlowHandler:
    """The StreamConsumer of one flow."""

    def __init__(self, flow: Flow, emit: Emit, stats_protocols: dict[str, int], max_bytes: int,
                 smtp_ports: frozenset[int], http_ports: frozenset[int]) -> None:
        self.flow = flow
        self.emit = emit
        self.client = endpoint(flow.client)
        self.server = endpoint(flow.server)
        self.protocols = stats_protocols
        self.max_bytes = max_bytes
        self.smtp_ports = smtp_ports
        self.http_ports = http_ports
        self.protocol = ""  # "" undecided | http | smtp | tls | other
        self.parser: HttpParser | SmtpParser | None = None
        self.early: list[tuple[bool, bytes]] = []  # bytes seen before the protocol was known
        self.early_client = b""
        self.early_server = b""
        self.other_versions = bytearray()
        self.pending_gaps: list[tuple[bool, int]] = []

    # ---------------------------------------------------------------------------- StreamConsumer

    def data(self, from_client: bool, data: bytes) -> None:
        parser = self.parser
        if parser is not None:
            if from_client:
                parser.feed(data)
            else:
                parser.server_data(data)
            return
        if self.protocol:
            return  # tls or other: nothing to read
        self.early.append((from_client, data))
        if from_client:
            self.early_client += data[: _DECIDE_AFTER * 2]
        else:
            self.early_server += data[: _DECIDE_AFTER * 2]
        self._decide()

    def gap(self, from_client: bool, missing: int) -> None:
        if self.parser is not None:
            if isinstance(self.parser, SmtpParser):
                self.parser.gap(missing, from_client)
            elif from_client:
                self.parser.gap(missing)
            return
        if self.protocol in ("tls", "other"):
            return
        self.pending_gaps.append((from_client, missing))

    def overlap(self, from_client: bool, other_version: bytes) -> None:
        room = _MAX_OTHER_VERSIONS - len(self.other_versions)
        if room > 0:
            self.other_versions += other_version[:room] + b"\n"

    def close(self, reason: str) -> None:
        if not self.protocol:
            self._decide(final=True)
        if self.parser is not None:
            self.parser.close(reason)
        elif self.protocol == "" and self.pending_gaps and any(c for c, _ in self.pending_gaps):
            record = Transaction("tcp", method="gap", url=self.server)
            record.missing(Reason.REASSEMBLY_GAP, "stream", "bytes missing before the protocol could be identified")
            self.emit(record)
        if self.other_versions:
            record = Transaction("tcp", kind=ContentKind.FILE, method="overlap", url=self.server,
                                 raw=bytes(self.other_versions))
            record.missing(Reason.OVERLAP_DIFFERENT_DATA, "stream",
                           "segments overlapped with different data; the other version was inspected too")
            self.other_versions = bytearray()
            self.emit(record)

    def wants(self, from_client: bool) -> bool:
        protocol = self.protocol
        if not protocol or protocol == "smtp":
            return True
        return from_client and protocol == "http"

    def buffered(self) -> int:
        parser = self.parser
        held = parser.buffered() if parser is not None else sum(len(d) for _, d in self.early)
        return held + len(self.other_versions)

    # ---------------------------------------------------------------------------- identification

    def _decide(self, final: bool = False) -> None:
        c, s = self.early_client, self.early_server
        sport = self.flow.server[1]
        protocol = ""
        if _is_tls(c) or _is_tls(s):
            protocol = "tls"
        elif c and could_be_http(c):
            protocol = "http"
        elif c[:4].upper() in _SMTP_VERBS or (s[:4] in (b"220 ", b"220-") and sport in self.smtp_ports):
            protocol = "smtp"
        elif s[:4] in (b"220 ", b"220-") and not c and not final:
            return  # an SMTP or FTP greeting: the client's first command tells them apart
        elif c and could_be_http(c) is None and not final:
            return  # a request line still arriving, one byte at a time perhaps
        elif len(c) >= _DECIDE_AFTER or len(s) >= _DECIDE_AFTER or final:
            if sport in self.smtp_ports and (c or s):
                protocol = "smtp"
            elif sport in self.http_ports and c:
                protocol = "http"
            elif c or s:
                protocol = "other"
        if not protocol:
            return
        self.protocol = protocol
        self.protocols[protocol] = self.protocols.get(protocol, 0) + 1
        early, self.early = self.early, []
        self.early_client = self.early_server = b""
        if protocol == "tls":
            self.emit(encrypted_session(self.server, "TLS session: content not visible to a passive monitor"))
            return
        if protocol == "other":
            return
        self.parser = (HttpParser if protocol == "http" else SmtpParser)(
            self.emit, self.client, self.server, self.max_bytes)
        for from_client, missing in self.pending_gaps:
            self.gap(from_client, missing)
        self.pending_gaps = []
        for from_client, data in early:
            self.data(from_client, data)
