"""Test-only crash checkpoints: `DLPTEST_SMTP_CRASH_AT=<name>` makes the relay SIGKILL itself at that point.

The durability tests (adversarial A9) restart the relay after each crash and check that nothing was lost.
The variable is read once at start-up; unset (every real deployment) the checks cost one comparison.

Checkpoints, in the order a message meets them:
  data-received             the final dot was read, nothing inspected yet
  verdict                   the verdict is known, nothing recorded or forwarded
  mid-quarantine-write      inside the store's durable write: the temporary file is written and fsynced,
                            not yet renamed (caught with an audit hook on os.rename/os.replace)
  after-fsync-before-reply  the incident and original are durable; the client has no reply yet
  after-next-hop-250        the next hop said 250; the client has no reply yet (a duplicate is allowed)
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from dlp.durable import TMP_PREFIX

ENV = "DLPTEST_SMTP_CRASH_AT"  # not DLP_*: those are settings overrides
CHECKPOINTS = ("data-received", "verdict", "mid-quarantine-write", "after-fsync-before-reply", "after-next-hop-250")

_armed: str = ""


def arm() -> str:
    """Read the variable (once per process) and install the audit hook the mid-write checkpoint needs."""
    global _armed
    name = os.environ.get(ENV, "")
    if not name or _armed:
        return _armed
    if name not in CHECKPOINTS:
        raise ValueError(f"{ENV}: unknown checkpoint {name!r} (known: {', '.join(CHECKPOINTS)})")
    _armed = name
    if name == "mid-quarantine-write":
        sys.addaudithook(_on_audit)
    return _armed


def checkpoint(name: str) -> None:
    if _armed == name:
        _die()


def _on_audit(event: str, args: tuple[Any, ...]) -> None:
    # os.replace raises the "os.rename" audit event; a source named .tmp-* is a durable write in progress.
    if event == "os.rename" and os.path.basename(os.fsdecode(args[0])).startswith(TMP_PREFIX):
        _die()


def _die() -> None:
    sys.stderr.write(f"dlp: test crash checkpoint {_armed} reached; SIGKILL\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
