"""Where the quarantine keys live: the current key (environment variable or key file, created 0600 on
first run) and retired keys (`<key file>.retired/<key id>.key`) that still decrypt older items."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from dlp.config import Settings
from dlp.durable import write_atomic
from dlp.keys import KEY_BYTES, KeyError_, decode_key, load_or_create_key
from dlp.store.crypto import Keyring, key_id
from dlp.store.errors import StoreError


def key_file(settings: Settings) -> Path:
    return Path(settings.store.key_file) if settings.store.key_file else settings.data_path / "keys" / "quarantine.key"


def retired_dir(settings: Settings) -> Path:
    path = key_file(settings)
    return path.with_name(path.name + ".retired")


def key_from_environment(settings: Settings, environ: Mapping[str, str] | None = None) -> bytes | None:
    environ = os.environ if environ is None else environ
    name = settings.store.key_env
    if not name or not environ.get(name):
        return None
    try:
        return decode_key(environ[name], f"${name}")
    except KeyError_ as exc:
        raise StoreError(f"quarantine key unusable: {exc}") from None


def load_keyring(settings: Settings, *, create: bool, environ: Mapping[str, str] | None = None) -> Keyring:
    """The keyring, or StoreError naming what to fix. `create` is False once the store holds data, so a
    lost key file is reported instead of silently replaced by a key that decrypts nothing."""
    current = key_from_environment(settings, environ)
    if current is None:
        path = key_file(settings)
        try:
            current = load_or_create_key(path, create=create)
        except FileNotFoundError:
            raise StoreError(f"quarantine key missing: {path} does not exist but the store already holds "
                             f"encrypted items; restore the key file or set ${settings.store.key_env}") from None
        except KeyError_ as exc:
            raise StoreError(f"quarantine key unusable: {exc}") from None
        except OSError as exc:
            raise StoreError(f"quarantine key unusable: {path}: {exc.strerror or exc}") from None
        _check_permissions(path)
    return Keyring(current, tuple(_retired_keys(settings)))


def _check_permissions(path: Path) -> None:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise StoreError(f"quarantine key unusable: {path} is readable by others (mode {mode:o}); "
                         f"run chmod 600 {path}")


def _retired_keys(settings: Settings) -> list[bytes]:
    directory = retired_dir(settings)
    if not directory.is_dir():
        return []
    keys = []
    for path in sorted(directory.glob("*.key")):
        try:
            keys.append(decode_key(path.read_text(encoding="ascii"), str(path)))
        except (KeyError_, OSError, UnicodeDecodeError) as exc:
            raise StoreError(f"retired quarantine key unusable: {path}: {exc}") from None
    return keys


def rotate_key_file(settings: Settings) -> tuple[str, str]:
    """Retire the current key file's key and write a new one; returns (old id, new id).

    The retired copy is durably written before the key file is replaced, so a crash in between leaves
    both keys available."""
    if key_from_environment(settings) is not None:
        raise StoreError(f"the current key comes from ${settings.store.key_env}: put a new key there and copy "
                         f"the old one to {retired_dir(settings)}/<anything>.key")
    path = key_file(settings)
    try:
        old = load_or_create_key(path, create=False)
    except (OSError, KeyError_) as exc:
        raise StoreError(f"cannot rotate: the current key is unusable: {exc}") from None
    old_id = key_id(old)
    write_atomic(retired_dir(settings) / f"{old_id}.key", base64.b64encode(old) + b"\n", mode=0o600)
    new = secrets.token_bytes(KEY_BYTES)
    write_atomic(path, base64.b64encode(new) + b"\n", mode=0o600)
    return old_id, key_id(new)
