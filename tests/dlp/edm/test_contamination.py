"""Cross-client contamination: one client's customer record sent toward another client's domain."""

from __future__ import annotations

import asyncio

import pytest

from dlp.config import load_settings
from dlp.inspect import InspectionPool
from dlp.model import Action, Channel, ContentKind, Envelope, Message, Severity
from dlp.pipeline import Pipeline
from dlp.windows import Escalations

from .conftest import index_client

POLICY = """
destinations:
  client_systems:
    domains: [acme.example, globex.example]
edm:
  clients:
    acme: {domains: [acme.example]}
    globex: {domains: [globex.example, "*.globex.example"]}
"""


@pytest.fixture(scope="module")
def two_clients(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("edm-two")
    data = tmp / "data"
    acme = index_client(data, "acme", 500, 11, tmp)
    globex = index_client(data, "globex", 500, 12, tmp)
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    settings = load_settings(None, {"data_dir": str(data), "inspection.workers": -1,
                                    "inspection.policy_file": str(policy)})
    return settings, acme, globex


def _run(settings, message: Message):
    escalations = Escalations.from_settings(settings)
    try:
        return asyncio.run(Pipeline(InspectionPool(settings), None, None, escalations).inspect(message))
    finally:
        escalations.close()


def _mail(text: str, to: str) -> Message:
    raw = f"From: agent@callcenter.example\r\nTo: {to}\r\nSubject: x\r\n\r\n{text}\r\n".encode()
    return Message(Channel.SMTP, raw, ContentKind.EMAIL, Envelope(sender="agent@callcenter.example",
                                                                   recipients=(to,)))


def test_own_client_domain_passes(two_clients):
    settings, acme, _ = two_clients
    c = acme.customers[3]
    verdict = _run(settings, _mail(f"{c.name} {c.account}", "crm@acme.example"))
    assert verdict.action is Action.PASS
    assert [f.label for f in verdict.findings if f.entity == "CUSTOMER_RECORD"] == ["acme: account+name"]


def test_record_of_one_client_to_another_client_is_contamination(two_clients):
    settings, acme, _ = two_clients
    c = acme.customers[3]
    verdict = _run(settings, _mail(f"{c.name} {c.account}", "ops@globex.example"))
    assert verdict.action is Action.QUARANTINE and verdict.severity is Severity.CRITICAL
    assert verdict.rules == ("edm-contamination",) and verdict.incident_id
    (f,) = [f for f in verdict.findings if f.entity == "CUSTOMER_RECORD"]
    assert f.label == f.masked == "contamination: acme -> globex (account+name)"


def test_web_upload_to_another_client_is_blocked(two_clients):
    settings, _, globex = two_clients
    c = globex.customers[5]
    raw = (f"POST /upload HTTP/1.1\r\nHost: portal.acme.example\r\nContent-Type: text/plain\r\n"
           f"Content-Length: {len(c.email) + len(c.phone) + 1}\r\n\r\n{c.email} {c.phone}").encode()
    message = Message(Channel.WEB, raw, ContentKind.HTTP, Envelope(destination="https://acme.example/upload"))
    verdict = _run(settings, message)
    assert verdict.action is Action.BLOCK and "edm-contamination" in verdict.rules
    labels = [f.label for f in verdict.findings if f.entity == "CUSTOMER_RECORD"]
    assert labels == ["contamination: globex -> acme (email+phone)"]


def test_wildcard_domains_and_mixed_recipients(two_clients):
    settings, acme, globex = two_clients
    a, g = acme.customers[7], globex.customers[7]
    raw = (f"From: agent@callcenter.example\r\nTo: x@eu.globex.example\r\nSubject: x\r\n\r\n"
           f"{a.name} {a.account}\r\n\r\n{'.' * 400}\r\n{g.name} {g.account}\r\n").encode()
    message = Message(Channel.SMTP, raw, ContentKind.EMAIL,
                      Envelope(sender="agent@callcenter.example", recipients=("x@eu.globex.example",)))
    verdict = _run(settings, message)
    labels = sorted(f.label for f in verdict.findings if f.entity == "CUSTOMER_RECORD")
    assert labels == ["contamination: acme -> globex (account+name)", "globex: account+name"]
    assert verdict.action is Action.QUARANTINE
