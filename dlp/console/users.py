"""Console accounts: names, roles and argon2 password hashes in `<data-dir>/store/users.db`.

The console reads an account on every request, so `dlp users disable` or `set-role` from another process
takes effect at once; a password change bumps `generation`, which ends the account's open sessions.
"""

from __future__ import annotations

import contextlib
import enum
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024  # argon2 takes anything; a megabyte "password" is just a slow request
_NAME = re.compile(r"[a-z][a-z0-9._-]{1,31}")

_HASHER = PasswordHasher()
# Verified when the account does not exist, so that a wrong name costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash("not a real password: timing equaliser")

DDL = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    generation INTEGER NOT NULL DEFAULT 1,   -- bumped on password change: ends existing sessions
    created REAL NOT NULL,
    last_login REAL
);
"""


class Role(enum.StrEnum):
    VIEWER = "viewer"  # the masked queue and incident pages
    ANALYST = "analyst"  # triage: status, assign, comment, confirm, false positive, release, delete, bulk
    ADMIN = "admin"  # users, reveal originals, retention, the audit log

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


class UserError(Exception):
    """A bad account operation (unknown user, weak password, bad name). The text is safe to show."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    disabled: bool
    generation: int
    created: float
    last_login: float | None


def check_name(name: str) -> str:
    name = name.strip().lower()
    if not _NAME.fullmatch(name):
        raise UserError("a user name is 2-32 characters: lower-case letters, digits, '.', '_' or '-', "
                        "starting with a letter")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise UserError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise UserError(f"a password has at most {MAX_PASSWORD_CHARS} characters")
    return password


def parse_role(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError:
        raise UserError(f"unknown role {value!r}; choose viewer, analyst or admin") from None


class UserStore:
    """Thread-safe: one short-lived connection per call (the console calls it from a thread pool)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / "store" / "users.db"
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._connect() as conn:
            conn.executescript(DDL)
        with contextlib.suppress(OSError):
            os.chmod(self.path, 0o600)

    def _connect(self) -> contextlib.closing[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 30000")
        return contextlib.closing(conn)

    def get(self, name: str) -> User | None:
        with self._connect() as conn:
            row = conn.execute("SELECT name, role, disabled, generation, created, last_login FROM users "
                               "WHERE name = ?", (name.strip().lower(),)).fetchone()
        return None if row is None else _user(row)

    def list(self) -> list[User]:
        with self._connect() as conn:
            rows = conn.execute("SELECT name, role, disabled, generation, created, last_login FROM users "
                                "ORDER BY name").fetchall()
        return [_user(r) for r in rows]

    def add(self, name: str, role: Role, password: str) -> User:
        name = check_name(name)
        password_hash = _HASHER.hash(check_password(password))
        with self._connect() as conn:
            try:
                conn.execute("INSERT INTO users (name, role, password_hash, created) VALUES (?, ?, ?, ?)",
                             (name, str(role), password_hash, time.time()))
            except sqlite3.IntegrityError:
                raise UserError(f"user {name} already exists") from None
        user = self.get(name)
        assert user is not None
        return user

    def _update(self, name: str, sql: str, params: tuple[object, ...]) -> None:
        with self._connect() as conn:
            cur = conn.execute(f"UPDATE users SET {sql} WHERE name = ?", (*params, name.strip().lower()))
            if not cur.rowcount:
                raise UserError(f"no user {name}")

    def set_role(self, name: str, role: Role) -> None:
        self._update(name, "role = ?", (str(role),))

    def set_disabled(self, name: str, disabled: bool) -> None:
        self._update(name, "disabled = ?", (int(disabled),))

    def set_password(self, name: str, password: str) -> None:
        self._update(name, "password_hash = ?, generation = generation + 1",
                     (_HASHER.hash(check_password(password)),))

    def authenticate(self, name: str, password: str) -> User | None:
        """The account when the password is right and it is enabled; None otherwise (same cost either way)."""
        name = name.strip().lower()
        with self._connect() as conn:
            row = conn.execute("SELECT password_hash FROM users WHERE name = ?", (name,)).fetchone()
        stored = row[0] if row else _DUMMY_HASH
        try:
            _HASHER.verify(stored, password[:MAX_PASSWORD_CHARS])
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        user = self.get(name)
        if user is None or user.disabled:
            return None
        with self._connect() as conn:
            if _HASHER.check_needs_rehash(stored):  # parameters were raised since the hash was made
                conn.execute("UPDATE users SET password_hash = ? WHERE name = ?", (_HASHER.hash(password), name))
            conn.execute("UPDATE users SET last_login = ? WHERE name = ?", (time.time(), name))
        return user


def _user(row: tuple[object, ...]) -> User:
    name, role, disabled, generation, created, last_login = row
    return User(str(name), Role(str(role)), bool(disabled), int(generation), float(created),  # type: ignore[arg-type]
                None if last_login is None else float(last_login))  # type: ignore[arg-type]
