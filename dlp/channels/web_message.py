"""Turn mitmproxy flows into channel-neutral Messages: an HTTP request as the raw bytes of one HTTP/1.1
request (request line, every header, the body exactly as the client encoded it), a websocket frame as a
file-like payload."""

from __future__ import annotations

from mitmproxy import http

from dlp.model import Channel, ContentKind, Envelope, Message

# Hop-by-hop framing mitmproxy has already undone: the body we hand on is de-chunked, so these would lie.
_FRAMING_HEADERS = frozenset({b"transfer-encoding", b"content-length"})


def destination(flow: http.HTTPFlow) -> str:
    """The URL without its query string or fragment: the query is content (inspected as part of the raw
    request) and must not travel into alerts and incident listings as metadata. Its host is where the
    data really goes (see destination_host), which the policy's allow-lists are checked against."""
    request = flow.request
    default_port = {"http": 80, "https": 443}.get(request.scheme)
    host = destination_host(flow)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    authority = host if request.port == default_port else f"{host}:{request.port}"
    path = request.path.split("?", 1)[0].split("#", 1)[0]
    return f"{request.scheme}://{authority}{path or '/'}"


def destination_host(flow: http.HTTPFlow) -> str:
    """The server the request goes to: for HTTPS, the name the upstream certificate is verified for
    (mitmproxy sends the client's SNI upstream and requires a certificate valid for it); otherwise the
    host mitmproxy connects to (the URL's or the CONNECT's host as an explicit proxy, the kernel's
    original destination address in transparent mode). Never the Host header on its own: a client can
    write an allow-listed name there and send the data somewhere else."""
    if flow.request.scheme == "https":
        return flow.server_conn.sni or flow.client_conn.sni or flow.request.host
    return flow.request.host


def proxy_user(flow: http.HTTPFlow) -> str:
    """The user name the client authenticated to the proxy with (mitmproxy's proxyauth), if any."""
    auth = flow.metadata.get("proxyauth")
    if isinstance(auth, tuple | list) and auth:
        return str(auth[0])
    return ""


def client_address(flow: http.HTTPFlow) -> str:
    peer = flow.client_conn.peername
    return str(peer[0]) if peer else ""


def envelope(flow: http.HTTPFlow) -> Envelope:
    return Envelope(
        client_address=client_address(flow),
        user=proxy_user(flow),
        destination=destination(flow),
        method=flow.request.method,
    )


def raw_request(request: http.Request) -> bytes:
    """The request as HTTP/1.1 bytes for the extractor, whatever version the client spoke (HTTP/2 and
    HTTP/3 included). The body is `raw_content`: still content-encoded (gzip, br, stacked lists...),
    because mitmproxy's own decoder keeps only the first gzip member and silently returns the raw bytes
    on a stacked or unknown encoding; the extractor decodes with caps instead."""
    body = request.raw_content or b""
    target = request.path or "/"
    if request.method.upper() == "CONNECT":
        target = request.authority or f"{request.host}:{request.port}"
    lines = [f"{request.method} {target} HTTP/1.1".encode("latin-1", "replace")]
    has_host = False
    for name, value in request.headers.fields:
        lowered = name.lower()
        if lowered in _FRAMING_HEADERS:
            continue
        if lowered == b"host":
            has_host = True
        lines.append(name + b": " + value)
    if not has_host:
        authority = request.authority or request.pretty_host
        lines.insert(1, b"Host: " + authority.encode("ascii", "backslashreplace"))
    if body or request.method.upper() not in {"GET", "HEAD", "OPTIONS", "DELETE", "CONNECT"}:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    for name, value in (request.trailers.fields if request.trailers else ()):
        # Trailers are content too (they can carry anything); they travel as ordinary headers here.
        lines.append(name + b": " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def request_message(flow: http.HTTPFlow) -> Message:
    return Message(channel=Channel.WEB, raw=raw_request(flow.request), kind=ContentKind.HTTP,
                   envelope=envelope(flow))


def websocket_message(flow: http.HTTPFlow, content: bytes, is_text: bool) -> Message:
    """One client-to-server websocket message, already reassembled from its frames and inflated
    (permessage-deflate) by mitmproxy."""
    name = "websocket.txt" if is_text else "websocket.bin"
    return Message(channel=Channel.WEB, raw=content, kind=ContentKind.FILE if is_text else ContentKind.AUTO,
                   envelope=envelope(flow), name=name)
