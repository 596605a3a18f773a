"""HTTP/1.x requests from a client's reassembled byte stream: keep-alive and pipelining, Content-Length
and chunked bodies (de-chunked for the inspector), CONNECT tunnels, Basic credentials sent in clear.
Responses are not read: the monitor watches what leaves."""

from __future__ import annotations

import base64
import binascii
import re

from dlp.channels.passive.transaction import Emit, Transaction, encrypted_session
from dlp.model import ContentKind, Reason

METHODS = (b"GET", b"POST", b"PUT", b"PATCH", b"DELETE", b"HEAD", b"OPTIONS", b"CONNECT", b"TRACE",
           b"PROPFIND", b"PROPPATCH", b"MKCOL", b"COPY", b"MOVE", b"LOCK", b"UNLOCK", b"REPORT", b"SEARCH")
_REQUEST_LINE = re.compile(rb"(" + b"|".join(METHODS) + rb") (\S{1,8192}) HTTP/1\.[019]\r?\n")
_MAX_HEADER = 64 * 1024
_TLS_RECORD = re.compile(rb"\x16\x03[\x00-\x04]")


def _header_end(buf: bytearray) -> int:
    """Where the header block ends (after its blank line, CRLF or bare LF), or -1. Two substring
    searches instead of a regex: the first line break followed by another one."""
    crlf = buf.find(b"\n\r\n")
    if crlf >= 0:  # a bare-LF blank line can only come first if it is before this one: search no further
        lf = buf.find(b"\n\n", 0, crlf + 1)
        return lf + 2 if lf >= 0 else crlf + 3
    lf = buf.find(b"\n\n")
    return lf + 2 if lf >= 0 else -1


def could_be_http(prefix: bytes) -> bool | None:
    """True when `prefix` starts like a request, False when it cannot, None when too short to say."""
    for method in METHODS:
        candidate = method + b" "
        n = min(len(prefix), len(candidate))
        if prefix[:n] == candidate[:n]:
            return True if len(prefix) >= len(candidate) else None
    return False


class HttpParser:
    """Feed client bytes; complete requests are emitted in order. Gaps never pass silently: a gap inside
    a request marks it incomplete, a gap between requests is emitted as its own uninspected record."""

    def __init__(self, emit: Emit, client: str, server: str, max_bytes: int) -> None:
        self.emit = emit
        self.client = client
        self.server = server
        self.max_bytes = max_bytes
        self.buf = bytearray()
        self.state = "head"  # head | length | chunked | tunnel | resync | done
        self.current: Transaction | None = None
        self.head = b""
        self.body = bytearray()
        self.remaining = 0
        self.chunk_state = "size"  # size | data | crlf | trailer
        self.truncated = False

    def buffered(self) -> int:
        return len(self.buf) + len(self.body)

    # --------------------------------------------------------------------------------- input

    def feed(self, data: bytes) -> None:
        state = self.state
        if state == "done":
            return
        if state == "length" and not self.buf:
            # The rest of a body, segment after segment: straight into the body, not through the buffer.
            take = min(self.remaining, len(data))
            self._body(data if take == len(data) else data[:take])
            self.remaining -= take
            if self.remaining:
                return
            self._finish()
            data = data[take:]
            if not data:
                return
        self.buf += data
        self._run()

    def server_data(self, data: bytes) -> None:
        """Responses are not inspected."""

    def gap(self, missing: int) -> None:
        if self.state == "length" and self.current is not None:
            self.current.missing(Reason.REASSEMBLY_GAP, "body", f"{missing} bytes missing from the capture")
            skipped = min(missing, self.remaining)
            self.remaining -= skipped
            if missing > skipped:
                self._finish()
                self.state = "resync"
            elif not self.remaining:
                self._finish()
            return
        if self.state == "chunked" and self.current is not None:
            self.current.missing(Reason.REASSEMBLY_GAP, "body", f"{missing} bytes missing from the capture")
            self._finish()
            self.state = "resync"
            self.buf.clear()
            return
        if self.state == "tunnel":
            return
        record = Transaction("http", method="gap", url=self.server)
        record.missing(Reason.REASSEMBLY_GAP, "stream",
                       f"{missing} bytes missing from the capture between or inside request headers")
        self.emit(record)
        self.buf.clear()
        self.state = "resync"

    def close(self, reason: str) -> None:
        if self.current is not None and self.state in ("length", "chunked"):
            if reason == "evicted":
                self.current.missing(Reason.EVICTED, "body", "flow evicted by the memory cap")
            else:
                self.current.missing(Reason.TRUNCATED, "body", "the capture ended before the request body")
            self._finish()
        elif self.state in ("head", "resync") and self.buf.strip():
            record = Transaction("http", method="partial", url=self.server, raw=bytes(self.buf[: self.max_bytes]),
                                 kind=ContentKind.FILE)
            why = Reason.EVICTED if reason == "evicted" else Reason.TRUNCATED
            record.missing(why, "stream", "request headers never completed")
            self.emit(record)
        self.buf.clear()
        self.body.clear()
        self.state = "done"

    # --------------------------------------------------------------------------------- parsing

    def _run(self) -> None:
        while self.buf:
            if self.state == "head":
                if not self._head():
                    return
            elif self.state == "length":
                take = min(self.remaining, len(self.buf))
                self._body(self.buf[:take])
                del self.buf[:take]
                self.remaining -= take
                if self.remaining:
                    return
                self._finish()
            elif self.state == "chunked":
                if not self._chunked():
                    return
            elif self.state == "resync":
                match = _REQUEST_LINE.search(self.buf)
                if match is None:
                    del self.buf[: max(0, len(self.buf) - 8200)]
                    return
                del self.buf[: match.start()]
                self.state = "head"
            elif self.state == "tunnel":
                if len(self.buf) < 3:
                    return
                if _TLS_RECORD.match(self.buf):
                    self.emit(encrypted_session(self.server, "TLS inside an HTTP CONNECT tunnel"))
                self.state = "done"
                self.buf.clear()
                return
            else:
                self.buf.clear()
                return

    def _head(self) -> bool:
        buf = self.buf
        if buf[0] == 0x16 and _TLS_RECORD.match(buf):
            self.state = "done"
            self.buf.clear()
            self.emit(encrypted_session(self.server, "TLS session: content not visible to a passive monitor"))
            return False
        end = _header_end(self.buf)
        if end < 0:
            if could_be_http(bytes(self.buf[:10])) is False or len(self.buf) > _MAX_HEADER:
                self.state = "resync"
                return True
            return False
        head = bytes(self.buf[:end])
        del self.buf[:end]
        line = _REQUEST_LINE.match(head)
        if line is None:
            self.state = "resync"
            return True
        method, target = line.group(1).decode(), line.group(2).decode("latin-1")
        headers = _headers(head[line.end() :])
        tx = Transaction("http", kind=ContentKind.HTTP, method=method, url=_url(target, headers, self.server))
        _basic_credentials(tx, headers)
        self.current, self.head, self.truncated = tx, head, False
        self.body.clear()
        if method == "CONNECT":
            self._finish()
            self.state = "tunnel"
            return True
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self.state, self.chunk_state = "chunked", "size"
            return True
        try:
            length = int(headers.get("content-length", "0").split(",")[0].strip() or 0)
        except ValueError:
            tx.missing(Reason.PARSE_ERROR, "headers", "unreadable Content-Length")
            length = 0
        if length > 0:
            self.state, self.remaining = "length", length
            return True
        self._finish()
        return True

    def _chunked(self) -> bool:
        while self.buf:
            if self.chunk_state == "size":
                nl = self.buf.find(b"\n")
                if nl < 0:
                    return self._bad_chunk() if len(self.buf) >= 1024 else False
                size_text = bytes(self.buf[:nl]).split(b";")[0].strip()
                del self.buf[: nl + 1]
                try:
                    size = int(size_text, 16)
                except ValueError:
                    return self._bad_chunk()
                if size == 0:
                    self.chunk_state = "trailer"
                else:
                    self.chunk_state, self.remaining = "data", size
            elif self.chunk_state == "data":
                take = min(self.remaining, len(self.buf))
                self._body(bytes(self.buf[:take]))
                del self.buf[:take]
                self.remaining -= take
                if self.remaining:
                    return False
                self.chunk_state = "crlf"
            elif self.chunk_state == "crlf":
                nl = self.buf.find(b"\n")
                if nl < 0:
                    return False
                del self.buf[: nl + 1]
                self.chunk_state = "size"
            else:  # trailers end with an empty line
                nl = self.buf.find(b"\n")
                if nl < 0:
                    return False
                line = bytes(self.buf[:nl]).strip()
                del self.buf[: nl + 1]
                if not line:
                    self._finish()
                    return True
        return False

    def _bad_chunk(self) -> bool:
        if self.current is not None:
            self.current.missing(Reason.PARSE_ERROR, "body", "malformed chunked encoding")
            self._finish()
        self.state = "resync"
        return True

    def _body(self, data: bytes | bytearray) -> None:
        room = self.max_bytes - len(self.head) - len(self.body)
        if len(data) > room:
            data = data[: max(room, 0)]
            if not self.truncated and self.current is not None:
                self.truncated = True
                self.current.missing(Reason.TRUNCATED, "body", "request body beyond the flow memory cap")
        self.body += data

    def _finish(self) -> None:
        tx = self.current
        if tx is None:
            return
        tx.raw = _rebuild(self.head, self.body)
        self.current = None
        self.body = bytearray()
        self.state = "head" if self.state != "tunnel" else "tunnel"
        self.emit(tx)


_ASCII_SPACE = " \t\n\r\x0b\x0c"  # what bytes.strip() and bytes.isspace() mean by whitespace


def _headers(block: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    # Decoded once (latin-1 maps bytes to code points one to one); stripped of ASCII whitespace only, as bytes.
    for line in block.decode("latin-1").split("\n"):
        name, sep, value = line.partition(":")
        if sep and name and name[0] not in _ASCII_SPACE:
            key = name.strip(_ASCII_SPACE).lower()
            text = value.strip(_ASCII_SPACE)
            out[key] = f"{out[key]}, {text}" if key in out else text
    return out


def _url(target: str, headers: dict[str, str], server: str) -> str:
    """The request's URL without query or fragment: those are content (inspected in the raw request),
    not metadata to print and store (as in the web channel)."""
    target = target.split("#", 1)[0].split("?", 1)[0]
    if "://" in target:
        return target
    host = headers.get("host", "").strip() or server
    if target.startswith("/"):
        return f"http://{host}{target}"
    return f"http://{target}" if target else f"http://{host}/"


def _rebuild(head: bytes, body: bytes | bytearray) -> bytes:
    """The request as the inspector should read it: a chunked body is de-chunked and the framing headers
    rewritten, so that extraction sees one plain body."""
    if b"chunked" not in head.lower():
        return head + body
    lines = [ln for ln in head.split(b"\r\n") if ln and not ln.lower().startswith((b"transfer-encoding:",
                                                                                      b"content-length:"))]
    return b"\r\n".join([*lines, b"Content-Length: %d" % len(body)]) + b"\r\n\r\n" + body


def _basic_credentials(tx: Transaction, headers: dict[str, str]) -> None:
    if "authorization" not in headers and "proxy-authorization" not in headers:
        return
    for name in ("authorization", "proxy-authorization"):
        scheme, _, token = headers.get(name, "").partition(" ")
        if scheme.lower() != "basic" or not token.strip():
            continue
        try:
            secret = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            secret = token.strip().encode()
        tx.credential_mechanism, tx.credential_secret = "HTTP Basic", secret
        return

