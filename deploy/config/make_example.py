#!/usr/bin/env python3
"""Write the example config (deploy/config/dlp.toml) from dlp.config.Settings, so it lists every setting
with its default and its comment from the source. Run after adding a setting:

    .venv/bin/python deploy/config/make_example.py > deploy/config/dlp.toml

tests/deploy/test_config_example.py fails when a setting is missing from the example.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import sys
from typing import Any

from dlp.config import Settings

# Values a production host sets (uncommented in the example); everything else stays at its default and
# is shown commented out.
DEPLOYMENT = {
    "data_dir": "/var/lib/dlp",
    "inspection.policy_file": "/etc/dlp/policy.local.yaml",
    "smtp.listen": "127.0.0.1:10025",
    "smtp.next_hop": "127.0.0.1:10026",
    "smtp.hostname": "dlp.example.internal",
    "proxy.listen": "0.0.0.0:8080",
    "console.listen": "127.0.0.1:8000",
    "console.secure_cookies": True,
    "console.public_url": "https://dlp.example.internal",
    "metrics.listen": "127.0.0.1:9108",
    "alerts.syslog": "unix:///dev/log",
}

HEADER = """\
# dlp example configuration: every setting, with its default. Copy to /etc/dlp/dlp.toml (mode 0640,
# root:dlp) and start with `dlp serve --config /etc/dlp/dlp.toml`. Lines starting with `# key =` show the
# default and can be uncommented to change it; uncommented lines are what a typical production host sets.
# Environment variables override the file: DLP_<SECTION>_<KEY>, e.g. DLP_SMTP_NEXT_HOP=10.0.0.5:25.
# Generated from dlp/config.py by deploy/config/make_example.py; see docs/operators.md.
"""


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: JSON escapes are valid TOML escapes
    if isinstance(value, tuple | list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def field_comments(cls: type) -> dict[str, str]:
    comments = {}
    for line in inspect.getsource(cls).splitlines():
        m = re.match(r"\s+(\w+):[^#]*#\s*(.+)$", line)
        if m:
            comments[m.group(1)] = m.group(2).strip()
    return comments


def section(cls: type, instance: Any, prefix: str, out: list[str]) -> None:
    comments = field_comments(cls)
    nested = []
    for f in dataclasses.fields(cls):
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(value):
            nested.append((f.name, value))
            continue
        dotted = prefix + f.name
        comment = comments.get(f.name, "")
        if dotted in DEPLOYMENT:
            note = f"{comment} (default {toml_value(value)})" if comment else f"default {toml_value(value)}"
            out.append(f"{f.name} = {toml_value(DEPLOYMENT[dotted])}  # {note}")
        else:
            out.append(f"# {f.name} = {toml_value(value)}" + (f"  # {comment}" if comment else ""))
    for name, value in nested:
        doc = inspect.getdoc(type(value)) or ""
        out.append("")
        out.append(f"[{prefix}{name}]")
        if doc and not doc.startswith(type(value).__name__ + "("):
            out.extend(f"# {line}" if line else "#" for line in doc.splitlines())
        section(type(value), value, f"{prefix}{name}.", out)


def render() -> str:
    out: list[str] = [HEADER.rstrip("\n"), ""]
    section(Settings, Settings(), "", out)
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
