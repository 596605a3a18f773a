"""`dlp purge`: apply retention — delete originals older than store.retention_days (audited)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from dlp.store.cliutil import actor, add_common_args, guarded, opened_store


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("purge",
                              help="delete quarantined originals past retention (optionally old incidents too)")
    p.add_argument("--original-days", type=int, metavar="N",
                   help="delete originals older than N days (default: store.retention_days)")
    p.add_argument("--incidents-older-than", type=int, metavar="DAYS",
                   help="also delete whole incidents (masked records, history) older than DAYS")
    add_common_args(p)
    p.set_defaults(func=guarded(_run))


def _run(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        result = store.purge(actor(args), original_days=args.original_days,
                             incident_days=args.incidents_older_than)
    if args.format == "json":
        print(json.dumps({"originals_removed": result.originals_removed,
                          "incidents_removed": result.incidents_removed}))
    else:
        print(f"purged {result.originals_removed} originals and {result.incidents_removed} incidents")
    return 0
