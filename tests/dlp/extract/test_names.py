"""Names taken from the content (attachment file names, archive members) are scanned as text and never
shown in a location with a value in clear (locations reach incidents, alerts and the console)."""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage

from dlp.config import Limits
from dlp.extract import extract
from dlp.inspect import Inspector
from dlp.model import Action, Channel, ContentKind, Message
from dlp.policy import load_policy

PAN = "4111 1111 1111 1111"


def mail_with(filename: str, payload: bytes) -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "a@cc.example", "b@out.example", "files"
    m.set_content("see attached")
    m.add_attachment(payload, maintype="application", subtype="octet-stream", filename=filename)
    return bytes(m)


def zipped(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(name, data)
    return buf.getvalue()


def test_card_in_an_attachment_name_is_found_and_not_shown() -> None:
    raw = mail_with(f"{PAN}.txt", b"nothing here")
    verdict = Inspector(load_policy(), b"k" * 32, Limits()).inspect(Message(Channel.SMTP, raw, ContentKind.EMAIL))
    assert verdict.action is Action.QUARANTINE
    assert {f.entity for f in verdict.findings} == {"CREDIT_CARD"}
    for f in verdict.findings:
        assert "4111" not in f.location and "1111" not in f.location, f.location


def test_card_in_a_zip_member_name_is_found_and_not_shown() -> None:
    raw = mail_with("notes.zip", zipped(f"cust_{PAN.replace(' ', '_')} ssn 078-05-1120.txt", b"hello"))
    extraction = extract(raw, ContentKind.EMAIL, Limits())
    assert any(p.location.endswith("/name") and "4111" in p.text for p in extraction.parts)
    assert all("4111" not in p.location and "078-05" not in p.location for p in extraction.parts)


def test_plain_names_stay_readable_and_add_no_parts() -> None:
    raw = mail_with("report_2026.zip", zipped("clients.csv", b"a,b\n1,2\n"))
    locations = [p.location for p in extract(raw, ContentKind.EMAIL, Limits()).parts]
    assert "attachment[1]:report_2026.zip/clients.csv" in locations
    assert not [loc for loc in locations if loc.endswith("/name")]


def test_values_in_xml_attributes_are_inspected() -> None:
    raw = mail_with("export.xml", b'<?xml version="1.0"?><rows><c v="4111 1111 1111 1111" n=\'Jane &amp; Co\'/></rows>')
    parts = {p.location: p.text for p in extract(raw, ContentKind.EMAIL, Limits()).parts}
    assert parts["attachment[1]:export.xml/attributes"].splitlines() == ["1.0", PAN, "Jane & Co"]
