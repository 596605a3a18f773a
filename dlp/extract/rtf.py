"""RTF to text: control words dropped, non-text destinations (fonts, pictures, objects) skipped,
`\\'hh` decoded in the document's code page and `\\uN` as Unicode (skipping its fallback chars)."""

from __future__ import annotations

import re

_TOKEN = re.compile(
    r"\\([a-zA-Z]{1,32})(-?\d{1,10})? ?|\\'([0-9a-fA-F]{2})|\\([^a-zA-Z])|([{}])|[\r\n]+|([^\\{}\r\n]+)"
)
_SKIP_DESTINATIONS = frozenset({
    "fonttbl", "colortbl", "stylesheet", "listtable", "listoverridetable", "rsidtbl", "generator", "pict",
    "object", "objdata", "themedata", "colorschememapping", "datastore", "latentstyles", "xmlnstbl",
    "filetbl", "revtbl", "mmathPr", "bkmkstart", "bkmkend", "fldinst",
})
_SPECIAL = {"par": "\n", "line": "\n", "sect": "\n", "page": "\n", "row": "\n", "tab": "\t", "cell": "\t",
            "emdash": "—", "endash": "–", "bullet": "•", "lquote": "‘", "rquote": "’", "ldblquote": "“",
            "rdblquote": "”", "emspace": " ", "enspace": " ", "qmspace": " "}
_ESCAPES = {"\\": "\\", "{": "{", "}": "}", "~": "\u00a0", "-": "\u00ad", "_": "\u2011", "\n": "\n", "\r": "\n"}


def rtf_text(data: bytes) -> str:
    source = data.decode("latin-1")
    codepage = "cp1252"
    out: list[str] = []
    pending_bytes = bytearray()
    stack: list[tuple[bool, int]] = []
    skipping = False
    uc = 1  # fallback characters that follow each \uN
    to_skip = 0

    def flush() -> None:
        if pending_bytes:
            out.append(pending_bytes.decode(codepage, errors="replace"))
            pending_bytes.clear()

    for m in _TOKEN.finditer(source):
        word, arg, hexpair, symbol, brace, text = m.groups()
        if brace:
            flush()
            if brace == "{":
                stack.append((skipping, uc))
            elif stack:
                skipping, uc = stack.pop()
            to_skip = 0
            continue
        if to_skip and (hexpair or text or symbol):
            if text and len(text) > to_skip:
                text = text[to_skip:]
                to_skip = 0
            else:
                to_skip -= 1 if not text else len(text)
                to_skip = max(to_skip, 0)
                continue
        if word:
            if word in _SKIP_DESTINATIONS:
                skipping = True
            elif skipping:
                continue
            elif word == "ansicpg" and arg:
                codepage = f"cp{arg}" if _known(f"cp{arg}") else codepage
            elif word == "uc" and arg:
                uc = max(0, int(arg))
            elif word == "u" and arg:
                flush()
                out.append(chr(int(arg) % 65536) if int(arg) % 65536 < 0xD800 or int(arg) % 65536 > 0xDFFF else "")
                to_skip = uc
            elif word in _SPECIAL:
                flush()
                out.append(_SPECIAL[word])
            continue
        if skipping:
            if symbol == "*":
                continue
            continue
        if symbol == "*":
            skipping = True  # an optional destination this reader does not know
            continue
        if hexpair:
            pending_bytes.append(int(hexpair, 16))
            continue
        flush()
        if symbol:
            out.append(_ESCAPES.get(symbol, ""))
        elif text:
            out.append(text)
    flush()
    return "".join(out)


def _known(codec: str) -> bool:
    try:
        b"".decode(codec)
        return True
    except LookupError:
        return False
