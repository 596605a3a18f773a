"""`dlp bench pcap`: the passive monitor end to end (read, reassemble, parse, inspect) in packets/s, next
to scapy's PcapReader + TCPSession (dissection and reassembly only, no inspection) in the same run.

The capture is generated here with struct (no scapy on the write path, so generating 10^5 packets
takes a second): HTTP keep-alive flows, each a handshake, two POSTs of ordinary form text (one in ten
carrying a card number), responses of full-size segments with their ACKs, and a FIN exchange.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

_ETH = bytes.fromhex("020000000019" "02000000000a" "0800")
_ETH_BACK = bytes.fromhex("02000000000a" "020000000019" "0800")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pcap-packets", type=int, default=200_000,
                        help="packets in the generated capture (default 200000)")
    parser.add_argument("--pcap-anchor-packets", type=int, default=20_000,
                        help="packets scapy reads (it is slow; the rate is what counts; default 20000)")
    parser.add_argument("--pcap-workers", type=int, default=0,
                        help="inspection worker processes (default 0: one per core; -1: inspect in the "
                             "capture's process only)")


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = int.from_bytes(data, "big") % 0xFFFF
    return (~total) & 0xFFFF or 0xFFFF


def _frame(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes,
           forward: bool) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0)
    seg = tcp + payload
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(seg))
    csum = _checksum(pseudo + seg)
    seg = seg[:16] + struct.pack("!H", csum) + seg[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(seg), 0, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return (_ETH if forward else _ETH_BACK) + ip + seg


def generate(path: Path, packets: int, seed: int = 7) -> dict[str, int]:
    rng = random.Random(seed)
    words = ("order", "callback", "customer", "ticket", "refund", "address", "update", "notes", "status", "plan")
    frames: list[bytes] = []
    flows = requests = 0
    t = 1767261600.0
    while len(frames) < packets:
        flows += 1
        client = bytes([10, 2, (flows >> 8) & 255, flows & 255])
        server = bytes([198, 51, 100, 80])
        sport, cseq, sseq = 20000 + flows % 40000, rng.getrandbits(32), rng.getrandbits(32)
        out: list[bytes] = [
            _frame(client, server, sport, 80, cseq, 0, 0x02, b"", True),
            _frame(server, client, 80, sport, sseq, cseq + 1, 0x12, b"", False),
            _frame(client, server, sport, 80, cseq + 1, sseq + 1, 0x10, b"", True),
        ]
        cseq, sseq = cseq + 1, sseq + 1
        for _ in range(2):
            requests += 1
            text = " ".join(rng.choice(words) for _ in range(200))
            if rng.random() < 0.1:
                text += " card 4539 1488 0343 6467"
            body = f"comment={text}".encode()
            head = (f"POST /crm/notes/{flows} HTTP/1.1\r\nHost: crm.example\r\nContent-Type: "
                    f"application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n").encode()
            request = head + body
            for i in range(0, len(request), 1400):
                out.append(_frame(client, server, sport, 80, cseq + i, sseq, 0x18, request[i : i + 1400], True))
            cseq += len(request)
            response = b"HTTP/1.1 200 OK\r\nContent-Length: 8400\r\n\r\n" + bytes(8400)
            for i in range(0, len(response), 1400):
                out.append(_frame(server, client, 80, sport, sseq + i, cseq, 0x18, response[i : i + 1400], False))
                if i // 1400 % 2:
                    out.append(_frame(client, server, sport, 80, cseq, sseq + i + 1400, 0x10, b"", True))
            sseq += len(response)
        out += [
            _frame(client, server, sport, 80, cseq, sseq, 0x11, b"", True),
            _frame(server, client, 80, sport, sseq, cseq + 1, 0x11, b"", False),
            _frame(client, server, sport, 80, cseq + 1, sseq + 1, 0x10, b"", True),
        ]
        for frame in out:
            t += 0.0001
            frames.append(struct.pack("<IIII", int(t), int((t % 1) * 1e6), len(frame), len(frame)) + frame)
    with path.open("wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        fh.writelines(frames)
    return {"packets": len(frames), "flows": flows, "requests": requests, "bytes": path.stat().st_size}


def _ours(path: Path, data_dir: str, workers: int) -> dict[str, Any]:
    """One end-to-end run. With workers >= 0 the content is inspected in forked worker processes (0: one
    per core), as `dlp pcap` does for big captures; forking them is inside the timed region."""
    import resource

    from dlp.channels.passive import offload
    from dlp.channels.passive.monitor import Monitor
    from dlp.channels.passive.reader import Capture
    from dlp.config import load_settings
    from dlp.inspect import Inspector
    from dlp.keys import value_id_key

    settings = load_settings(None, {"data_dir": data_dir})
    inspector = Inspector.from_settings(settings)
    gc.freeze()  # as `dlp pcap` does once the inspector is built
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started, cpu_started = time.perf_counter(), time.process_time()
    pool = offload.OrderedInspections(inspector, workers) if workers >= 0 and offload.available() else None
    if pool is not None:
        pool.start()
    monitor = Monitor(inspector, value_id_key(settings.data_path), settings.passive, offload=pool,
                      message_metrics=False)  # as `dlp pcap`, which serves no metrics
    try:
        with Capture(path) as capture:
            monitor.feed(capture)
        stats = monitor.finish()
    finally:
        if pool is not None:
            pool.close()  # waits for the workers to exit, so that their CPU time is counted below
    seconds = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"workers": pool.workers if pool is not None else 0,
            "cores": os.cpu_count(),
            "packets": stats.packets, "seconds": round(seconds, 3), "packets_per_s": round(stats.packets / seconds),
            "main_cpu_seconds": round(main_cpu := time.process_time() - cpu_started, 3),
            # Less sensitive to neighbours on a shared machine than packets/s.
            "main_cpu_seconds_per_100k_packets": round(main_cpu * 100_000 / max(stats.packets, 1), 3),
            "worker_cpu_seconds": round(max(0.0, children.ru_utime + children.ru_stime
                                            - children_before.ru_utime - children_before.ru_stime), 3),
            "transactions": stats.transactions, "findings": dict(stats.entities), "gaps": stats.gaps}


def _scapy(path: Path, limit: int) -> dict[str, Any]:
    from scapy.sendrecv import sniff
    from scapy.sessions import TCPSession

    count = 0

    def seen(_pkt: Any) -> None:
        nonlocal count
        count += 1

    started = time.perf_counter()
    sniff(offline=str(path), session=TCPSession, count=limit, store=False, prn=seen, quiet=True)
    seconds = time.perf_counter() - started
    return {"packets": count, "seconds": round(seconds, 3), "packets_per_s": round(count / seconds)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    packets = int(getattr(args, "pcap_packets", 200_000))
    anchor_packets = int(getattr(args, "pcap_anchor_packets", 20_000))
    workers = int(getattr(args, "pcap_workers", 0))
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="dlp-bench-pcap-") as tmp:
        path = Path(tmp) / "bench.pcap"
        capture = generate(path, packets, getattr(args, "seed", 7))
        ours = _ours(path, str(Path(tmp) / "data"), workers)
        inline = _ours(path, str(Path(tmp) / "data"), -1) if workers >= 0 else None
        anchor = _scapy(path, min(anchor_packets, capture["packets"]))
    return {
        "capture": capture,
        "dlp": ours,
        "dlp_inline": inline,
        "anchor": {"name": "scapy PcapReader + TCPSession (no inspection)", **anchor},
        "ratio": round(ours["packets_per_s"] / anchor["packets_per_s"], 2) if anchor["packets_per_s"] else None,
        "load_average_before": round(load, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
    }


def _line(label: str, run: dict[str, Any]) -> str:
    per_100k = run["main_cpu_seconds_per_100k_packets"]
    cpu = f"CPU s: this process {run['main_cpu_seconds']} ({per_100k} per 100k packets)" + (
        f", workers {run['worker_cpu_seconds']}" if run["workers"] else "")
    return (f"{label}: {run['packets_per_s']:>10,} packets/s ({run['transactions']:,} transactions, findings "
            f"{run['findings']}; {cpu})")


def format_text(result: dict[str, Any]) -> str:
    cap, ours, anchor, inline = result["capture"], result["dlp"], result["anchor"], result.get("dlp_inline")
    lines = [
        f"capture: {cap['packets']:,} packets, {cap['flows']:,} flows, {cap['requests']:,} requests, "
        f"{cap['bytes'] / 1e6:.1f} MB; {ours['cores']} cores, load average {result['load_average_before']} "
        f"before, {result['load_average_after']} after",
        _line(f"dlp passive monitor (read+reassemble+parse+inspect, {ours['workers']} inspection workers)", ours),
    ]
    if inline is not None:
        lines.append(_line("dlp passive monitor, inspection in the same process", inline))
    lines += [
        f"{anchor['name']}: {anchor['packets_per_s']:>10,} packets/s",
        f"ratio: {result['ratio']}x",
    ]
    return "\n".join(lines)
