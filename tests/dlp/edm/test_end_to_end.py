"""Customer records found by the real Inspector (extraction + detection + policy) and by `dlp scan`, in
text, CSV, XLSX and zipped attachments, with the values written differently from the export."""

from __future__ import annotations

import io
import json
import zipfile
from email.message import EmailMessage

import openpyxl
import pytest

from dlp.cli import main
from dlp.config import load_settings
from dlp.edm.synthetic import Customer
from dlp.inspect import Inspector
from dlp.model import Action, Channel, ContentKind, Envelope, Message


def _reformatted(c: Customer) -> tuple[str, str]:
    """The customer as an agent might paste it: "LAST, First" and the account grouped with dashes."""
    first, last = c.name.split(" ", 1)
    return f"{last.upper()}, {first}", f"{c.account[:3]}-{c.account[3:6]}-{c.account[6:]}"


def _csv(customers: list[Customer]) -> bytes:
    lines = ["Customer;Account;Note"] + [";".join((*_reformatted(c), "callback")) for c in customers]
    return ("\r\n".join(lines) + "\r\n").encode()


def _xlsx(customers: list[Customer]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Client name", "Acct", "Phone"])
    for c in customers:
        sheet.append([c.name, int(c.account), c.phone])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _zip(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, data)
    return out.getvalue()


def _email(body: str, attachment: tuple[str, bytes, str] | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = "agent7@callcenter.example"
    msg["To"] = "friend@elsewhere.example"
    msg["Subject"] = "the list"
    msg.set_content(body)
    if attachment:
        name, data, mime = attachment
        maintype, subtype = mime.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


@pytest.fixture(scope="module")
def inspector(acme) -> Inspector:
    return Inspector.from_settings(load_settings(None, {"data_dir": str(acme.data_dir)}))


def _records(verdict) -> list:
    return [f for f in verdict.findings if f.entity == "CUSTOMER_RECORD"]


@pytest.mark.parametrize("carrier", ["body", "csv", "xlsx", "zip-csv", "zip-xlsx"])
def test_three_records_are_found_in_every_carrier(acme, inspector, carrier):
    three = acme.customers[10:13]
    if carrier == "body":
        raw = _email("Hi,\n" + "\n".join(" - ".join(_reformatted(c)) for c in three) + "\nthanks")
    elif carrier == "csv":
        raw = _email("see attached", ("callbacks.csv", _csv(three), "text/csv"))
    elif carrier == "xlsx":
        raw = _email("see attached", ("callbacks.xlsx", _xlsx(three), "application/octet-stream"))
    elif carrier == "zip-csv":
        raw = _email("see attached", ("export.zip", _zip("callbacks.csv", _csv(three)), "application/zip"))
    else:
        raw = _email("see attached", ("export.zip", _zip("book.xlsx", _xlsx(three)), "application/zip"))
    message = Message(Channel.SMTP, raw, ContentKind.EMAIL,
                      Envelope(sender="agent7@callcenter.example", recipients=("friend@elsewhere.example",)))
    verdict = inspector.inspect(message)
    records = _records(verdict)
    assert len(records) == 3, [(f.entity, f.label, f.location) for f in verdict.findings]
    assert len({f.value_id for f in records}) == 3
    assert verdict.action is Action.QUARANTINE and "sensitive-data-leaving" in verdict.rules
    for f in records:
        assert f.label.startswith("acme: ") and "account" in f.label
        assert f.masked == f.label  # masked to the label: never a value
        for c in three:
            assert c.account not in f.context
    if carrier.startswith("zip"):
        assert all("export.zip" in f.location for f in records)


def test_context_of_adjacent_records_shows_no_name(acme, inspector):
    three = acme.customers[10:13]
    raw = _email("see attached", ("callbacks.xlsx", _xlsx(three), "application/octet-stream"))
    verdict = inspector.inspect(Message(Channel.SMTP, raw, ContentKind.EMAIL))
    for f in _records(verdict):
        for c in three:
            assert c.name.split()[0] not in f.context and c.name.split()[0][2:] not in f.context


def test_names_alone_and_accounts_alone_pass(acme, inspector):
    names = "\n".join(c.name for c in acme.customers[:20])
    accounts = "\n\n\n\n".join("x" * 400 + c.account for c in acme.customers[:3])
    for body in (names, accounts):
        verdict = inspector.inspect(Message(Channel.SMTP, _email(body), ContentKind.EMAIL))
        assert _records(verdict) == []


def test_dlp_scan_quarantines_a_zipped_csv_with_three_customers(acme, tmp_path, capsys):
    """The issue's acceptance test: an operator indexed the export (fixture, via `dlp edm index`)."""
    eml = tmp_path / "outbound.eml"
    eml.write_bytes(_email("Here you go", ("customers.zip", _zip("customers.csv", _csv(acme.customers[40:43])),
                                            "application/zip")))
    assert main(["scan", str(eml), "--data-dir", str(acme.data_dir), "--format", "json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["action"] == "quarantine"
    records = [f for f in result["findings"] if f["entity"] == "CUSTOMER_RECORD"]
    assert len(records) == 3
    assert {f["masked"] for f in records} == {"acme: account+name"}
    out = json.dumps(result)
    for c in acme.customers[40:43]:
        assert c.account not in out and c.account[:3] + "-" not in out
