"""uuencode: as a Content-Transfer-Encoding (x-uuencode) and as `begin 644 name` blocks inside text
(the stdlib decodes only the former)."""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator

_BLOCK = re.compile(r"^begin[ \t]+[0-7]{3,4}[ \t]+([^\r\n]*)\r?\n(.*?)^end[ \t]*$", re.M | re.S)
UU_ENCODINGS = frozenset({"x-uuencode", "uuencode", "x-uue", "uue", "x-uu"})


def decode_lines(body: str) -> bytes:
    """Decode uuencoded lines leniently (encoders disagree on padding; stop at the terminating line)."""
    out = bytearray()
    for line in body.splitlines():
        if not line or line in ("`", " "):
            continue
        if line.startswith(("begin ", "end")) and not out and line.startswith("begin "):
            continue
        if line.strip() == "end":
            break
        try:
            out += binascii.a2b_uu(line)
        except binascii.Error:
            # Some encoders pad short; decode only the bytes the length character promises.
            count = (ord(line[0]) - 32) & 63
            try:
                out += binascii.a2b_uu(line[: ((count + 2) // 3) * 4 + 1])
            except binascii.Error:
                continue
    return bytes(out)


def inline_blocks(text: str) -> Iterator[tuple[str, bytes]]:
    """(file name, decoded bytes) for each `begin NNN name` ... `end` block in the text."""
    for m in _BLOCK.finditer(text):
        data = decode_lines(m.group(2))
        if data:
            yield m.group(1).strip() or "uuencoded", data
