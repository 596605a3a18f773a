"""`dlp bench [TARGET]`: run a benchmark from dlp/bench (default `core`) and print a table or JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any

from dlp.cli import EXIT_OK, UsageError


def register(subparsers: Any) -> None:
    from dlp.bench import targets

    found = targets()
    p = subparsers.add_parser(
        "bench", help="measure throughput and accuracy against reference tools",
        description="Benchmarks: " + ", ".join(sorted(found)) + ". Each reports dlp's throughput next to an "
                    "anchor measured in the same run, and their ratio.",
        conflict_handler="resolve")
    p.add_argument("target", nargs="?", default="core", metavar="TARGET",
                   help=f"which benchmark ({', '.join(sorted(found))}; default core)")
    p.add_argument("--size-mb", type=float, default=10.0, help="size of the generated corpus in MB (default 10)")
    p.add_argument("--seed", type=int, default=7, help="corpus seed (default 7)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    for name, module in sorted(found.items()):
        add = getattr(module, "add_arguments", None)
        if add is not None:
            add(p.add_argument_group(f"{name} options"))
    p.set_defaults(func=run)


def format_generic(result: Any, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(result, dict):
        lines = []
        for key, value in result.items():
            if isinstance(value, dict | list):
                lines.append(f"{pad}{key}:")
                lines.append(format_generic(value, indent + 1))
            else:
                lines.append(f"{pad}{key}: {value}")
        return "\n".join(lines)
    if isinstance(result, list):
        return "\n".join(format_generic(v, indent) if isinstance(v, dict | list) else f"{pad}- {v}" for v in result)
    return f"{pad}{result}"


def run(args: argparse.Namespace) -> int:
    from dlp.bench import targets

    found = targets()
    module = found.get(args.target)
    if module is None:
        raise UsageError(f"no benchmark named {args.target!r} (have: {', '.join(sorted(found))})")
    if args.size_mb <= 0:
        raise UsageError("--size-mb must be positive")
    result = module.run(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        formatter = getattr(module, "format_text", None)
        print(formatter(result) if formatter else format_generic(result))
    return EXIT_OK
