"""Telling the agent why a message was held: the notification e-mail and its signed release-request link.

The notification goes to the envelope sender through the next hop, with a null return path (so it can
never bounce back into a loop), rate-limited per sender, rendered from a sandboxed template in the
policy, and carries only masked findings. The link is an HMAC-signed, expiring token naming the
incident and the sender; the console's release-request page accepts nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from jinja2.sandbox import SandboxedEnvironment

from dlp.keys import load_or_create_key
from dlp.model import Action, Message, Verdict

DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "from": "Data protection <dlp-noreply@localhost>",
    "subject": "Your message was {{ action_text }} ({{ incident_id }})",
    "body": (
        "Hello,\n\n"
        "Your message to {{ recipient_count }} recipient(s) sent at {{ sent }} was {{ action_text }}\n"
        "by the data-loss prevention system because it appears to contain protected customer data:\n\n"
        "{% for f in findings %}  - {{ f.entity }} {{ f.masked }} (in {{ f.location }})\n{% endfor %}"
        "{% for r in uninspected %}  - content that could not be inspected: {{ r }}\n{% endfor %}\n"
        "Incident: {{ incident_id }}\n\n"
        "{% if action == 'quarantine' %}A security analyst will review it. If the message is legitimate,\n"
        "tell us why so that it can be released:\n\n  {{ release_link }}\n\n"
        "{% else %}It was not delivered. Remove the protected data, or ask your team lead how to send it\n"
        "through an approved channel.\n\n{% endif %}"
        "This is an automatic message; please do not reply.\n"
    ),
    "rate_limit_per_hour": 20,
    # Domains whose senders may be notified (the provider's own). Empty: any sender — fine behind an MTA
    # that only relays the agents' mail; set it so that a forged external MAIL FROM gets nothing back.
    "sender_domains": [],
    "link_valid_hours": 168,
}


class LinkError(Exception):
    """A release link that was forged, altered or has expired. The text is safe to show."""


@dataclass(frozen=True, slots=True)
class ReleaseRequestToken:
    incident_id: str
    sender: str
    expires: int  # unix time


class ReleaseLinks:
    """Signs and verifies release-request tokens with a per-installation key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> ReleaseLinks:
        return cls(load_or_create_key(data_dir / "keys" / "release-links.key"))

    def sign(self, incident_id: str, sender: str, valid_seconds: int, now: float | None = None) -> str:
        payload = {"i": incident_id, "s": sender, "e": int((now or time.time()) + valid_seconds)}
        body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{_b64(self._mac(body))}"

    def verify(self, token: str, now: float | None = None) -> ReleaseRequestToken:
        body, _, mac = token.partition(".")
        try:
            expected = self._mac(body)
            if not mac or not hmac.compare_digest(_unb64(mac), expected):
                raise LinkError("this link is not valid")
            payload = json.loads(_unb64(body))
            token_data = ReleaseRequestToken(str(payload["i"]), str(payload["s"]), int(payload["e"]))
        except (ValueError, KeyError, TypeError):
            raise LinkError("this link is not valid") from None
        if token_data.expires < (now or time.time()):
            raise LinkError("this link has expired")
        return token_data

    def _mac(self, body: str) -> bytes:
        return hmac.new(self._key, b"release-request\x00" + body.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class RateLimiter:
    """At most `limit` events per key in any sliding hour (in memory: a restart forgets, which only
    means an agent may get a few more notifications)."""

    def __init__(self, limit: int, window_seconds: float = 3600.0) -> None:
        self.limit, self.window = limit, window_seconds
        self._events: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            events = self._events[key]
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                return False
            events.append(now)
            return True


_ACTION_TEXT = {Action.QUARANTINE: "held for review", Action.BLOCK: "blocked"}


class Notifier:
    """Builds sender notifications from the policy's `notifications:` section."""

    def __init__(self, options: Mapping[str, Any] | None, links: ReleaseLinks, public_url: str) -> None:
        unknown = sorted(set(options or {}) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"notifications: unknown key {unknown[0]!r} (known: {', '.join(sorted(DEFAULTS))})")
        self.options = {**DEFAULTS, **(options or {})}
        self.links = links
        self.public_url = public_url.rstrip("/")
        self.limiter = RateLimiter(int(self.options["rate_limit_per_hour"]))
        env = SandboxedEnvironment(autoescape=False)
        self._subject = env.from_string(str(self.options["subject"]))
        self._body = env.from_string(str(self.options["body"]))

    @property
    def enabled(self) -> bool:
        return bool(self.options["enabled"])

    def wants(self, message: Message, verdict: Verdict) -> bool:
        """Only held or blocked mail with a real sender, and not more often than the rate limit."""
        return self.skip_reason(message, verdict) is None

    def skip_reason(self, message: Message, verdict: Verdict) -> str | None:
        """None when the sender should be told (and counts against the rate limit), else why not:
        disabled, not_held (passed, alerted or monitor-only: the mail went out), no_sender (a bounce:
        null return path), foreign_sender (outside notifications.sender_domains), rate_limited."""
        sender = message.envelope.sender
        if not self.enabled:
            return "disabled"
        if verdict.incident_id is None or verdict.effective_action not in _ACTION_TEXT:
            return "not_held"
        if not sender:
            return "no_sender"
        domains = {str(d).lower().lstrip("@") for d in self.options["sender_domains"]}
        if domains and sender.rpartition("@")[2].lower() not in domains:
            return "foreign_sender"
        if not self.limiter.allow(sender.lower()):
            return "rate_limited"
        return None

    def release_link(self, incident_id: str, sender: str) -> str:
        token = self.links.sign(incident_id, sender, int(self.options["link_valid_hours"]) * 3600)
        return f"{self.public_url}/release-request/{token}"

    def render(self, message: Message, verdict: Verdict) -> bytes:
        """The notification as RFC 5322 bytes. Only masked values and fixed texts reach it."""
        assert verdict.incident_id is not None
        action = verdict.effective_action
        context = {
            "incident_id": verdict.incident_id,
            "action": str(action),
            "action_text": _ACTION_TEXT.get(action, str(action)),
            "recipient_count": len(message.envelope.recipients),
            "sent": message.received.strftime("%Y-%m-%d %H:%M UTC"),
            "findings": masked_findings(verdict),
            "uninspected": uninspected_reasons(verdict),
            "release_link": self.release_link(verdict.incident_id, message.envelope.sender),
        }
        mail = EmailMessage()
        mail["From"] = str(self.options["from"])
        mail["To"] = message.envelope.sender
        mail["Subject"] = self._subject.render(context).strip()
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = make_msgid(domain="dlp.localhost")
        mail["Auto-Submitted"] = "auto-generated"
        mail["X-DLP-Notification"] = verdict.incident_id
        body = self._body.render(context)
        # Plain 7bit when it can be (the release link then stays one line a person can copy from any
        # client, even a raw view); quoted-printable for non-ASCII templates or very long lines.
        plain = body.isascii() and all(len(line) <= 998 for line in body.splitlines())
        mail.set_content(body, cte="7bit" if plain else "quoted-printable")
        return mail.as_bytes()


MAX_SHOWN_FINDINGS = 20

# Five or more digits, possibly separated: a location is built from names the sender chose (attachment
# and archive member names, form fields, JSON keys), which could themselves carry the value.
_DIGIT_RUN = re.compile(r"\d(?:[ .\-]?\d){4,}")


def safe_location(location: str) -> str:
    """A finding's location with long digit runs replaced, so that it never repeats a value."""
    return _DIGIT_RUN.sub("[digits]", location)


def shown_to_sender(entity: str, masked: str) -> str:
    """The sender sees less than analysts: the last four characters only (a card's masked form keeps its
    first six digits for analysts; a notification or block page may be forwarded or photographed)."""
    if entity == "CUSTOMER_RECORD" or len(masked) <= 4:
        return masked  # a record's mask is its client's name, not a value
    return "*" * (len(masked) - 4) + masked[-4:]


def masked_findings(verdict: Verdict) -> list[dict[str, str]]:
    """What was found, one entry per distinct value, in the form shown to the person who sent it (the
    notification e-mail and the web block page): entity, masked value, where."""
    seen: set[str] = set()
    out: list[dict[str, str]] = []
    for f in verdict.findings:
        if f.value_id in seen:
            continue
        seen.add(f.value_id)
        out.append({"entity": f.entity, "masked": shown_to_sender(f.entity, f.masked),
                    "location": safe_location(f.location)})
        if len(out) >= MAX_SHOWN_FINDINGS:
            break
    return out


def uninspected_reasons(verdict: Verdict) -> list[str]:
    """The fixed reason names of content that could not be inspected."""
    return sorted({str(u.reason) for u in verdict.uninspected})
