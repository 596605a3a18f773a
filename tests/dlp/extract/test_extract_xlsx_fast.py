"""The fast xlsx path (issue 3 throughput): shared strings spliced in by whole-document splits must still
give every cell, in every spelling a writer may use, and hostile markup must stay linear."""

from __future__ import annotations

import io
import time
import zipfile

from dlp.extract import extract_file
from dlp.extract.documents import SharedTable, shared_strings, sheet_text
from dlp.extract.xmltext import markup_text
from tests.helpers.extraction import parts

PAN = "4111111111111111"
NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'


def workbook(sheet_xml: str, shared_xml: str) -> bytes:
    rels = ('<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="x/worksheet" Target="worksheets/sheet1.xml"/></Relationships>')
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", f'<workbook {NS} xmlns:r="r"><sheets><sheet name="S" sheetId="1" r:id="rId1"/>'
                                      "</sheets></workbook>")
        z.writestr("xl/_rels/workbook.xml.rels", rels)
        z.writestr("xl/worksheets/sheet1.xml", f"<worksheet {NS}><sheetData>{sheet_xml}</sheetData></worksheet>")
        z.writestr("xl/sharedStrings.xml", f"<sst {NS}>{shared_xml}</sst>")
    return buf.getvalue()


def test_every_shared_cell_spelling() -> None:
    shared = ('<si><t>plain</t></si><si><r><rPr><b/></rPr><t>rich </t></r><r><t xml:space="preserve">text</t></r></si>'
              '<si/><si><t>a &amp; b &gt; c</t><rPh sb="0" eb="1"><t>PHONETIC</t></rPh></si>'
              f"<si><t>orphan {PAN}</t></si>")
    sheet = ('<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" s="3" t="s"><v>1</v></c>'
             '<c t="s" r="C1" s="2"><v>3</v></c><c r="D1" t="s" cm="1"><v> 0 </v></c></row>'
             '<row r="2"><c r="A2" s="1"/><c r="B2" t="s"><v>001</v></c><c r="C2" t="s"><v>99</v></c>'
             '<c r="D2"><f>SUM(A1:A2)</f><v>42</v></c><c r="E2" t="inlineStr"><is><t>inline</t></is></c></row>'
             '<row r="3"/><row r="4"><c r="A4" t="s"><v>2</v></c></row>')
    e = extract_file(workbook(sheet, shared), "book.xlsx")
    got = parts(e)
    # Index "001" is 1; 99 is past the table (empty cell); trailing empty rows are dropped.
    assert got["book.xlsx/sheet:S"] == "plain\trich text\ta & b > c\tplain\n\trich text\t\t42\tinline"
    # A string no cell points at is still scanned.
    assert PAN in got["book.xlsx/xl/sharedStrings.xml"]
    assert "PHONETIC" not in "".join(got.values())


def test_shared_table_matches_the_slow_reading() -> None:
    strings = shared_strings("<sst><si><t>x</t></si>\n  <si><t>y</t></si><si/></sst>")
    assert [s.strip() for s in strings] == ["x", "y", ""]
    table = SharedTable(strings)
    assert sheet_text('<row><c r="A1" t="s"><v>1</v></c><c r="B1" t="s"><v>0</v></c></row>', table).strip() == "y\tx"
    assert table.orphans() == []  # "" is not reported


def test_hostile_markup_stays_linear() -> None:
    started = time.process_time()
    for hostile in ("<a" * 200_000, "<!--" * 100_000, "<c " * 100_000 + ' t="s"' * 50_000,
                    "<rPh" * 100_000, "<f>" * 100_000):
        markup_text(hostile)
        sheet_text(hostile, SharedTable(["x"]))
        shared_strings("<si>" + hostile)
    assert time.process_time() - started < 5.0  # quadratic regexes took minutes on these


def test_unreferenced_string_is_scanned_whatever_else_the_cells_point_at() -> None:
    # Cells point at the first and last strings and at many indices past the table: a count of indices
    # seen would call every string used, and the middle one (never shown in a cell) would go unscanned.
    shared = f"<si><t>first</t></si><si><t>hidden {PAN}</t></si><si><t>last</t></si>"
    cells = "".join(f'<c r="A{r}" t="s"><v>{index}</v></c>' for r, index in enumerate([0, 2, 7, 8, 9, 10], start=1))
    got = parts(extract_file(workbook(f'<row r="1">{cells}</row>', shared), "book.xlsx"))
    assert got["book.xlsx/sheet:S"] == "first\tlast"
    assert PAN in got["book.xlsx/xl/sharedStrings.xml"]
