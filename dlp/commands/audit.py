"""`dlp audit`: verify the hash chain of the audit log, and list its records."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from dlp.store.cliutil import add_common_args, guarded, opened_store, parse_time


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("audit", help="verify or list the audit log")
    sub = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    verify = sub.add_parser("verify", help="check that no record was changed, removed or reordered (exit 1 if so)")
    add_common_args(verify)
    verify.set_defaults(func=guarded(_verify))
    ls = sub.add_parser("list", help="list audit records, oldest first")
    ls.add_argument("--incident", help="only this incident")
    ls.add_argument("--by", metavar="ACTOR", help="only records by this actor")
    ls.add_argument("--action", help="view_original, release, delete, status, assign, comment, purge, ...")
    ls.add_argument("--since", help="ISO date/time or age (7d, 24h)")
    ls.add_argument("--limit", type=int, default=1000)
    ls.add_argument("--offset", type=int, default=0)
    add_common_args(ls)
    ls.set_defaults(func=guarded(_list))


def _verify(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        result = store.audit_verify()
    if args.format == "json":
        print(json.dumps({"ok": result.ok, "records": result.records, "problem": result.problem,
                          "first_bad_seq": result.first_bad_seq}))
    elif result.ok:
        print(f"audit log intact: {result.records} records")
    else:
        print(f"AUDIT LOG TAMPERED: {result.problem} ({result.records} records verified before it)")
    return 0 if result.ok else 1


def _list(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        records = store.audit_records(incident_id=args.incident, actor=args.by, action=args.action,
                                      since=parse_time(args.since, "--since"), limit=args.limit, offset=args.offset)
    for r in records:
        when = datetime.fromtimestamp(r.at, UTC)
        if args.format == "json":
            print(json.dumps({**r.as_dict(), "time": when.isoformat()}))
        else:
            print(f"{r.seq:>6}  {when:%Y-%m-%d %H:%M:%S}  {r.actor:<12} {r.action:<14} {r.incident_id or '-':<22} "
                  f"{r.reason}" + (f" [{r.detail}]" if r.detail else ""))
    return 0
