"""E-mail addresses, phone numbers and IP addresses."""

from __future__ import annotations

import pytest

from detectors.ip import IpDetector
from detectors.phone import PhoneDetector
from tests.detectors.conftest import found


@pytest.mark.parametrize(("text", "value"), [
    ("mail John.Doe@Example.COM.", "john.doe@example.com"),
    ("<a.b+tag@mail.example.org>", "a.b+tag@mail.example.org"),
    ("x@y.io", "x@y.io"),
])
def test_email(engine, text, value):
    assert [m.value for m in found(engine, text, "EMAIL_ADDRESS")] == [value]


@pytest.mark.parametrize("text", ["user@localhost", "@example.com", "a..b@example.com", "name@example.c0m"])
def test_not_email(engine, text):
    assert found(engine, text, "EMAIL_ADDRESS", min_score=0.0) == []


def test_email_offsets(engine):
    text = "Contact: Maria.Lopez7@acme.co.uk today"
    (hit,) = found(engine, text, "EMAIL_ADDRESS")
    assert text[hit.start : hit.end] == "Maria.Lopez7@acme.co.uk"


@pytest.mark.parametrize(("text", "value"), [
    ("call me at (415) 555-2671", "+14155552671"),
    ("Phone: 415-555-2671", "+14155552671"),
    ("tel 4155552671", "+14155552671"),
    ("+44 20 7946 0958", "+442079460958"),
    ("mobile 020 7946 0958", "+442079460958"),
    ("Rufnummer +49 30 901820", "+4930901820"),
    ("appelez le 01 23 45 67 89", "+33123456789"),
])
def test_phone(engine, text, value):
    assert [m.value for m in found(engine, text, "PHONE_NUMBER")] == [value]


@pytest.mark.parametrize("text", [
    "Invoice 415-555-2671 is overdue",  # phone-shaped invoice number
    "order 4155552671",  # bare digits without a phone word
    "Case 85748230 was reopened",
    "Logged at 2024-05-11 20:05:51 UTC",
    "Customer id 145305175 in the CRM",
    "The balance is $83,613.63 today",
])
def test_not_phone(engine, text):
    assert found(engine, text, "PHONE_NUMBER") == []


def test_phone_regions_are_configurable():
    assert PhoneDetector({"regions": ["US"]}).scan("ruf an: 030 901820") == []
    assert PhoneDetector({"regions": ["DE"]}).scan("ruf an: 030 901820")


@pytest.mark.parametrize(("text", "should_flag"), [
    ("server 8.8.8.8 answered", True),
    ("via 2001:4860:4860::8888 route", True),
    ("lan 10.0.0.1 and 192.168.1.20", False),  # private ranges are skipped by default
    ("version 2.4.1.7 installed", False),
    ("std::vector at 10:30:00", False),
    ("999.1.1.1", False),
])
def test_ip(engine, text, should_flag):
    assert bool(found(engine, text, "IP_ADDRESS")) == should_flag


def test_private_ips_on_request():
    assert IpDetector({"include_private": True}).scan("lan 10.0.0.1")
