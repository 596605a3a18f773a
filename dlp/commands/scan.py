"""`dlp scan`: inspect files or standard input and print verdicts (exit 0 all pass, 1 otherwise, 2 error)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dlp.cli import EXIT_FINDINGS, EXIT_OK, UsageError, add_settings_args, settings_from_args
from dlp.model import Action, Channel, ContentKind, Message, Verdict


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("scan", help="inspect messages, requests or files and print the verdicts")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to inspect; - for stdin")
    p.add_argument("--policy", metavar="FILE", help="policy file merged over the shipped policy")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--kind", choices=[k.value for k in ContentKind], default="auto",
                   help="how to read the inputs (default: detect)")
    add_settings_args(p)
    p.set_defaults(func=run)


def verdict_json(source: str, verdict: Verdict) -> dict[str, Any]:
    """The `dlp scan --format json` record: a stable contract."""
    return {
        "source": source,
        "kind": verdict.kind,
        "action": str(verdict.action),
        "severity": str(verdict.severity),
        "rules": list(verdict.rules),
        "findings": [
            {
                "entity": f.entity,
                "detector": f.detector,
                "score": f.score,
                "location": f.location,
                "start": f.start,
                "end": f.end,
                "masked": f.masked,
                "value_id": f.value_id,
            }
            for f in verdict.findings
        ],
        "uninspected": [{"location": u.location, "reason": str(u.reason)} for u in verdict.uninspected],
    }


def _inputs(paths: list[str]) -> Iterator[tuple[str, bytes]]:
    for p in paths:
        if p == "-":
            yield "<stdin>", sys.stdin.buffer.read()
            continue
        path = Path(p)
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        for f in files:
            try:
                yield str(f), f.read_bytes()
            except OSError as exc:
                raise UsageError(f"{f}: {exc.strerror or exc}") from None


def format_text(source: str, verdict: Verdict) -> str:
    lines = [f"{source}: {verdict.action.upper()}"
             + (f" (severity {verdict.severity}; rules: {', '.join(verdict.rules)})" if verdict.rules else "")
             + (f" [{verdict.kind}]" if verdict.kind else "")]
    if verdict.findings:
        width = max(len(f.location) for f in verdict.findings)
        for f in verdict.findings:
            lines.append(f"  {f.entity:<16} {f.masked:<22} {f.location:<{width}}  {f.start}-{f.end}"
                         f"  score {f.score:.2f}  {f.detector}  id {f.value_id[:12]}")
    for u in verdict.uninspected:
        lines.append(f"  not inspected: {u.location} ({u.reason}{': ' + u.detail if u.detail else ''})")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from dlp import logs
    from dlp.edm.index import EdmIndexError
    from dlp.inspect import Inspector
    from dlp.policy import PolicyError
    from dlp.replay import envelope_from_file

    settings = settings_from_args(args)
    logs.configure(settings.log_level)
    try:
        inspector = Inspector.from_settings(settings, policy_file=args.policy)
    except (PolicyError, EdmIndexError) as exc:
        raise UsageError(str(exc)) from None
    worst = Action.PASS
    for source, raw in _inputs(args.paths):
        message = Message(Channel.SCAN, raw, ContentKind(args.kind), envelope_from_file(raw), name=Path(source).name)
        verdict = inspector.inspect(message)
        worst = Action.most_severe([worst, verdict.action])
        if args.format == "json":
            print(json.dumps(verdict_json(source, verdict)), flush=True)
        else:
            print(format_text(source, verdict), flush=True)
    return EXIT_OK if worst is Action.PASS else EXIT_FINDINGS
