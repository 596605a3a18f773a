"""The compiled readings (the C scanner _markup.c behind xmltext.markup_text and sheets.CompiledSheets,
archives' ISA-L member reader) must give exactly what the general paths give, on regular and irregular
markup alike, and stay bounded on hostile shapes."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlp.extract import documents, extract_file, xmltext
from dlp.extract.documents import SharedTable, shared_strings, sheet_text
from dlp.extract.sheets import CompiledSheets
from dlp.model import Reason
from tests.helpers.extraction import make_zip
from tests.helpers.measure import peak_memory

PAN = "4556737586899855"
NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'


def test_the_scanner_is_built_and_not_stale() -> None:
    """`make` builds it (setup.py); without it every test below would compare the general path with itself,
    and an edited _markup.c behind an old build would go untested."""
    scanner = xmltext.compiled_scanner()
    assert scanner is not None and scanner.__file__ is not None
    source = Path(xmltext.__file__).with_name("_markup.c")
    assert Path(scanner.__file__).stat().st_mtime >= source.stat().st_mtime, "run `make venv` to rebuild"


def general_markup(data: bytes, monkeypatch: pytest.MonkeyPatch) -> str:
    with monkeypatch.context() as m:
        m.setattr(xmltext, "_markup", None)
        return xmltext.markup_text(data)


def compiled_markup(data: bytes) -> str:
    return xmltext.markup_text(data)


_WORD = st.sampled_from([
    "<w:p>", "</w:p>", "<w:r>", "</w:r>", "<w:t>", "</w:t>", '<w:t xml:space="preserve">', "<w:tab/>", "<w:br/>",
    '<w:br w:type="page"/>', "<w:cr/>", "<w:tbl>", "</w:tbl>", "<w:tr>", "</w:tr>", "<w:tc>", "</w:tc>",
    "<a:p>", "</a:p>", "<a:t>", "</a:t>", "<text:p>", "</text:p>", "<text:s/>", '<text:s text:c="2"/>',
    "<table:table-row>", "</table:table-row>", "<table:table-cell>", "</table:table-cell>", "<p>", "</p>",
    "<td>", "</td>", '<w:rPr w:val="x"/>', "<!-- note -->", "<!--<w:-->", "<!--", "<![CDATA[4111 <b> 1111]]>",
    "<?pi x?>",
    "card", PAN, "a &amp; b", "&lt;x&gt;", " ", "\n", "\t", "\n\t", "  \n  ", "Zoë 東京", ">", "<", "x > y",
])


@settings(max_examples=500, deadline=None)
@given(st.lists(_WORD, max_size=60))
def test_markup_scanner_equals_general_path(tokens: list[str]) -> None:
    data = "".join(tokens).encode()
    with pytest.MonkeyPatch.context() as m:
        assert compiled_markup(data) == general_markup(data, m)


def test_markup_scanner_runs_on_a_real_letter(monkeypatch: pytest.MonkeyPatch) -> None:
    body = "".join(f"<w:p><w:r><w:t>Dear customer {i}, card {PAN}</w:t></w:r></w:p>"
                   f"<w:tbl><w:tr><w:tc><w:p><w:r><w:t>C{i}</w:t></w:r></w:p></w:tc><w:tc><w:p/></w:tc></w:tr></w:tbl>"
                   for i in range(300))
    data = (f'<?xml version="1.0"?>\n<w:document xmlns:w="w"><w:body>{body}</w:body></w:document>').encode()
    assert xmltext._scanned(data) is not None  # the scanner took it
    text = compiled_markup(data)
    assert text == general_markup(data, monkeypatch)
    assert text.count(PAN) == 300 and "C298\nDear customer 299" in text


def test_markup_scanner_declines_irregular_markup() -> None:
    for data in (b"<w:p>a < b</w:p>", b"<w:p><!-- open", b"<w:t><![CDATA[x]]></w:t>", b"<w:p>a <"):
        assert xmltext._scanned(data) is None


def test_cdata_is_text(monkeypatch: pytest.MonkeyPatch) -> None:
    data = f"<w:p><w:t><![CDATA[card {PAN} <not a tag> & more]]></w:t></w:p>".encode()
    assert compiled_markup(data) == general_markup(data, monkeypatch) == f"card {PAN} <not a tag> & more"


# ----------------------------------------------------------------------------------------- sheets

_SHARED = ["plain", "a &amp; b", "  padded  ", f"card {PAN}", "", "Zoë", "tab\there", "line\nbreak", "unused"]


def _sst(strings: list[str], preserve: bool, rich: bool) -> bytes:
    out = []
    for s in strings:
        if rich and s:
            out.append(f"<si><r><rPr><b/></rPr><t>{s[:2]}</t></r><r><t>{s[2:]}</t></r><rPh><t>KANA</t></rPh></si>")
        elif not s:
            out.append("<si/>" if rich else "<si><t></t></si>")
        else:
            out.append(f'<si><t xml:space="preserve">{s}</t></si>' if preserve else f"<si><t>{s}</t></si>")
    return f'<?xml version="1.0"?>\n<sst {NS}>{"".join(out)}</sst>'.encode()


_CELL = st.one_of(
    st.builds(lambda i: f'<c r="A1" t="s"><v>{i}</v></c>', st.integers(0, len(_SHARED) + 2)),
    st.builds(lambda i: f'<c t="s" r="B1" s="2"><v>{i}</v></c>', st.integers(0, len(_SHARED) - 1)),
    st.builds(lambda i: f"<c r='C1' t='s'><v>{i}</v></c>", st.integers(0, len(_SHARED) - 1)),
    st.builds(lambda i: f'<c r="D1" t="s"><v>00{i}</v></c>', st.integers(0, len(_SHARED) - 1)),
    st.builds(lambda x: f'<c r="E1" s="1"><v>{x}</v></c>', st.integers(0, 10**18)),
    st.just('<c r="F1" s="1"/>'),
    st.just('<c r="G1" t="inlineStr"><is><t>inline 4111</t></is></c>'),
    st.just('<c r="H1"><f>SUM(A1:A2)</f><v>42</v></c>'),
    st.just('<c r="I1" t="str"><v>text &lt;r&gt;</v></c>'),
    st.just('<c r="J1"></c>'),
)
_ROW = st.one_of(
    st.builds(lambda cells: '<row r="1" spans="1:3">' + "".join(cells) + "</row>", st.lists(_CELL, max_size=6)),
    st.just('<row r="9"/>'),
)


def _sheet(rows: list[str], pretty: bool) -> bytes:
    joiner = "\n  " if pretty else ""
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet {NS}><dimension ref="A1"/>'
            f"<sheetData>{joiner}{joiner.join(rows)}</sheetData><headerFooter><oddHeader>&amp;C hdr</oddHeader>"
            f"</headerFooter></worksheet>").encode() if pretty else (
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet {NS}><dimension ref="A1"/>'
            f"<sheetData>{''.join(rows)}</sheetData></worksheet>").encode()


def _general_reading(sst: bytes, sheet: bytes) -> tuple[str, list[str]]:
    table = SharedTable(shared_strings(sst.decode()))
    return sheet_text(sheet.decode(), table), table.orphans()


@settings(max_examples=400, deadline=None)
@given(st.lists(_ROW, max_size=8), st.booleans(), st.booleans(), st.booleans())
def test_compiled_sheets_equal_the_general_reading(rows: list[str], pretty: bool, preserve: bool, rich: bool) -> None:
    sst, sheet = _sst(_SHARED, preserve, rich), _sheet(rows, pretty)
    expected, orphans = _general_reading(sst, sheet)
    table = CompiledSheets.read(sst)
    assert table is not None  # every shared-string shape here is regular
    got = table.sheet_text(sheet)
    if got is not None:  # None: the caller reads the workbook the general way (also correct)
        assert got == expected
        assert sorted(table.orphans()) == sorted(orphans)


_MARKUP = st.sampled_from([
    "<row>", "</row>", '<row r="2"/>', "<row/>", '<c r="A1" t="s">', "<c t='s' r=\"B1\">", '<c r="C1">', "</c>",
    '<c r="D1" s="1"/>', '<c r="D2" />', "<v>", "</v>", "<v/>", "<f>", "</f>", '<f t="shared" si="0"/>', "<font>",
    "<f-x>", "<f/ >", "<f/a>", "<f/>", '<c r="E1" t="s"/>', "<c r='E2' t='s'/>", '<row r="3" t="s"/>', "<is>",
    "</is>", "<t>", "</t>", "<sheetData>", "</sheetData>", "<!-- c -->", "<![CDATA[1]]>",
    "0", "1", " 2 ", "007", "12345678901", "x", PAN, "&amp;", "\t", "\n", " ", "Zoë", ">", "<", "\x01",
    # shapes a grammar-based differential fuzz went through (spacing, case, long tags, look-alike names)
    '<c\tt="s"\nr="A1">', '<c r="A1" t="s" s="1">', '<c t="s" t="s">', f'<c {"y" * 250}="1" t="s">',
    f'<c t="s" {"y" * 250}="1">', "</c >", "</v >", "<V>", "<F>", "<f:x>", "<fé>", "<f\t/>", "<f\n>x</f>",
    "<sheetData/>", "<sheetData >", "<rowx>", '</a"/>', "&#9;", "0\t5", " 1\r\n", "1234567890123",
])


@settings(max_examples=500, deadline=None)
@given(st.lists(_MARKUP, max_size=40), st.lists(st.sampled_from(_SHARED), max_size=4))
def test_compiled_sheets_equal_the_general_reading_on_any_markup(tokens: list[str], strings: list[str]) -> None:
    sst = _sst(strings, False, False)
    sheet = "".join(tokens).encode()
    expected, orphans = _general_reading(sst, sheet)
    table = CompiledSheets.read(sst)
    assert table is not None
    got = table.sheet_text(sheet)
    if got is not None:
        assert got == expected
        assert sorted(table.orphans()) == sorted(orphans)


_SST_MARKUP = st.sampled_from([
    "<si>", "</si>", "<si/>", "<si />", "<t>", "</t>", '<t xml:space="preserve">', "<r>", "</r>", "<rPr><b/></rPr>",
    "<rPh>", "</rPh>", '<rPh sb="0" eb="1">', "</sst>", "<!-- c -->", "a", " ", "\n", "Zoë", "&lt;", ">", "<",
    "<si\x0b/>", "<si\xa0/>", "<si\t/>", "\x01", "\x011", "<si\u3000/>", "<size/>", "<sib/>", '<si a="1">', "</si >",
    "</sst>x", "<rPh/>", "<rPhx>", "<phoneticPr/>", "<t a='1'>", "&#9;",
])


@settings(max_examples=500, deadline=None)
@given(st.lists(_SST_MARKUP, max_size=40))
def test_compiled_shared_strings_equal_the_general_reading(tokens: list[str]) -> None:
    xml = "<sst>" + "".join(tokens)
    table = CompiledSheets.read(xml.encode())
    if table is not None:
        assert [s.decode() for s in table.strings] == shared_strings(xml)


# Found by review: shapes where a reading differed from the general path (fixed: each now reads the same,
# or declines and leaves the part to the general path).
@pytest.mark.parametrize(("sheet", "strings"), [
    (b"<sheetData><row><c r=\"A1\" t='s'/><c><v>5</v></c></row></sheetData>", [b"s0"]),  # t='s' before "/>"
    (b'<row><c r="A1" t="s"/><v>0</v></c><c><v>9</v></c></row>', [b"s0", b"s1"]),  # the "/" moves away
    (b'<x><row r="1" t="s"/><v>0</v></c><c><v>9</v></c></x>', [b"s0", b"s1"]),
    (b"<row><c><f/ >SECRET</f><v>1</v></c></row>", []),  # "<f/ >" opens a formula
    (b"<row><c><f/a>SECRET</f><v>1</v></c></row>", []),
    (b'<sheetData></"/>x</sheetData>', []),  # a closing tag ending '"/>'
    (b"<sheetData></c t='s'/>x</sheetData>", []),
    (b"<sheetData><row><c t=\"inlineStr\"><is><t>a t='s'</t></is></c></row></sheetData>", []),  # rewritten in text
])
def test_review_sheet_shapes_read_as_the_general_reading(sheet: bytes, strings: list[bytes]) -> None:
    general = SharedTable([s.decode() for s in strings])
    expected = sheet_text(sheet.decode(), general)
    got = CompiledSheets(list(strings)).sheet_text(sheet)
    assert got is None or got == expected


@pytest.mark.parametrize("sst", [
    b"<sst><si><t>a</t></si><si\x0b/><si><t>b</t></si></sst>",  # "\s" of _EMPTY_SI: not only ASCII spaces
    "<sst><si><t>a</t></si><si\xa0/><si><t>b</t></si></sst>".encode(),
    b"<sst><si><t>a\x01b</t></si><si><t>B</t></si></sst>",  # sheet_text's marker inside a string
])
def test_review_shared_string_shapes_read_as_the_general_reading(sst: bytes) -> None:
    table = CompiledSheets.read(sst)
    assert table is None or [s.decode() for s in table.strings] == shared_strings(sst.decode())
    sheet = b'<row><c t="s"><v>0</v></c><c t="s"><v>1</v></c><c t="s"><v>2</v></c></row>'
    if table is not None:
        assert table.sheet_text(sheet) == sheet_text(sheet.decode(), SharedTable(shared_strings(sst.decode())))


def test_review_comment_shapes_read_as_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    for data in (b"<!--<w:-->a</p>b", b"<!--" + b"x" * 70000 + b"--><w:p>a</w:p>b", b"<!--<![CDATA[-->]]>",
                 b"<w:p><w:t><!--<![CDATA[-->secret]]></w:t></w:p>", b"<!-- <![CDATA[ --> ]]> -->tail"):
        assert compiled_markup(data) == general_markup(data, monkeypatch)


def test_compiled_sheets_take_excel_and_openpyxl_shapes() -> None:
    from dlp.bench.extract import attachments

    files = attachments(300, seed=3)
    with zipfile.ZipFile(io.BytesIO(files["customers.xlsx"])) as z:
        sst, sheet = z.read("xl/sharedStrings.xml"), z.read("xl/worksheets/sheet1.xml")
    table = CompiledSheets.read(sst)
    assert table is not None
    assert table.sheet_text(sheet) == sheet_text(sheet.decode(), SharedTable(shared_strings(sst.decode())))
    book = openpyxl.Workbook()
    book.active.append(["name", f"card {PAN}", 12.5])
    book.active.append([None, "x & y", "  lead"])
    buf = io.BytesIO()
    book.save(buf)
    with zipfile.ZipFile(buf) as z:  # openpyxl writes inline strings, no shared-string table
        sheet = z.read("xl/worksheets/sheet1.xml")
    table = CompiledSheets.read(b"")
    assert table is not None and table.sheet_text(sheet) is not None  # openpyxl's shape is read compiled
    parts = {p.location: p.text for p in extract_file(buf.getvalue(), "o.xlsx").parts}
    assert f"card {PAN}" in parts["o.xlsx/sheet:Sheet"] and "x & y" in parts["o.xlsx/sheet:Sheet"]


def test_workbook_falls_back_whole_when_one_sheet_is_irregular(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = documents.shared_strings

    def spy(xml: str) -> list[str]:
        calls.append(len(real(xml)))
        return real(xml)

    monkeypatch.setattr(documents, "shared_strings", spy)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", f'<workbook {NS} xmlns:r="r"><sheets><sheet name="A" sheetId="1" r:id="rId1"/>'
                                      '<sheet name="B" sheetId="2" r:id="rId2"/></sheets></workbook>')
        z.writestr("xl/_rels/workbook.xml.rels",
                   '<Relationships><Relationship Id="rId1" Target="worksheets/sheet1.xml"/>'
                   '<Relationship Id="rId2" Target="worksheets/sheet2.xml"/></Relationships>')
        z.writestr("xl/worksheets/sheet1.xml", f'<worksheet {NS}><sheetData><row><c t="s"><v>0</v></c></row>'
                                               "</sheetData></worksheet>")
        # a ">" in an attribute value: not regular markup, so the whole workbook is read the general way
        z.writestr("xl/worksheets/sheet2.xml", f'<worksheet {NS}><sheetData><row><c r="A>1" t="s"><v>1</v></c></row>'
                                               "</sheetData></worksheet>")
        z.writestr("xl/sharedStrings.xml", f"<sst {NS}><si><t>first {PAN}</t></si><si><t>second</t></si></sst>")
    got = {p.location: p.text for p in extract_file(buf.getvalue(), "b.xlsx").parts}
    assert got["b.xlsx/sheet:A"] == f"first {PAN}" and "second" in got["b.xlsx/sheet:B"]
    assert calls == [2]  # one general reading, for the whole workbook


# -------------------------------------------------------------------------------------------- zip


def test_member_reader_stored_and_deflated() -> None:
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        e = extract_file(make_zip({"a.txt": f"card {PAN}\n".encode() * 5000, "b.txt": b""}, method), "x.zip")
        assert not e.uninspected
        assert e.parts[0].text.count(PAN) == 5000


def test_member_reader_bad_crc_and_truncation_are_undecodable() -> None:
    data = bytearray(make_zip({"a.txt": f"card {PAN}".encode() * 100}))
    central = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 16, struct.unpack_from("<I", data, central + 16)[0] ^ 1)
    local = data.find(b"PK\x03\x04")
    struct.pack_into("<I", data, local + 14, struct.unpack_from("<I", data, local + 14)[0] ^ 1)
    e = extract_file(bytes(data), "crc.zip")
    assert {u.reason for u in e.uninspected} == {Reason.UNDECODABLE_ARCHIVE} and not e.parts
    # deflate data cut short inside the member (sizes still say more)
    raw = zlib.compressobj(6, zlib.DEFLATED, -15)
    packed = raw.compress(bytes(range(256)) * 400) + raw.flush()
    good = make_zip({"b.bin": bytes(range(256)) * 400})
    start = good.find(packed[:16])
    assert start > 0
    half = len(packed) // 2
    cut = good[:start] + packed[:half] + b"\x00" * (len(packed) - half) + good[start + len(packed) :]
    e = extract_file(cut, "cut.zip")
    assert Reason.UNDECODABLE_ARCHIVE in {u.reason for u in e.uninspected}


# --------------------------------------------------------------------------------- hostile shapes


@pytest.mark.parametrize("cell", ['<c r="A1" s="1"/>', "<c><v>1</v></c>", '<c t="s" r="A1"><v>0</v></c>', "<a/>"])
def test_tag_dense_sheets_stay_bounded(cell: str) -> None:
    """4 MB of the densest cells: memory stays within a small multiple of the input."""
    count = 4 * 1024 * 1024 // len(cell)
    sheet = f"<worksheet {NS}><sheetData><row>{cell * count}</row></sheetData></worksheet>".encode()
    table = CompiledSheets.read(f"<sst {NS}><si><t>{PAN}</t></si></sst>".encode())
    assert table is not None
    text, peak, elapsed = peak_memory(lambda: table.sheet_text(sheet))
    assert text is not None and peak < 25 * len(sheet) and elapsed < 20
    if "t=" in cell:
        assert text.count(PAN) == count  # type: ignore[union-attr]


def test_tag_dense_markup_stays_bounded() -> None:
    data = b"<w:p>" + b"<w:t>1</w:t><w:tab/>" * (4 * 1024 * 1024 // 20) + b"</w:p>"
    text, peak, elapsed = peak_memory(lambda: xmltext.markup_text(data))
    assert peak < 25 * len(data) and elapsed < 20
    assert str(text).count("1") == 4 * 1024 * 1024 // 20


def test_shared_formula_cells_read_as_the_general_reading_does() -> None:
    sheet = (f'<?xml version="1.0"?>\n<worksheet {NS}><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c>'
             '<c r="B1"><f t="shared" ref="B1:B2" si="0"/><v>7</v></c></row></sheetData></worksheet>').encode()
    sst = f"<sst {NS}><si><t>card {PAN}</t></si></sst>".encode()
    table = CompiledSheets.read(sst)
    assert table is not None
    # the line break after the declaration is a text node; a self-closing tag in sheetData ends a cell
    assert table.sheet_text(sheet) == _general_reading(sst, sheet)[0] == f"\ncard {PAN}\t\t7"


def test_member_reader_without_isal_uses_zlib(monkeypatch: pytest.MonkeyPatch) -> None:
    from dlp.extract import archives

    monkeypatch.setattr(archives, "_zlib", zlib)
    test_member_reader_stored_and_deflated()
    test_member_reader_bad_crc_and_truncation_are_undecodable()
