"""`dlp users`: console accounts (add, set-role, disable, enable, list, passwd); every change is audited."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, datetime
from typing import Any

from dlp.cli import UsageError
from dlp.store.cliutil import actor, add_common_args, guarded, opened_store


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("users", help="console accounts: add, set-role, disable, enable, list, passwd")
    sub = p.add_subparsers(dest="users_command", metavar="ACTION", required=True)

    add = sub.add_parser("add", help="add an account (the password is asked for, or read from stdin)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=("viewer", "analyst", "admin"))
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first stdin line")
    add_common_args(add)
    add.set_defaults(func=guarded(_add))

    role = sub.add_parser("set-role", help="change an account's role")
    role.add_argument("name")
    role.add_argument("role", choices=("viewer", "analyst", "admin"))
    add_common_args(role)
    role.set_defaults(func=guarded(_set_role))

    for name, helptext in (("disable", "disable an account (its sessions end at the next request)"),
                           ("enable", "enable a disabled account")):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("name")
        add_common_args(cmd)
        cmd.set_defaults(func=guarded(_set_disabled), disable=name == "disable")

    ls = sub.add_parser("list", help="list accounts")
    add_common_args(ls)
    ls.set_defaults(func=guarded(_list))

    passwd = sub.add_parser("passwd", help="set a new password (ends the account's sessions)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from the first stdin line")
    add_common_args(passwd)
    passwd.set_defaults(func=guarded(_passwd))


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the password: use --password-stdin")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Again: "):
        raise UsageError("the passwords differ")
    return first


def _users(args: argparse.Namespace) -> Any:
    from dlp.cli import settings_from_args
    from dlp.console.users import UserStore

    return UserStore(settings_from_args(args).data_path)


def _run(args: argparse.Namespace, action: str, detail: str, change: Any) -> None:
    """Audit (in the incident store's log) before the change, like every other administrative action."""
    from dlp.console.users import UserError

    with opened_store(args) as store:
        store.audit_event(actor(args), action, detail=detail)
        try:
            change()
        except UserError as exc:
            raise UsageError(str(exc)) from None


def _add(args: argparse.Namespace) -> int:
    from dlp.console.users import UserError, check_name, check_password, parse_role

    try:
        name, role = check_name(args.name), parse_role(args.role)
        password = check_password(_password(args))
    except UserError as exc:
        raise UsageError(str(exc)) from None
    users = _users(args)
    if users.get(name) is not None:
        raise UsageError(f"user {name} already exists")
    _run(args, "user_add", f"user={name} role={role}", lambda: users.add(name, role, password))
    print(f"added {name} ({role})")
    return 0


def _set_role(args: argparse.Namespace) -> int:
    from dlp.console.users import parse_role

    users, role = _users(args), parse_role(args.role)
    _require(users, args.name)
    _run(args, "user_role", f"user={args.name} role={role}", lambda: users.set_role(args.name, role))
    print(f"{args.name} is now {role}")
    return 0


def _set_disabled(args: argparse.Namespace) -> int:
    users = _users(args)
    _require(users, args.name)
    verb = "disable" if args.disable else "enable"
    _run(args, f"user_{verb}", f"user={args.name}", lambda: users.set_disabled(args.name, args.disable))
    print(f"{args.name} {verb}d")
    return 0


def _passwd(args: argparse.Namespace) -> int:
    from dlp.console.users import UserError, check_password

    users = _users(args)
    _require(users, args.name)
    try:
        password = check_password(_password(args))
    except UserError as exc:
        raise UsageError(str(exc)) from None
    _run(args, "user_password", f"user={args.name}", lambda: users.set_password(args.name, password))
    print(f"password of {args.name} changed; their console sessions end")
    return 0


def _require(users: Any, name: str) -> None:
    if users.get(name) is None:
        raise UsageError(f"no user {name}")


def _list(args: argparse.Namespace) -> int:
    users = _users(args).list()
    if args.format == "json":
        print(json.dumps([{"name": u.name, "role": str(u.role), "disabled": u.disabled,
                           "last_login": u.last_login} for u in users], indent=2))
        return 0
    if not users:
        print("no users; add one with: dlp users add NAME --role admin")
        return 0
    print(f"{'NAME':<20} {'ROLE':<8} {'STATE':<9} LAST SIGN-IN")
    for u in users:
        last = datetime.fromtimestamp(u.last_login, UTC).strftime("%Y-%m-%d %H:%M UTC") if u.last_login else "never"
        print(f"{u.name:<20} {u.role!s:<8} {'disabled' if u.disabled else 'active':<9} {last}")
    return 0
