"""`dlp replay --policy CANDIDATE [INPUTS...]`: what would change under a candidate policy."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dlp.cli import EXIT_OK, UsageError, add_settings_args, settings_from_args
from dlp.model import Channel
from dlp.replay import ReplayItem, capture_items, file_item, replay

_CAPTURE_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",
                   b"\x34\xcd\xb2\xa1", b"\xa1\xb2\xcd\x34", b"\x0a\x0d\x0d\x0a")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("replay", help="compare verdicts under a candidate policy with the current one")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="message files, folders or captures")
    p.add_argument("--policy", required=True, metavar="CANDIDATE", help="the candidate policy file")
    p.add_argument("--current", metavar="FILE",
                   help="the current policy file (default: inspection.policy_file from the config)")
    p.add_argument("--stored", action="store_true", help="also replay the originals kept in the incident store")
    p.add_argument("--since", metavar="DATE", help="with --stored: incidents since this date (YYYY-MM-DD)")
    p.add_argument("--actor", help="who replays (audited when reading stored originals; default: OS user)")
    p.add_argument("--channel", choices=("auto", "smtp", "web"), default="auto",
                   help="channel to evaluate message files as (default: raw HTTP requests as web, else smtp)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    add_settings_args(p)
    p.set_defaults(func=run)


def _files(paths: list[str], channel: Channel | None,
           capture: Callable[[Path], Iterator[tuple[str, ReplayItem]]]) -> Iterator[tuple[str, ReplayItem]]:
    for p in paths:
        path = Path(p)
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        for f in files:
            try:
                raw = f.read_bytes()
            except OSError as exc:
                raise UsageError(f"{f}: {exc.strerror or exc}") from None
            if raw[:4] in _CAPTURE_MAGICS:
                yield from capture(f)
            else:
                yield "file", file_item(str(f), raw, channel)


def _stored(settings: Any, since: str | None, actor: str) -> Iterator[tuple[str, ReplayItem]]:
    """Every incident whose original is still kept, read through the store (each read is audited)."""
    from datetime import UTC, datetime

    from dlp.model import ContentKind, Envelope, Message
    from dlp.store import IncidentQuery, StoreError, open_store

    try:
        start = datetime.fromisoformat(since).replace(tzinfo=UTC) if since else None
    except ValueError:
        raise UsageError(f"--since: expected YYYY-MM-DD, got {since!r}") from None
    try:
        store = open_store(settings)
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    try:
        offset = 0
        while True:
            page = store.list_incidents(IncidentQuery(since=start, has_original=True, sort="created",
                                                      limit=200, offset=offset))
            if not page:
                break
            offset += len(page)
            for summary in page:
                detail = store.get(summary.id)
                raw = store.read_original(summary.id, actor, "policy replay")
                envelope = Envelope(summary.sender, summary.recipients, detail.client_address, detail.user,
                                    summary.destination, detail.method)
                kind = ContentKind(detail.kind) if detail.kind in {k.value for k in ContentKind} else ContentKind.AUTO
                yield "stored", ReplayItem(summary.id, Message(Channel(summary.channel), raw, kind, envelope))
    finally:
        store.close()


def run(args: argparse.Namespace) -> int:
    import getpass

    from dlp.config import Settings
    from dlp.inspect import Inspector
    from dlp.policy import PolicyError

    settings: Settings = settings_from_args(args)
    if not args.inputs and not args.stored:
        raise UsageError("nothing to replay: give message files or captures, or --stored")
    try:
        current = Inspector.from_settings(settings, policy_file=args.current)
        candidate = Inspector.from_settings(settings, policy_file=args.policy)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    channel = None if args.channel == "auto" else Channel(args.channel)

    def capture(path: Path) -> Iterator[tuple[str, ReplayItem]]:
        """Captures are replayed through the passive monitor, as `dlp pcap` reads them."""
        from dlp.channels.passive.reader import CaptureError
        from dlp.keys import value_id_key

        try:
            yield from capture_items(path, current, candidate, value_id_key(settings.data_path), settings.passive)
        except CaptureError as exc:
            raise UsageError(str(exc)) from None

    def items() -> Iterator[tuple[str, ReplayItem]]:
        yield from _files(args.inputs, channel, capture)
        if args.stored:
            yield from _stored(settings, args.since, args.actor or getpass.getuser())

    report = replay(items(), current, candidate)
    if args.format == "json":
        print(json.dumps(report.as_json()))
    else:
        print(report.as_text())
    return EXIT_OK
