"""Rebuild the small captures in pcaps/ (documented in pcaps/README.md) with scapy; deterministic.

    .venv/bin/python pcaps/generate.py            # writes pcaps/*.pcap and *.pcapng
    .venv/bin/python pcaps/generate.py OUT_DIR

The tests import the helpers here (Conversation, the payload builders) to build their own cases.
"""

from __future__ import annotations

import io
import sys
import zipfile
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from scapy.layers.inet import IP, TCP, fragment
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import CookedLinux, Dot1Q, Ether
from scapy.packet import Packet, Raw
from scapy.utils import PcapNgWriter, wrpcap

BASE_TIME = 1767261600.0  # 2026-01-01 10:00:00 UTC
CLIENT_MAC, SERVER_MAC = "02:00:00:00:00:0a", "02:00:00:00:00:19"


def luhn_complete(prefix: str) -> str:
    """`prefix` plus the check digit that makes it pass the Luhn test."""
    total = 0
    for i, ch in enumerate(reversed(prefix)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return prefix + str((10 - total % 10) % 10)


CARDS = [luhn_complete(p) for p in (
    "453914880343646", "455673758689985", "402400715302681", "516865009812637", "552433171860532",
    "601100990139424", "471604452983612", "535412680092831", "492950046752918", "520082828210434",
)]
POST_CARD = luhn_complete("491761234567890")


class Conversation:
    """One TCP connection written packet by packet: handshake, data in chosen segments and order, close."""

    def __init__(self, client: tuple[str, int], server: tuple[str, int], *, isn_client: int = 1000,
                 isn_server: int = 50000, link: str = "ether", vlans: tuple[int, ...] = (),
                 start: float = BASE_TIME) -> None:
        self.client, self.server = client, server
        self.seq = {True: isn_client, False: isn_server}
        self.link, self.vlans = link, vlans
        self.time = start
        self.packets: list[Packet] = []
        self.ipv6 = ":" in client[0]

    # ---------------------------------------------------------------- building blocks

    def ip(self, from_client: bool, ttl: int = 64) -> Packet:
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        return IPv6(src=src[0], dst=dst[0], hlim=ttl) if self.ipv6 else IP(src=src[0], dst=dst[0], ttl=ttl, id=0)

    def frame(self, l3: Packet, from_client: bool) -> Packet:
        if self.link == "sll":
            pkt = CookedLinux(pkttype=4 if from_client else 0, lladdrtype=1, lladdrlen=6,
                              src=bytes.fromhex((CLIENT_MAC if from_client else SERVER_MAC).replace(":", "")) + b"\0\0")
            return pkt / l3
        if self.link == "raw":
            return l3
        src, dst = (CLIENT_MAC, SERVER_MAC) if from_client else (SERVER_MAC, CLIENT_MAC)
        pkt = Ether(src=src, dst=dst)
        for vid in self.vlans:
            pkt = pkt / Dot1Q(vlan=vid)
        return pkt / l3

    def segment(self, from_client: bool, flags: str, payload: bytes = b"", seq: int | None = None,
                ttl: int = 64, bad_checksum: bool = False) -> Packet:
        sport, dport = (self.client[1], self.server[1]) if from_client else (self.server[1], self.client[1])
        seq_no = self.seq[from_client] if seq is None else seq
        tcp = TCP(sport=sport, dport=dport, flags=flags, seq=seq_no % 2**32,
                  ack=self.seq[not from_client] % 2**32 if "A" in flags else 0, window=65535)
        if bad_checksum:
            tcp.chksum = 0xBAD
        l3 = self.ip(from_client, ttl) / tcp
        if payload:
            l3 = l3 / Raw(payload)
        return self.frame(l3, from_client)

    def emit(self, pkt: Packet) -> Packet:
        self.time += 0.001
        pkt.time = self.time
        self.packets.append(pkt)
        return pkt

    # ---------------------------------------------------------------- whole exchanges

    def handshake(self, syn_payload: bytes = b"") -> None:
        self.emit(self.segment(True, "S", syn_payload))
        self.seq[True] += 1 + len(syn_payload)
        self.emit(self.segment(False, "SA"))
        self.seq[False] += 1
        self.emit(self.segment(True, "A"))

    def send(self, from_client: bool, data: bytes, size: int = 1400, order: list[int] | None = None,
             skip: set[int] | None = None) -> list[Packet]:
        """Send `data` in `size`-byte segments, in `order` (indices) if given; `skip` loses some."""
        start = self.seq[from_client]
        pieces = [(start + i, data[i : i + size]) for i in range(0, len(data), size)]
        indices = order if order is not None else list(range(len(pieces)))
        out = []
        for i in indices:
            if skip and i in skip:
                continue
            seq, chunk = pieces[i]
            out.append(self.emit(self.segment(from_client, "PA", chunk, seq=seq)))
        self.seq[from_client] = start + len(data)
        self.emit(self.segment(not from_client, "A"))
        return out

    def close(self) -> None:
        self.emit(self.segment(True, "FA"))
        self.seq[True] += 1
        self.emit(self.segment(False, "FA"))
        self.seq[False] += 1
        self.emit(self.segment(True, "A"))


# -------------------------------------------------------------------- payloads

def card_spreadsheet() -> bytes:
    """An .xlsx of customers with card numbers, byte-for-byte reproducible."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "customers"
    ws.append(["name", "card", "expiry"])
    for i, card in enumerate(CARDS):
        ws.append([f"Customer {i + 1}", card, f"{(i % 12) + 1:02d}/29"])
    fixed = datetime(2026, 1, 1, 10, 0, 0)
    wb.properties.created = wb.properties.modified = fixed
    raw = io.BytesIO()
    wb.save(raw)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw.getvalue())) as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(zipfile.ZipInfo(info.filename, (2026, 1, 1, 10, 0, 0)), src.read(info.filename),
                         zipfile.ZIP_DEFLATED)
    return out.getvalue()


def email_with_spreadsheet() -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "agent7@callcenter.example"
    msg["To"] = "someone@freemail.example"
    msg["Subject"] = "customer list"
    msg["Date"] = "Thu, 01 Jan 2026 10:00:00 +0000"
    msg["Message-ID"] = "<demo-1@callcenter.example>"
    msg.set_content("Here is the list you asked for.\n.\nA line that starts with a dot, to test unstuffing.\n")
    msg.add_attachment(card_spreadsheet(), maintype="application",
                       subtype="vnd.openxmlformats-officedocument.spreadsheetml.sheet", filename="customers.xlsx")
    msg.set_boundary("==demo-boundary==")
    return msg.as_bytes()


def smtp_client_script(message: bytes, auth: bytes = b"") -> list[tuple[bool, bytes]]:
    stuffed = b"\r\n".join(b"." + ln if ln.startswith(b".") else ln for ln in message.split(b"\r\n"))
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    steps: list[tuple[bool, bytes]] = [
        (False, b"220 mx.freemail.example ESMTP\r\n"),
        (True, b"EHLO agent7.callcenter.example\r\n"),
        (False, b"250-mx.freemail.example\r\n250-AUTH PLAIN LOGIN\r\n250 PIPELINING\r\n"),
    ]
    if auth:
        steps += [(True, auth)]
    steps += [
        (True, b"MAIL FROM:<agent7@callcenter.example>\r\n"), (False, b"250 2.1.0 Ok\r\n"),
        (True, b"RCPT TO:<someone@freemail.example>\r\n"), (False, b"250 2.1.5 Ok\r\n"),
        (True, b"DATA\r\n"), (False, b"354 End data with <CR><LF>.<CR><LF>\r\n"),
        (True, stuffed + b".\r\n"), (False, b"250 2.0.0 Ok: queued as 4B2F1\r\n"),
        (True, b"QUIT\r\n"), (False, b"221 2.0.0 Bye\r\n"),
    ]
    return steps


def http_post(host: str = "paste.example", path: str = "/api/notes") -> bytes:
    body = (b'{"note": "refund for caller", "card": "' + " ".join(
        POST_CARD[i : i + 4] for i in range(0, 16, 4)).encode() + b'", "expiry": "04/28"}')
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/8.5.0\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def tls_client_hello() -> bytes:
    # A TLS 1.2 record header (0x16 0x03 0x01) around a minimal ClientHello; content does not matter here.
    hello = bytes.fromhex("0303") + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00" + b"\x00\x00"
    handshake = b"\x01" + len(hello).to_bytes(3, "big") + hello
    return b"\x16\x03\x01" + len(handshake).to_bytes(2, "big") + handshake


def run_script(conv: Conversation, steps: list[tuple[bool, bytes]], size: int = 1400) -> None:
    for from_client, data in steps:
        conv.send(from_client, data, size=size)


# -------------------------------------------------------------------- captures

def demo(start: float = BASE_TIME) -> list[Packet]:
    """SMTP with a spreadsheet of cards; an HTTP POST in 1-byte segments out of order; a TLS session."""
    smtp = Conversation(("10.1.0.10", 40001), ("203.0.113.25", 25), start=start)
    smtp.handshake()
    run_script(smtp, smtp_client_script(email_with_spreadsheet()))
    smtp.close()

    http = Conversation(("10.1.0.11", 40002), ("198.51.100.80", 80), isn_client=7000, start=start + 1)
    http.handshake()
    request = http_post()
    order = list(range(len(request)))
    order = order[1::2] + order[0::2]  # every odd byte first, then the even ones
    http.send(True, request, size=1, order=order)
    http.send(False, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    http.close()

    tls = Conversation(("10.1.0.12", 40003), ("198.51.100.44", 443), start=start + 2)
    tls.handshake()
    tls.send(True, tls_client_hello())
    tls.send(False, b"\x16\x03\x03\x00\x04\x0e\x00\x00\x00")
    tls.send(True, b"\x17\x03\x03\x00\x10" + bytes(range(16)))
    tls.close()
    return sorted(smtp.packets + http.packets + tls.packets, key=lambda p: float(p.time))


def single_post(**conv_args: object) -> list[Packet]:
    conv = Conversation(("10.1.0.20", 41000), ("198.51.100.80", 80), **conv_args)  # type: ignore[arg-type]
    conv.handshake()
    conv.send(True, http_post(), size=60)
    conv.send(False, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    conv.close()
    return conv.packets


def overlap() -> list[Packet]:
    """The first copy of a segment is harmless; a second copy of the same bytes carries the card."""
    conv = Conversation(("10.1.0.21", 41001), ("198.51.100.80", 80))
    conv.handshake()
    request = http_post()
    start = conv.seq[True]
    at = request.index(POST_CARD[:4].encode())
    decoy = request[:at] + b"0000 0000 0000 0000" + request[at + 19 :]
    conv.emit(conv.segment(True, "PA", decoy, seq=start))
    conv.emit(conv.segment(True, "PA", request, seq=start))
    conv.seq[True] = start + len(request)
    conv.close()
    return conv.packets


def gap() -> list[Packet]:
    conv = Conversation(("10.1.0.22", 41002), ("198.51.100.80", 80))
    conv.handshake()
    conv.send(True, http_post(), size=40, skip={2})
    conv.close()
    return conv.packets


def retransmissions() -> list[Packet]:
    conv = Conversation(("10.1.0.23", 41003), ("198.51.100.80", 80))
    conv.handshake()
    sent = conv.send(True, http_post(), size=50)
    for pkt in sent:  # every segment again, identical
        conv.emit(pkt.copy())
    conv.close()
    return conv.packets


def fragments() -> list[Packet]:
    """The POST's data segment split into 3 IPv4 fragments (sent last-first), then a datagram whose
    fragments overlap with different bytes (dropped)."""
    conv = Conversation(("10.1.0.24", 41004), ("198.51.100.80", 80))
    conv.handshake()
    request = http_post()
    ip_pkt = conv.ip(True) / TCP(sport=41004, dport=80, flags="PA", seq=conv.seq[True], ack=conv.seq[False]) \
        / Raw(request)
    ip_pkt[IP].id = 4242
    frags = fragment(IP(bytes(ip_pkt)), fragsize=64)
    for frag in reversed(frags):
        conv.emit(conv.frame(frag, True))
    conv.seq[True] += len(request)
    evil = conv.ip(True) / TCP(sport=41004, dport=80, flags="PA", seq=conv.seq[True], ack=conv.seq[False]) \
        / Raw(b"X" * 64)
    evil[IP].id = 4343
    pieces = fragment(IP(bytes(evil)), fragsize=48)
    second = pieces[1].copy()
    second[IP].frag -= 1  # overlaps the first by 8 bytes
    for frag in (pieces[0], second, *pieces[2:]):
        conv.emit(conv.frame(frag, True))
    conv.close()
    return conv.packets


def wraparound() -> list[Packet]:
    conv = Conversation(("10.1.0.25", 41005), ("198.51.100.80", 80), isn_client=2**32 - 40)
    conv.handshake()
    conv.send(True, http_post(), size=30, order=None)
    conv.close()
    return conv.packets


def insertion() -> list[Packet]:
    """Decoy segments the receiver never accepts (bad checksum, TTL too low to arrive) sent first."""
    conv = Conversation(("10.1.0.26", 41006), ("198.51.100.80", 80))
    conv.handshake()
    request = http_post()
    start = conv.seq[True]
    conv.emit(conv.segment(True, "PA", request, seq=start))  # sets the flow's TTL and checksum mode
    conv.seq[True] = start + len(request)
    second = http_post(path="/api/second")
    s2 = conv.seq[True]
    decoy = second.replace(POST_CARD.encode()[:4], b"0000")
    conv.emit(conv.segment(True, "PA", decoy, seq=s2, bad_checksum=True))
    conv.emit(conv.segment(True, "PA", decoy, seq=s2, ttl=3))
    conv.emit(conv.segment(True, "PA", second, seq=s2))
    conv.seq[True] = s2 + len(second)
    conv.close()
    return conv.packets


def smtp_auth() -> list[Packet]:
    """AUTH LOGIN and AUTH PLAIN in clear, then a session that upgrades with STARTTLS."""
    login = Conversation(("10.1.0.30", 42001), ("203.0.113.25", 587))
    login.handshake()
    run_script(login, [
        (False, b"220 mx ESMTP\r\n"), (True, b"EHLO a\r\n"), (False, b"250 AUTH LOGIN PLAIN\r\n"),
        (True, b"AUTH LOGIN\r\n"), (False, b"334 VXNlcm5hbWU6\r\n"), (True, b"YWdlbnQ3\r\n"),
        (False, b"334 UGFzc3dvcmQ6\r\n"), (True, b"UzNjcjN0LXBhc3M=\r\n"), (False, b"235 ok\r\n"),
        (True, b"QUIT\r\n"), (False, b"221 bye\r\n"),
    ])
    login.close()
    plain = Conversation(("10.1.0.31", 42002), ("203.0.113.25", 587), start=BASE_TIME + 1)
    plain.handshake()
    run_script(plain, [
        (False, b"220 mx ESMTP\r\n"), (True, b"EHLO b\r\n"), (False, b"250 AUTH PLAIN\r\n"),
        (True, b"AUTH PLAIN AGFnZW50OABTM2NyM3QtcGFzcw==\r\n"), (False, b"235 ok\r\n"),
        (True, b"QUIT\r\n"), (False, b"221 bye\r\n"),
    ])
    plain.close()
    tls = Conversation(("10.1.0.32", 42003), ("203.0.113.25", 25), start=BASE_TIME + 2)
    tls.handshake()
    run_script(tls, [
        (False, b"220 mx ESMTP\r\n"), (True, b"EHLO c\r\n"), (False, b"250 STARTTLS\r\n"),
        (True, b"STARTTLS\r\n"), (False, b"220 go ahead\r\n"), (True, tls_client_hello()),
    ])
    tls.close()
    return login.packets + plain.packets + tls.packets


def _ipv6_post() -> list[Packet]:
    conv = Conversation(("2001:db8::10", 41010), ("2001:db8::80", 80))
    conv.handshake()
    conv.send(True, http_post(), size=60)
    conv.close()
    return conv.packets


CAPTURES = {
    "demo.pcap": demo,
    "overlap.pcap": overlap,
    "gap.pcap": gap,
    "retransmissions.pcap": retransmissions,
    "vlan.pcap": lambda: single_post(vlans=(100, 200)),
    "ipv6.pcapng": lambda: _ipv6_post(),
    "sll.pcap": lambda: single_post(link="sll"),
    "fragments.pcap": fragments,
    "wraparound.pcap": wraparound,
    "insertion.pcap": insertion,
    "smtp-auth.pcap": smtp_auth,
}


def write(name: str, packets: list[Packet], out: Path) -> Path:
    path = out / name
    if name.endswith(".pcapng"):
        with PcapNgWriter(str(path)) as writer:
            for pkt in packets:
                writer.write(pkt)
    else:
        linktype = 113 if packets and packets[0].haslayer(CookedLinux) else None
        wrpcap(str(path), packets, linktype=linktype)
    return path


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent
    out.mkdir(parents=True, exist_ok=True)
    for name, build in CAPTURES.items():
        path = write(name, build(), out)
        print(f"{path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
