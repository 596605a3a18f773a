"""Inspection of an offline capture's transactions in worker processes, handed back in the order they were
submitted (so that output, incidents and the exit status do not depend on scheduling).

Workers are forked from the process that already holds a compiled Inspector, so a pool costs a few
milliseconds to start instead of one Inspector build per worker. Transactions travel in batches over one
pair of pipes per worker, written without blocking and read when ready: the capture's process runs no
threads and pays one pickle per batch (a ProcessPoolExecutor's manager and feeder threads cost it a
tenth of its CPU at 10^5 packets/s). A worker that dies or overruns a batch's time budget is replaced;
the batch it was working on is retried once (dead worker) or fails at once (timeout) with a reason for
each of its messages, and the worker's later batches are sent again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import pickle
import select
import signal
import struct
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from dlp.inspect import Inspector
from dlp.model import Action, Channel, ContentKind, Envelope, Finding, Message, Reason, Severity, Uninspected, Verdict

# One message's outcome: a verdict, or why there is none; and the seconds inspection took.
Outcome = tuple[Verdict | Reason, float]
# On the wire, messages and verdicts are plain tuples: pickling frozen slotted dataclasses goes through
# dataclasses.fields() for every object, a measurable share of the capture process's CPU.
_WireMessage = tuple[Any, ...]
_WireVerdict = tuple[Any, ...]
_WireOutcome = tuple[_WireVerdict | Reason, float]

_LENGTH = struct.Struct("<Q")
_PIPE_SIZE = 1 << 20  # Linux lets a pipe hold this much, so a batch is usually written in one go
_F_SETPIPE_SZ = 1031

_inspector: Inspector | None = None  # set in the parent before forking; the workers inherit it


def available() -> bool:
    """Forked workers need the fork start method (Linux, BSD); elsewhere inspection stays inline."""
    return "fork" in multiprocessing.get_all_start_methods()


def _to_wire(m: Message) -> _WireMessage:
    e = m.envelope
    return (m.channel.value, m.raw, m.kind.value, e.sender, e.recipients, e.client_address, e.user, e.destination,
            e.method, m.id, m.received, m.name)


def _from_wire(w: _WireMessage) -> Message:
    channel, raw, kind, sender, recipients, client, user, destination, method, mid, received, name = w
    return Message(_CHANNELS[channel], raw, _KINDS[kind],
                   Envelope(sender, recipients, client, user, destination, method), mid, received, name)


# Enum members by value: a dict lookup instead of an Enum call (a microsecond each, several per message).
_CHANNELS = {c.value: c for c in Channel}
_KINDS = {k.value: k for k in ContentKind}
_ACTIONS = {a.value: a for a in Action}
_SEVERITIES = {s.value: s for s in Severity}
_REASONS = {r.value: r for r in Reason}


_FINDING_FIELDS = tuple(f.name for f in dataclasses.fields(Finding))


def _outcome_to_wire(result: Verdict | Reason) -> _WireVerdict | Reason:
    if isinstance(result, Reason):
        return result
    v = result
    findings = tuple(tuple(getattr(f, name) for name in _FINDING_FIELDS) for f in v.findings) if v.findings else ()
    uninspected = tuple((u.location, u.reason.value, u.detail) for u in v.uninspected) if v.uninspected else ()
    return (v.action.value, v.severity.value, v.rules, findings, uninspected, v.incident_id, v.monitor_only,
            None if v.enforced_action is None else v.enforced_action.value, v.kind)


def _outcome_from_wire(result: _WireVerdict | Reason, seen: dict[_WireVerdict, Verdict]) -> Verdict | Reason:
    if isinstance(result, Reason):
        return result
    if not result[3] and result[5] is None:  # no findings, no incident: one of a few verdicts, built once
        verdict = seen.get(result)
        if verdict is None:
            verdict = seen[result] = _verdict(result)
        return verdict
    return _verdict(result)


def _verdict(result: _WireVerdict) -> Verdict:
    action, severity, rules, findings, uninspected, incident_id, monitor_only, enforced, kind = result
    return Verdict(_ACTIONS[action], _SEVERITIES[severity], rules, tuple(Finding(*f) for f in findings),
                   tuple(Uninspected(location, _REASONS[reason], detail) for location, reason, detail in uninspected),
                   incident_id, monitor_only, None if enforced is None else _ACTIONS[enforced], kind)


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


def _serve(requests: int, replies: int) -> None:
    """A worker's life: length-prefixed pickled batches in, their outcomes out, until end of input."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it closes our pipes
    with os.fdopen(requests, "rb") as inp, os.fdopen(replies, "wb") as out:
        while True:
            head = inp.read(_LENGTH.size)
            if len(head) < _LENGTH.size:
                return
            batch = pickle.loads(inp.read(_LENGTH.unpack(head)[0]))
            reply = pickle.dumps(_inspect_batch(batch), pickle.HIGHEST_PROTOCOL)
            out.write(_LENGTH.pack(len(reply)) + reply)
            out.flush()


class _Batch:
    __slots__ = ("attempts", "messages", "outcomes", "wire")

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.wire = b""  # the encoded request, kept until the outcomes are in (to send it again)
        self.outcomes: list[Outcome] | None = None
        self.attempts = 0


class _Worker:
    __slots__ = ("inbox", "outbox", "pid", "queue", "replies", "requests")

    def __init__(self, pid: int, requests: int, replies: int) -> None:
        self.pid = pid
        self.requests = requests  # our end: batches to the worker (non-blocking)
        self.replies = replies  # our end: outcomes from the worker (non-blocking)
        self.queue: deque[_Batch] = deque()  # sent to this worker and not answered yet, in order
        self.outbox = bytearray()  # written to the pipe as it takes it
        self.inbox = bytearray()


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
                 batch_bytes: int = 512 * 1024, max_batches_per_worker: int = 4,
                 budget_seconds: float | None = None) -> None:
        global _inspector
        _inspector = inspector
        self.workers = workers if workers > 0 else (os.cpu_count() or 1)
        self.batch_messages = batch_messages
        self.batch_bytes = batch_bytes
        self.max_in_flight = self.workers * max_batches_per_worker
        # Per message, as InspectionPool: a batch may take this long times its length.
        self.budget = budget_seconds if budget_seconds is not None else inspector.limits.time_budget_seconds * 1.2 + 2
        self._pool: list[_Worker] = []
        self._by_fd: dict[int, _Worker] = {}
        self._poll = select.poll()
        self._entries: deque[_Entry] = deque()
        self._in_flight: deque[_Batch] = deque()  # sent and not collected, in submission order
        self._current = _Batch()
        self._current_bytes = 0
        self._verdicts: dict[_WireVerdict, Verdict] = {}
        self._unpolled = 0
        self.recycled = 0  # workers replaced after a timeout or a death

    def start(self) -> None:
        """Fork the workers now (before this process starts threads of its own)."""
        while len(self._pool) < self.workers:
            self._spawn()

    def _spawn(self) -> _Worker:
        child_in, requests = os.pipe()
        replies, child_out = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the parent's code
            code = 1
            try:
                for fd in [requests, replies] + [f for w in self._pool for f in (w.requests, w.replies)]:
                    os.close(fd)
                _serve(child_in, child_out)
                code = 0
            finally:
                os._exit(code)
        os.close(child_in)
        os.close(child_out)
        for fd in (requests, replies):
            os.set_blocking(fd, False)
            try:
                import fcntl

                fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_SIZE)
            except (ImportError, OSError):  # not Linux, or over the system's limit: smaller writes, same result
                pass
        worker = _Worker(pid, requests, replies)
        self._pool.append(worker)
        self._by_fd[replies] = self._by_fd[requests] = worker
        self._poll.register(replies, select.POLLIN)
        return worker

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
        self._trim()
        while len(self._in_flight) >= self.max_in_flight:
            self._wait(self._in_flight[0])
        request = pickle.dumps([_to_wire(m) for m in batch.messages], pickle.HIGHEST_PROTOCOL)
        batch.wire = _LENGTH.pack(len(request)) + request
        self._in_flight.append(batch)
        self._send(batch)

    def _send(self, batch: _Batch, worker: _Worker | None = None) -> None:
        self.start()
        if worker is None:
            worker = min(self._pool, key=lambda w: len(w.queue))
        worker.queue.append(batch)
        worker.outbox += batch.wire
        self._write(worker)

    # ------------------------------------------------------------------------------------ output

    def ready(self) -> Iterator[tuple[Message, Any, Outcome]]:
        """Completed transactions at the head of the order, without waiting."""
        entries = self._entries
        if not entries:
            return iter(())
        head = entries[0].batch
        if head is not None and head.outcomes is None:
            if head is self._current:
                return iter(())
            # A poll per transaction would be mostly "not yet": look every few calls.
            self._unpolled += 1
            if self._unpolled < 8:
                return iter(())
            self._unpolled = 0
            self._pump(0)
            if head.outcomes is None:
                return iter(())
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
                    if not block:
                        return
                    if batch is self._current:
                        self._flush()
                    self._wait(batch)
                assert batch.outcomes is not None
                outcome = batch.outcomes[entry.index]
            entries.popleft()
            yield entry.message, entry.context, outcome

    def _wait(self, batch: _Batch) -> None:
        """Collect the oldest batch in flight (blocking): its worker is working on it, every batch sent before
        it being answered. Past its time budget the worker is killed and the batch fails as timed out."""
        self._trim()
        assert batch is self._in_flight[0]
        deadline = time.monotonic() + self.budget * len(batch.messages)
        while batch.outcomes is None:
            left = deadline - time.monotonic()
            if left <= 0:
                worker = next(w for w in self._pool if batch in w.queue)
                self._replace(worker, batch, Reason.TIMEOUT)
                break
            self._pump(left)
        self._trim()

    def _trim(self) -> None:
        """Forget answered batches at the head of the order (their outcomes stay with their entries)."""
        in_flight = self._in_flight
        while in_flight and in_flight[0].outcomes is not None:
            in_flight.popleft().wire = b""

    # ------------------------------------------------------------------------------------ pipes

    def _pump(self, timeout: float) -> None:
        """Write what the pipes take and read what the workers answered, waiting up to `timeout` seconds
        for something to happen."""
        for fd, events in self._poll.poll(timeout * 1000):
            worker = self._by_fd.get(fd)
            if worker is None:
                continue
            if fd == worker.requests:
                self._write(worker)
            elif events & (select.POLLIN | select.POLLHUP | select.POLLERR):
                self._read(worker)

    def _write(self, worker: _Worker) -> None:
        if worker.outbox:
            try:
                written = os.write(worker.requests, worker.outbox)
            except BlockingIOError:
                written = 0
            except OSError:  # the worker is gone: found out when reading its end
                worker.outbox.clear()
                written = 0
            del worker.outbox[:written]
        if worker.outbox:
            self._poll.register(worker.requests, select.POLLOUT)
        else:
            with contextlib.suppress(KeyError):
                self._poll.unregister(worker.requests)

    def _read(self, worker: _Worker) -> None:
        try:
            chunk = os.read(worker.replies, _PIPE_SIZE)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        inbox = worker.inbox
        inbox += chunk
        while len(inbox) >= _LENGTH.size:
            size = _LENGTH.unpack_from(inbox)[0]
            if len(inbox) < _LENGTH.size + size:
                break
            wire: list[_WireOutcome] = pickle.loads(inbox[_LENGTH.size : _LENGTH.size + size])
            del inbox[: _LENGTH.size + size]
            batch = worker.queue.popleft()
            seen = self._verdicts
            batch.outcomes = [(_outcome_from_wire(result, seen), seconds) for result, seconds in wire]
        if not chunk:  # end of file: the worker died
            suspect = worker.queue[0] if worker.queue else None
            if suspect is not None:
                suspect.attempts += 1
            self._replace(worker, suspect, Reason.INSPECTION_ERROR if suspect and suspect.attempts >= 2 else None)

    def _replace(self, worker: _Worker, culprit: _Batch | None, failure: Reason | None) -> None:
        """Put a new worker in the place of one that died or is stuck; `culprit` fails with `failure`
        (when given), the worker's other batches are sent again."""
        self._retire(worker, kill=True)
        self.recycled += 1
        pending = list(worker.queue)
        if culprit is not None and failure is not None:
            culprit.outcomes = [(failure, 0.0)] * len(culprit.messages)
            pending.remove(culprit)
        if not pending:
            return
        fresh = self._spawn()
        for batch in pending:  # the retried batch alone first on a fresh worker: if it kills it, it is the culprit
            self._send(batch, fresh)

    def _retire(self, worker: _Worker, kill: bool) -> None:
        self._pool.remove(worker)
        for fd in (worker.requests, worker.replies):
            self._by_fd.pop(fd, None)
            with contextlib.suppress(KeyError):
                self._poll.unregister(fd)
            os.close(fd)
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGKILL)
        os.waitpid(worker.pid, 0)

    def close(self) -> None:
        """Stop the workers: idle ones exit at the end of their input; busy ones (after an error) are killed."""
        busy = bool(self._in_flight)
        for worker in list(self._pool):
            self._retire(worker, kill=busy)
