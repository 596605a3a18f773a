"""Aggregation windows: distinct sensitive values (or customer records) per agent over a sliding period,
across messages and channels, kept in SQLite so that a restart does not reset them.

Declared in the policy:

    windows:
      cards-per-hour:
        classes: [payment_card]        # data classes (or `entities: [CREDIT_CARD]`)
        distinct: 20                   # the 20th distinct value within the period trips the window
        period: 1h                     # s, m, h, d
        action: {smtp: quarantine, web: block, default: alert}
        severity: high

The store holds the agent as a keyed hash, the findings' value_ids (keyed hashes already) and times:
never a value. `Escalations` is what the pipeline applies to each verdict after inspection: cross-client
contamination (dlp.edm.contamination) first, then the windows.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from dlp.model import Action, Finding, Message, Severity, Verdict, new_incident_id
from dlp.policy import Policy

WINDOW_ENTITY = "WINDOW"  # the synthetic finding that tells analysts "the Nth in the window"
RULE_PREFIX = "window:"
_PERIOD = re.compile(r"(\d+)\s*([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")


class WindowConfigError(ValueError):
    """A bad `windows:` section."""


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    distinct: int
    period: float  # seconds
    action: Mapping[str, Action]
    severity: Severity = Severity.HIGH
    classes: tuple[str, ...] = ()
    entities: frozenset[str] = frozenset()
    channels: tuple[str, ...] = ()  # empty: every channel
    mode: str = "enforce"

    def action_for(self, channel: str) -> Action:
        return self.action.get(channel, self.action.get("default", Action.ALERT))

    def describe_period(self) -> str:
        for unit, seconds in (("d", 86400), ("h", 3600), ("m", 60)):
            if self.period % seconds == 0:
                return f"{int(self.period // seconds)}{unit}"
        return f"{int(self.period)}s"


def parse_period(value: Any, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    m = _PERIOD.fullmatch(str(value).strip().lower())
    if not m or int(m.group(1)) <= 0:
        raise WindowConfigError(f"{where}: period must be like 90s, 30m, 1h or 1d")
    return float(int(m.group(1)) * _UNITS[m.group(2)])


def parse_windows(policy: Policy) -> list[Window]:
    """The policy's `windows:` section (a mapping of name to window), validated against its data classes."""
    section = policy.raw.get("windows") or {}
    if not isinstance(section, Mapping):
        raise WindowConfigError("windows: must be a mapping of window names to windows")
    out = []
    for name, spec in section.items():
        where = f"windows.{name}"
        name = str(name)
        if not _NAME.fullmatch(name):
            raise WindowConfigError(f"{where}: name must be lowercase letters, digits, '-', '_' or '.'")
        if not isinstance(spec, Mapping):
            raise WindowConfigError(f"{where}: must be a mapping")
        if spec.get("enabled", True) is False:
            continue
        unknown = set(spec) - {"classes", "entities", "distinct", "period", "action", "severity", "channels",
                               "mode", "enabled", "description"}
        if unknown:
            raise WindowConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        classes = tuple(str(c) for c in spec.get("classes") or ())
        for c in classes:
            if c not in policy.data_classes:
                raise WindowConfigError(f"{where}: unknown data class {c!r}")
        entities = frozenset(str(e) for e in spec.get("entities") or ())
        if not classes and not entities:
            raise WindowConfigError(f"{where}: needs classes or entities")
        distinct = spec.get("distinct")
        if not isinstance(distinct, int) or isinstance(distinct, bool) or distinct < 1:
            raise WindowConfigError(f"{where}: distinct must be a positive integer")
        action_spec = spec.get("action", "alert")
        if isinstance(action_spec, str):
            action_spec = {"default": action_spec}
        try:
            action = {str(k): Action(v) for k, v in dict(action_spec).items()}
            severity = Severity(spec.get("severity", "high"))
        except (ValueError, TypeError):
            raise WindowConfigError(f"{where}: unknown action or severity") from None
        mode = spec.get("mode", "enforce")
        if mode not in ("enforce", "monitor"):
            raise WindowConfigError(f"{where}: mode must be enforce or monitor")
        out.append(Window(name, distinct, parse_period(spec.get("period", "1h"), where), action, severity,
                          classes, entities, tuple(str(c) for c in spec.get("channels") or ()), mode))
    return out


class WindowStore:
    """Distinct value ids per (window, agent) with the last time each was seen. Thread-safe."""

    PRUNE_EVERY = 1000  # observations between deletions of what every window has forgotten

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # survives a process crash; a power cut may lose the last
            self._db.execute("""CREATE TABLE IF NOT EXISTS seen (
                window TEXT NOT NULL, agent TEXT NOT NULL, value_id TEXT NOT NULL, last_seen REAL NOT NULL,
                PRIMARY KEY (window, agent, value_id)) WITHOUT ROWID""")
            self._db.execute("CREATE INDEX IF NOT EXISTS seen_by_time ON seen (window, agent, last_seen)")
        self._since_prune = 0

    def observe(self, window: str, agent: str, value_ids: Iterable[str], now: float, period: float) -> int:
        """Record the values as seen now; return how many distinct values the agent has in the window."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO seen (window, agent, value_id, last_seen) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (window, agent, value_id) DO UPDATE SET last_seen = excluded.last_seen",
                    [(window, agent, v, now) for v in sorted(set(value_ids))],
                )
                (count,) = self._db.execute(
                    "SELECT COUNT(*) FROM seen WHERE window = ? AND agent = ? AND last_seen > ?",
                    (window, agent, now - period),
                ).fetchone()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._since_prune += 1
        return int(count)

    def prune(self, periods: Mapping[str, float], now: float) -> int:
        """Forget what each window no longer counts (and windows no longer declared)."""
        with self._lock:
            removed = 0
            names = list(periods)
            marks = ",".join("?" * len(names))
            removed += self._db.execute(f"DELETE FROM seen WHERE window NOT IN ({marks})", names).rowcount
            for name, period in periods.items():
                removed += self._db.execute("DELETE FROM seen WHERE window = ? AND last_seen <= ?",
                                            (name, now - period)).rowcount
            self._since_prune = 0
            return removed

    @property
    def due_for_prune(self) -> bool:
        return self._since_prune >= self.PRUNE_EVERY

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class Windows:
    """Counts each message's relevant findings against every window of its agent and escalates the
    verdict of a message that reaches a window's threshold (and of every later one within the period)."""

    def __init__(self, policy: Policy, store: WindowStore, key: bytes,
                 clock: Callable[[], float] = time.time) -> None:
        self.policy = policy
        self.windows = parse_windows(policy)
        self.store = store
        self.clock = clock
        self._key = key

    def _agent_id(self, agent: str) -> str:
        return hmac.new(self._key, f"agent\0{agent}".encode(), hashlib.sha256).hexdigest()[:24]

    def _relevant(self, window: Window, findings: Iterable[Finding]) -> set[str]:
        classes = [self.policy.data_classes[c] for c in window.classes]
        return {f.value_id for f in findings
                if f.entity in window.entities or any(dc.covers(f) for dc in classes)}

    def apply(self, message: Message, verdict: Verdict) -> Verdict:
        agent = message.envelope.agent
        if not self.windows or not agent or not verdict.findings:
            return verdict
        agent_id = self._agent_id(agent)
        channel = str(message.channel)
        now = self.clock()
        shadow = self.policy.monitor or channel in self.policy.monitor_channels
        for window in self.windows:
            if window.channels and channel not in window.channels:
                continue
            values = self._relevant(window, verdict.findings)
            if not values:
                continue
            count = self.store.observe(window.name, agent_id, values, now, window.period)
            if count >= window.distinct:
                verdict = self._escalate(verdict, window, count, agent_id, channel, shadow)
        if self.store.due_for_prune:
            self.store.prune({w.name: w.period for w in self.windows}, now)
        return verdict

    def _escalate(self, verdict: Verdict, window: Window, count: int, agent_id: str, channel: str,
                  shadow: bool) -> Verdict:
        action = window.action_for(channel)
        if action is Action.PASS:
            return verdict
        enforced = Action.ALERT if shadow or window.mode == "monitor" else action
        note = Finding(
            entity=WINDOW_ENTITY,
            detector="windows",
            score=1.0,
            location=f"{RULE_PREFIX}{window.name}",
            start=0,
            end=0,
            masked=f"{_ordinal(count)} distinct in {window.describe_period()} for this agent"
                   f" (threshold {window.distinct})",
            value_id=agent_id,
            label=window.name,
        )
        return escalate(verdict, f"{RULE_PREFIX}{window.name}", action, enforced, window.severity, (note,))


def escalate(verdict: Verdict, rule: str, action: Action, enforced: Action, severity: Severity,
             extra: tuple[Finding, ...] = (), findings: tuple[Finding, ...] | None = None) -> Verdict:
    """A new verdict with one more rule: the most severe action and severity win; an incident id is
    created when the verdict was a pass."""
    new_action = Action.most_severe([verdict.action, action])
    new_enforced = Action.most_severe([verdict.effective_action, enforced])
    return replace(
        verdict,
        action=new_action,
        enforced_action=new_enforced,
        monitor_only=new_enforced.rank < new_action.rank,
        severity=max(verdict.severity, severity, key=lambda s: s.rank),
        rules=(*verdict.rules, rule) if rule not in verdict.rules else verdict.rules,
        findings=(*(verdict.findings if findings is None else findings), *extra),
        incident_id=verdict.incident_id or (new_incident_id() if new_action is not Action.PASS else None),
    )


class VerdictStep(Protocol):
    def apply(self, message: Message, verdict: Verdict) -> Verdict: ...


class Escalations:
    """The pipeline's after-inspection hook: each step may raise a verdict, never lower it."""

    def __init__(self, steps: list[VerdictStep], store: WindowStore | None = None) -> None:
        self.steps = steps
        self.store = store

    @classmethod
    def from_settings(cls, settings: Any, policy: Policy | None = None) -> Escalations:
        from dlp.edm.config import parse_edm
        from dlp.edm.contamination import Contamination
        from dlp.keys import value_id_key
        from dlp.policy import load_policy

        policy = policy or load_policy(settings.inspection.policy_file or None)
        store = WindowStore(settings.data_path / "store" / "windows.db")
        key = value_id_key(settings.data_path)
        return cls([Contamination(parse_edm(policy.raw.get("edm")), policy), Windows(policy, store, key)], store)

    def apply(self, message: Message, verdict: Verdict) -> Verdict:
        for step in self.steps:
            verdict = step.apply(message, verdict)
        return verdict

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
