"""The EDM index: built through `dlp edm index`, holding no clear value, replaced atomically, checked on load."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from dlp.cli import main
from dlp.edm.hashing import client_key
from dlp.edm.index import EdmIndex, EdmIndexError, index_path, read_header
from dlp.edm.synthetic import COLUMNS, write_export

from .conftest import index_client


def _tree_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_index_holds_no_clear_value(tmp_path):
    """A canary customer with distinctive values: none of them, in any encoding we know, is on disk."""
    export = tmp_path / "export.csv"
    export.write_text(
        "name,account,email,phone,dob,zip\n"
        "Canaryname Zqxwvut,987654321012,canary.zqxwvut@canary.example,(555) 987-6543,1971-02-03,90210\n",
        encoding="utf-8")
    data = tmp_path / "data"
    assert main(["edm", "index", "--client", "acme", str(export), "--columns",
                 "name,account,email,phone,dob=date,zip=postcode", "--data-dir", str(data)]) == 0
    blob = _tree_bytes(data).lower()
    for needle in ["canaryname", "zqxwvut", "987654321012", "canary.example", "5559876543", "+15559876543",
                   "1971-02-03", "90210", "canaryname zqxwvut", "zqxwvut canaryname"]:
        assert needle.encode() not in blob, needle
        assert needle.encode("utf-16-le") not in blob, needle
    assert not list(data.rglob(".tmp-*"))


def test_files_are_private(acme):
    path = index_path(acme.data_dir, "acme")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((acme.data_dir / "keys" / "edm-acme.key").stat().st_mode) == 0o600


def test_header_and_stats_show_sizes_not_values(acme, capsys):
    header = read_header(index_path(acme.data_dir, "acme"))
    assert header["records"] == 2000 and header["client"] == "acme"
    assert [f["name"] for f in header["fields"]] == ["name", "account", "email", "phone", "dob", "zip", "city"]
    assert main(["edm", "stats", "--data-dir", str(acme.data_dir)]) == 0
    out = capsys.readouterr().out
    assert "acme: 2000 records" in out and "account:account*" in out
    assert acme.customers[0].account not in out and acme.customers[0].email not in out
    assert main(["edm", "stats", "--data-dir", str(acme.data_dir), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["records"] == 2000 and rows[0]["bytes"] > 0


def test_reindex_replaces_atomically_and_a_loaded_index_keeps_working(tmp_path):
    data = tmp_path / "data"
    first = index_client(data, "acme", 300, 1, tmp_path)
    key = client_key(data, "acme", create=False)
    loaded = EdmIndex(index_path(data, "acme"), key)
    assert loaded.header["records"] == 300
    export = tmp_path / "second.csv"
    write_export(export, 500, seed=2)
    assert main(["edm", "index", "--client", "acme", str(export), "--columns", COLUMNS, "--data-dir", str(data)]) == 0
    assert read_header(index_path(data, "acme"))["records"] == 500
    # The old map still reads its own (now unlinked) file: workers switch on their next start.
    assert loaded.header["records"] == 300 and len(loaded.prints) == 300
    assert first.customers
    assert not list((data / "edm").glob(".tmp-*"))


def test_index_built_with_another_key_is_refused(tmp_path):
    data = tmp_path / "data"
    index_client(data, "acme", 50, 1, tmp_path)
    with pytest.raises(EdmIndexError, match="another key"):
        EdmIndex(index_path(data, "acme"), os.urandom(32))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_damaged_index_is_a_clear_error(tmp_path, damage):
    data = tmp_path / "data"
    index_client(data, "acme", 50, 1, tmp_path)
    path = index_path(data, "acme")
    raw = path.read_bytes()
    path.write_bytes({"garbage": b"x" * 100, "truncated": raw[: len(raw) // 2], "empty": b""}[damage])
    with pytest.raises(EdmIndexError, match=str(path)):
        EdmIndex(path, client_key(data, "acme", create=False))


@pytest.mark.parametrize(("columns", "message"), [
    ("name,account=acount", "unknown field type"),
    ("name,missing=account", "no column 'missing'"),
    ("name,dob=date", "no identifying column"),
    ("name,name", "twice"),
])
def test_bad_column_mappings_are_usage_errors(tmp_path, capsys, columns, message):
    export = tmp_path / "e.csv"
    write_export(export, 5)
    assert main(["edm", "index", "--client", "acme", str(export), "--columns", columns,
                 "--data-dir", str(tmp_path / "d")]) == 2
    assert message in capsys.readouterr().err
    assert not index_path(tmp_path / "d", "acme").exists()


def test_bad_client_name_and_missing_file(tmp_path, capsys):
    assert main(["edm", "index", "--client", "../x", "nofile.csv", "--columns", "account",
                 "--data-dir", str(tmp_path)]) == 2
    assert "client name" in capsys.readouterr().err
    assert main(["edm", "index", "--client", "acme", str(tmp_path / "nofile.csv"), "--columns", "account",
                 "--data-dir", str(tmp_path)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_undecodable_export_names_the_line_not_the_bytes(tmp_path, capsys):
    export = tmp_path / "e.csv"
    export.write_bytes(b"name,account\n" + b"Ok Name,123456789\n" * 5000 + b"Bad \xff\xfe Name,987654321\n")
    assert main(["edm", "index", "--client", "acme", str(export), "--columns", "name,account",
                 "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "UnicodeDecodeError" in err or "not utf-8-sig" in err
    assert "987654321" not in err


def test_skipped_values_are_counted_not_shown(tmp_path, capsys):
    export = tmp_path / "e.csv"
    export.write_text("name,account,phone\nAnn Lee,123456789,not-a-phone\nBob Ray,,\n", encoding="utf-8")
    assert main(["edm", "index", "--client", "acme", str(export), "--columns", "name,account,phone",
                 "--data-dir", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "1 records" in out and "1 rows skipped" in out and "column 'phone'" in out
    assert "not-a-phone" not in out


def test_fifty_thousand_records_build_and_load_quickly(tmp_path):
    """The bounded version of the million-record benchmark (dlp bench edm)."""
    export = tmp_path / "big.csv"
    write_export(export, 50_000, seed=3)
    data = tmp_path / "data"
    started = time.monotonic()
    assert main(["edm", "index", "--client", "big", str(export), "--columns", COLUMNS, "--data-dir", str(data)]) == 0
    built = time.monotonic() - started
    started = time.monotonic()
    index = EdmIndex(index_path(data, "big"), client_key(data, "big", create=False))
    loaded = time.monotonic() - started
    assert index.header["records"] == 50_000
    assert built < 30 and loaded < 0.5, (built, loaded)
    # Compact: 7 keys a record at 9 bytes (its own keys), 3 identifying keys at 13 bytes (sorted), offset and
    # fingerprint, plus the seed and word filters.
    assert index_path(data, "big").stat().st_size < 50_000 * (7 * 9 + 3 * 13 + 12) + 1_000_000


def test_seed_filter_holds_every_identifying_key_and_rejects_others(acme):
    index = EdmIndex(index_path(acme.data_dir, "acme"), client_key(acme.data_dir, "acme", create=False))
    assert index.identifying[index.field_of].all()  # the sorted section holds identifying keys only
    assert all(k in index.seeds for k in index.keys.tolist())
    identifying = index.identifying[index.record_fields]
    others = index.record_keys[~identifying].tolist()  # names, dates, postcodes, cities: not identifying
    assert others and sum(k in index.seeds for k in others) < 0.05 * len(others)


def test_each_record_holds_its_own_keys(acme):
    """The per-record section: every key of a record, and every identifying key of the sorted section
    among the keys of the record it names."""
    index = EdmIndex(index_path(acme.data_dir, "acme"), client_key(acme.data_dir, "acme", create=False))
    assert int(index.record_start[-1]) == len(index.record_keys) == index.header["postings"] == 2000 * 7
    for i in range(0, len(index.keys), 97):
        keys, fields = index.record(int(index.records[i]))
        assert (int(index.keys[i]), int(index.field_of[i])) in set(zip(keys, fields, strict=True))
    keys, fields = index.record(0)
    assert sorted(fields) == list(range(7))


def _as_older_format(path: Path, version: int) -> None:
    """Rewrite an index's header as an earlier release wrote it (same arrays)."""
    raw = path.read_bytes()
    header = read_header(path)
    start = (16 + int.from_bytes(raw[8:16], "little") + 7) & ~7
    header["format"] = version
    blob = json.dumps(header).encode()
    pad = b"\0" * (((16 + len(blob) + 7) & ~7) - 16 - len(blob))
    path.write_bytes(raw[:8] + len(blob).to_bytes(8, "little") + blob + pad + raw[start:])


@pytest.mark.parametrize("version", [1, 2])
def test_an_index_of_an_earlier_format_asks_to_reindex(tmp_path, capsys, version):
    """Format 3 changed the hash and the sections: an older index is refused with the command to run,
    at load (the detector, so `dlp serve` and `dlp scan` stop with it) and in `dlp edm stats`."""
    from detectors.customer_record import CustomerRecordDetector

    indexed = index_client(tmp_path / "data", "old", 300, 5, tmp_path)
    path = index_path(indexed.data_dir, "old")
    _as_older_format(path, version)
    expected = f"index format {version} was built by an earlier release.*re-run `dlp edm index --client old"
    with pytest.raises(EdmIndexError, match=expected):
        CustomerRecordDetector({"data_dir": str(indexed.data_dir)})
    with pytest.raises(EdmIndexError, match=str(path)):
        EdmIndex(path, client_key(indexed.data_dir, "old", create=False))
    assert main(["edm", "stats", "--data-dir", str(indexed.data_dir)]) == 0
    assert "old: UNUSABLE" in capsys.readouterr().out
    # Re-indexing (same key) makes it usable again.
    assert main(["edm", "index", "--client", "old", str(indexed.export), "--columns", COLUMNS,
                 "--data-dir", str(indexed.data_dir)]) == 0
    c = indexed.customers[3]
    found = CustomerRecordDetector({"data_dir": str(indexed.data_dir)}).scan(f"{c.name}, acct {c.account}")
    assert [m.label for m in found] == ["old: account+name"]


def test_a_newer_format_is_refused(tmp_path):
    indexed = index_client(tmp_path / "data", "new", 20, 5, tmp_path)
    path = index_path(indexed.data_dir, "new")
    _as_older_format(path, 99)
    with pytest.raises(EdmIndexError, match="unsupported index format 99"):
        EdmIndex(path, client_key(indexed.data_dir, "new", create=False))
