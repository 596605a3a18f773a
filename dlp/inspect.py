"""The Inspector: extract -> detect -> policy, within size and time budgets; and the process pool that
runs it off the channels' event loops."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import multiprocessing
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace

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


class InspectionPool:
    """Runs inspections in worker processes so that the SMTP and HTTP servers keep answering.

    `workers = 0` means one per core; `workers < 0` inspects in a thread of this process (tests, tiny
    deployments). A budget overrun recycles the pool: a stuck worker cannot be interrupted otherwise.
    """

    def __init__(self, settings: Settings, inspector: Inspector | None = None) -> None:
        self.settings = settings
        self._inline = settings.inspection.workers < 0
        self._inspector = inspector if inspector is not None else (
            Inspector.from_settings(settings) if self._inline else None
        )
        self._workers = settings.inspection.workers or os.cpu_count() or 1
        self._executor: ProcessPoolExecutor | None = None
        self.queue_depth = 0

    def start(self) -> None:
        if not self._inline and self._executor is None:
            self._executor = self._new_executor()
            # Warm up every worker now, so start-up problems surface before the first message.
            futures = [self._executor.submit(os.getpid) for _ in range(self._workers)]
            for f in futures:
                f.result(timeout=120)

    def _new_executor(self) -> ProcessPoolExecutor:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["dlp.inspect", "pypdfium2"])
        return ProcessPoolExecutor(self._workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(self.settings,))

    async def inspect(self, message: Message) -> Verdict:
        """A verdict, or InspectionFailed(TIMEOUT | INSPECTION_ERROR)."""
        from dlp import metrics

        # The inspector checks its own deadline between parts; this hard stop catches one stuck part.
        budget = self.settings.inspection.limits.time_budget_seconds * 1.2 + 2.0
        self.queue_depth += 1
        metrics.POOL_QUEUE_DEPTH.set(self.queue_depth)
        try:
            if self._inline:
                assert self._inspector is not None
                return await asyncio.wait_for(asyncio.to_thread(self._inspector.inspect, message), budget)
            if self._executor is None:
                # (Re)starting forks and warms workers: never on the event loop the servers share.
                await asyncio.to_thread(self.start)
            assert self._executor is not None
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._executor, _inspect_in_worker, message)
            return await asyncio.wait_for(future, budget)
        except TimeoutError:
            self._recycle()
            raise InspectionFailed(Reason.TIMEOUT) from None
        except BrokenProcessPool:
            self._recycle()
            raise InspectionFailed(Reason.INSPECTION_ERROR) from None
        except InspectionFailed:
            raise
        except Exception:
            raise InspectionFailed(Reason.INSPECTION_ERROR) from None
        finally:
            self.queue_depth -= 1
            metrics.POOL_QUEUE_DEPTH.set(self.queue_depth)

    def _recycle(self) -> None:
        if self._executor is not None:
            old, self._executor = self._executor, None
            kill_executor(old)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
