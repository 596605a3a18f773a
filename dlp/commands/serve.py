"""`dlp serve`: run the SMTP relay, web proxy, console and metrics endpoint from one config."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from dlp.cli import UsageError, add_settings_args, settings_from_args


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("serve", help="run the inline channels, the console and the metrics endpoint")
    add_settings_args(p)
    p.add_argument("--policy", metavar="FILE", help="policy file merged over the shipped policy")
    p.add_argument("--smtp-listen", metavar="HOST:PORT|off", help="SMTP relay (default 127.0.0.1:10025)")
    p.add_argument("--next-hop", metavar="HOST:PORT",
                   help="where passed mail goes (default: the demo outbox folder in the data directory)")
    p.add_argument("--proxy-listen", metavar="HOST:PORT|off", help="web proxy (default 127.0.0.1:8080)")
    p.add_argument("--console-listen", metavar="HOST:PORT|off", help="analysts' console (default 127.0.0.1:8000)")
    p.add_argument("--metrics-listen", metavar="HOST:PORT|off", help="Prometheus metrics (default 127.0.0.1:9108)")
    p.add_argument("--workers", type=int, metavar="N", help="inspection processes (0 = one per core)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dlp import logs
    from dlp.serve import ServeError, serve

    settings = settings_from_args(
        args,
        **{
            "inspection.policy_file": args.policy,
            "inspection.workers": args.workers,
            "smtp.listen": args.smtp_listen,
            "smtp.next_hop": args.next_hop,
            "proxy.listen": args.proxy_listen,
            "console.listen": args.console_listen,
            "metrics.listen": args.metrics_listen,
        },
    )
    logs.configure(settings.log_level)
    try:
        return asyncio.run(serve(settings))
    except ServeError as exc:
        raise UsageError(str(exc)) from None
