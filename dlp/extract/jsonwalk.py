"""JSON documents walked to their leaves: each string (\\u escapes decoded) becomes a Part located by
its path, such as `json:$.customer.card` or `json:$.items[2]`."""

from __future__ import annotations

import json
import re

from dlp.extract.budget import Budget
from dlp.extract.files import Where, add_text

MAX_LEAF_PARTS = 2000  # beyond this, the remaining leaves are scanned together in one part
_SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_json(text: str) -> object | None:
    """The parsed document, or None if the text is not JSON (or nests beyond the parser's stack)."""
    stripped = text.lstrip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        return None


def _child(path: str, key: object) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    key = str(key)
    return f"{path}.{key}" if _SIMPLE_KEY.match(key) else f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def walk_json(document: object, prefix: str, where: Where, budget: Budget, *, nesting: int = 0) -> None:
    """Every leaf of `document` as a part at `{prefix}json:$...`; long keys too (data hides in keys)."""
    leaves = 0
    rest: list[str] = []
    keys: list[str] = []
    stack: list[tuple[str, object]] = [("$", document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((_child(path, k), v) for k, v in reversed(value.items()))
            keys.extend(k for k in value if len(k) >= 8)
            continue
        if isinstance(value, list):
            stack.extend((_child(path, i), v) for i, v in reversed(list(enumerate(value))))
            continue
        if isinstance(value, bool) or value is None:
            continue
        text = value if isinstance(value, str) else str(value)
        if isinstance(value, str) and nesting < 2 and text[:1] in "{[":
            inner = parse_json(text)
            if inner is not None and isinstance(inner, dict | list):
                walk_json(inner, f"{prefix}json:{path}/", where, budget, nesting=nesting + 1)
                continue
        if leaves < MAX_LEAF_PARTS:
            leaves += 1
            add_text(text, where.child(f"{prefix}json:{path}"), budget, "application/json")
        else:
            rest.append(text)
        if budget.expired():
            break
    if rest:
        add_text("\n".join(rest), where.child(f"{prefix}json:$(more)"), budget, "application/json")
    if keys:
        budget.add(f"{prefix}json:keys", "\n".join(keys), "application/json")
