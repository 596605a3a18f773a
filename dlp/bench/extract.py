"""`dlp bench extract`: extraction throughput on typical call-center attachments, against issue 3's
target of 20 MB/s of input.

Generates, seeded: an xlsx customer export the way Excel writes it (shared strings, a hidden sheet, a
comment), a docx letter (paragraphs, a customer table, a comment, header and footer), a zip of CSV
exports and a multi-page PDF (compressed content streams). Each is extracted with `extract_file`
(the path every channel takes for an attachment) for --extract-rounds rounds; the best round by CPU
time counts (the machine may be shared; extraction is single-threaded). Every file carries one
planted card number, and the run checks that it comes out, so a fast but blind extractor cannot
score. MB/s are of input (the attachment as sent, compressed where the format compresses).

`ratio` = the slowest office or zip type's MB/s / 20 MB/s (>= 1 meets the target): issue 3's target
names "typical office and zip attachments". PDF is NOT in `ratio`: it is measured the same way and
reported on its own line with its own ratio (`pdf_ratio`), because pdfium's text layout costs ~0.8 ms
a page whatever the page holds, and a text-heavy PDF page is only ~1 KB of compressed input, which
puts PDF far below 20 MB/s (about 1.5 MB/s). It is not hidden: both numbers are printed and in --json.
"""

from __future__ import annotations

import argparse
import gc
import html
import io
import random
import time
import zipfile
import zlib
from collections.abc import Callable
from typing import Any

MB = 1024 * 1024
TARGET_MB_PER_S = 20.0
PLANTED = "4556737586899855"  # a Luhn-valid test card number, one per generated file
SEPARATE = ("pdf",)  # measured and reported, but outside `ratio` (see the module docstring)

_FIRST = ("Maria", "James", "Aisha", "Wei", "Carlos", "Olga", "Kwame", "Priya", "Lucas", "Fatima", "Hiro", "Emma")
_LAST = ("Garcia", "Smith", "Okafor", "Chen", "Silva", "Ivanova", "Mensah", "Patel", "Martin", "Haddad", "Sato")
_STREETS = ("Main St", "Oak Ave", "Pine Rd", "Maple Dr", "Cedar Ln", "Elm St", "Lakeview Blvd", "Hill Rd")
_NOTES = ("called about billing", "requested a callback", "upgrade to premium", "address change",
          "card replaced", "dispute opened", "payment plan agreed", "no answer, left voicemail")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--extract-rows", type=int, default=5000,
                        help="customer rows in the generated xlsx / csv files (default 5000)")
    parser.add_argument("--extract-rounds", type=int, default=3, help="timed rounds per file type (default 3)")


def customers(rows: int, rng: random.Random) -> list[list[str]]:
    out = []
    for i in range(rows):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        out.append([
            f"C{100000 + i}", f"{first} {last}", f"{first.lower()}.{last.lower()}{i}@example.com",
            f"+1 {rng.randint(200, 989)} {rng.randint(200, 999)} {rng.randint(1000, 9999)}",
            f"{rng.randint(1, 9999)} {rng.choice(_STREETS)}", f"{rng.randint(0, 99999):05d}",
            f"{rng.randint(0, 500000) / 100:.2f}",
            rng.choice(_NOTES) + f" on {rng.randint(1, 28)}/{rng.randint(1, 12)}",
        ])
    out[rows // 2][7] = f"card on file {PLANTED}"
    return out


# ------------------------------------------------------------------------------------------ xlsx

_HEADER = ["Customer", "Name", "Email", "Phone", "Address", "ZIP", "Balance", "Last note"]
_CONTENT_TYPES_XLSX = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.'
    'spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.'
    'spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/worksheets/sheet2.xml" ContentType="application/vnd.openxmlformats-officedocument.'
    'spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.'
    'spreadsheetml.sharedStrings+xml"/>'
    '<Override PartName="/xl/comments1.xml" ContentType="application/vnd.openxmlformats-officedocument.'
    'spreadsheetml.comments+xml"/></Types>'
)
_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
_REL_NS = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
_PKG_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOC_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def _column(index: int) -> str:
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


def make_xlsx(rows: list[list[str]]) -> bytes:
    """A workbook as Excel writes it: every text cell a shared string (t="s"), numbers as <v>, cell
    references and row spans, a hidden second sheet and a comment."""
    strings: dict[str, int] = {}

    def sheet(table: list[list[str]]) -> str:
        out = [f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet {_NS} {_REL_NS}>'
               f'<dimension ref="A1:{_column(len(table[0]) - 1)}{len(table)}"/><sheetData>']
        for r, row in enumerate(table, start=1):
            out.append(f'<row r="{r}" spans="1:{len(row)}">')
            for c, value in enumerate(row):
                ref = f"{_column(c)}{r}"
                if c == 6 and r > 1:
                    out.append(f'<c r="{ref}" s="1"><v>{value}</v></c>')
                else:
                    index = strings.setdefault(value, len(strings))
                    out.append(f'<c r="{ref}" t="s"><v>{index}</v></c>')
            out.append("</row>")
        out.append("</sheetData></worksheet>")
        return "".join(out)

    visible = sheet([_HEADER, *rows])
    hidden = sheet([["Archived", "Reason"], [rows[0][1], "closed account"], [rows[-1][1], "fraud review"]])
    shared = "".join(f"<si><t>{html.escape(s, quote=False)}</t></si>" for s in strings)
    files = {
        "[Content_Types].xml": _CONTENT_TYPES_XLSX,
        "_rels/.rels": f'<Relationships xmlns="{_PKG_RELS}"><Relationship Id="rId1" Type="{_DOC_RELS}/officeDocument"'
                       ' Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<workbook {_NS} {_REL_NS}><sheets><sheet name="Customers" sheetId="1" r:id="rId1"/>'
                           '<sheet name="Archive" sheetId="2" state="hidden" r:id="rId2"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": f'<Relationships xmlns="{_PKG_RELS}">' + "".join(
            f'<Relationship Id="rId{i}" Type="{_DOC_RELS}/{kind}" Target="{target}"/>' for i, kind, target in (
                (1, "worksheet", "worksheets/sheet1.xml"), (2, "worksheet", "worksheets/sheet2.xml"),
                (3, "sharedStrings", "sharedStrings.xml"), (4, "styles", "styles.xml"))) + "</Relationships>",
        "xl/styles.xml": f'<styleSheet {_NS}><numFmts count="1"><numFmt numFmtId="164" formatCode="#,##0.00"/>'
                         '</numFmts><fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
                         '<fills count="1"><fill><patternFill patternType="none"/></fill></fills>'
                         '<borders count="1"><border/></borders><cellStyleXfs count="1"><xf/></cellStyleXfs>'
                         '<cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="164" applyNumberFormat="1"/></cellXfs>'
                         '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
                         "</styleSheet>",
        "xl/worksheets/sheet1.xml": visible,
        "xl/worksheets/sheet2.xml": hidden,
        "xl/sharedStrings.xml": f'<sst {_NS} count="{len(strings)}" uniqueCount="{len(strings)}">{shared}</sst>',
        "xl/comments1.xml": f'<comments {_NS}><authors><author>Supervisor</author></authors><commentList>'
                            '<comment ref="B2" authorId="0"><text><r><t>VIP, verify identity first</t></r></text>'
                            "</comment></commentList></comments>",
    }
    return _zip(files)


def _zip(files: dict[str, str | bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        for name, content in files.items():
            z.writestr(name, content)
    return buf.getvalue()


# ----------------------------------------------------------------------------------- docx, zip, pdf


def make_docx(rows: list[list[str]], rng: random.Random) -> bytes:
    """A letter: header and footer, paragraphs, a table of customers, a comment."""
    import docx

    document = docx.Document()
    section = document.sections[0]
    section.header.paragraphs[0].text = "Acme Outsourcing - internal use only"
    section.footer.paragraphs[0].text = "Page footer - call center quality team"
    document.add_heading("Monthly account review", level=1)
    table_rows = rows[: max(20, len(rows) // 10)]
    for i in range(max(10, len(rows) // 25)):
        first = document.add_paragraph(
            f"Dear {rows[i][1]}, thank you for contacting us about your account {rows[i][0]}. Our agent "
            f"{rng.choice(_FIRST)} reviewed the case ({rows[i][7]}) and will follow up by phone at {rows[i][3]}.")
        if i == 0:
            document.add_comment(first.runs, text="check the callback number", author="QA", initials="QA")
    table = document.add_table(rows=1, cols=4)
    for cell, title in zip(table.rows[0].cells, ("Customer", "Name", "Email", "Note"), strict=True):
        cell.text = title
    for row in table_rows:
        cells = table.add_row().cells
        for cell, value in zip(cells, (row[0], row[1], row[2], row[7]), strict=True):
            cell.text = value
    document.add_paragraph(f"Card on file for the disputed charge: {PLANTED}.")
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def make_csv_zip(rows: list[list[str]]) -> bytes:
    """Four CSV exports, as an agent zips them up."""
    files: dict[str, str | bytes] = {}
    quarter = max(1, len(rows) // 4)
    for part in range(4):
        chunk = rows[part * quarter : (part + 1) * quarter] or rows[:1]
        lines = [",".join(_HEADER)] + [",".join(f'"{v}"' if "," in v else v for v in row) for row in chunk]
        files[f"export/customers_{part + 1}.csv"] = "\n".join(lines) + "\n"
    return _zip(files)


def make_pdf(rows: list[list[str]]) -> bytes:
    """A report, 40 lines a page, Helvetica, Flate-compressed content streams (as PDF writers emit)."""
    lines = [f"{r[0]}  {r[1]}  {r[2]}  {r[3]}  {r[7]}" for r in rows[: max(40, len(rows) // 5)]]
    lines.insert(len(lines) // 2, f"Card on file {PLANTED}")
    pages = [lines[i : i + 40] for i in range(0, len(lines), 40)]
    font = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", font]
    kids = []
    for page in pages:
        text = b"BT /F1 9 Tf 11 TL 40 760 Td " + b" ".join(
            b"(" + line.encode("latin-1", "replace").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
            + b") Tj T*" for line in page) + b" ET"
        stream = zlib.compress(text)
        kids.append(b"%d 0 R" % (len(objects) + 1))
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >>"
                       b" /Contents %d 0 R >>" % (len(objects) + 2))
        objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects[1] = b"<< /Type /Pages /Kids [" + b" ".join(kids) + b"] /Count %d >>" % len(kids)
    return assemble_pdf(objects, b"1.5")


def assemble_pdf(objects: list[bytes], version: bytes = b"1.4") -> bytes:
    """A PDF file from its objects (numbered from 1; object 1 is the catalog), with a correct xref
    table. Shared with the extraction tests, which build hostile PDFs the same way."""
    out = bytearray(b"%PDF-" + version + b"\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def attachments(rows: int, seed: int) -> dict[str, bytes]:
    rng = random.Random(seed)
    table = customers(rows, rng)
    return {
        "customers.xlsx": make_xlsx(table),
        "review.docx": make_docx(table, rng),
        "exports.zip": make_csv_zip(table),
        "report.pdf": make_pdf(table),
    }


# ------------------------------------------------------------------------------------------- run


def _time(data: bytes, name: str, rounds: int, extract: Callable[[bytes, str], Any]) -> dict[str, Any]:
    best: tuple[float, float] | None = None
    result = None
    for _ in range(rounds):
        gc.collect()
        started, cpu_started = time.perf_counter(), time.process_time()
        result = extract(data, name)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        if best is None or cpu < best[1]:
            best = (wall, cpu)
    assert best is not None and result is not None
    wall, cpu = best
    text = sum(len(p.text) for p in result.parts)
    return {
        "bytes": len(data),
        "text_chars": text,
        "parts": len(result.parts),
        "uninspected": sorted({u.reason.value for u in result.uninspected}),
        "planted_found": any(PLANTED in p.text for p in result.parts),
        "seconds": round(wall, 4),
        "cpu_seconds": round(cpu, 4),
        "mb_per_s": round(len(data) / MB / wall, 2) if wall else 0.0,
        "cpu_mb_per_s": round(len(data) / MB / cpu, 2) if cpu else 0.0,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from dlp.extract import extract_file
    from dlp.extract.xmltext import compiled_scanner

    rows = max(20, int(getattr(args, "extract_rows", 5000)))
    rounds = max(1, int(getattr(args, "extract_rounds", 3)))
    seed = int(getattr(args, "seed", 7))
    files = attachments(rows, seed)
    for name, data in files.items():  # warm-up: imports (pdfium, docx parts) are not part of the cost
        extract_file(data, name)
    types = {name.rsplit(".", 1)[1]: _time(data, name, rounds, extract_file) for name, data in files.items()}
    in_target = [t for t in types if t not in SEPARATE]
    slowest = min(in_target, key=lambda t: types[t]["cpu_mb_per_s"])
    ratio = types[slowest]["cpu_mb_per_s"] / TARGET_MB_PER_S
    return {
        "target": "extract",
        "scanner": "compiled (C)" if compiled_scanner() is not None else "general path (not built: see setup.py)",
        "rows": rows,
        "rounds": rounds,
        "target_mb_per_s": TARGET_MB_PER_S,
        "types": types,
        "slowest": slowest,
        "ratio": round(ratio, 2),
        "ratio_means": f"slowest office/zip type ({slowest}) CPU MB/s of input / {TARGET_MB_PER_S:g} MB/s target; "
                       ">= 1 meets it (PDF not included: see pdf_ratio)",
        "pdf_ratio": round(types["pdf"]["cpu_mb_per_s"] / TARGET_MB_PER_S, 2),
        "pdf_ratio_means": f"PDF CPU MB/s of input / {TARGET_MB_PER_S:g} MB/s, reported on its own: pdfium's "
                           "text layout costs ~0.8 ms a page",
        "all_planted_found": all(t["planted_found"] for t in types.values()),
    }


def format_text(result: dict[str, Any]) -> str:
    lines = [f"dlp bench extract: {result['rows']} customer rows, best of {result['rounds']} rounds (CPU time); "
             f"markup scanner {result['scanner']}",
             f"{'type':<6} {'input KB':>9} {'text KB':>8} {'MB/s':>7} {'wall MB/s':>9}  planted  uninspected"]
    for kind, r in result["types"].items():
        lines.append(f"{kind:<6} {r['bytes'] / 1024:>9.1f} {r['text_chars'] / 1024:>8.1f} {r['cpu_mb_per_s']:>7.2f} "
                     f"{r['mb_per_s']:>9.2f}  {'yes' if r['planted_found'] else 'NO':<7}  "
                     f"{', '.join(r['uninspected']) or '-'}")
    lines.append(f"ratio {result['ratio']}: {result['ratio_means']}")
    lines.append(f"pdf ratio {result['pdf_ratio']}: {result['pdf_ratio_means']}")
    return "\n".join(lines)
