"""Secrets (SECRET, label = kind): private keys, cloud and SaaS tokens, JWTs, and high-entropy values
assigned to words like password, secret, token or api_key.

Kinds: private_key (PEM "-----BEGIN ... PRIVATE KEY-----"), aws_access_key_id (AKIA/ASIA/...) and
aws_secret_access_key (a 40-character key next to one, or assigned to aws_secret_access_key),
github_token (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_), slack_token (xoxa/b/p/r/s-), slack_webhook,
stripe_key (sk_live_, rk_live_), google_api_key (AIza...), jwt (three base64url parts whose header
decodes to JSON with "alg"), and generic_secret / password: a value assigned to a secret-like word whose
Shannon entropy is high enough (detect-secrets' idea; the thresholds are lower than its 4.5 / 3.0
because the keyword already says "secret": 3.0 bits per character for 8+ characters, and placeholders
such as ******** or <password> are ignored).
Match.value is the secret itself (whitespace removed for PEM bodies), used only for the value id.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import string
from collections import Counter
from collections.abc import Iterable

from detectors.base import Detector, Pattern, ScanText
from dlp.model import Match

_KEYWORDS = r"(?:password|passwd|passphrase|pwd|secret|token|api[_\-]?key|apikey|access[_\-]?key|auth[_\-]?key|" \
            r"client[_\-]?secret|private[_\-]?key|credentials?)"
ASSIGNMENT = _KEYWORDS + r"[A-Za-z0-9_.\-]{0,24}[\"']?[ \t]{0,4}(?:[:=]|=>|:=)[ \t]{0,4}[\"']?[^\s\"'<>,;]{6,}"
PATTERNS = {
    "private_key": r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----",
    "aws_access_key_id": r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b",
    "github_token": r"\bgh[pousr]_[A-Za-z0-9]{36,}\b",
    "github_fine_grained_token": r"\bgithub_pat_[A-Za-z0-9_]{80,}[^A-Za-z0-9_]",
    "slack_token": r"\bxox[abprs]-[A-Za-z0-9\-]{10,}",
    "slack_webhook": r"https://hooks\.slack\.com/services/T[A-Za-z0-9_]{6,}/B[A-Za-z0-9_]{6,}/[A-Za-z0-9_]{16,}",
    "stripe_key": r"\b[sr]k_live_[A-Za-z0-9]{20,}\b",
    "google_api_key": r"\bAIza[0-9A-Za-z_\-]{35}",
    "jwt": r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{16,}",
    "assignment": ASSIGNMENT + r"[\s\"'<>,;]",
}
# Start-of-match reporting makes these two patterns (an unbounded tail after a keyword) cost as much
# as all the others together: Hyperscan reports only where they end, once, at the character after the
# value, and the validator finds the start (see _start_of).
_NO_SOM = frozenset({"assignment", "github_fine_grained_token"})
_ASSIGNMENT_AT_END = re.compile(f"(?:{ASSIGNMENT})\\Z", re.IGNORECASE | re.ASCII)
_NOT_VALUE = frozenset(" \t\n\r\x0b\x0c\"'<>,;")  # Hyperscan's \s (ASCII) and the value's delimiters
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "_")
_VALUE = re.compile(r"(?:[:=]|=>|:=)[ \t]*[\"']?([^\s\"'<>,;]{6,})")
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_PEM_END = re.compile(r"-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PLACEHOLDER = re.compile(r"^(?:[*xX#.•_\-]+|<[^>]*>|\$\{[^}]*\}|\{\{[^}]*\}\}|%[A-Za-z_]+%|\$[A-Za-z_]+|"
                          r"(?:your|my|the)[_\-]?\w*|changeme|redacted|none|null|true|false|undefined|example\w*)$",
                          re.IGNORECASE)
ENTROPY_MIN = 3.0
PEM_MAX_CHARS = 16384


def shannon_entropy(value: str) -> float:
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _b64url_json(part: str) -> object:
    try:
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


class SecretsDetector(Detector):
    name = "secrets"
    entities = ("SECRET",)

    def patterns(self) -> list[Pattern]:
        flags = {"assignment": 1}  # HS_FLAG_CASELESS
        return [Pattern(kind, expr, flags.get(kind, 0), som=kind not in _NO_SOM) for kind, expr in PATTERNS.items()]

    def validate(self, text: ScanText, key: str, start: int, end: int) -> Iterable[Match]:
        t = text.text
        if key in _NO_SOM:
            start, end = _start_of(t, key, end - 1), end - 1  # the last character is the terminator
            if start < 0:
                return
        value = t[start:end]
        if key == "private_key":
            stop = _PEM_END.search(t, end, end + PEM_MAX_CHARS)
            end = stop.end() if stop else end
            yield Match("SECRET", start, end, 1.0, "".join(t[start:end].split()), label="private_key")
        elif key == "aws_access_key_id":
            yield Match("SECRET", start, end, 1.0, value, label="aws_access_key_id")
            near = _AWS_SECRET.search(t, max(0, start - 300), min(len(t), end + 300))
            if near and shannon_entropy(near.group()) > 4.0:
                yield Match("SECRET", near.start(), near.end(), 0.95, near.group(), label="aws_secret_access_key")
        elif key == "jwt":
            header = _b64url_json(value.split(".", 1)[0])
            if isinstance(header, dict) and "alg" in header:
                yield Match("SECRET", start, end, 0.95, value, label="jwt")
        elif key == "assignment":
            yield from self._assignment(t, start, end)
        else:
            yield Match("SECRET", start, end, 1.0, value, label="github_token" if key.startswith("github") else key)

    def _assignment(self, t: str, start: int, end: int) -> Iterable[Match]:
        found = _VALUE.search(t, start, end)
        if not found:
            return
        value = found.group(1).rstrip(".)]}")
        s = found.start(1)
        e = s + len(value)
        name = t[max(0, start - 8) : found.start()].lower()  # "aws_" comes before the keyword
        if len(value) < 8 or _PLACEHOLDER.match(value) or shannon_entropy(value) < ENTROPY_MIN:
            return
        if value.isalpha() and value.islower():
            return  # a plain word ("password: forgotten"), not a secret
        if "aws" in name and _AWS_SECRET.fullmatch(value):
            label = "aws_secret_access_key"
        elif "pass" in name or "pwd" in name:
            label = "password"
        else:
            label = "generic_secret"
        score = 0.9 if shannon_entropy(value) >= 3.5 else 0.7
        yield Match("SECRET", s, e, score, value, label=label)


def _start_of(t: str, key: str, stop: int) -> int:
    """The leftmost start of a `key` match ending at `stop` (what Hyperscan's start-of-match would have
    reported), or -1. The value is a run of non-delimiters ending at `stop` (walked once: Hyperscan
    reports each such run once); whatever precedes it in the expression (keyword, suffix, quotes,
    blanks, operator) is at most 49 characters long."""
    token = stop
    if key == "github_fine_grained_token":
        while token > 0 and t[token - 1] in _TOKEN_CHARS:
            token -= 1
        return token if t.startswith("github_pat_", token) else -1
    while token > 0 and t[token - 1] not in _NOT_VALUE:
        token -= 1
    found = _ASSIGNMENT_AT_END.search(t, max(0, token - 64), stop)
    return found.start() if found else -1
