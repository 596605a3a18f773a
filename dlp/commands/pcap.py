"""`dlp pcap FILE...` and `dlp sniff -i IFACE`: the passive monitor over capture files or a live
interface. Verdicts become incidents and alerts (monitor mode: nothing is blocked). Exit 0 when every
transaction passed, 1 when any did not, 2 on a usage error or a capture that cannot be read."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from dlp.cli import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, UsageError, add_settings_args, settings_from_args
from dlp.commands.scan import format_text, verdict_json
from dlp.model import Action, Message, Verdict


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("pcap", help="inspect capture files (pcap, pcapng, modified pcap) in monitor mode")
    p.add_argument("files", nargs="+", metavar="FILE", help="capture files")
    _common(p)
    p.set_defaults(func=run_pcap)

    s = subparsers.add_parser("sniff", help="inspect live traffic on an interface in monitor mode")
    s.add_argument("-i", "--interface", required=True, metavar="IFACE")
    s.add_argument("--bpf", metavar="FILTER", help="BPF capture filter, e.g. 'tcp port 25 or tcp port 80'")
    s.add_argument("--count", type=int, default=0, metavar="N", help="stop after N packets")
    s.add_argument("--duration", type=float, default=0.0, metavar="SECONDS", help="stop after this long")
    s.add_argument("--metrics", metavar="HOST:PORT", help="serve Prometheus metrics while sniffing")
    _common(s)
    s.set_defaults(func=run_sniff)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", metavar="FILE", help="policy file merged over the shipped policy")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text (non-pass transactions, then a summary) or JSON lines (every transaction)")
    p.add_argument("--all", action="store_true", help="text format: list passing transactions too")
    p.add_argument("--no-record", action="store_true",
                   help="do not write incidents to the store or send alerts (a dry run)")
    add_settings_args(p)


# ------------------------------------------------------------------------------------ recording

class IncidentRecorder:
    """Pipeline.record (incident store + alert dispatcher) driven from synchronous code."""

    def __init__(self, settings: Any) -> None:
        from dlp.alerts import AlertDispatcher
        from dlp.inspect import InspectionPool
        from dlp.pipeline import Pipeline
        from dlp.store import StoreError, open_store

        try:
            self.store = open_store(settings)
        except StoreError as exc:
            raise UsageError(f"incident store: {exc}") from None
        self.alerts = AlertDispatcher(settings)
        # The pool is never started: inspection runs in this process; the pipeline only records.
        self.pipeline = Pipeline(InspectionPool(settings), self.store, self.alerts)
        self.runner = asyncio.Runner()

    def __call__(self, message: Message, verdict: Verdict) -> None:
        self.runner.run(self.pipeline.record(message, verdict))

    def close(self) -> None:
        self.runner.close()
        self.alerts.close()
        self.store.close()


# ------------------------------------------------------------------------------------ output

class Output:
    def __init__(self, fmt: str, show_all: bool, out: TextIO | None = None) -> None:
        self.fmt = fmt
        self.show_all = show_all
        self.out = out or sys.stdout
        self.progress_line = False

    def result(self, source: str, result: Any) -> None:
        from dlp.channels.passive.monitor import Result

        assert isinstance(result, Result)
        self.clear_progress()
        verdict, env, flow = result.verdict, result.message.envelope, result.flow
        if self.fmt == "json":
            record = verdict_json(source, verdict)
            record.update({
                "time": result.message.received.isoformat(),
                "transaction": result.summary,
                "enforced_action": str(verdict.effective_action),
                "incident_id": verdict.incident_id,
                "flow": {"protocol": flow.protocol, "client": flow.client, "server": flow.server,
                         "started": datetime.fromtimestamp(flow.started, UTC).isoformat(),
                         "midstream": flow.midstream},
                "envelope": {"sender": env.sender, "recipients": list(env.recipients), "method": env.method,
                             "destination": env.destination},
                "bytes": len(result.message.raw),
            })
            print(json.dumps(record), file=self.out, flush=True)
        elif verdict.action is not Action.PASS or self.show_all:
            label = f"{flow.protocol} {flow.client} -> {flow.server} {result.summary}"
            text = format_text(label, verdict)
            if verdict.incident_id:
                text = text.replace("\n", f" incident {verdict.incident_id}\n", 1) if "\n" in text \
                    else f"{text} incident {verdict.incident_id}"
            print(text, file=self.out, flush=True)

    def progress(self, name: str, done: int, total: int, stats: Any) -> None:
        if not sys.stderr.isatty():
            return
        pct = f"{100 * done / total:5.1f}%" if total else ""
        sys.stderr.write(f"\r{name}: {pct} {stats.packets} packets, {stats.flows} flows, "
                         f"{stats.transactions} transactions, {stats.incidents} incidents ")
        sys.stderr.flush()
        self.progress_line = True

    def clear_progress(self) -> None:
        if self.progress_line:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.progress_line = False

    def summary(self, source: str, info: dict[str, Any], stats: dict[str, Any], seconds: float,
                recorded: bool) -> None:
        self.clear_progress()
        if self.fmt == "json":
            print(json.dumps({"summary": {"source": source, **info, **stats, "seconds": round(seconds, 3)}}),
                  file=self.out, flush=True)
            return
        print(summary_text(source, info, stats, seconds, recorded), file=self.out, flush=True)


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def summary_text(source: str, info: dict[str, Any], s: dict[str, Any], seconds: float, recorded: bool) -> str:
    rate = s["packets"] / seconds if seconds > 0 else 0.0
    lines = [
        f"== {source} ({info.get('format', '?')}): {s['packets']} packets, {s['bytes']:,} bytes "
        f"in {seconds:.2f} s ({rate:,.0f} packets/s)",
        f"   TCP flows {s['flows']} ({_pairs(s['protocols'])}); transactions inspected {s['transactions']} "
        f"({s['inspected_bytes']:,} bytes)",
        f"   verdicts: {_pairs(s['verdicts'])}; incidents {s['incidents']}"
        + ("" if recorded else " (not recorded: --no-record)")
        + (f"; {s['record_errors']} could not be recorded" if s["record_errors"] else ""),
        f"   findings: {_pairs(s['entities'])}",
        f"   uninspected: {_pairs(s['uninspected'])}; encrypted sessions {s['encrypted_sessions']}",
        f"   reassembly: gaps {s['gaps']} ({s['gap_bytes']:,} bytes missing), retransmissions "
        f"{s['retransmissions']}, anomalies: {_pairs(s['anomalies'])}",
        f"   memory caps: {s['evicted_flows']} flows evicted, {s['evicted_bytes']:,} bytes dropped; "
        f"capture drops {s['capture_drops']}; undecodable packets {s['decode_errors']}; "
        f"non-TCP packets {s['other_packets']}",
    ]
    for warning in info.get("warnings", []):
        lines.append(f"   warning: {warning}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ commands

def _setup(args: argparse.Namespace, log_level: str | None = None,
           record: bool = True) -> tuple[Any, Any, Any, IncidentRecorder | None]:
    from dlp import logs
    from dlp.inspect import Inspector
    from dlp.keys import value_id_key
    from dlp.policy import PolicyError

    settings = settings_from_args(args)
    # An offline run reports on stdout; its per-incident log lines would only repeat that on stderr.
    logs.configure(log_level or settings.log_level)
    if settings.passive.checksums not in ("auto", "verify", "ignore"):
        raise UsageError("passive.checksums must be one of auto, verify, ignore")
    try:
        inspector = Inspector.from_settings(settings, policy_file=args.policy)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    recorder = IncidentRecorder(settings) if record and not args.no_record else None
    return settings, inspector, value_id_key(settings.data_path), recorder


def _offload(settings: Any, inspector: Any, files: list[str]) -> Any:
    """Worker processes for the content inspection of big captures (forked: they inherit the compiled
    inspector, so they start in milliseconds), or None to inspect in this process."""
    from dlp.channels.passive import offload

    if settings.inspection.workers < 0 or not offload.available():
        return None
    size = 0
    for name in files:
        try:
            size += Path(name).stat().st_size
        except OSError:
            continue  # reported when the file is opened
    if size < settings.passive.offload_min_bytes:
        return None
    pool = offload.OrderedInspections(inspector, settings.inspection.workers)
    pool.start()
    return pool


def run_pcap(args: argparse.Namespace) -> int:
    from dlp.channels.passive.monitor import Monitor
    from dlp.channels.passive.reader import Capture, CaptureError

    # The workers are forked before the recorder exists: forking a process with threads is unsafe.
    settings, inspector, key, _ = _setup(args, "warning", record=False)
    # The inspector's start-up heap leaves the collector's full passes: less work per pass here, and pages
    # the forked workers keep sharing instead of copying.
    gc.freeze()
    pool = _offload(settings, inspector, args.files)
    recorder = None
    output = Output(args.format, args.all)
    worst, unreadable = Action.PASS, False
    try:
        recorder = None if args.no_record else IncidentRecorder(settings)
        for path in args.files:
            try:
                capture = Capture(path)
            except CaptureError as exc:
                print(f"dlp: error: {exc}", file=sys.stderr, flush=True)
                unreadable = True
                continue
            source = str(path)
            # An offline run serves no metrics: per-message Prometheus updates would be read by nobody.
            monitor = Monitor(inspector, key, settings.passive, recorder=recorder,
                              on_result=lambda r, source=source: output.result(source, r), offload=pool,
                              message_metrics=False)
            started = time.perf_counter()

            def progress(n: int, name: str = Path(path).name, capture: Capture = capture,
                         monitor: Monitor = monitor) -> None:
                output.progress(name, monitor.stats.bytes + 16 * n, capture.size, monitor.stats)

            with capture:
                monitor.feed(capture, progress)
                stats = monitor.finish()
            stats.capture_drops += capture.info.interface_drops
            worst = Action.most_severe([worst, monitor.worst])
            info = {"format": capture.info.format, "warnings": capture.info.warnings}
            output.summary(source, info, stats.as_dict(), time.perf_counter() - started, recorder is not None)
    finally:
        if pool is not None:
            pool.close()
        if recorder is not None:
            recorder.close()
    if unreadable:
        return EXIT_USAGE
    return EXIT_OK if worst is Action.PASS else EXIT_FINDINGS


def run_sniff(args: argparse.Namespace) -> int:
    from dlp.channels.passive.live import CaptureUnavailable, LiveCapture
    from dlp.channels.passive.monitor import Monitor

    settings, inspector, key, recorder = _setup(args)
    if args.metrics:
        _serve_metrics(args.metrics)
    try:
        capture = LiveCapture(args.interface, args.bpf)
    except CaptureUnavailable as exc:
        if recorder is not None:
            recorder.close()
        raise UsageError(str(exc)) from None
    output = Output(args.format, args.all)
    source = f"interface {args.interface}"
    monitor = Monitor(inspector, key, settings.passive, recorder=recorder,
                      on_result=lambda r: output.result(source, r))
    stopping = False

    def stop_signal(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    deadline = time.monotonic() + args.duration if args.duration > 0 else None
    started = time.perf_counter()

    def done() -> bool:
        return stopping or (deadline is not None and time.monotonic() >= deadline) or \
            (args.count > 0 and capture.packets >= args.count)

    print(f"dlp sniff: capturing on {args.interface}" + (f" (filter: {args.bpf})" if args.bpf else "")
          + "; Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        for ts, linktype, frame in capture.frames(done):
            monitor.packet(ts, linktype, frame)
        stats = monitor.finish()
        stats.capture_drops = capture.drops
    finally:
        capture.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if recorder is not None:
            recorder.close()
    output.summary(source, {"format": "live"}, stats.as_dict(), time.perf_counter() - started, recorder is not None)
    return EXIT_OK if monitor.worst is Action.PASS else EXIT_FINDINGS


def _serve_metrics(listen: str) -> None:
    from prometheus_client import start_http_server

    from dlp.config import ConfigError, parse_listen

    try:
        address = parse_listen(listen, "--metrics")
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if address is not None:
        try:
            start_http_server(address[1], addr=address[0])
        except OSError as exc:
            raise UsageError(f"--metrics {listen}: {exc.strerror or exc}") from None
