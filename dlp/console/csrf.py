"""CSRF protection: a synchronizer token per session, required in every state-changing form.

Every POST carries `csrf_token`; it must equal the token of the session named by the cookie (compared in
constant time). SameSite=Strict cookies are the second layer; Sec-Fetch-Site and Origin, when a browser
sends them, must say this site.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

FIELD = "csrf_token"


def token_ok(expected: str, given: object) -> bool:
    return isinstance(given, str) and bool(expected) and hmac.compare_digest(expected.encode(), given.encode())


def origin_ok(origin: str | None, host: str | None, fetch_site: str | None = None) -> bool:
    """Refuse what a browser says came from another site. Browsers send `Origin: null` under our
    Referrer-Policy no-referrer, and old clients send neither header: the token alone decides then."""
    if fetch_site and fetch_site.lower() not in ("same-origin", "none"):
        return False
    if not origin or origin == "null":
        return True
    return bool(host) and urlsplit(origin).netloc.lower() == (host or "").lower()
