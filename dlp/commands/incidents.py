"""`dlp incidents`: list, show, reveal, release, delete, triage and export incidents from the CLI."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import UTC
from typing import Any

from dlp.cli import UsageError
from dlp.store.cliutil import actor, add_common_args, guarded, opened_store, parse_time


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("incidents", help="list, inspect and act on incidents")
    sub = p.add_subparsers(dest="incidents_command", metavar="ACTION", required=True)

    ls = sub.add_parser("list", help="list incidents, newest first")
    _add_filters(ls)
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--offset", type=int, default=0)
    ls.add_argument("--sort", default="-created", help="created, updated, severity, status, ... (- = descending)")
    add_common_args(ls)
    ls.set_defaults(func=guarded(_list))

    show = sub.add_parser("show", help="one incident with findings (masked), history and comments")
    show.add_argument("incident_id", metavar="ID")
    show.add_argument("--reveal", action="store_true", help="print the original message (audited; needs --reason)")
    show.add_argument("--reason", help="why the original is needed (recorded in the audit log)")
    add_common_args(show)
    show.set_defaults(func=guarded(_show))

    for name, helptext, reason_required in (
        ("release", "deliver a held e-mail to the next hop (exactly once)", True),
        ("delete", "delete the original; the masked record stays", True),
        ("mark-false-positive", "mark as a false positive", False),
        ("confirm", "confirm as a true positive", False),
    ):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("incident_ids", nargs="+", metavar="ID")
        cmd.add_argument("--reason", required=reason_required, default="", help="recorded in the audit log")
        if name == "release":
            cmd.add_argument("--force", action="store_true",
                             help="retry a release interrupted by a crash (may deliver a duplicate)")
        add_common_args(cmd)
        cmd.set_defaults(func=guarded(_act), operation=name)

    status = sub.add_parser("status", help="move an incident back to new or to in_review")
    status.add_argument("incident_id", metavar="ID")
    status.add_argument("status", choices=("new", "in_review"))
    status.add_argument("--reason", default="")
    add_common_args(status)
    status.set_defaults(func=guarded(_status))

    comment = sub.add_parser("comment", help="add a comment")
    comment.add_argument("incident_id", metavar="ID")
    comment.add_argument("text")
    add_common_args(comment)
    comment.set_defaults(func=guarded(_comment))

    assign = sub.add_parser("assign", help="assign to an analyst ('' to unassign)")
    assign.add_argument("incident_id", metavar="ID")
    assign.add_argument("assignee")
    assign.add_argument("--reason", default="")
    add_common_args(assign)
    assign.set_defaults(func=guarded(_assign))

    export = sub.add_parser("export", help="export incidents (masked findings, no raw values) as JSON or CSV")
    _add_filters(export)
    export.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")
    export.add_argument("--reason", default="", help="recorded in the audit log")
    add_common_args(export, formats=("json", "csv"))
    export.set_defaults(func=guarded(_export))


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--status", action="append", default=[], help="repeatable: new, in_review, released, ...")
    p.add_argument("--since", help="ISO date/time or age (7d, 24h)")
    p.add_argument("--until", help="ISO date/time or age")
    p.add_argument("--channel", action="append", default=[], help="repeatable: smtp, web, passive, scan")
    p.add_argument("--severity", action="append", default=[], help="repeatable: low, medium, high, critical")
    p.add_argument("--sender")
    p.add_argument("--entity", help="e.g. CREDIT_CARD")
    p.add_argument("--action", action="append", default=[], help="computed action: alert, quarantine, block")
    p.add_argument("--value-id", help="incidents containing this value id")
    p.add_argument("--rule")
    p.add_argument("--text", help="substring of the id, sender, recipients or rules")


def _query(args: argparse.Namespace, **extra: Any):
    from dlp.store import IncidentQuery

    return IncidentQuery(
        status=tuple(args.status), since=parse_time(args.since, "--since"), until=parse_time(args.until, "--until"),
        channel=tuple(args.channel), severity=tuple(args.severity), sender=args.sender or "",
        entity=args.entity or "", action=tuple(args.action), value_id=args.value_id or "", rule=args.rule or "",
        text=args.text or "", **extra,
    )


def summary_json(s: Any) -> dict[str, Any]:
    return {
        "id": s.id, "created": s.created.isoformat(), "channel": s.channel, "sender": s.sender,
        "recipients": list(s.recipients), "destination": s.destination, "action": s.action,
        "enforced_action": s.enforced_action, "monitor_only": s.monitor_only, "severity": s.severity,
        "rules": list(s.rules), "entities": list(s.entities), "findings": s.finding_count, "status": s.status,
        "disposition": s.disposition, "assignee": s.assignee, "has_original": s.has_original,
        "updated": s.updated.isoformat(),
    }


def detail_json(d: Any) -> dict[str, Any]:
    return {
        **summary_json(d.summary),
        "message_id": d.message_id, "kind": d.kind, "client_address": d.client_address, "user": d.user,
        "method": d.method, "original_size": d.original_size, "key_id": d.original_key_id,
        "original_removed": d.original_removed.isoformat() if d.original_removed else None,
        "released": d.released.isoformat() if d.released else None,
        "findings": [{"entity": f.entity, "detector": f.detector, "score": f.score, "location": f.location,
                      "start": f.start, "end": f.end, "masked": f.masked, "value_id": f.value_id,
                      "label": f.label, "context": f.context} for f in d.findings],
        "uninspected": [{"location": u.location, "reason": str(u.reason), "detail": u.detail}
                        for u in d.uninspected],
        "history": [{"at": h.at.isoformat(), "actor": h.actor, "event": h.event, "from": h.from_status,
                     "to": h.to_status, "detail": h.detail} for h in d.history],
        "comments": [{"at": c.at.isoformat(), "actor": c.actor, "text": c.text} for c in d.comments],
    }


def _list(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        query = _query(args, limit=args.limit, offset=args.offset, sort=args.sort)
        rows = store.list_incidents(query)
        total = store.count(query)
    if args.format == "json":
        print(json.dumps({"total": total, "incidents": [summary_json(s) for s in rows]}))
        return 0
    if not rows:
        print("no incidents")
        return 0
    print(f"{'ID':<22} {'CREATED (UTC)':<16} {'CHAN':<7} {'ACTION':<10} {'SEV':<8} {'STATUS':<14} "
          f"{'SENDER':<30} ENTITIES")
    for s in rows:
        enforced = s.enforced_action + ("*" if s.monitor_only else "")
        print(f"{s.id:<22} {s.created.astimezone(UTC):%Y-%m-%d %H:%M} {s.channel:<7} {enforced:<10} "
              f"{s.severity:<8} {s.status:<14} {(s.sender or '-')[:30]:<30} {','.join(s.entities) or '-'}")
    print(f"{len(rows)} of {total} shown" + (" (* monitor-only: computed, not enforced)"
                                            if any(s.monitor_only for s in rows) else ""))
    return 0


def _show(args: argparse.Namespace) -> int:
    if args.reveal and not (args.reason or "").strip():
        raise UsageError("--reveal needs --reason TEXT (it is recorded in the audit log)")
    with opened_store(args) as store:
        if args.reveal:
            original = store.read_original(args.incident_id, actor(args), args.reason)
            sys.stdout.buffer.write(original)
            sys.stdout.buffer.flush()
            return 0
        detail = store.get(args.incident_id)
    if args.format == "json":
        print(json.dumps(detail_json(detail)))
        return 0
    print(_format_detail(detail))
    return 0


def _format_detail(d: Any) -> str:
    s = d.summary
    lines = [
        f"{s.id}  {s.status}" + (f" ({s.disposition})" if s.disposition and s.disposition != s.status else ""),
        f"  created      {s.created.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC   channel {s.channel}"
        f"   kind {d.kind or '-'}",
        f"  action       {s.action} (enforced: {s.enforced_action}{', monitor-only' if s.monitor_only else ''})"
        f"   severity {s.severity}",
        f"  rules        {', '.join(s.rules) or '-'}",
        f"  sender       {s.sender or '-'}   user {d.user or '-'}   client {d.client_address or '-'}",
        f"  recipients   {', '.join(s.recipients) or '-'}",
        f"  destination  {s.destination or '-'}   method {d.method or '-'}",
        f"  assignee     {s.assignee or '-'}",
        "  original     " + (f"held, {d.original_size} bytes, key {d.original_key_id}" if s.has_original
                             else "not kept" if d.original_removed is None else
                             f"removed {d.original_removed:%Y-%m-%d %H:%M}"),
    ]
    if d.released:
        lines.append(f"  released     {d.released:%Y-%m-%d %H:%M:%S} UTC")
    if d.findings:
        lines.append("findings:")
        for f in d.findings:
            lines.append(f"  {f.entity:<16} {f.masked:<22} {f.location}  {f.start}-{f.end}  score {f.score:.2f}  "
                         f"{f.detector}  id {f.value_id}")
            if f.context:
                lines.append(f"      … {f.context} …")
    for u in d.uninspected:
        lines.append(f"not inspected: {u.location} ({u.reason}{': ' + u.detail if u.detail else ''})")
    lines.append("history:")
    for h in d.history:
        change = f" {h.from_status}→{h.to_status}" if h.to_status and h.from_status != h.to_status else ""
        lines.append(f"  {h.at:%Y-%m-%d %H:%M:%S}  {h.actor:<12} {h.event}{change}"
                     + (f"  ({h.detail})" if h.detail else ""))
    if d.comments:
        lines.append("comments:")
        for c in d.comments:
            lines.append(f"  {c.at:%Y-%m-%d %H:%M}  {c.actor}: {c.text}")
    return "\n".join(lines)


def _act(args: argparse.Namespace) -> int:
    from dlp.store import AuditError, StoreError

    who = actor(args)
    failures = 0
    results: list[dict[str, Any]] = []
    with opened_store(args) as store:
        for iid in args.incident_ids:
            try:
                if args.operation == "release":
                    r = store.release(iid, who, args.reason, force=args.force)
                    outcome = "released" if r.delivered_now else "already released"
                elif args.operation == "delete":
                    store.delete(iid, who, args.reason)
                    outcome = "original deleted"
                elif args.operation == "confirm":
                    store.confirm(iid, who, args.reason)
                    outcome = "confirmed"
                else:
                    store.mark_false_positive(iid, who, args.reason)
                    outcome = "marked false positive"
                results.append({"id": iid, "ok": True, "outcome": outcome})
            except AuditError:
                raise  # nothing further may happen without an audit trail
            except StoreError as exc:
                failures += 1
                results.append({"id": iid, "ok": False, "error": str(exc)})
    for r in results:
        if args.format == "json":
            print(json.dumps(r))
        elif r["ok"]:
            print(f"{r['id']}: {r['outcome']}")
        else:
            print(f"{r['id']}: {r['error']}", file=sys.stderr)
    return 1 if failures else 0


def _status(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        store.set_status(args.incident_id, args.status, actor(args), args.reason)
    print(f"{args.incident_id}: {args.status}")
    return 0


def _comment(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        store.comment(args.incident_id, args.text, actor(args))
    print(f"{args.incident_id}: comment added")
    return 0


def _assign(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        store.assign(args.incident_id, args.assignee, actor(args), args.reason)
    print(f"{args.incident_id}: assigned to {args.assignee or 'nobody'}")
    return 0


CSV_COLUMNS = ("id", "created", "channel", "sender", "recipients", "destination", "action", "enforced_action",
               "monitor_only", "severity", "rules", "entities", "status", "disposition", "assignee",
               "has_original", "findings", "uninspected")


def _export(args: argparse.Namespace) -> int:
    out = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        with opened_store(args) as store:
            details = store.export(_query(args, sort="created"), actor(args), args.reason)
            if args.format == "json":
                out.write("[")
                for i, d in enumerate(details):
                    out.write(("," if i else "") + "\n" + json.dumps(detail_json(d)))
                out.write("\n]\n")
            else:
                writer = csv.writer(out)
                writer.writerow(CSV_COLUMNS)
                for d in details:
                    row = summary_json(d.summary)
                    row.update(
                        recipients=";".join(row["recipients"]), rules=";".join(row["rules"]),
                        entities=";".join(row["entities"]),
                        findings=";".join(f"{f.entity}:{f.masked}:{f.value_id}" for f in d.findings),
                        uninspected=";".join(f"{u.location}:{u.reason}" for u in d.uninspected),
                    )
                    writer.writerow([row[c] for c in CSV_COLUMNS])
    finally:
        if out is not sys.stdout:
            out.close()
    return 0
