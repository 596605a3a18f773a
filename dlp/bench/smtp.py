"""`dlp bench smtp`: the relay's throughput and added latency next to a plain aiosmtpd sink, same run.

16 clients (persistent sessions, smtplib) send 10 KB messages first straight to a plain aiosmtpd sink
(the anchor), then through the dlp relay (real inspection pool and store) to another such sink. A few
messages carry a card number and must be held, not forwarded. Accounting is exact: every 250 the relay
sent is matched by exactly one sink receipt or one quarantine item (by a per-message token), and
nothing else arrived. The ratio is the relay's messages/s over the anchor's.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import smtplib
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP

_TOKEN = re.compile(rb"X-Bench-Id: (\d+)")


def add_arguments(parser: argparse._ArgumentGroup) -> None:
    parser.add_argument("--smtp-messages", type=int, default=800, help="messages per side (default 800)")
    parser.add_argument("--smtp-clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--smtp-kb", type=int, default=10, help="message size in KB (default 10)")
    parser.add_argument("--smtp-card-every", type=int, default=50,
                        help="every Nth message carries a card number and must be held (default 50; 0 = none)")


class _CountingSink:
    """A plain aiosmtpd server in its own thread that counts the tokens it received."""

    def __init__(self) -> None:
        self.tokens: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        found = _TOKEN.search(envelope.original_content or b"")
        with self._lock:
            self.tokens[int(found.group(1)) if found else -1] += 1
        return "250 2.0.0 Ok"

    def start(self) -> _CountingSink:
        self._thread.start()

        async def serve() -> asyncio.Server:
            return await self._loop.create_server(lambda: SMTP(self, hostname="sink.bench", loop=self._loop),
                                                  "127.0.0.1", 0)

        self._server = asyncio.run_coroutine_threadsafe(serve(), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def _message(token: int, size: int, card: bool) -> bytes:
    head = (f"From: agent{token % 97}@callcenter.test\r\nTo: client@example.org\r\nSubject: ticket {token}\r\n"
            f"X-Bench-Id: {token}\r\n\r\n").encode()
    line = b"Thank you for calling, your ticket has been updated and closed by our team.\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    if card:
        body = b"Card on file: 4111 1111 1111 1111 exp 12/29\r\n" + body
    return head + body


def _drive(port: int, messages: int, clients: int, size: int, card_every: int) -> dict[str, Any]:
    """Send `messages` over `clients` persistent sessions; returns the replies and per-message latencies."""
    latencies: list[float] = []
    codes: dict[int, int] = {}
    lock = threading.Lock()

    def client(index: int) -> None:
        session: smtplib.SMTP | None = None
        for token in range(index, messages, clients):
            data = _message(token, size, bool(card_every) and token % card_every == 0)
            started = time.perf_counter()
            try:
                if session is None:
                    session = smtplib.SMTP("127.0.0.1", port, timeout=120)
                    session.ehlo("bench.test")
                session.mail("agent@callcenter.test")
                session.rcpt("client@example.org")
                code, _ = session.data(data)
            except (smtplib.SMTPException, OSError):
                code, session = 0, None
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                codes[token] = code
        if session is not None:
            session.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "messages": messages,
        "seconds": round(wall, 3),
        "msgs_per_s": round(messages / wall, 1) if wall else 0.0,
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
        "codes": codes,
    }


def _relay_side(args: argparse.Namespace, size: int) -> tuple[dict[str, Any], Counter[int], list[int]]:
    from dlp.channels.smtp import start_service
    from dlp.config import load_settings
    from dlp.inspect import InspectionPool
    from dlp.pipeline import Pipeline
    from dlp.serve import Runtime
    from dlp.store import IncidentQuery, open_store

    sink = _CountingSink().start()
    with tempfile.TemporaryDirectory(prefix="dlp-bench-smtp-") as tmp:
        settings = load_settings(None, {"data_dir": str(Path(tmp) / "data"),
                                        "smtp.next_hop": f"127.0.0.1:{sink.port}", "smtp.min_free_bytes": 0})
        store = open_store(settings)
        pool = InspectionPool(settings)
        pool.start()
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        runtime = Runtime(settings, Pipeline(pool, store, None), store, None)
        service = asyncio.run_coroutine_threadsafe(start_service(runtime, "127.0.0.1", 0), loop).result(60)
        try:
            result = _drive(service.address[1], args.smtp_messages, args.smtp_clients, size, args.smtp_card_every)
        finally:
            asyncio.run_coroutine_threadsafe(service.stop(30), loop).result(90)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            pool.close()
            sink.stop()
        held = [int(m.group(1)) for detail in store.list_incidents(IncidentQuery(limit=1_000_000))
                if (m := _TOKEN.search(store.read_original(detail.id, "bench", "accounting")))]
        store.close()
    return result, sink.tokens, held


def run(args: argparse.Namespace) -> dict[str, Any]:
    size = args.smtp_kb * 1024
    anchor_sink = _CountingSink().start()
    try:
        anchor = _drive(anchor_sink.port, args.smtp_messages, args.smtp_clients, size, args.smtp_card_every)
    finally:
        anchor_sink.stop()
    relay, forwarded, held = _relay_side(args, size)

    accepted = {t for t, code in relay["codes"].items() if code == 250}
    delivered = Counter(forwarded) + Counter(held)
    accounting = {
        "accepted_250": len(accepted),
        "sink_receipts": sum(forwarded.values()),
        "quarantine_items": len(held),
        "other_replies": dict(Counter(str(c) for c in relay["codes"].values() if c != 250)),
        "accepted_without_receipt": sorted(t for t in accepted if delivered[t] == 0)[:20],
        "duplicates": sorted(t for t, n in delivered.items() if n > 1)[:20],
        "receipts_without_250": sorted(t for t in delivered if t not in accepted)[:20],
    }
    exact = not (accounting["accepted_without_receipt"] or accounting["duplicates"]
                 or accounting["receipts_without_250"])
    for side in (anchor, relay):
        side.pop("codes")
    ratio = relay["msgs_per_s"] / anchor["msgs_per_s"] if anchor["msgs_per_s"] else 0.0
    return {
        "benchmark": "smtp",
        "clients": args.smtp_clients,
        "message_kb": args.smtp_kb,
        "anchor_plain_aiosmtpd": anchor,
        "dlp_relay": relay,
        "ratio": round(ratio, 3),
        "added_p99_ms": round(relay["p99_ms"] - anchor["p99_ms"], 2),
        "accounting": accounting,
        "accounting_exact": exact,
    }


def format_text(result: dict[str, Any]) -> str:
    a, r, acc = result["anchor_plain_aiosmtpd"], result["dlp_relay"], result["accounting"]
    return "\n".join([
        f"smtp: {result['clients']} clients, {result['message_kb']} KB messages",
        f"  plain aiosmtpd sink  {a['msgs_per_s']:>8} msg/s  p50 {a['p50_ms']} ms  p99 {a['p99_ms']} ms",
        f"  dlp relay -> sink    {r['msgs_per_s']:>8} msg/s  p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms",
        f"  ratio {result['ratio']}; added p99 {result['added_p99_ms']} ms",
        f"  accounting: {acc['accepted_250']} x 250 = {acc['sink_receipts']} sink receipts + "
        f"{acc['quarantine_items']} quarantine items; other replies {acc['other_replies']}; "
        f"exact: {result['accounting_exact']}",
    ])
