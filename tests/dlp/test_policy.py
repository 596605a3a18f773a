"""Policy: loading, merging, validation with line numbers, and evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlp.model import Action, Channel, Envelope, Finding, Message, Reason, Severity, Uninspected
from dlp.policy import PolicyError, load_policy


def finding(entity: str, value_id: str, label: str = "", score: float = 0.9) -> Finding:
    return Finding(entity, "test", score, "body", 0, 4, "****", value_id, label)


def message(channel: Channel = Channel.SMTP, recipients: tuple[str, ...] = ("x@outside.example",),
            destination: str = "") -> Message:
    return Message(channel, b"", envelope=Envelope(sender="agent@callcenter.example", recipients=recipients,
                                                   destination=destination))


def test_shipped_policy_quarantines_cards_for_email_and_blocks_for_web() -> None:
    policy = load_policy()
    card = [finding("CREDIT_CARD", "v1")]
    assert policy.evaluate(message(), card, ()).action is Action.QUARANTINE
    web = message(Channel.WEB, (), "https://paste.example/new")
    ev = policy.evaluate(web, card, ())
    assert ev.action is Action.BLOCK
    assert ev.rules == ("sensitive-data-leaving",)
    assert ev.severity is Severity.HIGH


def test_low_score_findings_do_not_count() -> None:
    policy = load_policy()
    assert policy.evaluate(message(), [finding("CREDIT_CARD", "v1", score=0.2)], ()).action is Action.PASS


def test_contact_threshold_counts_distinct_values() -> None:
    policy = load_policy()
    nine = [finding("EMAIL_ADDRESS", f"e{i}") for i in range(9)]
    assert policy.evaluate(message(), nine + nine, ()).action is Action.PASS
    ten = [*nine, finding("PHONE_NUMBER", "p1")]
    ev = policy.evaluate(message(), ten, ())
    assert ev.action is Action.ALERT and ev.rules == ("bulk-contact-data",)


def test_keyword_list_is_addressed_by_label() -> None:
    policy = load_policy()
    marker = [finding("KEYWORD", "k1", label="confidential_markers")]
    assert policy.evaluate(message(), marker, ()).action is Action.ALERT
    other = [finding("KEYWORD", "k1", label="some_other_list")]
    assert policy.evaluate(message(), other, ()).action is Action.PASS


def test_uninspected_content_is_sensitive_by_default() -> None:
    policy = load_policy()
    enc = [Uninspected("attachment[1]:a.zip", Reason.ENCRYPTED_ARCHIVE)]
    ev = policy.evaluate(message(), [], enc)
    assert ev.action is Action.QUARANTINE and ev.rules == ("uninspected:encrypted_archive",)
    image = [Uninspected("attachment[1]:logo.png", Reason.NOT_INSPECTED_IMAGE)]
    assert policy.evaluate(message(), [], image).action is Action.PASS


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text(text)
    return p


def test_allow_list_needs_every_recipient(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, """
destinations:
  client_systems:
    domains: [crm.client.example, "*.billing.client.example"]
    recipients: [cards@client.example]
"""))
    card = [finding("CREDIT_CARD", "v1")]
    assert policy.evaluate(message(recipients=("cards@client.example",)), card, ()).action is Action.PASS
    assert policy.evaluate(message(recipients=("a@eu.billing.client.example",)), card, ()).action is Action.PASS
    mixed = message(recipients=("cards@client.example", "friend@gmail.example"))
    assert policy.evaluate(mixed, card, ()).action is Action.QUARANTINE
    crm = message(Channel.WEB, (), "https://crm.client.example:443/api/cards")
    assert policy.evaluate(crm, card, ()).action is Action.PASS
    lookalike = message(Channel.WEB, (), "https://crm.client.example.evil.example/api")
    assert policy.evaluate(lookalike, card, ()).action is Action.BLOCK


def test_override_replaces_rule_by_name_and_can_disable(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, """
rules:
  - name: confidentiality-marker
    classes: [confidential_marker]
    action: quarantine
    severity: high
  - name: bulk-contact-data
    classes: [contact]
    enabled: false
"""))
    names = [r.name for r in policy.rules]
    assert "bulk-contact-data" not in names
    marker = [finding("KEYWORD", "k1", label="confidential_markers")]
    assert policy.evaluate(message(), marker, ()).action is Action.QUARANTINE


def test_monitor_mode_per_rule_records_but_does_not_enforce(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, """
rules:
  - name: sensitive-data-leaving
    classes: [payment_card]
    action: {smtp: quarantine, default: block}
    severity: high
    mode: monitor
"""))
    ev = policy.evaluate(message(), [finding("CREDIT_CARD", "v1")], ())
    assert ev.action is Action.QUARANTINE
    assert ev.enforced_action is Action.ALERT
    assert ev.monitor_only


def test_global_monitor_channel(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, "monitor: {channels: [web]}\n"))
    web = message(Channel.WEB, (), "https://x.example/")
    ev = policy.evaluate(web, [finding("CREDIT_CARD", "v1")], ())
    assert (ev.action, ev.enforced_action) == (Action.BLOCK, Action.ALERT)
    ev = policy.evaluate(message(), [finding("CREDIT_CARD", "v1")], ())
    assert (ev.action, ev.enforced_action) == (Action.QUARANTINE, Action.QUARANTINE)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("rules:\n  - name: x\n    classes: [nope]\n", 3, "unknown class 'nope'"),
        ("rules:\n  - name: x\n    classes: [contact]\n    action: explode\n", 4, "unknown action 'explode'"),
        ("bogus: 1\n", 1, "unknown section 'bogus'"),
        ("rules:\n  - name: x\n    classes: [contact]\n    severity: huge\n", 4, "unknown severity"),
        ("rules:\n  - name: x\n    classes: [contact]\n    colour: red\n", 4, "unknown rule key 'colour'"),
        ("data_classes:\n  a: {entities: []}\n", 2, "non-empty list of entities"),
        ("rules: [\n", 2, "not valid YAML"),
        ("monitor: {}\nmonitor: {}\n", 2, "duplicate key"),
    ],
)
def test_errors_name_the_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert str(err.value).startswith(f"{path}:{line}:"), str(err.value)
    assert words in str(err.value)


def test_override_merges_nested_tables_key_by_key(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, """
uninspected:
  action: {smtp: block}
  reasons:
    encrypted_archive: {action: block, severity: high}
"""))
    enc = [Uninspected("a.zip", Reason.ENCRYPTED_ARCHIVE)]
    assert policy.evaluate(message(), [], enc).action is Action.BLOCK
    image = [Uninspected("logo.png", Reason.NOT_INSPECTED_IMAGE)]
    assert policy.evaluate(message(), [], image).action is Action.PASS, "shipped reasons survive the override"
    web = message(Channel.WEB, (), "https://x.example/")
    timeout = [Uninspected("body", Reason.TIMEOUT)]
    assert policy.evaluate(web, [], timeout).action is Action.BLOCK, "shipped per-channel actions survive"
    assert policy.evaluate(message(), [], timeout).action is Action.BLOCK
