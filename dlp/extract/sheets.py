"""The compiled xlsx reading (issue 3 throughput): the shared-string table and each worksheet by the C
scanner (_markup.c), giving exactly what documents.shared_strings / sheet_text give. None from any
step (markup the scanner does not read exactly, or no compiled scanner): documents._xlsx then reads the
whole workbook the general way. tests/dlp/extract/test_fast_scan.py holds the two to the same output."""

from __future__ import annotations

import html

from dlp.extract.xmltext import compiled_scanner


class CompiledSheets:
    """One workbook's shared strings (bytes, entities still escaped) and which of them a cell used."""

    def __init__(self, strings: list[bytes]) -> None:
        self.strings = strings
        self.used = bytearray(len(strings))

    @classmethod
    def read(cls, xml: bytes) -> CompiledSheets | None:
        scanner = compiled_scanner()
        read = scanner.strings(xml) if scanner is not None else None
        if read is None:
            return None
        strings, ends_plainly = read
        for _ in range(2 if ends_plainly else 1):
            # What follows the last string's end goes when blank, as in shared_strings; and where that
            # cuts a body's last "</t></si>" off first, its last string, too.
            if strings and not strings[-1].decode("utf-8", "replace").strip():
                strings.pop()
        return cls(strings)

    def sheet_text(self, xml: bytes) -> str | None:
        """Rows as lines, cells joined by tabs, shared strings spliced in, formulas left out."""
        scanner = compiled_scanner()
        raw = scanner.sheet(xml, self.strings, self.used) if scanner is not None else None
        if raw is None:
            return None
        text = raw.decode("utf-8", "replace").rstrip("\t\n")
        return html.unescape(text) if "&" in text else text

    def orphans(self) -> list[str]:
        """Strings no cell used (Excel drops them; a crafted file need not)."""
        out = []
        index = self.used.find(0)
        while index >= 0:  # over the unused ones only: usually none
            if self.strings[index]:
                out.append(self.strings[index].decode("utf-8", "replace"))
            index = self.used.find(0, index + 1)
        return out

