"""Content inspection in forked worker processes: same verdicts in the same order as inline, and a
worker that dies fails only its own batch (uninspected, never a silent pass)."""

from __future__ import annotations

import argparse
import json
import os
import threading
from pathlib import Path

import pytest

from dlp.bench import pcap as bench
from dlp.channels.passive import offload
from dlp.channels.passive.monitor import Monitor, Result
from dlp.channels.passive.reader import Capture
from dlp.cli import main
from dlp.inspect import Inspector
from dlp.model import Action, Message, Reason, Verdict

pytestmark = pytest.mark.skipif(not offload.available(), reason="needs the fork start method")


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("offload") / "bench.pcap"
    bench.generate(path, 3000)  # 214 requests, about 20 with a card number
    return path


def _run(capture: Path, inspector: Inspector, key: bytes, pool: offload.OrderedInspections | None) -> list[Result]:
    results: list[Result] = []
    monitor = Monitor(inspector, key, on_result=results.append, offload=pool)
    try:
        with Capture(capture) as frames:
            monitor.feed(frames)
        monitor.finish()
    finally:
        if pool is not None:
            pool.close()
    return results


def _summary(results: list[Result]) -> list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    return [(r.summary, str(r.verdict.action), tuple(f.value_id for f in r.verdict.findings),
             tuple(str(u.reason) for u in r.verdict.uninspected)) for r in results]


def test_workers_give_the_inline_verdicts_in_the_inline_order(capture, passive_env):
    inspector, key = passive_env
    inline = _run(capture, inspector, key, None)
    # Small batches and a small in-flight window exercise batching, back-pressure and ordering.
    pool = offload.OrderedInspections(inspector, 2, batch_messages=3, max_batches_per_worker=2)
    pooled = _run(capture, inspector, key, pool)
    assert len(inline) >= 200
    assert _summary(pooled) == _summary(inline)
    assert sum(r.verdict.action is not Action.PASS for r in pooled) >= 5


class _DiesOnSecret(Inspector):
    """Kills its worker process on one message: a crash in a parser, the OOM killer."""

    def inspect(self, message: Message) -> Verdict:
        if b"4539 1488 0343 6467" in message.raw and os.getpid() != _PARENT:
            os._exit(3)
        return super().inspect(message)


_PARENT = os.getpid()


def test_a_dead_worker_fails_its_batch_as_uninspected_and_the_rest_goes_on(capture, passive_env):
    inspector, key = passive_env
    dying = _DiesOnSecret(inspector.policy, key, inspector.limits, inspector.detectors)
    pool = offload.OrderedInspections(dying, 1, batch_messages=4)
    results = _run(capture, dying, key, pool)
    assert pool.recycled >= 1
    failed = [r for r in results if any(u.reason is Reason.INSPECTION_ERROR for u in r.verdict.uninspected)]
    carrying = [r for r in results if b"4539 1488 0343 6467" in r.message.raw]
    # Only batches holding the deadly message fail (batches of 4): the others were retried and inspected.
    assert carrying and len(carrying) <= len(failed) <= 4 * len(carrying) < len(results)
    # Every transaction is still reported, in order; the failed ones are never a clean pass.
    assert len(results) == len(_run(capture, inspector, key, None))
    assert all(r.verdict.action is not Action.PASS for r in failed)


def test_dlp_pcap_uses_workers_for_big_captures(capture, tmp_path, capsys):
    config = tmp_path / "dlp.toml"
    config.write_text("[passive]\noffload_min_bytes = 0\n")
    args = ["pcap", "--data-dir", str(tmp_path / "data"), "--no-record", "--format", "json", str(capture)]
    assert main([*args, "--config", str(config)]) == 1
    pooled = capsys.readouterr().out
    assert main(args) == 1  # default threshold: this capture is inspected inline
    inline = capsys.readouterr().out

    def verdicts(out: str) -> list[tuple[str, str]]:
        return [(r["transaction"], r["action"]) for r in map(json.loads, out.splitlines()) if "summary" not in r]

    assert verdicts(pooled) == verdicts(inline)
    assert sum(1 for _, action in verdicts(pooled) if action != "pass") >= 5


def test_bench_reports_workers_and_inline_side_by_side():
    result = bench.run(argparse.Namespace(pcap_packets=2000, pcap_anchor_packets=200, pcap_workers=2, seed=7))
    assert result["dlp"]["workers"] == 2 and result["dlp_inline"]["workers"] == 0
    assert result["dlp"]["findings"] == result["dlp_inline"]["findings"]
    assert result["dlp"]["worker_cpu_seconds"] > 0
    assert result["dlp"]["main_cpu_seconds_per_100k_packets"] == pytest.approx(
        result["dlp"]["main_cpu_seconds"] * 100_000 / result["dlp"]["packets"], rel=0.05, abs=0.05)
    text = bench.format_text(result)
    assert "2 inspection workers" in text and "same process" in text and "per 100k packets" in text


class _HangsOnSecret(Inspector):
    """Never returns on one message: a parser stuck in a loop, a pathological regex."""

    def inspect(self, message: Message) -> Verdict:
        if b"4539 1488 0343 6467" in message.raw and os.getpid() != _PARENT:
            threading.Event().wait()
        return super().inspect(message)


def test_a_stuck_worker_times_its_batch_out_and_the_rest_goes_on(tmp_path, passive_env):
    inspector, key = passive_env
    small = tmp_path / "small.pcap"
    bench.generate(small, 900)
    hanging = _HangsOnSecret(inspector.policy, key, inspector.limits, inspector.detectors)
    pool = offload.OrderedInspections(hanging, 2, batch_messages=2, budget_seconds=0.05)
    results = _run(small, hanging, key, pool)
    inline = _run(small, inspector, key, None)
    timed_out = [r for r in results if any(u.reason is Reason.TIMEOUT for u in r.verdict.uninspected)]
    carrying = [r for r in results if b"4539 1488 0343 6467" in r.message.raw]
    assert carrying and pool.recycled >= len(carrying)
    assert len(carrying) <= len(timed_out) <= 2 * len(carrying) < len(results)
    assert all(r.verdict.action is not Action.PASS for r in timed_out)
    # Everything else has the inline verdict, in the inline order.
    assert [s for s, r in zip(_summary(results), results, strict=True) if r not in timed_out] == \
        [s for s, r in zip(_summary(inline), results, strict=True) if r not in timed_out]


def test_messages_and_verdicts_cross_the_pipe_unchanged():
    from datetime import UTC, datetime

    from dlp.model import Channel, ContentKind, Envelope, Finding, Severity, Uninspected

    message = Message(Channel.PASSIVE, b"POST / HTTP/1.1\r\n\r\n", ContentKind.HTTP,
                      Envelope("a@x", ("b@y", "c@z"), "10.0.0.1:1234", "agent7", "http://h/p", "POST"),
                      "m-1", datetime(2026, 1, 1, tzinfo=UTC), "http-post")
    assert offload._from_wire(offload._to_wire(message)) == message
    verdict = Verdict(Action.ALERT, Severity.HIGH, ("cards",), (
        Finding("CREDIT_CARD", "cards", 0.9, "body", 3, 22, "****6467", "v1", "Visa", "card ****6467"),),
        (Uninspected("attachment[1]", Reason.ENCRYPTED_ARCHIVE, "fixed text"),), "INC-1", True, Action.PASS, "http")
    seen: dict = {}
    for original in (verdict, Verdict(Action.PASS, enforced_action=Action.PASS, kind="http"), Reason.TIMEOUT):
        wire = offload._outcome_to_wire(original)
        assert offload._outcome_from_wire(wire, seen) == original
        assert offload._outcome_from_wire(wire, seen) == original  # again, from the cache when cached
