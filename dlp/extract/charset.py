"""Bytes -> text when the declared charset may be wrong: BOMs, UTF-16 without a BOM, then UTF-8,
cp1252 and latin-1 as fallbacks. Never raises."""

from __future__ import annotations

import codecs

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_SINGLE_BYTE = {"latin_1", "iso8859_1", "cp1252", "ascii", "iso8859_15", "cp1250", "cp1251", "iso8859_2"}


def codec_name(charset: str | None) -> str | None:
    """The Python codec for a declared charset, or None if unknown or empty."""
    if not charset:
        return None
    try:
        return codecs.lookup(charset.strip().strip('"').lower()).name.replace("-", "_")
    except (LookupError, ValueError):
        return None


def utf16_guess(data: bytes) -> str | None:
    """UTF-16 without a BOM: most odd (LE) or even (BE) bytes are NUL in Latin text."""
    sample = data[:4096]
    if len(sample) < 4:
        return None
    even_nuls = sample[0::2].count(0)
    odd_nuls = sample[1::2].count(0)
    half = len(sample) // 2
    if odd_nuls > 0.4 * half and even_nuls < 0.1 * half:
        return "utf-16-le"
    if even_nuls > 0.4 * half and odd_nuls < 0.1 * half:
        return "utf-16-be"
    return None


def decode_text(data: bytes, charset: str | None = None) -> str:
    """Decode with the declared charset when it fits, otherwise with the best fallback."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return data[len(bom):].decode(name, errors="replace")
    guessed = utf16_guess(data) if b"\x00" in data[:4096] else None
    if guessed:
        return data.decode(guessed, errors="replace")
    declared = codec_name(charset)
    if declared and declared not in ("ascii",) and not declared.startswith("utf_16") and not declared.startswith(
        "utf_32"
    ):
        if declared in _SINGLE_BYTE and not data.isascii():
            # A label of latin-1 on UTF-8 bytes is the common mislabelling; UTF-8 that decodes is UTF-8.
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                pass
        try:
            return data.decode(declared)
        except (UnicodeDecodeError, LookupError):
            pass
    elif declared:
        try:
            return data.decode(declared)
        except (UnicodeDecodeError, LookupError):
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def looks_textual(data: bytes) -> bool:
    """True when the bytes read as text: few control bytes once decoded (UTF-16 counts as text)."""
    sample = data[:8192]
    if not sample:
        return True
    if sample.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or utf16_guess(sample):
        return True
    if b"\x00" in sample:
        return False
    controls = len(sample) - len(sample.translate(None, _CONTROLS))
    if controls > len(sample) * 0.02:
        return False
    try:
        sample.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        if exc.start >= len(sample) - 4:  # a character cut by the sample's end
            return True
    high = len(sample) - len(sample.translate(None, _HIGH))
    return high < len(sample) * 0.3


# Byte classes counted with bytes.translate (deleting them), not a loop over every byte.
_CONTROLS = bytes(b for b in range(32) if b not in (9, 10, 12, 13, 27))
_HIGH = bytes(range(0x80, 0x100))
