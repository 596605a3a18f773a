"""Reading a customer export: the column mapping (`--columns`) and the CSV rows, one at a time."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from dlp.edm.index import Field
from dlp.edm.normalize import IDENTIFYING_BY_DEFAULT, FieldType

TYPES = ", ".join(t.value for t in FieldType)


class SourceError(Exception):
    """A bad column mapping or an unreadable export; the message never quotes a cell."""


def parse_columns(spec: str, identifying: str | None = None) -> list[Field]:
    """`name,account,Acct No=account,Mobile=phone`: a bare column is named after its type.

    `identifying` (comma-separated column names) replaces the default: account, card, ssn, email, phone.
    """
    fields: list[Field] = []
    chosen = {c.strip().lower() for c in identifying.split(",") if c.strip()} if identifying else None
    for item in (i.strip() for i in spec.split(",")):
        if not item:
            continue
        column, sep, type_name = item.rpartition("=")
        if not sep:
            column, type_name = item, item
        try:
            field_type = FieldType(type_name.strip().lower())
        except ValueError:
            raise SourceError(f"column {item!r}: unknown field type {type_name.strip()!r} ({TYPES})") from None
        column = column.strip()
        is_identifying = (column.lower() in chosen) if chosen is not None else field_type in IDENTIFYING_BY_DEFAULT
        fields.append(Field(column, field_type, is_identifying))
    if not fields:
        raise SourceError("--columns names no column")
    names = [f.name.lower() for f in fields]
    if len(set(names)) != len(names):
        raise SourceError("--columns names a column twice")
    if chosen is not None and (unknown := chosen - set(names)):
        raise SourceError(f"--identifying names a column not in --columns: {sorted(unknown)[0]!r}")
    if not any(f.identifying for f in fields):
        raise SourceError("no identifying column (account, card, ssn, email or phone; or set --identifying)")
    return fields


def read_rows(path: Path, fields: list[Field], *, encoding: str = "utf-8-sig",
              delimiter: str | None = None) -> Iterator[list[str]]:
    """The mapped cells of every data row, in field order. The first row is the header."""
    try:
        handle = path.open("r", encoding=encoding, newline="")
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with handle:
        try:
            sample = handle.read(64 * 1024)
        except UnicodeDecodeError:
            raise SourceError(f"{path}: not {encoding} text (set --encoding)") from None
        handle.seek(0)
        if delimiter is None:
            try:
                delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
            except csv.Error:
                delimiter = ","
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise SourceError(f"{path}: empty file") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise SourceError(f"{path}: line 1: {type(exc).__name__}") from None
        positions = {h.strip().lower(): i for i, h in enumerate(header)}
        columns = []
        for f in fields:
            if f.name.lower() not in positions:
                raise SourceError(f"{path}: no column {f.name!r} in the header (columns: {', '.join(header)})")
            columns.append(positions[f.name.lower()])
        width = max(columns) + 1
        try:
            for row in reader:
                if len(row) < width:
                    row = row + [""] * (width - len(row))
                yield [row[i] for i in columns]
        except (csv.Error, UnicodeDecodeError) as exc:
            # The error text of both can quote the offending bytes: report only where it happened.
            raise SourceError(f"{path}: line {reader.line_num}: {type(exc).__name__}") from None

