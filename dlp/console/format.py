"""Jinja filters: ages ("3 h"), times, badges, and masked contexts with the masked tokens highlighted."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from markupsafe import Markup, escape

# Masked findings appear in a stored context as [411111******1111]; the log redactor's as [redacted:16d].
_MASKED_TOKEN = re.compile(r"\[[^\[\]\s]{1,80}\]")


def age(value: datetime | float | None, now: float | None = None) -> str:
    """Compact age for queue badges: 45 s, 12 min, 3 h, 5 d."""
    if value is None:
        return ""
    then = value.timestamp() if isinstance(value, datetime) else float(value)
    seconds = max(0.0, (now if now is not None else time.time()) - then)
    if seconds < 60:
        return f"{int(seconds)} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400 * 2:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} d"


def duration(seconds: float) -> str:
    return age(0.0, now=float(seconds))


def age_class(value: datetime | float | None, now: float | None = None) -> str:
    """How urgent an open item's age is: fresh (< 4 h), aging (< 24 h), stale."""
    if value is None:
        return "fresh"
    then = value.timestamp() if isinstance(value, datetime) else float(value)
    seconds = (now if now is not None else time.time()) - then
    return "fresh" if seconds < 4 * 3600 else "aging" if seconds < 86400 else "stale"


def when(value: datetime | float | None) -> str:
    if value is None:
        return ""
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(float(value), UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def highlight(context: str) -> Markup:
    """Escape the context and wrap every masked token in <mark> (the context never holds raw values)."""
    out, cursor = [], 0
    for m in _MASKED_TOKEN.finditer(context):
        out.append(escape(context[cursor:m.start()]))
        out.append(Markup("<mark>{}</mark>").format(m.group()))
        cursor = m.end()
    out.append(escape(context[cursor:]))
    return Markup("").join(out)


def label(value: str) -> str:
    """in_review -> in review; false_positive -> false positive."""
    return value.replace("_", " ")
