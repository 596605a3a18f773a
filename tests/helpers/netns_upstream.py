"""A recording upstream meant to run as its own process inside a network namespace (`ip netns exec srv
python netns_upstream.py ...`): HTTP on one port, optionally HTTPS on another, UDP echo on a few ports,
each over IPv4 and IPv6 when bound to "[::]".
Every HTTP request is appended as one JSON line to the --record file (method, path, headers, body as
latin-1 text) before the reply is sent, so a test can assert what arrived and, as important, what never did.
Prints "ready" once every socket is bound.

    python netns_upstream.py --record requests.jsonl --http [::]:80 --https [::]:443 \
        --cert server.pem --key server.key --udp-echo 443 --udp-echo 4443
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_write_lock = threading.Lock()


def handler_for(record: Path) -> type[BaseHTTPRequestHandler]:
    class Recording(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            entry = {"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                     "body": body.decode("latin-1"), "peer": self.client_address[0].removeprefix("::ffff:"),
                     "tls": isinstance(self.connection, ssl.SSLSocket)}
            with _write_lock, record.open("a", encoding="utf-8") as out:
                out.write(json.dumps(entry) + "\n")
            reply = b"upstream ok"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        do_GET = do_POST = do_PUT = _answer  # http.server dispatches on these names

        def log_message(self, format: str, *args: object) -> None:  # quiet: the record file is the log
            pass

    return Recording


def split_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


class DualStackServer(ThreadingHTTPServer):
    """Listens on IPv6 and IPv4 alike (host "::"); IPv4 peers are recorded in their own notation."""

    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def udp_echo(port: int) -> None:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", port))

    def loop() -> None:
        while True:
            data, peer = sock.recvfrom(2048)
            sock.sendto(b"echo:" + data, peer)

    threading.Thread(target=loop, daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--http", required=True, metavar="HOST:PORT")
    parser.add_argument("--https", metavar="HOST:PORT")
    parser.add_argument("--cert", type=Path)
    parser.add_argument("--key", type=Path)
    parser.add_argument("--udp-echo", type=int, action="append", default=[])
    args = parser.parse_args()
    handler = handler_for(args.record)
    servers = [DualStackServer(split_address(args.http), handler)]
    if args.https:
        tls = DualStackServer(split_address(args.https), handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        tls.socket = context.wrap_socket(tls.socket, server_side=True)
        servers.append(tls)
    for port in args.udp_echo:
        udp_echo(port)
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
