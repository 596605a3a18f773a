"""Policy replay: inspect the same inputs under the current and a candidate policy and describe the
difference — which verdicts change, through which rules and entities, and the analyst workload that
follows. Read-only: nothing is recorded, enforced or alerted."""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email import policy as email_policy
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from dlp.config import PassiveSettings
from dlp.inspect import Inspector
from dlp.model import Action, Channel, ContentKind, Envelope, Message, Verdict

_HTTP_REQUEST_LINE = re.compile(rb"^[A-Z]{3,10} \S+ HTTP/1\.[01]\r?\n")


def channel_for(raw: bytes) -> Channel:
    """The channel a stored file most likely came through: raw HTTP requests -> web, the rest -> smtp."""
    return Channel.WEB if _HTTP_REQUEST_LINE.match(raw[:2048]) else Channel.SMTP


@dataclass(frozen=True, slots=True)
class ReplayItem:
    source: str
    message: Message
    # (current, candidate) when the channel had to decide them itself (captures: the passive monitor adds
    # what the wire showed, such as cleartext credentials and reassembly gaps); None: inspect the message.
    verdicts: tuple[Verdict, Verdict] | None = None


@dataclass(frozen=True, slots=True)
class Change:
    source: str
    channel: str
    before: str
    after: str
    rules_added: tuple[str, ...]
    rules_removed: tuple[str, ...]
    entities: tuple[str, ...]


@dataclass
class ReplayReport:
    total: int = 0
    by_source_kind: Counter[str] = field(default_factory=Counter)
    before: Counter[str] = field(default_factory=Counter)
    after: Counter[str] = field(default_factory=Counter)
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    rules_added: Counter[str] = field(default_factory=Counter)
    rules_removed: Counter[str] = field(default_factory=Counter)
    entities: Counter[str] = field(default_factory=Counter)
    changes: list[Change] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return len(self.changes)

    def workload(self) -> dict[str, dict[str, int]]:
        """Incidents analysts would see (anything but pass) and items they would have to decide (held)."""
        def incidents(c: Counter[str]) -> int:
            return sum(n for a, n in c.items() if a != Action.PASS)

        def held(c: Counter[str]) -> int:
            return c[Action.QUARANTINE]

        return {
            "incidents": {"before": incidents(self.before), "after": incidents(self.after)},
            "quarantined": {"before": held(self.before), "after": held(self.after)},
            "blocked": {"before": self.before[Action.BLOCK], "after": self.after[Action.BLOCK]},
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "sources": dict(self.by_source_kind),
            "changed": self.changed,
            "before": dict(self.before),
            "after": dict(self.after),
            "transitions": [{"from": a, "to": b, "count": n} for (a, b), n in sorted(self.transitions.items())],
            "rules_added": dict(self.rules_added),
            "rules_removed": dict(self.rules_removed),
            "entities": dict(self.entities),
            "workload": self.workload(),
            "changes": [
                {"source": c.source, "channel": c.channel, "before": c.before, "after": c.after,
                 "rules_added": list(c.rules_added), "rules_removed": list(c.rules_removed),
                 "entities": list(c.entities)}
                for c in self.changes
            ],
        }

    def as_text(self) -> str:
        lines = [f"replayed {self.total} inputs ("
                 + ", ".join(f"{n} {k}" for k, n in sorted(self.by_source_kind.items())) + ")"]
        lines.append(f"verdicts changed: {self.changed}")
        for (a, b), n in sorted(self.transitions.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {a:>10} -> {b:<10} {n}")
        if self.rules_added or self.rules_removed:
            lines.append("rules: " + ", ".join(
                [f"+{r} {n}" for r, n in self.rules_added.most_common()]
                + [f"-{r} {n}" for r, n in self.rules_removed.most_common()]))
        if self.entities:
            lines.append("entities in changed verdicts: "
                         + ", ".join(f"{e} {n}" for e, n in self.entities.most_common()))
        w = self.workload()
        lines.append("analyst workload: " + ", ".join(
            f"{k} {v['before']} -> {v['after']} ({v['after'] - v['before']:+d})" for k, v in w.items()))
        for c in self.changes[:50]:
            lines.append(f"  {c.source}: {c.before} -> {c.after}"
                         + (f" (+{', +'.join(c.rules_added)})" if c.rules_added else "")
                         + (f" (-{', -'.join(c.rules_removed)})" if c.rules_removed else ""))
        if len(self.changes) > 50:
            lines.append(f"  ... and {len(self.changes) - 50} more (use --format json)")
        return "\n".join(lines)


def replay(items: Iterable[tuple[str, ReplayItem]], current: Inspector, candidate: Inspector) -> ReplayReport:
    """`items` yields (source kind, item): the kind is a label for the summary (file, stored, capture)."""
    report = ReplayReport()
    for kind, item in items:
        if item.verdicts is not None:
            before, after = item.verdicts
        else:
            before = current.inspect(item.message)
            after = candidate.inspect(item.message)
        report.total += 1
        report.by_source_kind[kind] += 1
        b, a = str(_effective(before)), str(_effective(after))
        report.before[b] += 1
        report.after[a] += 1
        if b != a or set(before.rules) != set(after.rules):
            added = tuple(sorted(set(after.rules) - set(before.rules)))
            removed = tuple(sorted(set(before.rules) - set(after.rules)))
            if b != a:
                report.transitions[(b, a)] += 1
            report.rules_added.update(added)
            report.rules_removed.update(removed)
            entities = tuple(sorted(set(before.entities) | set(after.entities)))
            report.entities.update(entities)
            report.changes.append(Change(item.source, str(item.message.channel), b, a, added, removed, entities))
    return report


def _effective(verdict: Verdict) -> Action:
    """Replay compares what the rules call for, not what monitor mode let through."""
    return verdict.action


def envelope_from_file(raw: bytes) -> Envelope:
    """The envelope a stored message or request implies: From/To/Cc/Bcc of an e-mail, the URL of an
    HTTP request. Files have no envelope; this lets destination allow-lists apply to them."""
    head = raw[:65536]
    request = _HTTP_REQUEST_LINE.match(head)
    if request:
        method, target = request.group(0).split(b" ")[:2]
        host = re.search(rb"\r?\nHost:[ \t]*([^\r\n]+)", head, re.IGNORECASE)
        url = target.decode("latin-1")
        if host and url.startswith("/"):
            url = f"http://{host.group(1).decode('latin-1').strip()}{url}"
        return Envelope(destination=url, method=method.decode())
    headers = BytesHeaderParser(policy=email_policy.compat32).parsebytes(head)
    recipients = tuple(addr for _, addr in getaddresses(
        [str(v) for name in ("To", "Cc", "Bcc") for v in headers.get_all(name, [])]) if addr)
    senders = getaddresses([str(v) for v in headers.get_all("From", [])])
    return Envelope(sender=senders[0][1] if senders else "", recipients=recipients)


def file_item(source: str, raw: bytes, channel: Channel | None = None) -> ReplayItem:
    ch = channel or channel_for(raw)
    kind = ContentKind.HTTP if ch is Channel.WEB else ContentKind.AUTO
    return ReplayItem(source, Message(ch, raw, kind, envelope_from_file(raw), name=source.rsplit("/", 1)[-1]))


class CaptureMismatch(Exception):
    """The two passive monitors of a capture replay saw different transactions (a bug, not bad input)."""


def capture_items(path: str | Path, current: Inspector, candidate: Inspector, value_key: bytes,
                  settings: PassiveSettings | None = None) -> Iterator[tuple[str, ReplayItem]]:
    """The transactions of a capture, each with its verdict under both policies, decided exactly as
    `dlp pcap` decides them. The capture is read once and every frame is fed to two passive monitors (one
    per policy) in lock-step: their reassembly is identical, so their results pair up in order and only
    the transactions not yet paired are held in memory. Raises dlp.channels.passive.reader.CaptureError."""
    from dlp.channels.passive.monitor import Monitor, Result
    from dlp.channels.passive.reader import Capture

    before: deque[Result] = deque()
    after: deque[Result] = deque()
    monitors = (Monitor(current, value_key, settings, on_result=before.append),
                Monitor(candidate, value_key, settings, on_result=after.append))
    index = 0

    def paired() -> Iterator[tuple[str, ReplayItem]]:
        nonlocal index
        while before and after:
            b, a = before.popleft(), after.popleft()
            if b.summary != a.summary:
                raise CaptureMismatch(f"{path}: transaction {index + 1} differs between the two monitors")
            index += 1
            yield "capture", ReplayItem(f"{path}#{index} {b.summary}", b.message, (b.verdict, a.verdict))

    with Capture(path) as capture:
        for ts, linktype, frame in capture:
            for monitor in monitors:
                monitor.packet(ts, linktype, frame)
            yield from paired()
        for monitor in monitors:
            monitor.finish()
        yield from paired()
    if before or after:
        raise CaptureMismatch(f"{path}: the two monitors saw {len(before)} and {len(after)} unpaired transactions")
