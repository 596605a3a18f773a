"""Server-side sessions (random ids, rotated at login, absolute and idle expiry) and login throttling.

Sessions live in memory: a restart logs everyone out, which is the safe direction. Anonymous sessions
(the login and release-request forms need a CSRF token before anyone logs in) are capped and short-lived
so that a client fetching the login page in a loop cannot grow memory.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

ANONYMOUS_TTL_SECONDS = 30 * 60
MAX_ANONYMOUS_SESSIONS = 10_000
MAX_IDLE_SECONDS = 60 * 60


@dataclass
class Session:
    id: str
    csrf: str
    created: float
    expires: float
    last_seen: float
    user: str = ""  # empty: not logged in
    generation: int = 0  # the account's password generation at login
    flashes: list[tuple[str, str]] = field(default_factory=list)  # (kind, text) shown on the next page

    @property
    def authenticated(self) -> bool:
        return bool(self.user)

    def flash(self, kind: str, text: str) -> None:
        self.flashes.append((kind, text))
        del self.flashes[:-5]

    def take_flashes(self) -> list[tuple[str, str]]:
        out, self.flashes = self.flashes, []
        return out


class SessionStore:
    def __init__(self, session_minutes: int) -> None:
        self.lifetime = max(1, session_minutes) * 60.0
        self.idle = min(self.lifetime, MAX_IDLE_SECONDS)
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def _new(self, user: str = "", generation: int = 0) -> Session:
        now = time.time()
        ttl = self.lifetime if user else ANONYMOUS_TTL_SECONDS
        return Session(id=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32), created=now,
                       expires=now + ttl, last_seen=now, user=user, generation=generation)

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        now = time.time()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if now >= session.expires or (session.user and now - session.last_seen > self.idle):
                del self._sessions[session_id]
                return None
            session.last_seen = now
            self._sessions.move_to_end(session_id)
            return session

    def anonymous(self) -> Session:
        session = self._new()
        with self._lock:
            self._sessions[session.id] = session
            self._evict_anonymous()
        return session

    def login(self, old: Session | None, user: str, generation: int) -> Session:
        """A fresh id and CSRF token for the logged-in user (session fixation), dropping the old one."""
        session = self._new(user, generation)
        with self._lock:
            if old is not None:
                self._sessions.pop(old.id, None)
            self._sessions[session.id] = session
        return session

    def drop(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)

    def drop_user(self, user: str) -> int:
        with self._lock:
            ids = [sid for sid, s in self._sessions.items() if s.user == user]
            for sid in ids:
                del self._sessions[sid]
        return len(ids)

    def _evict_anonymous(self) -> None:
        anonymous = [sid for sid, s in self._sessions.items() if not s.user]
        now = time.time()
        for sid in anonymous:  # oldest first (insertion / last-use order)
            if len(anonymous) <= MAX_ANONYMOUS_SESSIONS and self._sessions[sid].expires > now:
                break
            del self._sessions[sid]
            anonymous.remove(sid)


@dataclass
class _Failures:
    count: int = 0
    first: float = 0.0
    locked_until: float = 0.0


class LoginThrottle:
    """Failed logins per account name and per client address: after `free` failures within the window,
    each further failure doubles a lock-out (1 s, 2 s, 4 s ... capped). A success clears the account's
    counter, not the address's: one right password must not reset an address that guesses many names."""

    def __init__(self, free: int = 5, window: float = 900.0, max_lock: float = 900.0, max_keys: int = 50_000) -> None:
        self.free, self.window, self.max_lock, self.max_keys = free, window, max_lock, max_keys
        self._state: OrderedDict[str, _Failures] = OrderedDict()
        self._lock = threading.Lock()

    def wait_seconds(self, *keys: str) -> float:
        """How long these keys are still locked out (0: may try now)."""
        now = time.monotonic()
        with self._lock:
            return max((max(0.0, s.locked_until - now) for k in keys if (s := self._state.get(k))), default=0.0)

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                state = self._state.get(key)
                if state is None or now - state.first > self.window:
                    state = _Failures(first=now)
                state.count += 1
                if state.count > self.free:
                    state.locked_until = now + min(self.max_lock, 2.0 ** (state.count - self.free - 1))
                self._state[key] = state
                self._state.move_to_end(key)
            while len(self._state) > self.max_keys:
                self._state.popitem(last=False)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._state.pop(key, None)


class RateLimiter:
    """At most `limit` events per key per `window` seconds (the public release-request form)."""

    def __init__(self, limit: int, window: float, max_keys: int = 50_000) -> None:
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self._events: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            events = [t for t in self._events.get(key, []) if now - t < self.window]
            allowed = len(events) < self.limit
            if allowed:
                events.append(now)
            self._events[key] = events
            self._events.move_to_end(key)
            while len(self._events) > self.max_keys:
                self._events.popitem(last=False)
            return allowed
