"""`dlp bench smtp`: the relay's throughput and added latency next to a plain aiosmtpd sink, same run.

The systems under test run as their own processes, as in production, so that the load generator's
threads do not share an interpreter (and a GIL) with them: a plain aiosmtpd sink (the anchor), and
`dlp serve` with only the relay on (real inspection workers, store, notifications) in front of another
such sink. 16 clients (persistent sessions, smtplib threads in this process) send 10 KB messages; every
50th carries a card number and must be held. After a warm-up per side (not timed), the sides alternate
for --smtp-rounds rounds with the same message mix; each side's figures are the median over its rounds.
Accounting is exact: every 250 the relay sent (warm-up included) is matched by exactly one sink
receipt or one quarantine item (by a per-message token), and nothing else arrived (the relay's own
sender notifications, with a null sender, are counted apart). The ratio is the relay's messages/s over
the anchor's; "added p99" is the relay's p99 minus the anchor's.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP

_TOKEN = re.compile(rb"X-Bench-Id: (\d+)")


def add_arguments(parser: argparse._ArgumentGroup) -> None:
    parser.add_argument("--smtp-messages", type=int, default=800, help="messages per side per round (default 800)")
    parser.add_argument("--smtp-rounds", type=int, default=3, help="alternating timed rounds (default 3)")
    parser.add_argument("--smtp-clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--smtp-kb", type=int, default=10, help="message size in KB (default 10)")
    parser.add_argument("--smtp-card-every", type=int, default=50,
                        help="every Nth message carries a card number and must be held (default 50; 0 = none)")
    parser.add_argument("--smtp-workers", type=int, default=0, help="dlp inspection processes (0 = one per core)")


class _CountingSink:
    """A plain aiosmtpd server that counts the tokens it received (run in its own process: _sink_main).

    It announces PIPELINING, as Postfix (the usual next hop) does: aiosmtpd reads commands from a
    buffered stream and answers them in order, which is all RFC 2920 asks of a server. The anchor's
    smtplib clients never pipeline, so only the relay's next-hop client makes use of it."""

    def __init__(self) -> None:
        self.tokens: Counter[int] = Counter()
        self.notifications = 0  # null-sender mail: the relay's notices to senders, not relayed mail

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        return [responses[0], "250-PIPELINING", *responses[1:]]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if envelope.mail_from == "<>":
            self.notifications += 1
        else:
            found = _TOKEN.search(envelope.original_content or b"")
            self.tokens[int(found.group(1)) if found else -1] += 1
        return "250 2.0.0 Ok"


def _sink_main(conn: Connection) -> None:
    """Child process: serve until the parent says stop, then send back what arrived."""
    sink = _CountingSink()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(sink, hostname="sink.bench", loop=loop), "127.0.0.1", 0)
        conn.send(server.sockets[0].getsockname()[1])
        await loop.run_in_executor(None, conn.recv)
        server.close()

    asyncio.run(main())
    conn.send((dict(sink.tokens), sink.notifications))


class _SinkProcess:
    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_sink_main, args=(child,), daemon=True)
        self._proc.start()
        if not self._conn.poll(60):
            raise RuntimeError("the bench sink did not start")
        self.port: int = self._conn.recv()
        self.pid = self._proc.pid or 0

    def finish(self) -> tuple[Counter[int], int]:
        """Stop it; the tokens it received and how many notifications."""
        self._conn.send("stop")
        tokens, notifications = self._conn.recv() if self._conn.poll(30) else ({}, 0)
        self._proc.join(10)
        return Counter(tokens), notifications

    def kill(self) -> None:
        if self._proc.is_alive():
            self._proc.kill()


class _Relay:
    """`dlp serve` with only the SMTP relay on, in front of `next_hop`."""

    def __init__(self, data_dir: Path, next_hop: int, workers: int) -> None:
        argv = [sys.executable, "-m", "dlp", "serve", "--data-dir", str(data_dir),
                "--smtp-listen", "127.0.0.1:0", "--next-hop", f"127.0.0.1:{next_hop}", "--workers", str(workers),
                "--proxy-listen", "off", "--console-listen", "off", "--metrics-listen", "off"]
        env = {**os.environ, "DLP_SMTP_MIN_FREE_BYTES": "0"}
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        self.port = 0
        ready = threading.Event()
        banner = re.compile(r"^\s+smtp\s+127\.0\.0\.1:(\d+)")

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                if len(self.lines) < 200:  # start-up and errors; per-message log lines are not kept
                    self.lines.append(line)
                m = banner.match(line)
                if m and not self.port:
                    self.port = int(m.group(1))
                if line.strip() == "dlp ready":
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(180) or not self.port:
            self.stop()
            raise RuntimeError("dlp serve did not start:\n" + "".join(self.lines)[-2000:])

    def stop(self) -> None:
        """SIGTERM: the relay drains (every transaction in flight finishes) before it exits."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _cpu_seconds(root: int, descendants: bool = True) -> float:
    """CPU seconds (user + system) of a process (and its descendants) so far (Linux /proc; else 0)."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(entry.parent.name)
        parents[pid] = int(fields[1])
        used[pid] = (int(fields[11]) + int(fields[12])) / ticks
    total, frontier = 0.0, [root]
    while frontier:
        pid = frontier.pop()
        total += used.get(pid, 0.0)
        if not descendants:
            break
        frontier.extend(child for child, parent in parents.items() if parent == pid)
    return total


def _message(token: int, size: int, card: bool) -> bytes:
    head = (f"From: agent{token % 97}@callcenter.test\r\nTo: client@example.org\r\nSubject: ticket {token}\r\n"
            f"X-Bench-Id: {token}\r\n\r\n").encode()
    line = b"Thank you for calling, your ticket has been updated and closed by our team.\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    if card:
        body = b"Card on file: 4111 1111 1111 1111 exp 12/29\r\n" + body
    return head + body


def _drive(port: int, first: int, messages: int, clients: int, size: int, card_every: int) -> dict[str, Any]:
    """Send tokens first .. first+messages-1 over `clients` persistent sessions; the i-th message of every
    batch carries a card when i % card_every == 0, so both sides get the same mix."""
    latencies: list[float] = []
    codes: dict[int, int] = {}
    lock = threading.Lock()

    def client(index: int) -> None:
        session: smtplib.SMTP | None = None
        for i in range(index, messages, clients):
            token = first + i
            data = _message(token, size, bool(card_every) and i % card_every == 0)
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


def _held_tokens(data_dir: Path) -> list[int]:
    from dlp.config import load_settings
    from dlp.store import IncidentQuery, open_store

    store = open_store(load_settings(None, {"data_dir": str(data_dir)}, environ={}))
    try:
        return [int(m.group(1)) for detail in store.list_incidents(IncidentQuery(limit=1_000_000))
                if (m := _TOKEN.search(store.read_original(detail.id, "bench", "accounting")))]
    finally:
        store.close()


def _accounting(codes: dict[int, int], forwarded: Counter[int], held: list[int]) -> dict[str, Any]:
    accepted = {t for t, code in codes.items() if code == 250}
    delivered = forwarded + Counter(held)
    return {
        "accepted_250": len(accepted),
        "sink_receipts": sum(forwarded.values()),
        "quarantine_items": len(held),
        "other_replies": dict(Counter(str(c) for c in codes.values() if c != 250)),
        "accepted_without_receipt": sorted(t for t in accepted if delivered[t] == 0)[:20],
        "duplicates": sorted(t for t, n in delivered.items() if n > 1)[:20],
        "receipts_without_250": sorted(t for t in delivered if t not in accepted)[:20],
    }


def _summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "msgs_per_s": round(statistics.median(r["msgs_per_s"] for r in rounds), 1),
        "p50_ms": round(statistics.median(r["p50_ms"] for r in rounds), 2),
        "p99_ms": round(statistics.median(r["p99_ms"] for r in rounds), 2),
        "cpu_ms_per_msg": {name: round(statistics.median(r["cpu_ms_per_msg"][name] for r in rounds), 3)
                           for name in rounds[0]["cpu_ms_per_msg"]},
        "rounds": [{k: v for k, v in r.items() if k != "codes"} for r in rounds],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    size = args.smtp_kb * 1024
    messages, clients, card_every = args.smtp_messages, args.smtp_clients, args.smtp_card_every
    rounds = max(1, getattr(args, "smtp_rounds", 3))
    warm_up = max(clients * 4, messages // 4)
    load_before = os.getloadavg()[0]
    anchor_sink, relay_sink = _SinkProcess(), _SinkProcess()
    results: dict[str, list[dict[str, Any]]] = {"anchor": [], "relay": []}
    relay_codes: dict[int, int] = {}
    next_token = 0
    with tempfile.TemporaryDirectory(prefix="dlp-bench-smtp-") as tmp:
        data_dir = Path(tmp) / "data"
        relay: _Relay | None = None
        try:
            relay = _Relay(data_dir, relay_sink.port, getattr(args, "smtp_workers", 0))
            ports = {"anchor": anchor_sink.port, "relay": relay.port}
            for side in ("anchor", "relay"):  # warm-up: sessions, connections, workers, caches
                done = _drive(ports[side], next_token, warm_up, clients, size, card_every)
                next_token += warm_up
                if side == "relay":
                    relay_codes.update(done["codes"])
            # CPU per process role: the relay process itself, its inspection workers (its descendants), sinks.
            roles: dict[str, dict[str, tuple[int, bool]]] = {
                "anchor": {"sink": (anchor_sink.pid, True)},
                "relay": {"relay": (relay.proc.pid, False), "inspection": (relay.proc.pid, True),
                          "sink": (relay_sink.pid, True)},
            }
            for _ in range(rounds):
                for side in ("anchor", "relay"):
                    before = {name: _cpu_seconds(*where) for name, where in roles[side].items()}
                    started_cpu = time.process_time()
                    done = _drive(ports[side], next_token, messages, clients, size, card_every)
                    cpu = {name: _cpu_seconds(*where) - before[name] for name, where in roles[side].items()}
                    cpu["clients"] = time.process_time() - started_cpu
                    if "inspection" in cpu:
                        cpu["inspection"] -= cpu["relay"]  # the tree minus the relay process itself
                    done["cpu_ms_per_msg"] = {name: round(1000 * sec / messages, 3) for name, sec in cpu.items()}
                    next_token += messages
                    results[side].append(done)
                    if side == "relay":
                        relay_codes.update(done["codes"])
        finally:
            if relay is not None:
                relay.stop()
            anchor_sink.finish()
            forwarded, notifications = relay_sink.finish()
            anchor_sink.kill()
            relay_sink.kill()
        held = _held_tokens(data_dir)
    accounting = _accounting(relay_codes, forwarded, held)
    accounting["sender_notifications"] = notifications
    exact = not (accounting["accepted_without_receipt"] or accounting["duplicates"]
                 or accounting["receipts_without_250"])
    anchor, relayed = _summary(results["anchor"]), _summary(results["relay"])
    ratio = relayed["msgs_per_s"] / anchor["msgs_per_s"] if anchor["msgs_per_s"] else 0.0
    return {
        "benchmark": "smtp",
        "clients": clients,
        "message_kb": args.smtp_kb,
        "messages_per_round": messages,
        "rounds": rounds,
        "warm_up_messages": warm_up,
        "anchor_plain_aiosmtpd": anchor,
        "dlp_relay": relayed,
        "ratio": round(ratio, 3),
        "added_p99_ms": round(relayed["p99_ms"] - anchor["p99_ms"], 2),
        "accounting": accounting,
        "accounting_exact": exact,
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "targets": {"ratio": ">= 0.5", "added_p99_ms": "< 20"},
    }


def format_text(result: dict[str, Any]) -> str:
    a, r, acc = result["anchor_plain_aiosmtpd"], result["dlp_relay"], result["accounting"]
    return "\n".join([
        f"smtp: {result['clients']} clients, {result['message_kb']} KB messages, "
        f"{result['messages_per_round']} x {result['rounds']} alternating rounds per side "
        f"(+{result['warm_up_messages']} warm-up); load average {result['load_average'][0]} -> "
        f"{result['load_average'][1]}",
        f"  plain aiosmtpd sink  {a['msgs_per_s']:>8} msg/s  p50 {a['p50_ms']} ms  p99 {a['p99_ms']} ms",
        f"  dlp relay -> sink    {r['msgs_per_s']:>8} msg/s  p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms",
        f"  CPU ms per message: plain side {a['cpu_ms_per_msg']}",
        f"                      relay side {r['cpu_ms_per_msg']}",
        f"  rounds msg/s: plain {[x['msgs_per_s'] for x in a['rounds']]}, "
        f"relay {[x['msgs_per_s'] for x in r['rounds']]}",
        f"  ratio {result['ratio']} (target >= 0.5); added p99 {result['added_p99_ms']} ms (target < 20)",
        f"  accounting: {acc['accepted_250']} x 250 = {acc['sink_receipts']} sink receipts + "
        f"{acc['quarantine_items']} quarantine items; other replies {acc['other_replies']}; "
        f"{acc['sender_notifications']} sender notifications; exact: {result['accounting_exact']}",
    ])
