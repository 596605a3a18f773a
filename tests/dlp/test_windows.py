"""Aggregation windows: distinct values per agent across messages, with a controllable clock, kept in SQLite."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from email.message import EmailMessage

import pytest

from dlp.config import load_settings
from dlp.inspect import InspectionPool
from dlp.keys import value_id_key
from dlp.model import Action, Channel, ContentKind, Envelope, Finding, Message, Severity, Verdict
from dlp.pipeline import Pipeline
from dlp.policy import PolicyError, load_policy
from dlp.windows import WINDOW_ENTITY, Escalations, Windows, WindowStore, parse_period

OVERRIDE = """
destinations:
  client_systems:
    domains: [billing.acme.example]
windows:
  cards-per-hour: {classes: [payment_card], distinct: 20, period: 1h,
                   action: {smtp: quarantine, web: block, default: alert}, severity: high}
"""


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def luhn_card(rng: random.Random) -> str:
    digits = [4] + [rng.randrange(10) for _ in range(14)]
    total = 0
    for i, d in enumerate(reversed(digits)):
        d = d * 2 if i % 2 == 0 else d
        total += d - 9 if d > 9 else d
    digits.append((10 - total % 10) % 10)
    s = "".join(map(str, digits))
    return f"{s[:4]} {s[4:8]} {s[8:12]} {s[12:]}"


def card_email(card: str, sender: str = "agent7@callcenter.example") -> Message:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, "billing@billing.acme.example", "payment"
    msg.set_content(f"Please charge card {card} for the renewal.")
    return Message(Channel.SMTP, msg.as_bytes(), ContentKind.EMAIL,
                   Envelope(sender=sender, recipients=("billing@billing.acme.example",)))


@pytest.fixture
def policy_file(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(OVERRIDE, encoding="utf-8")
    return path


def test_fifty_single_card_emails_from_one_agent_are_caught(tmp_path, policy_file):
    """Through the real pipeline: each e-mail alone passes (the billing mailbox is allow-listed), the 20th
    distinct card within the hour and every later one is quarantined, and the counts survive a restart."""
    settings = load_settings(None, {"data_dir": str(tmp_path / "data"), "inspection.workers": -1,
                                    "inspection.policy_file": str(policy_file)})
    clock = Clock()
    policy = load_policy(str(policy_file))
    db = settings.data_path / "store" / "windows.db"
    rng = random.Random(5)
    cards = [luhn_card(rng) for _ in range(50)]

    def pipeline() -> tuple[Pipeline, WindowStore]:
        store = WindowStore(db)
        windows = Windows(policy, store, value_id_key(settings.data_path), clock=clock)
        return Pipeline(InspectionPool(settings), None, None, Escalations([windows], store)), store

    async def send(p: Pipeline, messages: list[Message]) -> list[Verdict]:
        out = []
        for m in messages:
            out.append(await p.inspect(m))
            clock.now += 30  # one e-mail every 30 s: fifty in 25 minutes
        return out

    first, store = pipeline()
    verdicts = asyncio.run(send(first, [card_email(c) for c in cards[:30]]))
    store.close()
    second, store = pipeline()  # a restart: a new store on the same file
    verdicts += asyncio.run(send(second, [card_email(c) for c in cards[30:]]))
    store.close()

    assert all(any(f.entity == "CREDIT_CARD" for f in v.findings) for v in verdicts)
    assert [v.action for v in verdicts[:19]] == [Action.PASS] * 19
    assert [v.action for v in verdicts[19:]] == [Action.QUARANTINE] * 31
    twentieth = verdicts[19]
    assert twentieth.rules == ("window:cards-per-hour",) and twentieth.incident_id
    assert twentieth.severity is Severity.HIGH
    (note,) = [f for f in twentieth.findings if f.entity == WINDOW_ENTITY]
    assert note.masked == "20th distinct in 1h for this agent (threshold 20)"
    assert [f.masked for f in verdicts[-1].findings if f.entity == WINDOW_ENTITY] == [
        "50th distinct in 1h for this agent (threshold 20)"]

    # The store holds keyed hashes and times: no card digits, no agent address.
    dump = "\n".join(sqlite3.connect(db).iterdump())
    for card in cards:
        assert card.replace(" ", "") not in dump and "*" + card[-4:] not in dump  # no value, no masked form
    assert "agent7" not in dump and "callcenter" not in dump


def _verdict(*value_ids: str, entity: str = "CREDIT_CARD") -> Verdict:
    findings = tuple(Finding(entity, "cards", 0.9, "body", 0, 16, "****", v) for v in value_ids)
    return Verdict(Action.PASS, findings=findings)


@pytest.fixture
def windows(tmp_path, policy_file):
    store = WindowStore(tmp_path / "windows.db")
    w = Windows(load_policy(str(policy_file)), store, b"k" * 32, clock=Clock())
    yield w
    store.close()


def _message(agent: str = "agent7", channel: Channel = Channel.SMTP) -> Message:
    return Message(channel, b"", envelope=Envelope(user=agent))


def test_the_same_card_again_and_again_is_one_value(windows):
    for _ in range(50):
        assert windows.apply(_message(), _verdict("card-a")).action is Action.PASS


def test_agents_are_counted_apart(windows):
    for i in range(19):
        assert windows.apply(_message("a"), _verdict(f"v{i}")).action is Action.PASS
        assert windows.apply(_message("b"), _verdict(f"v{i}")).action is Action.PASS
    assert windows.apply(_message("a"), _verdict("v19")).action is Action.QUARANTINE
    assert windows.apply(_message("c"), _verdict("v19")).action is Action.PASS


def test_the_window_slides(windows):
    for i in range(19):
        windows.apply(_message(), _verdict(f"v{i}"))
        windows.clock.now += 60
    windows.clock.now += 3600  # everything seen so far is older than the period
    assert windows.apply(_message(), _verdict("v19")).action is Action.PASS
    assert windows.store.prune({"cards-per-hour": 3600}, windows.clock.now) == 19


def test_channel_decides_the_action_and_web_blocks(windows):
    for i in range(19):
        windows.apply(_message(channel=Channel.WEB), _verdict(f"v{i}"))
    assert windows.apply(_message(channel=Channel.WEB), _verdict("v19")).action is Action.BLOCK


def test_a_window_never_lowers_a_verdict(windows):
    for i in range(25):
        base = Verdict(Action.BLOCK, Severity.CRITICAL, ("sensitive-data-leaving",), _verdict(f"v{i}").findings,
                       incident_id="INC-1")
        out = windows.apply(_message(), base)
        assert out.action is Action.BLOCK and out.severity is Severity.CRITICAL and out.incident_id == "INC-1"


def test_monitor_mode_records_but_does_not_enforce(tmp_path, policy_file):
    policy_file.write_text(OVERRIDE + "monitor: {all: true}\n", encoding="utf-8")
    store = WindowStore(tmp_path / "w.db")
    w = Windows(load_policy(str(policy_file)), store, b"k" * 32, clock=Clock())
    for i in range(20):
        out = w.apply(_message(), _verdict(f"v{i}"))
    assert out.action is Action.QUARANTINE and out.effective_action is Action.ALERT and out.monitor_only
    store.close()


def test_irrelevant_findings_and_unknown_agents_are_not_counted(windows):
    for i in range(30):
        assert windows.apply(_message(), _verdict(f"e{i}", entity="EMAIL_ADDRESS")).action is Action.PASS
        assert windows.apply(_message(agent=""), _verdict(f"v{i}")).action is Action.PASS


def test_shipped_windows_are_valid():
    names = {w.name for w in Windows(load_policy(None), WindowStore(":memory:"), b"k" * 32).windows}
    assert names == {"cards-per-hour", "customer-records-per-day"}


@pytest.mark.parametrize(("section", "message"), [
    ("windows: {w: {classes: [nope], distinct: 3}}", "unknown data class"),
    ("windows: {w: {classes: [payment_card]}}", "distinct"),
    ("windows: {w: {classes: [payment_card], distinct: 2, period: soon}}", "period"),
    ("windows: {w: {classes: [payment_card], distinct: 2, action: explode}}", "action"),
    ("windows: {w: {distinct: 2}}", "classes or entities"),
    ("windows: {w: {classes: [payment_card], distinct: 2, colour: red}}", "unknown key"),
    ("edm: {clients: {Bad Name: {}}}", "client name"),
    ("edm: {min_fields: 0}", "min_fields"),
])
def test_bad_sections_are_policy_errors_naming_the_file(tmp_path, section, message):
    path = tmp_path / "p.yaml"
    path.write_text(section + "\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=message) as info:
        load_policy(str(path))
    assert str(path) in str(info.value)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("1h", 3600), ("2d", 172800), (45, 45)])
def test_periods(text, seconds):
    assert parse_period(text, "x") == seconds


def test_a_failing_window_store_fails_closed(tmp_path, policy_file):
    """An error after inspection is an inspection failure (the channel's failure mode), never a pass."""
    from dlp.inspect import InspectionFailed

    settings = load_settings(None, {"data_dir": str(tmp_path / "data"), "inspection.workers": -1,
                                    "inspection.policy_file": str(policy_file)})
    store = WindowStore(tmp_path / "w.db")
    windows = Windows(load_policy(str(policy_file)), store, b"k" * 32, clock=Clock())
    store.close()  # every observation now raises
    pipeline = Pipeline(InspectionPool(settings), None, None, Escalations([windows]))
    with pytest.raises(InspectionFailed):
        asyncio.run(pipeline.inspect(card_email(luhn_card(random.Random(1)))))
