"""The Inspector: extract -> detect -> policy, within size and time budgets; and the process pool that
runs it off the channels' event loops."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import hmac
import multiprocessing
import os
import re
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.reduction import ForkingPickler

from detectors.base import DetectorSet, build_detectors
from dlp.config import Limits, Settings
from dlp.extract import extract
from dlp.keys import value_id_key
from dlp.model import Action, Finding, Match, Message, Part, Reason, Uninspected, Verdict, new_incident_id
from dlp.policy import Policy, load_policy

_CONTEXT_CHARS = 40
# In a context excerpt every digit is hidden (a CVV, a PIN, a date of birth next to a card are as
# sensitive as the card), and so is the word that follows a secret's label.
_DIGIT = re.compile(r"\d")
_SECRET_LABEL = re.compile(
    r"(?i)\b(cvv2?|cvc2?|csc|pin|pass(?:word|wd|code)?|pwd|pw|secret|token|otp)\b(\s*[:=#]?\s*)(\S+)")


def _hide(text: str) -> str:
    text = _SECRET_LABEL.sub(lambda m: m.group(1) + m.group(2) + "*" * len(m.group(3)), text)
    return _DIGIT.sub("#", text)


class InspectionFailed(Exception):
    """Inspection could not produce a verdict (an error or a budget overrun). `reason` is a Reason value;
    the message text is fixed and carries no content."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(f"inspection failed: {reason}")
        self.reason = reason


def value_id(key: bytes, entity: str, value: str) -> str:
    """A keyed hash of the normalised value: the same card in any format has the same id, and no one
    without the installation key can test a guess against it."""
    digest = hmac.new(key, f"{entity}\x00{value}".encode(), hashlib.sha256).hexdigest()
    return digest[:24]


def mask(entity: str, value: str, label: str = "") -> str:
    """At most the first 6 and last 4 digits of a card, the last 4 characters of anything else."""
    if entity == "CUSTOMER_RECORD":
        return label or "customer record"
    if entity == "CREDIT_CARD" and len(value) >= 13:
        return f"{value[:6]}{'*' * (len(value) - 10)}{value[-4:]}"
    if entity == "CLEARTEXT_CREDENTIALS":
        return "****"
    keep = 4 if len(value) >= 8 else max(0, len(value) - 4)
    return "*" * (len(value) - keep) + value[len(value) - keep :] if keep else "*" * len(value)


@dataclass(frozen=True, slots=True)
class _Hit:
    match: Match
    masked: str


class Inspector:
    """Compiled once (detectors, policy, keys); `inspect` is pure CPU with no I/O."""

    def __init__(self, policy: Policy, value_key: bytes, limits: Limits | None = None,
                 detectors: DetectorSet | None = None) -> None:
        self.policy = policy
        self.limits = limits or Limits()
        self.detectors = detectors or build_detectors(policy.detectors)
        self._key = value_key

    @classmethod
    def from_settings(cls, settings: Settings, policy_file: str | None = None) -> Inspector:
        policy = load_policy(policy_file or settings.inspection.policy_file or None)
        # Exact data match reads its indexes from the data directory and its rules from `edm:`.
        options = {**policy.detectors, "customer_record": {
            **policy.detectors.get("customer_record", {}), "data_dir": str(settings.data_path),
            "edm": policy.raw.get("edm") or {}}}
        return cls(policy, value_id_key(settings.data_path), settings.inspection.limits, build_detectors(options))

    def inspect(self, message: Message) -> Verdict:
        limits = self.limits
        deadline = time.monotonic() + limits.time_budget_seconds
        uninspected: list[Uninspected] = []
        raw = message.raw
        if len(raw) > limits.max_message_bytes:
            uninspected.append(Uninspected("message", Reason.TRUNCATED, "message larger than the size budget"))
            raw = raw[: limits.max_message_bytes]
        extraction = extract(raw, message.kind, limits, name=message.name, deadline=deadline)
        uninspected.extend(extraction.uninspected)
        findings: list[Finding] = []
        budget = limits.max_text_chars
        for index, part in enumerate(extraction.parts):
            if time.monotonic() > deadline:
                uninspected.extend(
                    Uninspected(p.location, Reason.TIMEOUT, "time budget exhausted before this part")
                    for p in extraction.parts[index:]
                )
                break
            text = part.text
            cap = min(limits.max_part_chars, budget)
            if len(text) > cap:
                uninspected.append(Uninspected(part.location, Reason.TRUNCATED, "text beyond the size budget"))
                text = text[:cap]
                part = replace(part, text=text)
            budget -= len(text)
            findings.extend(self._findings(part, self.detectors.scan(text)))
            if budget <= 0:
                uninspected.extend(
                    Uninspected(p.location, Reason.TRUNCATED, "text beyond the size budget")
                    for p in extraction.parts[index + 1 :]
                )
                break
        evaluation = self.policy.evaluate(message, findings, uninspected)
        return Verdict(
            action=evaluation.action,
            severity=evaluation.severity,
            rules=evaluation.rules,
            findings=tuple(findings),
            uninspected=tuple(uninspected),
            incident_id=new_incident_id() if evaluation.action is not Action.PASS else None,
            monitor_only=evaluation.monitor_only,
            enforced_action=evaluation.enforced_action,
            kind=str(extraction.kind),
        )

    def _findings(self, part: Part, matches: list[Match]) -> list[Finding]:
        hits = [_Hit(m, mask(m.entity, m.value, m.label)) for m in _dedupe(matches)]
        out = []
        for hit in hits:
            m = hit.match
            out.append(
                Finding(
                    entity=m.entity,
                    detector=m.detector,
                    score=round(m.score, 3),
                    location=part.location,
                    start=m.start,
                    end=m.end,
                    masked=hit.masked,
                    value_id=value_id(self._key, m.entity, m.value),
                    label=m.label,
                    context=_masked_context(part.text, m.start, m.end, hits),
                )
            )
        return out


def _dedupe(matches: list[Match]) -> list[Match]:
    """One finding per entity and span: the highest score wins."""
    best: dict[tuple[str, int, int], Match] = {}
    for m in matches:
        key = (m.entity, m.start, m.end)
        if key not in best or m.score > best[key].score:
            best[key] = m
    return sorted(best.values(), key=lambda m: (m.start, m.end, m.entity))


def _masked_context(text: str, start: int, end: int, hits: list[_Hit]) -> str:
    """The text around a finding with every finding in it masked, every other digit hidden and the
    value after a secret's label (cvv, pin, password, ...) starred."""
    lo, hi = max(0, start - _CONTEXT_CHARS), min(len(text), end + _CONTEXT_CHARS)
    pieces: list[str] = []
    cursor = lo
    for hit in sorted(hits, key=lambda h: h.match.start):
        m = hit.match
        if m.end <= lo or m.start >= hi:
            continue
        if m.start < cursor:  # straddles the window's left edge or overlaps the previous finding
            if m.end > cursor:
                pieces.append(f"[{hit.masked}]")
                cursor = m.end
            continue
        pieces.append(_hide(text[cursor : m.start]))
        pieces.append(f"[{hit.masked}]")
        cursor = m.end
    pieces.append(_hide(text[cursor:hi]))
    return " ".join("".join(pieces).split())


# ------------------------------------------------------------------------------------ process pool

_worker_inspector: Inspector | None = None


def _init_worker(settings: Settings) -> None:
    global _worker_inspector
    import resource

    from dlp import logs

    logs.configure(settings.log_level)
    limit = settings.inspection.worker_memory_mb
    if limit > 0:  # the last line of defence behind the extraction budgets: MemoryError -> fail closed
        resource.setrlimit(resource.RLIMIT_AS, (limit * 1024 * 1024, resource.RLIM_INFINITY))
    _worker_inspector = Inspector.from_settings(settings)


def _inspect_in_worker(message: Message) -> Verdict:
    assert _worker_inspector is not None
    return _worker_inspector.inspect(message)


def kill_executor(executor: ProcessPoolExecutor) -> None:
    """Stop a pool whose worker is stuck: a running task cannot be cancelled, only its process killed."""
    for proc in list(getattr(executor, "_processes", {}).values()):
        proc.kill()
    executor.shutdown(wait=False, cancel_futures=True)


class _Job:
    __slots__ = ("future", "message", "timer")

    def __init__(self, message: Message, future: asyncio.Future[Verdict]) -> None:
        self.message = message
        self.future = future
        self.timer: asyncio.TimerHandle | None = None


class _Worker:
    """One inspection process and our end of its pipe; it carries at most one job at a time."""

    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.job: _Job | None = None
        # A large message is written from a thread (send_soon). Its pipe must not be closed under that
        # write: the descriptor could be reused at once (a new worker's pipe) and receive the rest.
        self._pipe_lock = threading.Lock()
        self._sending = False
        self._killed = False

    def send_soon(self, payload: bytes) -> None:
        """Write `payload` from a thread: the worker reads it as fast as we write, but not faster than
        memory copies, and the event loop must not wait for that."""
        with self._pipe_lock:
            self._sending = True
        threading.Thread(target=self._send, args=(payload,), name="dlp-inspection-send", daemon=True).start()

    def _send(self, payload: bytes) -> None:
        with contextlib.suppress(OSError):  # a dead worker: its pipe's EOF reports it on the loop
            self.conn.send_bytes(payload)
        with self._pipe_lock:
            self._sending = False
            close = self._killed
        if close:
            with contextlib.suppress(Exception):
                self.conn.close()

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
        with self._pipe_lock:
            self._killed = True
            if self._sending:
                return  # the write fails now that the process is gone; the sender then closes the pipe
        with contextlib.suppress(Exception):
            self.conn.close()


def _worker_main(conn: Connection, settings: Settings) -> None:
    """A worker process: say "ready", then answer each message with ("ok", verdict) or a failure."""
    try:
        _init_worker(settings)
    except Exception as exc:  # a policy or an EDM index it cannot use: say why instead of dying silently
        conn.send(("error", str(exc) or type(exc).__name__))
        return
    conn.send(("ready", None))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        except MemoryError:  # the rest of that message is still in the pipe: the stream is out of step
            return
        if message is None:
            return
        try:
            conn.send(("ok", _inspect_in_worker(message)))
        except InspectionFailed as failed:
            conn.send(("failed", failed.reason))
        except Exception:  # MemoryError included: fail closed, keep serving
            conn.send(("failed", Reason.INSPECTION_ERROR))


# Messages above this are written to a worker's pipe from a thread, not from the event loop.
_INLINE_SEND_BYTES = 256 * 1024


class InspectionPool:
    """Runs inspections in worker processes so that the SMTP and HTTP servers keep answering.

    `workers = 0` means one per core; `workers < 0` inspects in a thread of this process (tests, tiny
    deployments). The event loop talks to each worker over its own pipe (add_reader), one message at a
    time: no feeder or manager threads and no thread hops per message, unlike a ProcessPoolExecutor. A
    budget overrun kills that worker (a stuck one cannot be interrupted otherwise) and starts another.
    The pool follows the event loop it is used from (tests run several asyncio.run in a row).
    """

    def __init__(self, settings: Settings, inspector: Inspector | None = None) -> None:
        self.settings = settings
        self._inline = settings.inspection.workers < 0
        self._inspector = inspector if inspector is not None else (
            Inspector.from_settings(settings) if self._inline else None
        )
        self._workers = settings.inspection.workers or os.cpu_count() or 1
        self._budget = settings.inspection.limits.time_budget_seconds * 1.2 + 2.0
        self._started = False
        self._closed = False
        self._start_lock = threading.Lock()  # two first inspect() calls must not both start workers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._live: list[_Worker] = []
        self._idle: list[_Worker] = []
        self._queue: collections.deque[_Job] = collections.deque()
        self._lock = threading.Lock()  # guards _fresh and _spawning (spawner threads append)
        self._fresh: list[_Worker] = []
        self._spawning = 0
        self.queue_depth = 0

    def start(self) -> None:
        """Start every worker and wait until each is ready, so start-up problems surface now."""
        with self._start_lock:
            if self._inline or self._started:
                return
            workers: list[_Worker] = []
            try:
                for _ in range(self._workers):
                    workers.append(self._launch())
                for worker in workers:
                    self._await_ready(worker)
            except BaseException:
                for worker in workers:
                    worker.kill()
                raise
            with self._lock:
                self._fresh.extend(workers)
            self._closed = False
            self._started = True

    @staticmethod
    def _context() -> multiprocessing.context.ForkServerContext:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["dlp.inspect", "pypdfium2"])
        return ctx

    def _launch(self) -> _Worker:
        ctx = self._context()
        ours, theirs = ctx.Pipe(duplex=True)
        try:
            process = ctx.Process(target=_worker_main, args=(theirs, self.settings), daemon=True)
            process.start()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return _Worker(process, ours)

    @staticmethod
    def _await_ready(worker: _Worker) -> None:
        why = ""
        try:
            if worker.conn.poll(120):
                status, detail = worker.conn.recv()
                if status == "ready":
                    return
                why = f": {detail}"
        except (EOFError, OSError):
            pass
        worker.kill()
        raise RuntimeError(f"an inspection worker did not start{why}")

    def _spawn_soon(self) -> None:
        """Replace a lost worker from a thread (forking and warming up must not block the loop)."""
        if self._closed:
            return
        with self._lock:
            self._spawning += 1

        def spawn() -> None:
            loop = self._loop  # the loop in use now, which may not be the one that lost the worker
            try:
                worker = self._launch()
                self._await_ready(worker)
            except Exception:
                with self._lock:
                    self._spawning -= 1
                if loop is not None:  # the next inspect() tries again; what waits now must not wait forever
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(self._fail_if_starved)
                return
            with self._lock:
                self._spawning -= 1
                if self._closed:
                    worker.kill()
                    return
                self._fresh.append(worker)
            loop = self._loop
            if loop is not None:
                with contextlib.suppress(RuntimeError):  # that loop has closed: the next inspect() adopts it
                    loop.call_soon_threadsafe(self._adopt)

        threading.Thread(target=spawn, name="dlp-inspection-spawn", daemon=True).start()

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Watch the workers' pipes from `loop` (the loop inspect() is awaited on)."""
        if self._loop is loop:
            return
        old, self._loop = self._loop, loop
        for worker in list(self._live):
            if old is not None and not old.is_closed():
                with contextlib.suppress(Exception):
                    old.remove_reader(worker.conn.fileno())
            if worker.job is not None:  # a reply meant for another loop's caller: start that worker afresh
                self._lose(worker, Reason.INSPECTION_ERROR)
                continue
            loop.add_reader(worker.conn.fileno(), self._on_reply, worker)
        self._queue = collections.deque(j for j in self._queue if not j.future.done())

    def _adopt(self) -> None:
        with self._lock:
            fresh, self._fresh = self._fresh, []
        for worker in fresh:
            if self._loop is None or self._loop.is_closed():
                with self._lock:
                    self._fresh.append(worker)
                continue
            self._live.append(worker)
            self._idle.append(worker)
            self._loop.add_reader(worker.conn.fileno(), self._on_reply, worker)
        self._dispatch()

    def _dispatch(self) -> None:
        while self._queue and self._idle:
            job = self._queue.popleft()
            if job.future.done():  # its caller gave up while it waited
                continue
            worker = self._idle.pop()
            if not worker.process.is_alive():  # died while idle (its EOF not seen yet): not this job's fault
                self._queue.appendleft(job)
                self._lose(worker, Reason.INSPECTION_ERROR)
                continue
            worker.job = job
            assert self._loop is not None
            job.timer = self._loop.call_later(self._budget, self._overrun, worker, job)
            payload = ForkingPickler.dumps(job.message)
            if len(payload) <= _INLINE_SEND_BYTES:
                try:
                    worker.conn.send_bytes(payload)
                except OSError:
                    self._lose(worker, Reason.INSPECTION_ERROR)
            else:
                worker.send_soon(payload)

    def _fail_if_starved(self) -> None:
        """No worker is alive or on its way: fail the waiting jobs now rather than never."""
        with self._lock:
            coming = len(self._fresh) + self._spawning
        if self._live or coming:
            return
        for job in self._queue:
            if not job.future.done():
                job.future.set_exception(InspectionFailed(Reason.INSPECTION_ERROR))
        self._queue.clear()

    def _on_reply(self, worker: _Worker) -> None:
        try:
            kind, value = worker.conn.recv()
        except (EOFError, OSError, ValueError):
            self._lose(worker, Reason.INSPECTION_ERROR)
            return
        if worker.job is None:  # a reply nobody asked for: the stream is out of step, never trust it
            self._lose(worker, Reason.INSPECTION_ERROR)
            return
        job, worker.job = worker.job, None
        if job is not None:
            if job.timer is not None:
                job.timer.cancel()
            if not job.future.done():
                if kind == "ok":
                    job.future.set_result(value)
                else:
                    job.future.set_exception(InspectionFailed(value))
        self._idle.append(worker)
        self._dispatch()

    def _overrun(self, worker: _Worker, job: _Job) -> None:
        if worker.job is job:
            self._lose(worker, Reason.TIMEOUT)

    def _lose(self, worker: _Worker, reason: Reason) -> None:
        """The worker died or overran its budget: kill it, fail its job, start another."""
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(Exception):
                self._loop.remove_reader(worker.conn.fileno())
        worker.kill()
        if worker in self._live:
            self._live.remove(worker)
        if worker in self._idle:
            self._idle.remove(worker)
        job, worker.job = worker.job, None
        if job is not None:
            if job.timer is not None:
                job.timer.cancel()
            if not job.future.done() and not job.future.get_loop().is_closed():
                job.future.set_exception(InspectionFailed(reason))
        if not self._closed:
            self._spawn_soon()

    async def inspect(self, message: Message) -> Verdict:
        """A verdict, or InspectionFailed(TIMEOUT | INSPECTION_ERROR)."""
        from dlp import metrics

        self.queue_depth += 1
        metrics.POOL_QUEUE_DEPTH.set(self.queue_depth)
        try:
            if self._inline:
                assert self._inspector is not None
                return await asyncio.wait_for(asyncio.to_thread(self._inspector.inspect, message), self._budget)
            if not self._started:
                # Starting forks and warms workers: never on the event loop the servers share.
                await asyncio.to_thread(self.start)
            loop = asyncio.get_running_loop()
            self._bind(loop)
            self._adopt()
            with self._lock:
                missing = self._workers - len(self._live) - len(self._fresh) - self._spawning
            for _ in range(missing):
                self._spawn_soon()
            future: asyncio.Future[Verdict] = loop.create_future()
            self._queue.append(_Job(message, future))
            self._dispatch()
            # Each worker enforces the budget of the job it runs; this bounds the wait in the queue too.
            return await asyncio.wait_for(future, self._budget * 2 + 60)
        except TimeoutError:
            raise InspectionFailed(Reason.TIMEOUT) from None
        except InspectionFailed:
            raise
        except Exception:
            raise InspectionFailed(Reason.INSPECTION_ERROR) from None
        finally:
            self.queue_depth -= 1
            metrics.POOL_QUEUE_DEPTH.set(self.queue_depth)

    def close(self) -> None:
        """Stop every worker (politely, then by force, within one short shared deadline)."""
        with self._lock:
            self._closed = True
            workers, self._fresh = [*self._live, *self._fresh], []
        self._live, self._idle = [], []
        for worker in workers:
            if self._loop is not None and not self._loop.is_closed():
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(worker.conn.fileno())
            job, worker.job = worker.job, None
            if job is not None:
                if job.timer is not None:
                    job.timer.cancel()
                if not job.future.done() and not job.future.get_loop().is_closed():
                    job.future.set_exception(InspectionFailed(Reason.INSPECTION_ERROR))
            with contextlib.suppress(Exception):
                worker.conn.send(None)
        deadline = time.monotonic() + 2.0
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            worker.kill()
        for job in self._queue:
            if not job.future.done() and not job.future.get_loop().is_closed():
                job.future.cancel()
        self._queue.clear()
        self._started = False
