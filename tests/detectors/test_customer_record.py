"""CUSTOMER_RECORD: a payload table of records written in other formats, and hard negatives."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.base import build_detectors
from detectors.customer_record import CustomerRecordDetector
from dlp.edm.hashing import client_key
from dlp.edm.index import Field, IndexBuilder, index_path
from dlp.edm.normalize import FieldOptions, FieldType

FIELDS = [
    Field("name", FieldType.NAME, False), Field("account", FieldType.ACCOUNT, True),
    Field("email", FieldType.EMAIL, True), Field("phone", FieldType.PHONE, True),
    Field("dob", FieldType.DATE, False), Field("zip", FieldType.POSTCODE, False), Field("city", FieldType.TEXT, False),
]
ALICE = ["Alice Zimmerman", "7300451289", "alice.z@mail.example", "(415) 555-0134", "1984-07-09", "94110",
         "Springfield"]
BOB = ["Bob O'Neill", "ACC-00981234", "bob@mail.example", "+44 20 7946 0958", "02/29/1988", "SW1A 1AA", "Springfield"]


def _common_rows(n: int) -> list[list[str]]:
    # Many customers called John Smith in Springfield: those values alone must never match.
    return [["John Smith", f"{55_000_000 + i}", f"js{i}@mail.example", f"(212) 555-{i:04d}", "1990-01-01",
             "10001", "Springfield"] for i in range(n)]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("edm-detector")
    builder = IndexBuilder("acme", client_key(data, "acme", create=True), FIELDS, FieldOptions("US"))
    builder.add_all([ALICE, BOB, *_common_rows(300)])
    builder.write(index_path(data, "acme"))
    other = IndexBuilder("globex", client_key(data, "globex", create=True), FIELDS[:3], FieldOptions("US"))
    other.add_all([["Carol Danvers", "31415926535", "carol@globex-customer.example"]])
    other.write(index_path(data, "globex"))
    return data


@pytest.fixture(scope="module")
def detector(data_dir) -> CustomerRecordDetector:
    return CustomerRecordDetector({"data_dir": str(data_dir)})


POSITIVES = [
    ("Alice Zimmerman, account 7300451289", "acme: account+name"),
    ("ZIMMERMAN, ALICE — acct 7300-451-289", "acme: account+name"),
    ("customer: alice zimmerman\nemail: ALICE.Z@MAIL.EXAMPLE", "acme: email+name"),
    ("Call Alice Zimmerman on +1 415 555 0134", "acme: name+phone"),
    ("415.555.0134 / 7300451289", "acme: account+phone"),
    ("Alice Zimmerman born July 9, 1984, acct 7300451289", "acme: account+date+name"),
    ("Bob O'Neill 00981234", "acme: account+name"),
    ("Mr Bob ONeill, phone +44 (0)20 7946 0958", "acme: name+phone"),
    ("Mr Bob ONeill, phone 0044 20 7946 0958", "acme: name+phone"),
    ("bob oneill\tSW1A1AA\t00981234", "acme: account+name+postcode"),
    ("Ａｌｉｃｅ Ｚｉｍｍｅｒｍａｎ ７３００４５１２８９", "acme: account+name"),  # full-width forms
    ("Alice,Zimmerman,7300451289,Springfield", "acme: account+name+text"),
    ("Carol Danvers 31415926535", "globex: account+name"),
]


@pytest.mark.parametrize(("text", "label"), POSITIVES)
def test_records_in_other_formats_are_found(detector, text, label):
    found = detector.scan(text)
    assert [m.label for m in found] == [label]
    m = found[0]
    assert m.entity == "CUSTOMER_RECORD" and m.detector == "customer_record" and m.score >= 0.85
    assert 0 <= m.start < m.end <= len(text)


NEGATIVES = [
    "Alice Zimmerman called about her bill",  # the name alone
    "account 7300451289",  # one identifying field alone
    "John Smith from Springfield, 10001",  # common values only: name, city, postcode
    "John Smith, Springfield, born 1990-01-01",  # three common fields, none identifying
    "Alice Zimmerman " + "lorem ipsum " * 40 + "7300451289",  # further apart than the window
    "Alice Zimmerman, acct 7300451288",  # one digit off
    "Alice Zimmerman 0134",  # numbers under five digits are ignored
    "Carol Danvers 7300451289",  # fields of two different records
    "Alice Zimmerman 31415926535",  # a name of one client, an account of another
    "",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_hard_negatives(detector, text):
    assert detector.scan(text) == []


def test_a_common_value_still_corroborates_an_identifying_one(detector):
    found = detector.scan("John Smith 55000042")
    assert [m.label for m in found] == ["acme: account+name"]


def test_value_is_a_fingerprint_and_label_holds_no_value(detector):
    (m,) = detector.scan("Alice Zimmerman, account 7300451289")
    assert m.value.startswith("acme:") and "7300451289" not in m.value and "alice" not in m.value.lower()
    assert "7300451289" not in m.label and "zimmerman" not in m.label.lower()
    # The same record written differently has the same fingerprint (and so the same value_id).
    (again,) = detector.scan("alice.z@mail.example (415) 555-0134")
    assert again.value == m.value


def test_each_record_once_per_text_and_several_records(detector):
    text = "Alice Zimmerman 7300451289\nBob O'Neill 00981234\nAlice Zimmerman 7300451289\n"
    assert sorted(m.label for m in detector.scan(text)) == ["acme: account+name"] * 2
    assert len({m.value for m in detector.scan(text)}) == 2


def test_min_fields_per_client_from_the_policy(data_dir):
    strict = CustomerRecordDetector({"data_dir": str(data_dir), "edm": {"clients": {"acme": {"min_fields": 3}}}})
    assert strict.scan("Alice Zimmerman, account 7300451289") == []
    assert len(strict.scan("Alice Zimmerman, account 7300451289, alice.z@mail.example")) == 1
    assert len(strict.scan("Carol Danvers 31415926535")) == 1  # globex keeps the default


def test_window_from_the_policy(data_dir):
    narrow = CustomerRecordDetector({"data_dir": str(data_dir), "edm": {"window_chars": 10}})
    assert narrow.scan("Alice Zimmerman, our customer since long ago, account 7300451289") == []


def test_without_an_index_the_detector_is_a_no_op(tmp_path):
    assert CustomerRecordDetector({"data_dir": str(tmp_path)}).scan("Alice Zimmerman 7300451289") == []
    assert CustomerRecordDetector({}).scan("Alice Zimmerman 7300451289") == []


def test_registered_and_run_by_the_engine(data_dir):
    engine = build_detectors({"customer_record": {"data_dir": str(data_dir)}})
    found = [m for m in engine.scan("Card holder Alice Zimmerman 7300451289") if m.entity == "CUSTOMER_RECORD"]
    assert [m.label for m in found] == ["acme: account+name"]


def test_engine_path_shares_the_number_runs_and_maps_offsets(data_dir):
    engine = build_detectors({"customer_record": {"data_dir": str(data_dir)}})
    assert engine.detectors[[d.name for d in engine.detectors].index("customer_record")].patterns()
    text = "Ｚｉｍｍｅｒｍａｎ, Ａｌｉｃｅ: ７３００-４５１-２８９ thanks"  # full-width: offsets map back
    (m,) = [m for m in engine.scan(text) if m.entity == "CUSTOMER_RECORD"]
    assert m.label == "acme: account+name" and text[m.start:m.end].startswith("Ｚｉｍ") and text[m.end - 1] == "９"
    # No number run in the text at all (the pass reports nothing): the e-mail address still seeds.
    found = [m for m in engine.scan("alice zimmerman <ALICE.Z@mail.example>") if m.entity == "CUSTOMER_RECORD"]
    assert [m.label for m in found] == ["acme: email+name"]


def test_short_indexed_numbers_are_cut_by_the_detector_itself(tmp_path):
    # Accounts of six digits are shorter than the engine's shared number runs (seven digits).
    builder = IndexBuilder("short", client_key(tmp_path, "short", create=True), FIELDS[:2], FieldOptions("US"))
    builder.add_all([["Dana Whitfield", "482913"]])
    builder.write(index_path(tmp_path, "short"))
    detector = CustomerRecordDetector({"data_dir": str(tmp_path)})
    assert detector.patterns() == []  # the engine calls scan() instead
    assert [m.label for m in detector.scan("Whitfield, Dana 482-913")] == ["short: account+name"]
    engine = build_detectors({"customer_record": {"data_dir": str(tmp_path)}})
    found = [m for m in engine.scan("Dana Whitfield acct 482913") if m.entity == "CUSTOMER_RECORD"]
    assert [m.label for m in found] == ["short: account+name"]


def test_an_identifying_value_shared_by_many_records_proposes_none(tmp_path):
    """A switchboard number on 100 records is no seed (more than 64 records), though it still counts
    for a record another value proposed."""
    rows = [[f"Person{i} Example", f"{70_000_000 + i}", "", "(650) 555-0100", "", "", ""] for i in range(100)]
    builder = IndexBuilder("shared", client_key(tmp_path, "shared", create=True), FIELDS, FieldOptions("US"))
    builder.add_all(rows)
    builder.write(index_path(tmp_path, "shared"))
    detector = CustomerRecordDetector({"data_dir": str(tmp_path)})
    assert detector.scan("Person7 Example, call (650) 555-0100") == []
    assert [m.label for m in detector.scan("Person7 Example 70000007, call (650) 555-0100")] == [
        "shared: account+name+phone"]


def test_engine_and_standalone_paths_agree_on_the_payload(data_dir):
    """The engine path (shared number runs, spans cut only for seeds) and the detector's own cut give the
    same records, labels and spans for every positive."""
    engine = build_detectors({"customer_record": {"data_dir": str(data_dir)}})
    alone = CustomerRecordDetector({"data_dir": str(data_dir)})
    for text in [t for t, _ in POSITIVES] + NEGATIVES:
        in_engine = [(m.start, m.end, m.label, m.value) for m in engine.scan(text) if m.entity == "CUSTOMER_RECORD"]
        assert in_engine == [(m.start, m.end, m.label, m.value) for m in alone.scan(text)], text
