"""The Inspector: masking, value ids, masked context, budgets; the pool's failure modes."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from dlp.config import Limits, load_settings
from dlp.inspect import InspectionFailed, InspectionPool, Inspector, _Hit, _masked_context, mask, value_id
from dlp.model import Channel, ContentKind, Match, Message, Reason
from dlp.policy import load_policy

KEY = b"v" * 32


@pytest.mark.parametrize(
    ("entity", "value", "expected"),
    [
        ("CREDIT_CARD", "4111111111111111", "411111******1111"),
        ("CREDIT_CARD", "378282246310005", "378282*****0005"),
        ("US_SSN", "536221234", "*****1234"),
        ("EMAIL_ADDRESS", "bob@x.example", "*********mple"),
        ("SECRET", "abc", "***"),
        ("CLEARTEXT_CREDENTIALS", "hunter2", "****"),
        ("CUSTOMER_RECORD", "acme:fp", "acme: account+name"),
    ],
)
def test_mask_never_shows_more_than_bin_and_last_four(entity: str, value: str, expected: str) -> None:
    assert mask(entity, value, "acme: account+name") == expected


def test_value_id_is_keyed_and_entity_scoped() -> None:
    assert value_id(KEY, "CREDIT_CARD", "4111111111111111") == value_id(KEY, "CREDIT_CARD", "4111111111111111")
    assert value_id(KEY, "CREDIT_CARD", "4111111111111111") != value_id(b"w" * 32, "CREDIT_CARD", "4111111111111111")
    assert value_id(KEY, "US_SSN", "536221234") != value_id(KEY, "US_BANK_NUMBER", "536221234")


def hit(start: int, end: int, masked: str) -> _Hit:
    return _Hit(Match("X", start, end, 1.0, "v"), masked)


def test_masked_context_masks_findings_that_straddle_the_edge_or_overlap() -> None:
    text = "A" * 30 + "SECRETNAME" + " bob " + "ACCOUNT12" + " tail 123456 end"
    name, account = hit(30, 40, "[n]"), hit(45, 54, "[a]")
    overlapping = hit(35, 50, "[o]")
    context = _masked_context(text, 45, 54, [name, account, overlapping])
    assert "NAME" not in context and "SECRET" not in context and "ACCOUNT" not in context
    assert "######" in context and "123456" not in context, "other numbers are hidden"


def test_masked_context_hides_cvv_pin_password_and_every_digit() -> None:
    text = "Name: Jane Doe, DOB 1980-02-03, card 4111111111111111 exp 12/27 cvv 737, pin 4821, pw Summer2024!"
    card = hit(text.index("4111"), text.index("4111") + 16, "411111******1111")
    context = _masked_context(text, card.match.start, card.match.end, [card])
    for secret in ("1980", "12/27", "737", "4821", "Summer2024"):
        assert secret not in context, (secret, context)
    assert "[411111******1111]" in context and "cvv ***" in context


def test_budget_overrun_is_reported_not_silently_passed(tmp_path: Path) -> None:
    limits = dataclasses.replace(Limits(), max_part_chars=1000, max_text_chars=1500)
    inspector = Inspector(load_policy(), KEY, limits)
    text = ("x" * 2000 + " 4111 1111 1111 1111").encode()
    verdict = inspector.inspect(Message(Channel.SCAN, text, ContentKind.FILE))
    assert Reason.TRUNCATED in {u.reason for u in verdict.uninspected}
    assert verdict.action.rank >= 2, "truncated content is treated as sensitive by the shipped policy"


def test_pool_turns_a_stuck_worker_into_a_timeout(tmp_path: Path) -> None:
    """A worker that exceeds the time budget is killed and the caller gets InspectionFailed(TIMEOUT)."""
    settings = load_settings(overrides={"data_dir": str(tmp_path), "inspection.workers": 1,
                                        "inspection.limits.time_budget_seconds": 0.5}, environ={})
    pool = InspectionPool(settings)
    pool.start()
    try:
        rows = "".join(f"{i},Jo {i},jo{i}@example.com,+1 415 555 {i % 10000:04d},4{i:015d},536-22-{i % 9000 + 1000}\n"
                       for i in range(60_000))  # one dense part: many seconds of work, far beyond 0.5 s
        with pytest.raises(InspectionFailed) as failed:
            asyncio.run(pool.inspect(Message(Channel.SMTP, rows.encode(), ContentKind.FILE)))
        assert failed.value.reason in (Reason.TIMEOUT, Reason.INSPECTION_ERROR)
        ok = asyncio.run(pool.inspect(Message(Channel.SMTP, b"hello", ContentKind.FILE)))
        assert ok.action.value == "pass", "the pool recovers after recycling the stuck worker"
    finally:
        pool.close()


def test_pool_answers_concurrent_messages_and_replaces_a_worker_that_died(tmp_path: Path) -> None:
    """Each caller gets the verdict of its own message; a worker killed from outside is replaced and the
    next message is inspected by its successor."""
    settings = load_settings(overrides={"data_dir": str(tmp_path), "inspection.workers": 2}, environ={})
    pool = InspectionPool(settings)
    pool.start()
    try:
        async def many() -> list[str]:
            bodies = [b"card 4111 1111 1111 1111" if i % 3 == 0 else b"hello" for i in range(30)]
            verdicts = await asyncio.gather(*(pool.inspect(Message(Channel.SMTP, b, ContentKind.FILE))
                                              for b in bodies))
            return [v.action.value for v in verdicts]

        actions = asyncio.run(many())
        assert [a == "pass" for a in actions] == [i % 3 != 0 for i in range(30)]
        victim = pool._live[0]
        victim.process.kill()
        victim.process.join(10)

        async def after() -> list[str]:
            verdicts = await asyncio.gather(*(pool.inspect(Message(Channel.SMTP, b"hello", ContentKind.FILE))
                                              for _ in range(4)))
            return [v.action.value for v in verdicts]

        assert asyncio.run(after()) == ["pass"] * 4
        assert victim not in pool._live
    finally:
        pool.close()


def test_a_worker_out_of_memory_fails_closed(tmp_path: Path) -> None:
    """The address-space limit behind the extraction budgets: a message that needs more memory than the
    worker may have is an inspection failure, never a pass, and the pool keeps working."""
    big = 512 * 1024 * 1024  # budgets far above the memory limit, so that only the limit can stop it
    settings = load_settings(overrides={"data_dir": str(tmp_path), "inspection.workers": 1,
                                        "inspection.worker_memory_mb": 500,
                                        "inspection.limits.max_message_bytes": big,
                                        "inspection.limits.max_text_chars": big,
                                        "inspection.limits.max_part_chars": big}, environ={})
    pool = InspectionPool(settings)
    pool.start()
    try:
        huge = b"word " * (150 * 1024 * 1024 // 5)  # 150 MB of text: its decoded copies exceed 500 MB
        with pytest.raises(InspectionFailed):
            asyncio.run(pool.inspect(Message(Channel.SMTP, huge, ContentKind.FILE)))
        ok = asyncio.run(pool.inspect(Message(Channel.SMTP, b"hello", ContentKind.FILE)))
        assert ok.action.value == "pass"
    finally:
        pool.close()


def test_a_message_never_waits_forever_when_no_worker_can_start(tmp_path: Path) -> None:
    """The operator broke the policy file after start-up and a worker died: its replacement cannot start,
    so the waiting message fails (the channel applies its failure mode) instead of hanging."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("{}\n")
    settings = load_settings(overrides={"data_dir": str(tmp_path), "inspection.workers": 1,
                                        "inspection.policy_file": str(policy)}, environ={})
    pool = InspectionPool(settings)
    pool.start()
    try:
        assert asyncio.run(pool.inspect(Message(Channel.SMTP, b"hello", ContentKind.FILE))).action.value == "pass"
        policy.write_text("rules: [ {{{ not yaml\n")
        worker = pool._live[0]
        worker.process.kill()
        worker.process.join(5)

        async def again() -> None:
            with pytest.raises(InspectionFailed):
                await asyncio.wait_for(pool.inspect(Message(Channel.SMTP, b"hello", ContentKind.FILE)), 60)

        asyncio.run(again())
    finally:
        pool.close()


def test_close_under_load_stops_every_worker_for_good(tmp_path: Path) -> None:
    settings = load_settings(overrides={"data_dir": str(tmp_path), "inspection.workers": 2,
                                        "inspection.limits.time_budget_seconds": 0.3}, environ={})
    pool = InspectionPool(settings)
    pool.start()
    dense = "".join(f"{i},4{i:015d},536-22-{i % 9000 + 1000}\n" for i in range(40_000)).encode()

    async def load() -> list[object]:
        calls = [pool.inspect(Message(Channel.SMTP, dense, ContentKind.FILE)) for _ in range(2)]
        calls += [pool.inspect(Message(Channel.SMTP, b"hello", ContentKind.FILE)) for _ in range(3)]
        tasks = [asyncio.ensure_future(c) for c in calls]
        await asyncio.sleep(0.2)
        pool.close()
        await asyncio.sleep(2.5)  # past the budget timers of the jobs that were running
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(load())
    assert all(isinstance(r, InspectionFailed | asyncio.CancelledError) or hasattr(r, "action") for r in results)
    assert pool._live == [] and pool._fresh == [] and pool._spawning == 0


def test_a_killed_worker_keeps_its_pipe_open_until_a_large_write_ends() -> None:
    """Closing the pipe under the thread that writes a large message would free its descriptor for
    reuse while bytes are still being written to that number: the sender closes it once the write ends."""
    import multiprocessing
    import time

    from dlp.inspect import _Worker

    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(60,), daemon=True)
    process.start()
    worker = _Worker(process, ours)
    worker.send_soon(b"x" * (4 * 1024 * 1024))  # far more than a pipe holds: the write blocks
    deadline = time.monotonic() + 10
    while not theirs.poll() and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.kill()
    process.join(10)
    assert not process.is_alive()
    assert not ours.closed  # the writer is still in the middle of its payload
    assert theirs.recv_bytes() == b"x" * (4 * 1024 * 1024)  # draining lets the write end...
    while not ours.closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ours.closed  # ...and the sender closes the pipe after it
    theirs.close()
