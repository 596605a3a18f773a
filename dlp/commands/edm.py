"""`dlp edm`: build a client's exact-data-match index from a customer export, show index sizes, remove one."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from dlp.cli import UsageError, add_settings_args, settings_from_args


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("edm", help="exact data match: index customer exports, show index statistics")
    sub = p.add_subparsers(dest="edm_command", metavar="ACTION")

    idx = sub.add_parser("index", help="(re)build a client's index from a CSV export (atomic replace)")
    idx.add_argument("file", metavar="FILE.csv", help="the export; the first row names the columns")
    idx.add_argument("--client", required=True, help="client name (lowercase letters, digits, - and _)")
    idx.add_argument("--columns", required=True, metavar="SPEC",
                     help="columns to index with their field type: 'name,account' or 'Full Name=name,Acct=account'"
                          "; types: name, account, card, ssn, email, phone, date, postcode, text")
    idx.add_argument("--identifying", metavar="COLUMNS",
                     help="columns that identify a customer (default: the account, card, ssn, email, phone ones)")
    idx.add_argument("--region", default="US", help="phone region for numbers written without +country (default US)")
    idx.add_argument("--date-order", choices=("mdy", "dmy"), default="mdy",
                     help="how to read numeric dates that are not ISO (default mdy)")
    idx.add_argument("--delimiter", help="CSV delimiter (default: detected)")
    idx.add_argument("--encoding", default="utf-8-sig")
    add_settings_args(idx)
    idx.set_defaults(func=run_index)

    stats = sub.add_parser("stats", help="sizes of every index (records, fields, bytes, build time), no values")
    stats.add_argument("--client", help="only this client")
    stats.add_argument("--format", choices=("text", "json"), default="text")
    add_settings_args(stats)
    stats.set_defaults(func=run_stats)

    rm = sub.add_parser("remove", help="delete a client's index (and with --shred its key)")
    rm.add_argument("--client", required=True)
    rm.add_argument("--shred", action="store_true", help="also delete the client's key")
    add_settings_args(rm)
    rm.set_defaults(func=run_remove)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def run_index(args: argparse.Namespace) -> int:
    from dlp.edm.hashing import client_key
    from dlp.edm.index import IndexBuilder, index_path
    from dlp.edm.normalize import DateOrder, FieldOptions, PhoneRegion
    from dlp.edm.source import SourceError, parse_columns, read_rows

    settings = settings_from_args(args)
    try:
        PhoneRegion.for_region(args.region)
        fields = parse_columns(args.columns, args.identifying)
        options = FieldOptions(args.region.upper(), DateOrder(args.date_order))
        data_dir = settings.data_path
        builder = IndexBuilder(args.client, client_key(data_dir, args.client, create=True), fields, options)
        started = time.monotonic()
        builder.add_all(read_rows(Path(args.file), fields, encoding=args.encoding, delimiter=args.delimiter))
    except (SourceError, ValueError, LookupError) as exc:
        raise UsageError(str(exc)) from None
    if builder.rows_read == 0:
        raise UsageError(f"{args.file}: no data rows")
    path = index_path(data_dir, args.client)
    header = builder.write(path)
    seconds = time.monotonic() - started
    print(f"indexed {header['records']} records of {args.client} from {header['rows_read']} rows in {seconds:.1f}s"
          f" -> {path} ({_size(header['bytes'])}, {header['postings']} keys)")
    if header["rows_skipped"]:
        print(f"  {header['rows_skipped']} rows skipped: no usable identifying value")
    for name, count in header["values_skipped"].items():
        if count:
            print(f"  {count} values of column {name!r} could not be read as its type and were left out")
    return 0


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def run_stats(args: argparse.Namespace) -> int:
    from dlp.edm.index import EdmIndexError, read_header

    settings = settings_from_args(args)
    folder = settings.data_path / "edm"
    paths = sorted(folder.glob("*.idx")) if folder.is_dir() else []
    if args.client:
        paths = [p for p in paths if p.stem == args.client]
        if not paths:
            raise UsageError(f"no index for client {args.client!r} in {folder}")
    rows = []
    for path in paths:
        try:
            h = read_header(path)
        except EdmIndexError as exc:
            rows.append({"client": path.stem, "path": str(path), "error": str(exc)})
            continue
        rows.append({
            "client": h["client"], "path": str(path), "records": h["records"], "rows_read": h["rows_read"],
            "rows_skipped": h["rows_skipped"], "keys": h["postings"], "words": h["tokens"],
            "bytes": path.stat().st_size, "built": h["built"], "region": h["region"], "date_order": h["date_order"],
            "fields": h["fields"], "values_skipped": h["values_skipped"],
        })
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no EDM index in {folder}")
        return 0
    for r in rows:
        if "error" in r:
            print(f"{r['client']}: UNUSABLE: {r['error']}")
            continue
        fields = ", ".join(f"{f['name']}:{f['type']}{'*' if f['identifying'] else ''}" for f in r["fields"])
        print(f"{r['client']}: {r['records']} records, {r['keys']} keys, {_size(r['bytes'])}, built {r['built']}")
        print(f"  fields (* identifying): {fields}")
        print(f"  rows read {r['rows_read']}, skipped {r['rows_skipped']}; phone region {r['region']},"
              f" dates {r['date_order']}; {r['path']}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from dlp.durable import fsync_directory
    from dlp.edm.hashing import check_client, client_key_path
    from dlp.edm.index import index_path

    settings = settings_from_args(args)
    try:
        check_client(args.client)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    path = index_path(settings.data_path, args.client)
    if not path.exists():
        raise UsageError(f"no index for client {args.client!r}")
    path.unlink()
    fsync_directory(path.parent)
    print(f"removed {path}")
    if args.shred:
        key = client_key_path(settings.data_path, args.client)
        key.unlink(missing_ok=True)
        print(f"removed {key}: anything hashed with it can no longer be matched")
    return 0
