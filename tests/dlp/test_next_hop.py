"""dlp.next_hop.NextHopPool: connections reused, checked, capped, retired; and the relay using it.

The outcome of each failure stage is covered for both delivery paths in tests/dlp/test_delivery.py.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.smtp_relay import RelayUnderTest, self_signed_cert
from helpers.smtp_sinks import RecordingSink, SinkBehaviour

from dlp.delivery import Outcome
from dlp.next_hop import NextHopPool, PoolLimits

DATA = b"Subject: x\r\n\r\nTicket closed.\r\n"


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(scenario())


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


PIPELINING = pytest.mark.parametrize("pipelining", [False, True], ids=["lockstep", "pipelined"])


@PIPELINING
def test_one_connection_carries_many_messages(pipelining: bool) -> None:
    with RecordingSink(SinkBehaviour(pipelining=pipelining)) as sink:
        async def scenario() -> NextHopPool:
            pool = NextHopPool(sink.address, timeout=10)
            for i in range(5):
                assert (await pool.deliver("a@x.test", [f"b{i}@y.test"], DATA)).outcome is Outcome.DELIVERED
            await pool.close()
            return pool

        pool = run(scenario)
        assert pool.opened == 1
        assert [m.recipients for m in sink.wait_for(5)] == [[f"b{i}@y.test"] for i in range(5)]


def test_a_connection_is_retired_after_its_message_limit() -> None:
    with RecordingSink() as sink:
        async def scenario() -> NextHopPool:
            pool = NextHopPool(sink.address, timeout=10, limits=PoolLimits(messages_per_connection=2))
            for _ in range(5):
                assert (await pool.deliver("a@x.test", ["b@y.test"], DATA)).ok
            await pool.close()
            return pool

        assert run(scenario).opened == 3
        assert len(sink.wait_for(5)) == 5


@PIPELINING
def test_a_connection_the_next_hop_dropped_is_replaced_not_reported(pipelining: bool) -> None:
    # The next hop closes sessions idle for 0.3 s; the pool keeps them for longer, so the RSET probe
    # (alone, or leading the pipelined group) must find the dead one and open another instead of
    # failing the message.
    with RecordingSink(SinkBehaviour(idle_timeout=0.3, pipelining=pipelining)) as sink:
        async def scenario() -> NextHopPool:
            pool = NextHopPool(sink.address, timeout=10, limits=PoolLimits(idle_seconds=30))
            assert (await pool.deliver("a@x.test", ["b@y.test"], DATA)).ok
            [idle] = pool._idle
            await until(idle.reader.at_eof)
            assert (await pool.deliver("a@x.test", ["c@y.test"], DATA)).ok
            await pool.close()
            return pool

        assert run(scenario).opened == 2
        assert [m.recipients for m in sink.wait_for(2)] == [["b@y.test"], ["c@y.test"]]


def test_idle_connections_are_closed() -> None:
    with RecordingSink() as sink:
        async def scenario() -> None:
            pool = NextHopPool(sink.address, timeout=10, limits=PoolLimits(idle_seconds=0.2))
            assert (await pool.deliver("a@x.test", ["b@y.test"], DATA)).ok
            [idle] = pool._idle
            await until(lambda: pool.idle == 0)
            assert idle.writer.is_closing()

        run(scenario)


def test_concurrent_deliveries_share_at_most_the_configured_connections() -> None:
    with RecordingSink(SinkBehaviour(data_delay=0.1)) as sink:
        async def scenario() -> NextHopPool:
            pool = NextHopPool(sink.address, timeout=10, limits=PoolLimits(connections=2))
            results = await asyncio.gather(*(pool.deliver("a@x.test", [f"b{i}@y.test"], DATA) for i in range(6)))
            assert all(r.ok for r in results)
            await pool.close()
            return pool

        assert run(scenario).opened == 2
        assert len(sink.wait_for(6)) == 6


def test_starttls_is_negotiated_once_per_connection(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path, "sink.test")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with RecordingSink(SinkBehaviour(tls_context=context)) as sink:
        async def scenario() -> NextHopPool:
            pool = NextHopPool(sink.address, timeout=10)
            for _ in range(3):
                assert (await pool.deliver("a@x.test", ["b@y.test"], DATA)).ok
            await pool.close()
            return pool

        assert run(scenario).opened == 1
        got = sink.wait_for(3)
        assert all(m.tls for m in got) and all(m.data == DATA for m in got)


@PIPELINING
def test_a_refused_transaction_leaves_the_connection_usable(pipelining: bool) -> None:
    behaviour = SinkBehaviour(refuse_recipients={"no@y.test": "550 5.1.1 no"}, pipelining=pipelining)
    with RecordingSink(behaviour) as sink:
        async def scenario() -> NextHopPool:
            pool = NextHopPool(sink.address, timeout=10)
            refused = await pool.deliver("a@x.test", ["no@y.test"], DATA)
            assert (refused.outcome, refused.code) == (Outcome.REJECTED, 550)
            assert (await pool.deliver("a@x.test", ["b@y.test"], DATA)).ok
            await pool.close()
            return pool

        assert run(scenario).opened == 1
        assert [m.recipients for m in sink.wait_for(1)] == [["b@y.test"]]


def test_pipelined_partial_refusal_drops_the_connection_before_any_message_byte() -> None:
    # DATA was already sent with the RCPTs and got its 354 (one recipient was accepted): the only way
    # to deliver nothing is to close the connection without the message, and not reuse it.
    behaviour = SinkBehaviour(refuse_recipients={"no@y.test": "550 5.1.1 no"}, pipelining=True)
    with RecordingSink(behaviour) as sink:
        async def scenario() -> NextHopPool:
            pool = NextHopPool(sink.address, timeout=10)
            partial = await pool.deliver("a@x.test", ["b@y.test", "no@y.test"], DATA)
            assert (partial.outcome, partial.code, partial.refused) == (Outcome.TEMPFAIL, 451, {"no@y.test": 550})
            assert pool.idle == 0
            assert (await pool.deliver("a@x.test", ["c@y.test"], DATA)).ok
            await pool.close()
            return pool

        assert run(scenario).opened == 2
        assert [m.recipients for m in sink.wait_for(1)] == [["c@y.test"]]
        assert len(sink.messages) == 1


def test_the_relay_reuses_its_next_hop_connection(tmp_path: Path) -> None:
    with RecordingSink() as sink, RelayUnderTest(tmp_path, next_hop=sink.address) as relay:
        client = smtplib.SMTP(*relay.address, timeout=30)
        try:
            for i in range(3):
                client.sendmail("agent@callcenter.test", [f"client{i}@example.org"], DATA)
        finally:
            client.quit()
        assert len(sink.wait_for(3)) == 3
        assert relay.service is not None and relay.service.next_hop is not None
        assert relay.service.next_hop.opened == 1
