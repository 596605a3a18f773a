"""The `dlp` command: each module in dlp.commands adds its own subcommands."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from dlp import __version__

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A bad argument or an unreadable input: printed without a traceback, exit 2."""


def build_parser() -> argparse.ArgumentParser:
    import dlp.commands

    parser = argparse.ArgumentParser(prog="dlp", description="Data-loss prevention for outbound email and web.")
    parser.add_argument("--version", action="version", version=f"dlp {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(dlp.commands.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"dlp.commands.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"dlp: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `dlp ... | head`: the reader left; that is not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def add_settings_args(parser: argparse.ArgumentParser) -> None:
    """--config and --data-dir, shared by every command that reads settings or the data directory."""
    parser.add_argument("--config", metavar="FILE", help="TOML config file (default: embedded defaults)")
    parser.add_argument("--data-dir", metavar="DIR", help="data directory (keys, store, quarantine)")


def settings_from_args(args: argparse.Namespace, **overrides: object):  # -> Settings
    """Settings from --config, the environment, --data-dir and any command-specific overrides."""
    from dlp.config import ConfigError, load_settings

    values = {"data_dir": getattr(args, "data_dir", None), **overrides}
    try:
        return load_settings(getattr(args, "config", None), values)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
