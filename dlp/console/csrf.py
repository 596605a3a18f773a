"""CSRF protection: a synchronizer token per session, required in every state-changing form.

Every POST carries `csrf_token`; it must equal the token of the session named by the cookie (compared in
constant time). SameSite=Strict cookies are the second layer; the Origin header, when a browser sends
one, must be this site.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

FIELD = "csrf_token"


def token_ok(expected: str, given: object) -> bool:
    return isinstance(given, str) and bool(expected) and hmac.compare_digest(expected.encode(), given.encode())


def origin_ok(origin: str | None, host: str | None) -> bool:
    """A cross-site Origin is refused; no Origin (older clients, curl) falls back to the token alone."""
    if not origin:
        return True
    if origin == "null":
        return False
    return bool(host) and urlsplit(origin).netloc.lower() == (host or "").lower()
