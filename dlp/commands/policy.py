"""`dlp policy check FILE` validates an override policy; `dlp policy show` prints the effective rules."""

from __future__ import annotations

import argparse
from typing import Any

from dlp.cli import EXIT_OK, UsageError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("policy", help="validate or show the policy")
    sub = p.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate a policy file (merged over the shipped policy)")
    check.add_argument("file", metavar="FILE")
    check.set_defaults(func=run_check)
    show = sub.add_parser("show", help="print the effective rules")
    show.add_argument("file", metavar="FILE", nargs="?", help="override file (default: shipped policy only)")
    show.set_defaults(func=run_show)


def _load(path: str | None):  # -> Policy
    from dlp.policy import PolicyError, load_policy

    try:
        return load_policy(path)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None


def run_check(args: argparse.Namespace) -> int:
    policy = _load(args.file)
    print(f"{args.file}: OK ({len(policy.rules)} rules, {len(policy.data_classes)} data classes, "
          f"{len(policy.destinations)} destinations)")
    return EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    policy = _load(args.file)
    mode = "monitor-only (all channels)" if policy.monitor else (
        f"monitor-only on {', '.join(policy.monitor_channels)}" if policy.monitor_channels else "enforcing")
    print(f"policy {policy.source}: {mode}")
    for rule in policy.rules:
        actions = ", ".join(f"{ch}={act}" for ch, act in rule.action.items())
        extra = f", at least {rule.min_distinct} distinct" if rule.min_distinct > 1 else ""
        allow = f", allowed to {', '.join(rule.allow)}" if rule.allow else ""
        print(f"  {rule.name} [{rule.mode}, {rule.severity}]: {', '.join(rule.classes)}{extra}{allow} -> {actions}")
    default = ", ".join(f"{ch}={act}" for ch, act in policy.uninspected_default.action.items())
    print(f"  not inspected -> {default}")
    for reason, urule in sorted(policy.uninspected.items()):
        print(f"    {reason} -> {', '.join(f'{ch}={act}' for ch, act in urule.action.items())}")
    return EXIT_OK
