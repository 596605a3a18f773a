"""Inspection of an offline capture's transactions in worker processes, handed back in the order they were
submitted (so that output, incidents and the exit status do not depend on scheduling).

Workers are forked from the process that already holds a compiled Inspector, so a pool costs a few
milliseconds to start instead of one Inspector build per worker. Transactions travel in batches (one
pickle round trip per batch, not per message). A batch that overruns its time budget or kills its worker
gets a failure reason for each of its messages; the pool is replaced and later batches are resubmitted.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from dlp.inspect import Inspector, kill_executor
from dlp.model import Action, Channel, ContentKind, Envelope, Message, Reason, Verdict

# One message's outcome: a verdict, or why there is none; and the seconds inspection took.
Outcome = tuple[Verdict | Reason, float]
# On the wire, a message is a plain tuple and a verdict that passes with nothing to say is its `kind`:
# pickling frozen slotted dataclasses goes through dataclasses.fields() for every object, which was a
# measurable share of the capture process's CPU at 10^5 packets/s.
_WireMessage = tuple[Any, ...]
_WireOutcome = tuple[Verdict | Reason | str, float]


def _to_wire(m: Message) -> _WireMessage:
    e = m.envelope
    return (m.channel.value, m.raw, m.kind.value, e.sender, e.recipients, e.client_address, e.user, e.destination,
            e.method, m.id, m.received, m.name)


def _from_wire(w: _WireMessage) -> Message:
    channel, raw, kind, sender, recipients, client, user, destination, method, mid, received, name = w
    return Message(Channel(channel), raw, ContentKind(kind),
                   Envelope(sender, recipients, client, user, destination, method), mid, received, name)


def _outcome_to_wire(result: Verdict | Reason) -> Verdict | Reason | str:
    if isinstance(result, Verdict) and result == Verdict(Action.PASS, kind=result.kind):
        return result.kind
    return result


def _outcome_from_wire(result: Verdict | Reason | str) -> Verdict | Reason:
    return Verdict(Action.PASS, kind=result) if isinstance(result, str) else result

_inspector: Inspector | None = None  # set in the parent before forking; the workers inherit it


def available() -> bool:
    """Forked workers need the fork start method (Linux, BSD); elsewhere inspection stays inline."""
    return "fork" in multiprocessing.get_all_start_methods()


def _inspect_batch(messages: list[_WireMessage]) -> list[_WireOutcome]:
    assert _inspector is not None
    out: list[_WireOutcome] = []
    for wire in messages:
        started = time.perf_counter()
        try:
            result: Verdict | Reason = _inspector.inspect(_from_wire(wire))
        except Exception:  # one bad message must not take its batch down; reported as uninspected
            result = Reason.INSPECTION_ERROR
        out.append((_outcome_to_wire(result), time.perf_counter() - started))
    return out


class _Batch:
    __slots__ = ("future", "messages", "outcomes")

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.future: Future[list[_WireOutcome]] | None = None
        self.outcomes: list[Outcome] | None = None


class _Entry:
    __slots__ = ("batch", "context", "index", "message")

    def __init__(self, message: Message, context: Any, batch: _Batch | None, index: int) -> None:
        self.message = message
        self.context = context
        self.batch = batch  # None: nothing to inspect (no content)
        self.index = index


class OrderedInspections:
    """submit() transactions, take completed ones from ready() (non-blocking) and drain() (blocking),
    always in submission order."""

    def __init__(self, inspector: Inspector, workers: int = 0, *, batch_messages: int = 128,
                 batch_bytes: int = 512 * 1024, max_batches_per_worker: int = 4) -> None:
        global _inspector
        _inspector = inspector
        self.workers = workers if workers > 0 else (os.cpu_count() or 1)
        self.batch_messages = batch_messages
        self.batch_bytes = batch_bytes
        self.max_in_flight = self.workers * max_batches_per_worker
        self.budget = inspector.limits.time_budget_seconds * 1.2 + 2.0  # per message, as InspectionPool
        self._executor: ProcessPoolExecutor | None = None
        self._entries: deque[_Entry] = deque()
        self._in_flight: deque[_Batch] = deque()
        self._current = _Batch()
        self._current_bytes = 0
        self.recycled = 0  # pools replaced after a timeout or a dead worker

    def start(self) -> None:
        """Fork the workers now (before this process starts threads of its own)."""
        if self._executor is None:
            self._executor = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("fork"))
            for f in [self._executor.submit(os.getpid) for _ in range(self.workers)]:
                f.result()

    # ------------------------------------------------------------------------------------ input

    def submit(self, message: Message, context: Any) -> None:
        if not message.raw:
            self._entries.append(_Entry(message, context, None, 0))
            return
        batch = self._current
        self._entries.append(_Entry(message, context, batch, len(batch.messages)))
        batch.messages.append(message)
        self._current_bytes += len(message.raw)
        if len(batch.messages) >= self.batch_messages or self._current_bytes >= self.batch_bytes:
            self._flush()

    def _flush(self) -> None:
        batch = self._current
        if not batch.messages:
            return
        self._current, self._current_bytes = _Batch(), 0
        while len(self._in_flight) >= self.max_in_flight:
            self._wait(self._in_flight[0])
        self._send(batch)
        self._in_flight.append(batch)

    def _send(self, batch: _Batch) -> None:
        self.start()
        assert self._executor is not None
        try:
            batch.future = self._executor.submit(_inspect_batch, [_to_wire(m) for m in batch.messages])
        except BrokenProcessPool as exc:  # a worker died since: found out when this batch is collected
            batch.future = Future()
            batch.future.set_exception(exc)

    # ------------------------------------------------------------------------------------ output

    def ready(self) -> Iterator[tuple[Message, Any, Outcome]]:
        """Completed transactions at the head of the order, without waiting."""
        return self._take(block=False)

    def drain(self) -> Iterator[tuple[Message, Any, Outcome]]:
        """Every remaining transaction, waiting for the workers."""
        self._flush()
        return self._take(block=True)

    def _take(self, block: bool) -> Iterator[tuple[Message, Any, Outcome]]:
        entries = self._entries
        while entries:
            entry = entries[0]
            batch = entry.batch
            if batch is None:
                outcome: Outcome = (Verdict(Action.PASS), 0.0)  # nothing to read, as inline
            else:
                if batch.outcomes is None:
                    if batch is self._current:
                        if not block:
                            return
                        self._flush()
                    assert batch.future is not None
                    if not block and not batch.future.done():
                        return
                    self._wait(batch)
                assert batch.outcomes is not None
                outcome = batch.outcomes[entry.index]
            entries.popleft()
            yield entry.message, entry.context, outcome

    def _wait(self, batch: _Batch) -> None:
        """Collect the oldest in-flight batch. A dead worker breaks every batch in flight, so the batch is
        retried alone: if it breaks the pool again it is the culprit and fails (uninspected); a batch
        over its time budget fails at once (it would stall again). Later batches are resubmitted."""
        assert batch is self._in_flight[0]
        try:
            batch.outcomes = self._result(batch)
        except FutureTimeout:
            self._fail(batch, Reason.TIMEOUT)
        except BrokenProcessPool:
            self._recycle()
            self._send(batch)
            try:
                batch.outcomes = self._result(batch)
            except FutureTimeout:
                self._fail(batch, Reason.TIMEOUT)
            except BrokenProcessPool:
                self._fail(batch, Reason.INSPECTION_ERROR)
            else:
                self._resend_rest()
        self._in_flight.popleft()

    def _result(self, batch: _Batch) -> list[Outcome]:
        assert batch.future is not None
        wire = batch.future.result(timeout=self.budget * len(batch.messages))
        return [(_outcome_from_wire(result), seconds) for result, seconds in wire]

    def _fail(self, batch: _Batch, reason: Reason) -> None:
        batch.outcomes = [(reason, 0.0)] * len(batch.messages)
        self._recycle()
        self._resend_rest()

    def _resend_rest(self) -> None:
        for later in list(self._in_flight)[1:]:
            f = later.future
            if f is not None and f.done() and not f.cancelled() and f.exception() is None:
                continue  # finished before the pool went down
            self._send(later)

    def _recycle(self) -> None:
        old, self._executor = self._executor, None
        self.recycled += 1
        if old is not None:
            kill_executor(old)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
