"""`dlp bench web`: requests/s and added latency of the DLP proxy next to mitmdump running a no-op addon.

Both proxies run as their own processes (`dlp serve` with only the proxy on, and `mitmdump -s noop.py`)
in front of the same local HTTP server (another process); 16 concurrent keep-alive clients post clean
10 KB bodies through each, in alternating rounds. The ratio is dlp's requests/s over the no-op proxy's;
"added p99" is dlp's p99 latency minus the no-op proxy's. Targets: ratio >= 0.8, added p99 < 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

NOOP_ADDON = '"""A no-op mitmproxy addon: the anchor for dlp bench web."""\n\n\nclass Noop:\n' \
             '    async def request(self, flow):\n        return None\n\n\naddons = [Noop()]\n'
_WORDS = ("customer", "account", "billing", "call", "back", "ticket", "agent", "order", "refund", "schedule",
          "address", "plan", "status", "confirmed", "escalated", "transfer", "queue", "notes", "follow", "up",
          "invoice", "delivery", "product", "warranty")


def add_arguments(parser: argparse._ArgumentGroup) -> None:
    parser.add_argument("--web-clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--web-requests", type=int, default=1500, help="requests per proxy per round (default 1500)")
    parser.add_argument("--web-body-kb", type=int, default=10, help="request body size in KB (default 10)")
    parser.add_argument("--web-rounds", type=int, default=2, help="alternating rounds (default 2)")
    parser.add_argument("--web-workers", type=int, default=0, help="dlp inspection processes (0 = one per core)")


# ------------------------------------------------------------------------------------ upstream


def _upstream_main(port_out: Any) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nok\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=256)
        port_out.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


# ------------------------------------------------------------------------------------ proxies


class _Process:
    def __init__(self, argv: list[str], ready: str, cwd: Path) -> None:
        self.lines: list[str] = []
        self.port = 0
        self._ready = threading.Event()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)
        pattern = re.compile(ready)

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line)
                m = pattern.search(line)
                if m and not self.port:
                    self.port = int(m.group(1))
                    self._ready.set()
            self._ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not self._ready.wait(180) or not self.port:
            self.stop()
            raise RuntimeError(f"{argv[0]} did not start:\n{''.join(self.lines)[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _start_dlp(work: Path, workers: int) -> _Process:
    argv = [sys.executable, "-m", "dlp", "serve", "--data-dir", str(work / "dlp-data"),
            "--smtp-listen", "off", "--console-listen", "off", "--metrics-listen", "off",
            "--proxy-listen", "127.0.0.1:0", "--workers", str(workers)]
    return _Process(argv, r"^\s+proxy\s+127\.0\.0\.1:(\d+)", work)


def _start_noop(work: Path) -> _Process:
    script = work / "noop.py"
    script.write_text(NOOP_ADDON)
    mitmdump = Path(sys.executable).parent / "mitmdump"
    argv = [str(mitmdump), "--listen-host", "127.0.0.1", "--listen-port", "0", "--flow-detail", "0",
            "-s", str(script)]
    return _Process(argv, r"listening at 127\.0\.0\.1:(\d+)", work)


# ------------------------------------------------------------------------------------ load


def _bodies(count: int, size: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        words: list[str] = []
        length = 0
        while length < size:
            w = rng.choice(_WORDS)
            words.append(w)
            length += len(w) + 1
        out.append(" ".join(words).encode()[:size])
    return out


async def _load(proxy_port: int, upstream_port: int, clients: int, requests: int,
                bodies: list[bytes]) -> dict[str, Any]:
    import httpx

    url = f"http://127.0.0.1:{upstream_port}/upload"
    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))

    async def client() -> None:
        nonlocal errors
        async with httpx.AsyncClient(proxy=f"http://127.0.0.1:{proxy_port}", timeout=60,
                                     headers={"content-type": "text/plain"}) as http:
            for i in counter:
                started = time.perf_counter()
                try:
                    response = await http.post(url, content=bodies[i % len(bodies)])
                    if response.status_code != 200:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": requests,
        "errors": errors,
        "seconds": round(elapsed, 3),
        "rps": requests / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    clients = getattr(args, "web_clients", 16)
    requests = getattr(args, "web_requests", 1500)
    body_kb = getattr(args, "web_body_kb", 10)
    rounds = getattr(args, "web_rounds", 2)
    workers = getattr(args, "web_workers", 0)
    seed = getattr(args, "seed", 7)
    bodies = _bodies(64, body_kb * 1024, seed)

    ctx = multiprocessing.get_context("spawn")
    port_queue = ctx.Queue()
    upstream = ctx.Process(target=_upstream_main, args=(port_queue,), daemon=True)
    upstream.start()
    upstream_port = port_queue.get(timeout=60)
    results: dict[str, list[dict[str, Any]]] = {"dlp": [], "noop": []}
    with tempfile.TemporaryDirectory(prefix="dlp-bench-web-") as tmp:
        work = Path(tmp)
        dlp = _start_dlp(work, workers)
        noop = _start_noop(work)
        try:
            for proc in (noop, dlp):  # warm-up: connections, workers, caches
                asyncio.run(_load(proc.port, upstream_port, clients, max(clients * 4, requests // 10), bodies))
            for _ in range(rounds):
                for name, proc in (("noop", noop), ("dlp", dlp)):
                    results[name].append(asyncio.run(_load(proc.port, upstream_port, clients, requests, bodies)))
        finally:
            dlp.stop()
            noop.stop()
            upstream.terminate()
            upstream.join(10)

    def summary(name: str) -> dict[str, Any]:
        runs = results[name]
        return {
            "rps": round(statistics.median(r["rps"] for r in runs), 1),
            "p50_ms": round(statistics.median(r["p50_ms"] for r in runs), 2),
            "p99_ms": round(statistics.median(r["p99_ms"] for r in runs), 2),
            "errors": sum(r["errors"] for r in runs),
        }

    dlp_summary, noop_summary = summary("dlp"), summary("noop")
    ratio = dlp_summary["rps"] / noop_summary["rps"] if noop_summary["rps"] else 0.0
    return {
        "benchmark": "web",
        "clients": clients,
        "body_bytes": body_kb * 1024,
        "requests_per_round": requests,
        "rounds": rounds,
        "dlp": dlp_summary,
        "mitmdump_noop": noop_summary,
        "ratio": round(ratio, 3),
        "added_p99_ms": round(dlp_summary["p99_ms"] - noop_summary["p99_ms"], 2),
        "targets": {"ratio": ">= 0.8", "added_p99_ms": "< 5"},
    }


def format_text(result: dict[str, Any]) -> str:
    d, n = result["dlp"], result["mitmdump_noop"]
    return "\n".join([
        f"dlp bench web: {result['clients']} clients, {result['body_bytes'] // 1024} KB bodies, "
        f"{result['requests_per_round']} requests x {result['rounds']} rounds per proxy",
        f"  {'proxy':<16}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}",
        f"  {'mitmdump no-op':<16}{n['rps']:>10}{n['p50_ms']:>10}{n['p99_ms']:>10}{n['errors']:>8}",
        f"  {'dlp':<16}{d['rps']:>10}{d['p50_ms']:>10}{d['p99_ms']:>10}{d['errors']:>8}",
        f"  ratio {result['ratio']} (target >= 0.8); added p99 {result['added_p99_ms']} ms (target < 5)",
    ])
