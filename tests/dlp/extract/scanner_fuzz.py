"""Fuzzes the C scanner (dlp/extract/_markup.c) given as argv[1], a build of it, for argv[2] seconds
from seed argv[3]: structured token soups and mutations of real Word and Excel parts (truncated, bytes
flipped, tokens spliced in). Every compiled reading must equal the general path's whenever it does not
decline. Run by test_scanner_sanitized.py against an AddressSanitizer / UBSan build."""

from __future__ import annotations

import importlib.util
import io
import random
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def load(path: str) -> None:
    spec = importlib.util.spec_from_file_location("dlp.extract._markup", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["dlp.extract._markup"] = module


def saved(data: bytes) -> str:
    """Where the failing input was written, for the assertion message (inputs run to 20 KB)."""
    path = Path("/tmp/scanner-fuzz-failure.bin")
    path.write_bytes(data)
    return f"input in {path}: {data[:120]!r}..."


def main() -> None:
    load(sys.argv[1])
    seconds, seed = float(sys.argv[2]), int(sys.argv[3])
    sys.path.insert(0, str(ROOT))
    from dlp.bench.extract import attachments
    from dlp.extract import xmltext
    from dlp.extract.documents import SharedTable, shared_strings, sheet_text
    from dlp.extract.sheets import CompiledSheets
    from tests.dlp.extract import test_fast_scan as scan_tests

    scanner = xmltext.compiled_scanner()
    assert scanner is not None and scanner.__file__ == sys.argv[1]
    files = attachments(300, seed=5)
    with zipfile.ZipFile(io.BytesIO(files["customers.xlsx"])) as z:
        sheet, sst = z.read("xl/worksheets/sheet1.xml"), z.read("xl/sharedStrings.xml")
    with zipfile.ZipFile(io.BytesIO(files["review.docx"])) as z:
        document = z.read("word/document.xml")
    tokens = [t.encode() for t in (*scan_tests._MARKUP.elements, *scan_tests._WORD.elements,
                                   *scan_tests._SST_MARKUP.elements)]
    alphabet = b"<>/!-[]\"' t=s\x00\x01\n\tfvcrowsiPh0123456789&;"
    rng = random.Random(seed)

    def mutate(data: bytes) -> bytes:
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            i, op = rng.randrange(len(out) + 1), rng.random()
            if op < 0.3 and out:
                out[min(i, len(out) - 1)] = rng.choice(alphabet)
            elif op < 0.5:
                out[i:i] = rng.choice(tokens)
            elif op < 0.7:
                del out[i : i + rng.randint(1, 50)]
            else:
                del out[i:]
        return bytes(out)

    def general_markup(data: bytes) -> str:
        xmltext._markup = None
        try:
            return xmltext.markup_text(data)
        finally:
            xmltext._markup = scanner

    count = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pick = rng.random()
        if pick < 0.3:
            data = b"".join(rng.choice(tokens) for _ in range(rng.randint(0, 60)))
        elif pick < 0.4:
            data = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 200)))
        else:
            data = mutate(rng.choice((sheet, sst, document))[: rng.randint(0, 20000)])
        if xmltext._scanned(data) is not None:
            assert xmltext.markup_text(data) == general_markup(data), saved(data)
        try:  # invalid UTF-8 split by a tag decodes differently once the tag is gone (digits never do)
            text, valid = data.decode("utf-8"), True
        except UnicodeDecodeError:
            text, valid = data.decode("utf-8", "replace"), False
        table = CompiledSheets.read(data)
        if table is not None and valid:
            assert [s.decode("utf-8", "replace") for s in table.strings] == shared_strings(text), saved(data)
        table = CompiledSheets.read(sst[: rng.randint(0, 3000)]) or CompiledSheets([])
        if rng.random() < 0.1:  # strings with separators and spaces of their own ("\x01": strings() declines)
            table = CompiledSheets([rng.choice((b"x\ty", b" ", b"", b"5\n", b"\t", b"\n\t")) for _ in range(4)])
        general = SharedTable([s.decode("utf-8", "replace") for s in table.strings])
        got = table.sheet_text(data)
        if got is not None and valid:
            assert got == sheet_text(text, general), saved(data)
            assert sorted(table.orphans()) == sorted(general.orphans()), saved(data)
        scanner.sheet(data, [b"x", b"yy"], bytearray(1))  # a `used` shorter than the table
        count += 1
    print(f"fuzzed {count} inputs")


if __name__ == "__main__":
    main()
