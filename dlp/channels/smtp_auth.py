"""Optional SMTP AUTH for agents: a `user:argon2-hash` file, checked with argon2-cffi.

Lines are `user:$argon2id$...`; blank lines and `#` comments are skipped. Create a hash with
`python -c 'import argon2; print(argon2.PasswordHasher().hash("secret"))'`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import argon2
from aiosmtpd.smtp import AuthResult, LoginPassword

# Verifying against a dummy hash for unknown users keeps the timing of "no such user" and
# "wrong password" alike, so AUTH cannot be used to enumerate accounts.
_HASHER = argon2.PasswordHasher()
_DUMMY_HASH = _HASHER.hash("not-a-real-password")


class AuthConfigError(Exception):
    """The users file is missing or malformed; the message names the file and line, never a hash."""


def load_users(path: str | Path) -> dict[str, str]:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise AuthConfigError(f"{file}: cannot read the SMTP users file ({exc.strerror})") from None
    users: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user or not hashed.startswith("$argon2"):
            raise AuthConfigError(f"{file}:{number}: expected user:$argon2id$... ")
        users[user] = hashed
    return users


class Authenticator:
    """aiosmtpd `authenticator` callable for PLAIN and LOGIN."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        try:
            user = auth_data.login.decode("utf-8")
            password = auth_data.password.decode("utf-8")
        except UnicodeDecodeError:
            return AuthResult(success=False, handled=False)
        hashed = self.users.get(user)
        try:
            _HASHER.verify(hashed or _DUMMY_HASH, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return AuthResult(success=False, handled=False)
        if hashed is None:
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=user)
