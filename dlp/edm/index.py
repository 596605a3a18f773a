"""The on-disk EDM index of one client: keyed hashes only, sorted for binary search, memory-mapped to load.

Layout: the magic `DLPEDM01`, a little-endian u64 header length, a JSON header (sizes, field names and
types, when it was built, the key id), then 8-byte aligned arrays:

- `keys`          u64[n]  keyed hash of (kind, normalised value) of the identifying fields, sorted, ties
                          sorted by record: what proposes a record;
- `records`       u32[n]  the record (row) each of those keys belongs to;
- `fields`        u8[n]   which field of that record;
- `record_start`  u32[r+1] where each record's own keys start in `record_keys` (the last entry: the end);
- `record_keys`   u64[p]  every key of every record (all fields), record by record: once a record is
                          proposed, its other fields are a set test against its own few keys;
- `record_fields` u8[p]   which field each of those keys is;
- `tokens`        u64[m]  sorted keyed hashes of the single words of name and text fields;
- `prints`        u64[r]  each record's fingerprint: a keyed hash of its identifying values;
- `seeds`         u8[b]   a Bloom filter of the identifying keys (see dlp.edm.prefilter).

Format 3 (this release) hashes with keyed BLAKE2b and adds the per-record sections; an index of an
earlier format is refused with a message asking to re-run `dlp edm index`.

No clear value is written anywhere, not even to a temporary file: the builder hashes each cell as it
reads it. A new index is written to a temporary file, fsynced and renamed over the old one.
"""

from __future__ import annotations

import json
import mmap
import os
import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from dlp.durable import write_atomic
from dlp.edm.hashing import RECORD_KIND, TOKEN_KIND, KeyedHasher, check_client
from dlp.edm.normalize import (
    DIGITS,
    IDENTIFYING_BY_DEFAULT,
    PHONE,
    WORDS,
    DateOrder,
    FieldOptions,
    FieldType,
    normalize_field,
)
from dlp.edm.prefilter import SeedFilter, build_filter

MAGIC = b"DLPEDM01"
FORMAT_VERSION = 3
_SECTIONS = (("keys", "<u8"), ("records", "<u4"), ("fields", "u1"), ("record_start", "<u4"),
             ("record_keys", "<u8"), ("record_fields", "u1"), ("tokens", "<u8"), ("prints", "<u8"), ("seeds", "u1"))
_MAX_POSTINGS = 2**32 - 1  # record_start is u32
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # Linux


class EdmIndexError(Exception):
    """An index that cannot be used (corrupt, wrong key, wrong version); the message names the file."""


@dataclass(frozen=True, slots=True)
class Field:
    name: str  # the CSV column
    type: FieldType
    identifying: bool

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "type": str(self.type), "identifying": self.identifying}


def index_path(data_dir: Path, client: str) -> Path:
    return data_dir / "edm" / f"{check_client(client)}.idx"


def _align(n: int) -> int:
    return (n + 7) & ~7


class IndexBuilder:
    """Hashes records one at a time into compact arrays; `write` sorts them and replaces the index."""

    def __init__(self, client: str, key: bytes, fields: list[Field], options: FieldOptions) -> None:
        if not fields:
            raise ValueError("no fields to index")
        if len(fields) > 255:
            raise ValueError("at most 255 fields")
        if not any(f.identifying for f in fields):
            raise ValueError("at least one field must be identifying (account, card, ssn, email, phone)")
        self.client = check_client(client)
        self.fields = fields
        self.options = options
        self._hasher = KeyedHasher(key)
        self._keys = array("Q")
        self._records = array("I")
        self._fields = array("B")
        self._prints = array("Q")
        self._tokens: dict[str, int] = {}  # word -> keyed hash (memory only, dropped after write)
        self.rows_read = 0
        self.rows_skipped = 0  # no usable identifying value: such a row could never match
        self.values_skipped = [0] * len(fields)
        # Lengths of the indexed numbers: the scan side hashes only digit runs of these lengths.
        self._lengths: dict[str, set[int]] = {DIGITS: set(), PHONE: set()}

    def add(self, cells: list[str]) -> None:
        self.rows_read += 1
        record = len(self._prints)
        h64 = self._hasher.h64
        keys: list[tuple[int, int]] = []
        identity: list[str] = []
        for index, (spec, cell) in enumerate(zip(self.fields, cells, strict=True)):
            if not cell or not cell.strip():
                continue
            normalised = normalize_field(spec.type, cell, self.options)
            if not normalised:
                self.values_skipped[index] += 1
                continue
            for kind, value in normalised:
                keys.append((h64(kind, value), index))
                if kind in self._lengths:
                    self._lengths[kind].add(len(value))
                if spec.identifying:
                    identity.append(f"{kind}:{value}")
                if kind == WORDS:
                    for word in set(value.split(" ")):
                        if word not in self._tokens:
                            self._tokens[word] = h64(TOKEN_KIND, word)
        if not identity:
            self.rows_skipped += 1
            return
        if len(self._keys) + len(keys) > _MAX_POSTINGS:
            raise ValueError(f"more than {_MAX_POSTINGS} values to index: split the export into several clients")
        for key, index in keys:
            self._keys.append(key)
            self._records.append(record)
            self._fields.append(index)
        self._prints.append(h64(RECORD_KIND, "\x1f".join(sorted(identity))))

    def add_all(self, rows: Iterable[list[str]]) -> None:
        for row in rows:
            self.add(row)

    def header(self, sizes: dict[str, int]) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "client": self.client,
            "built": datetime.now(UTC).isoformat(timespec="seconds"),
            "key_id": self._hasher.key_id(),
            "region": self.options.region,
            "date_order": str(self.options.date_order),
            "fields": [f.describe() for f in self.fields],
            "rows_read": self.rows_read,
            "rows_skipped": self.rows_skipped,
            "values_skipped": dict(zip((f.name for f in self.fields), self.values_skipped, strict=True)),
            "records": len(self._prints),
            "postings": len(self._keys),
            "tokens": sizes["tokens"],
            "lengths": {kind: sorted(lengths) for kind, lengths in self._lengths.items()},
        }

    def arrays(self) -> dict[str, np.ndarray]:
        keys = np.frombuffer(self._keys, dtype=np.uint64)
        records = np.frombuffer(self._records, dtype=np.uint32)
        fields = np.frombuffer(self._fields, dtype=np.uint8)
        identifying = np.array([f.identifying for f in self.fields], dtype=bool)[fields]
        id_keys, id_records, id_fields = keys[identifying], records[identifying], fields[identifying]
        order = np.lexsort((id_records, id_keys))
        tokens = np.unique(np.fromiter(self._tokens.values(), dtype=np.uint64, count=len(self._tokens)))
        # Keys were appended record by record: record r's keys are record_keys[start[r]:start[r + 1]].
        start = np.zeros(len(self._prints) + 1, dtype="<u4")
        np.cumsum(np.bincount(records, minlength=len(self._prints)), out=start[1:])
        return {
            "keys": id_keys[order].astype("<u8"),
            "records": id_records[order].astype("<u4"),
            "fields": id_fields[order],
            "record_start": start,
            "record_keys": keys.astype("<u8"),
            "record_fields": fields.copy(),
            "tokens": tokens.astype("<u8"),
            "prints": np.frombuffer(self._prints, dtype=np.uint64).astype("<u8"),
            "seeds": build_filter(id_keys),
        }

    def write(self, path: Path) -> dict[str, Any]:
        """Durably replace the index at `path`; returns its header."""
        arrays = self.arrays()
        self._tokens.clear()
        header = self.header({name: len(a) for name, a in arrays.items()})
        offset = 0
        layout = {}
        for name, _dtype in _SECTIONS:
            layout[name] = [offset, len(arrays[name])]
            offset = _align(offset + arrays[name].nbytes)
        header["sections"] = layout
        blob = json.dumps(header, sort_keys=True).encode()
        start = _align(16 + len(blob))
        pad = b"\0" * (start - 16 - len(blob))
        pieces: list[bytes | memoryview] = [MAGIC, len(blob).to_bytes(8, "little"), blob, pad]
        cursor = 0
        for name, _dtype in _SECTIONS:
            data = arrays[name]
            pieces.append(memoryview(np.ascontiguousarray(data)).cast("B"))
            cursor += data.nbytes
            pad = _align(cursor) - cursor
            pieces.append(b"\0" * pad)
            cursor += pad
        write_atomic(path, pieces)
        header["bytes"] = path.stat().st_size
        return header


class EdmIndex:
    """A loaded index: the arrays are views of a read-only memory map, shared by every worker process."""

    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        try:
            with path.open("rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < 16:
                    raise EdmIndexError(f"{path}: not an EDM index (too short)")
                # MAP_POPULATE maps every page at load (the file is in the page cache, shared by every
                # worker): a lookup never waits on a first-touch page fault, which costs several
                # microseconds each in a VM and a lookup touches a dozen random pages.
                self._map = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED | _POPULATE, prot=mmap.PROT_READ)
        except OSError as exc:
            raise EdmIndexError(f"{path}: cannot read ({exc.strerror or exc})") from None
        self.header = read_header(path, self._map)
        hasher = KeyedHasher(key)
        if self.header.get("key_id") != hasher.key_id():
            raise EdmIndexError(f"{path}: built with another key than keys/edm-{self.header.get('client')}.key;"
                                " re-index the client")
        self.hasher = hasher
        self.client: str = self.header["client"]
        self.fields = [Field(f["name"], FieldType(f["type"]), bool(f["identifying"])) for f in self.header["fields"]]
        self.identifying = np.array([f.identifying for f in self.fields] + [False], dtype=bool)
        self.options = FieldOptions(self.header["region"], DateOrder(self.header["date_order"]))
        start = _align(16 + int.from_bytes(self._map[8:16], "little"))
        arrays: dict[str, np.ndarray] = {}
        for name, dtype in _SECTIONS:
            if name not in self.header["sections"]:
                raise EdmIndexError(f"{path}: corrupt header (no {name})")
            offset, count = self.header["sections"][name]
            width = np.dtype(dtype).itemsize
            if start + offset + count * width > size:
                raise EdmIndexError(f"{path}: truncated ({name})")
            arrays[name] = np.frombuffer(self._map, dtype=dtype, count=count, offset=start + offset)
        self.keys, self.records, self.field_of = arrays["keys"], arrays["records"], arrays["fields"]
        self.record_start = arrays["record_start"]
        self.record_keys, self.record_fields = arrays["record_keys"], arrays["record_fields"]
        self.tokens, self.prints = arrays["tokens"], arrays["prints"]
        if (len(self.records) != len(self.keys) or len(self.field_of) != len(self.keys)
                or len(self.record_start) != len(self.prints) + 1 or len(self.record_fields) != len(self.record_keys)
                or int(self.record_start[-1]) != len(self.record_keys)):
            raise EdmIndexError(f"{path}: inconsistent sections")
        try:
            self.seeds = SeedFilter(arrays["seeds"])
        except ValueError:
            raise EdmIndexError(f"{path}: corrupt seed filter") from None

        # Plain memoryviews of the same memory for the few scalar reads a message needs: indexing one
        # gives a Python int in tens of nanoseconds, a numpy array's scalar costs several times that.
        self._views = tuple(_int_view(a) for a in (self.keys, self.records, self.record_start, self.record_keys,
                                                     self.record_fields, self.prints))

    def record(self, record: int) -> tuple[list[int], list[int]]:
        """The keys of one record and the field of each."""
        start, keys, fields = self._views[2], self._views[3], self._views[4]
        a, b = start[record], start[record + 1]
        return keys[a:b].tolist(), fields[a:b].tolist()

    def fingerprint(self, record: int) -> int:
        return self._views[5][record]

    def find(self, key: int, limit: int) -> tuple[int, int]:
        """The range [a, b) of the sorted identifying keys equal to `key`: empty when absent, at most
        `limit` + 1 long (a longer one is cut there)."""
        keys = self._views[0]
        a = bisect_left(keys, key)
        b = a
        end = min(len(keys), a + limit + 1)
        while b < end and keys[b] == key:
            b += 1
        return a, b

    def records_of(self, a: int, b: int) -> list[int]:
        return self._views[1][a:b].tolist()


def _int_view(array: np.ndarray) -> Any:  # memoryview, or the array itself on a big-endian machine
    if sys.byteorder != "little":
        return array
    code: Any = {1: "B", 4: "I", 8: "Q"}[array.dtype.itemsize]  # typeshed wants a literal format
    return memoryview(array).cast("B").cast(code)


def read_header(path: Path, data: bytes | mmap.mmap | None = None) -> dict[str, Any]:
    """The JSON header of an index file (sizes, fields, build time); no key needed."""
    if data is None:
        with path.open("rb") as f:
            head = f.read(16)
            length = int.from_bytes(head[8:16], "little") if len(head) == 16 else 0
            data = head + f.read(min(length, 1 << 20))
    if data[:8] != MAGIC:
        raise EdmIndexError(f"{path}: not an EDM index")
    length = int.from_bytes(data[8:16], "little")
    try:
        header = json.loads(bytes(data[16 : 16 + length]))
    except ValueError:
        raise EdmIndexError(f"{path}: corrupt header") from None
    if not isinstance(header, dict):
        raise EdmIndexError(f"{path}: corrupt header")
    version = header.get("format")
    if isinstance(version, int) and version < FORMAT_VERSION:
        client = header.get("client") if isinstance(header.get("client"), str) else path.stem
        raise EdmIndexError(f"{path}: index format {version} was built by an earlier release and cannot be read;"
                            f" re-run `dlp edm index --client {client} ...` on the export to rebuild it")
    if version != FORMAT_VERSION:
        raise EdmIndexError(f"{path}: unsupported index format {version} (this release reads format"
                            f" {FORMAT_VERSION})")
    return header


def default_fields(names: list[str]) -> list[Field]:
    """Fields named after their type (`--columns name,account,email`)."""
    return [Field(n, FieldType(n), FieldType(n) in IDENTIFYING_BY_DEFAULT) for n in names]

