"""What the store's CLI commands share: opening the store from arguments, the actor, times, errors."""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from dlp.cli import UsageError, add_settings_args, settings_from_args
from dlp.store.errors import StoreError

EXIT_STORE_ERROR = 1
_RELATIVE = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def add_common_args(parser: argparse.ArgumentParser, *, formats: tuple[str, ...] = ("text", "json")) -> None:
    add_settings_args(parser)
    parser.add_argument("--format", choices=formats, default=formats[0])
    parser.add_argument("--actor", help="who is acting (default: the OS user); recorded in the audit log")


def actor(args: argparse.Namespace) -> str:
    name = getattr(args, "actor", None) or getpass.getuser()
    if not name or not name.strip():
        raise UsageError("no actor: pass --actor NAME")
    return name.strip()


def parse_time(text: str | None, what: str) -> datetime | None:
    """ISO 8601 date or time (UTC unless it says otherwise), or a relative age such as 7d, 24h, 30m."""
    if text is None:
        return None
    match = _RELATIVE.match(text.strip())
    if match:
        return datetime.now(UTC) - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{what}: expected an ISO date/time or an age like 7d, got {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@contextmanager
def opened_store(args: argparse.Namespace) -> Iterator:  # -> Iterator[Store]
    from dlp import logs
    from dlp.store import open_store

    settings = settings_from_args(args)
    logs.configure(settings.log_level)
    store = open_store(settings)
    try:
        yield store
    finally:
        store.close()


def guarded(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Store errors become one line on stderr and exit 1 (UsageError keeps exit 2)."""

    def wrapper(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except StoreError as exc:
            print(f"dlp: {exc}", file=sys.stderr)
            return EXIT_STORE_ERROR
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    return wrapper
