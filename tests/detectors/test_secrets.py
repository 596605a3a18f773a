"""Secrets: payload, should_flag, in detect-secrets style; label is the kind."""

from __future__ import annotations

import pytest

from detectors.secrets import shannon_entropy
from tests.detectors.conftest import found

JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
       "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U")
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7b1\nq8Zp\n-----END RSA PRIVATE KEY-----"

CASES = [
    (PEM, "private_key"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE\n-----END OPENSSH PRIVATE KEY-----", "private_key"),
    ("key AKIAIOSFODNN7EXAMPLE", "aws_access_key_id"),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key"),
    ("ghp_" + "A1b2C3d4E5" * 3 + "F6g7H8", "github_token"),
    ("github_pat_" + "11ABCDEFG0" * 8 + "xy", "github_token"),
    ("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "slack_token"),
    ("sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", "stripe_key"),
    ("AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", "google_api_key"),
    (JWT, "jwt"),
    ("password = Tr0ub4dor&3x", "password"),
    ('"api_key": "9f8e7d6c5b4a39281706f5e4d3c2b1a0"', "generic_secret"),
]
NEGATIVES = [
    "password: ********",
    "password = <password>",
    "password: forgotten",  # a word, not a secret
    "token=${TOKEN}",
    "eyJub3QiOiJqd3QifQ.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",  # header has no alg
    "ghp_short",
    "AKIA1234",
    "sk_test_4eC39HqLyjWDarjtT1zdp7dc",  # Stripe test keys are not secrets
]


@pytest.mark.parametrize(("payload", "kind"), CASES)
def test_secret_found(engine, payload, kind):
    hits = found(engine, payload, "SECRET")
    assert kind in {h.label for h in hits}


@pytest.mark.parametrize("payload", NEGATIVES)
def test_not_a_secret(engine, payload):
    assert found(engine, payload, "SECRET") == []


def test_aws_secret_next_to_key_id(engine):
    text = "id AKIAIOSFODNN7EXAMPLE secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    labels = {h.label for h in found(engine, text, "SECRET")}
    assert labels == {"aws_access_key_id", "aws_secret_access_key"}


def test_pem_block_spans_to_end_marker(engine):
    text = "here:\n" + PEM + "\nbye"
    (hit,) = found(engine, text, "SECRET")
    assert text[hit.start : hit.end] == PEM


def test_entropy():
    assert shannon_entropy("aaaa") == 0
    assert shannon_entropy("abcd") == 2


def test_assignment_starting_inside_another_value_is_its_own_secret(engine):
    # Hyperscan reports assignments where they end; one that begins inside the previous value is found too.
    found = {(m.label, m.value) for m in engine.scan('password=Wq7Zx9LmApiKey="CU8kz1QpRt" ok')}
    assert found == {("password", "Wq7Zx9LmApiKey="), ("generic_secret", "CU8kz1QpRt")}


@pytest.mark.parametrize("gap", ["=", " = ", "\t:\t", '" => "'])
def test_assignment_start_is_found_behind_a_long_value(engine, gap):
    value = "Zx8kQ2mWp7Lr" * 50  # 600 characters: the start is found however far back the keyword is
    text = f'note: client_secret{gap}{value} end'
    (m,) = engine.scan(text)
    assert m.value == value and text[m.start : m.end] == value


def test_fine_grained_token_at_the_very_end(engine):
    token = "github_pat_" + "Ab1_" * 21
    (m,) = engine.scan(f"ci uses {token}")
    assert m.value == token and m.label == "github_token"
