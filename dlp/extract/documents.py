"""Documents: OOXML (docx / xlsx / pptx, every text part incl. hidden sheets, comments, notes, headers
and footers), OpenDocument, PDF (pdfium), RTF and OLE compound files (encrypted Office packages)."""

from __future__ import annotations

import base64
import binascii
import html
import posixpath
import re
import struct
import threading
import zipfile
import zlib
from typing import Any

from dlp.extract.archives import iter_zip
from dlp.extract.budget import Budget, DecodeError, LimitHit
from dlp.extract.cfb import CompoundFile, office_encryption
from dlp.extract.files import Where, add_text, extract_bytes, printable_strings
from dlp.extract.rtf import rtf_text
from dlp.extract.sheets import CompiledSheets
from dlp.extract.sniff import FileType
from dlp.extract.xmltext import cut_sections, markup_text
from dlp.model import Reason

_PDFIUM = threading.RLock()  # re-entered when a page carries a base64 PDF

_NOISE_XML = re.compile(
    r"(?:^|/)(?:\[Content_Types\]\.xml|[^/]*\.rels|theme\d*\.xml|fontTable\.xml|settings\.xml|webSettings\.xml|"
    r"numbering\.xml|presProps\.xml|viewProps\.xml|tableStyles\.xml|calcChain\.xml|slideMaster\d*\.xml|"
    r"slideLayout\d*\.xml|notesMaster\d*\.xml|handoutMaster\d*\.xml|manifest\.xml|app\.xml|"
    r"(?:word|xl|ppt)/styles\.xml|stylesWithEffects\.xml|fontTable\d*\.xml)$"
)
_EMBEDDED = re.compile(r"^(?:word|xl|ppt)/embeddings/|^Object \d+/|^Objects?/")
_TEXT_MEMBER = re.compile(r"\.(?:xml|vml|txt)$", re.I)
_WORKBOOK_SHEET = re.compile(r"<sheet\b([^<>]*)/?>")
_ATTR = re.compile(r'([\w:]+)\s*=\s*"([^"]*)"')
_RELATIONSHIP = re.compile(r"<Relationship\b([^<>]*)/?>")
_EMPTY_SI = re.compile(r"<si\s*/>")
# A shared-string cell in any attribute order: its value gets the "\x01" mark. A cell this misses (odd
# spacing) still has its string scanned, as an orphan (_xlsx).
_SHARED_VALUE = re.compile(r' t="s"([^<>]{0,256})><v>')
_MARKED_VALUE = '\\1 t="s"><v>\x01'
_LEFTOVER_VALUE = re.compile(r"\x01[ \r\n]*([0-9]{1,12})[ \r\n]*\t")  # up to its own cell end, not past it
_TEXT_NODE = re.compile(r">([^<]+)")  # text between tags; the ">" prefix lets the engine skip through tags
_ANGLES_ONLY = str.maketrans("", "", "".join(chr(c) for c in range(128) if chr(c) not in "<>"))
_FORMULA = re.compile(r"<f\b[^<>]*/>|<f\b[^<>]*>[^<]*</f>")
_EMPTY_CELL = re.compile(r"<c [^<>]*/>")  # literal prefixes: the engine searches for them fast
_EMPTY_ROW = re.compile(r"<row [^<>]*/>")
_TRAILING_TABS = re.compile(r"\t+\n")
_TAG = re.compile(r"<[^<>]*>")  # not [^>]: quadratic on runs of "<" without ">"
_NUMBER = re.compile(r"(\d+)")
_WORKBOOK_RELS = "xl/_rels/workbook.xml.rels"


def is_office_package(names: set[str]) -> bool:
    return "[Content_Types].xml" in names or ("mimetype" in names and "content.xml" in names)


def extract_office_package(data: bytes, names: set[str], where: Where, budget: Budget,
                           archive: zipfile.ZipFile | None = None) -> None:
    wanted = frozenset(
        n for n in names
        if _EMBEDDED.search(n) or (_TEXT_MEMBER.search(n) and not _NOISE_XML.search(n)) or n == _WORKBOOK_RELS
    )
    members = {m.name: m.data for m in iter_zip(data, where, budget, wanted=wanted, archive=archive)}
    if "xl/workbook.xml" in members:
        _xlsx(members, where, budget)
    for name in sorted(members, key=_natural):
        content = members[name]
        location = f"{where.location}/{name}"
        if _EMBEDDED.search(name) and not name.endswith(".xml"):
            extract_bytes(content, where.child(location, archive=1), budget, name=posixpath.basename(name))
            continue
        if name.startswith("xl/worksheets/") or name in ("xl/sharedStrings.xml", "xl/workbook.xml", _WORKBOOK_RELS):
            continue  # read above, as sheets
        add_text(markup_text(content), where.child(location), budget, "text/plain")


def _natural(name: str) -> list[object]:
    """slide2 before slide10."""
    return [int(p) if p.isdigit() else p for p in _NUMBER.split(name)]


def _attrs(fragment: str) -> dict[str, str]:
    return {k.rsplit(":", 1)[-1] if k != "r:id" else "rid": html.unescape(v) for k, v in _ATTR.findall(fragment)}


def _xlsx(members: dict[str, bytes], where: Where, budget: Budget) -> None:
    """Each worksheet (hidden ones too) as rows of tab-separated cells, under `sheet:<name>`."""
    rels = {}
    for m in _RELATIONSHIP.finditer(members.get(_WORKBOOK_RELS, b"").decode("utf-8", "replace")):
        a = _attrs(m.group(1))
        target = a.get("Target", "")
        rels[a.get("Id", "")] = target.lstrip("/") if target.startswith("/") else posixpath.normpath("xl/" + target)
    workbook = members["xl/workbook.xml"].decode("utf-8", "replace")
    named = {}
    for m in _WORKBOOK_SHEET.finditer(workbook):
        a = _attrs(m.group(1))
        path = rels.get(a.get("rid", a.get("id", "")), "")
        if path:
            named[path] = a.get("name", path)
    sheets = sorted((n for n in members if n.startswith("xl/worksheets/") and n.endswith(".xml")), key=_natural)
    shared = members.get("xl/sharedStrings.xml", b"")
    # The compiled reading (sheets.py) when it reads every sheet of the workbook; else the general one,
    # which reads any.
    for read in (CompiledSheets.read, SharedTable.read):
        table = read(shared)
        texts = _sheet_texts(table, members, sheets, budget) if table is not None else None
        if texts is not None:
            break
    assert table is not None and texts is not None
    for path, text in zip(sheets, texts, strict=True):
        location = f"{where.location}/sheet:{named.get(path, posixpath.basename(path))}"
        add_text(text, where.child(location), budget, "text/tab-separated-values")
    orphans = table.orphans()
    if orphans:
        # Strings no cell points at (Excel drops them; a crafted file need not) are scanned too.
        text = "\n".join(orphans)
        add_text(html.unescape(text) if "&" in text else text, where.child(f"{where.location}/xl/sharedStrings.xml"),
                 budget, "text/plain")


def _sheet_texts(table: CompiledSheets | SharedTable, members: dict[str, bytes], sheets: list[str],
                 budget: Budget) -> list[str] | None:
    """Every sheet's text, or None when the reading declines one of them."""
    texts = []
    for path in sheets:
        budget.check_time()
        text = table.sheet_text(members[path])
        if text is None:
            return None
        texts.append(text)
    return texts


class SharedTable:
    """The shared strings keyed by the text node a shared-string cell becomes once sheet_text has marked
    it ("\x01" + index + "\t"), each value followed by the tab that ends its cell."""

    def __init__(self, strings: list[str]) -> None:
        self.strings = strings
        self.keys = _node_keys(len(strings))
        tabbed = ("\t\x00".join(strings) + "\t").split("\x00") if strings else []  # s + "\t", without a loop
        self.cells = dict(zip(self.keys, tabbed, strict=True))
        self.used: set[str] = set()

    @classmethod
    def read(cls, xml: bytes) -> SharedTable:
        return cls(shared_strings(xml.decode("utf-8", "replace")))

    def sheet_text(self, xml: bytes) -> str:
        return sheet_text(xml.decode("utf-8", "replace"), self)

    def spell_out(self, match: re.Match[str]) -> str:
        """A marked cell the dict did not know ("\x01 007 \t", an index past the table): by number."""
        key = _NODE_KEY.format(int(match.group(1))) if len(match.group(1)) < 10 else ""
        self.used.add(key)
        return self.cells.get(key, "\t")

    def orphans(self) -> list[str]:
        if self.used.issuperset(self.keys):
            return []
        return [s for key, s in zip(self.keys, self.strings, strict=True) if s and key not in self.used]


_NODE_KEY = "\x01{}\t"
_KEY_CACHE: list[str] = []


def _node_keys(count: int) -> list[str]:
    """"\x010\t", "\x011\t", ...: built once per process and sliced (formatting them cost as much as a
    small sheet)."""
    if len(_KEY_CACHE) < count:
        _KEY_CACHE.extend(map(_NODE_KEY.format, range(len(_KEY_CACHE), count)))
    return _KEY_CACHE[:count]


def shared_strings(xml: str) -> list[str]:
    """The shared-string table, entities still escaped (sheet_text unescapes its whole output once).
    Done as a few whole-document substitutions: per-string Python work was most of an xlsx's cost."""
    start = xml.find("<si")
    if start < 0:
        return []
    body = xml[start : xml.rfind("</sst>") if "</sst>" in xml else len(xml)]
    if "\x00" in body:
        body = body.replace("\x00", "")  # the separator below; never valid in XML anyway
    if "<rPh" in body:
        body = cut_sections(body, "<rPh", "</rPh>")  # phonetic guides repeat the text in kana
    # The plain shape (<si><t>text</t></si>) by literal replacement, which is several times faster than
    # a regex; whatever markup remains (rich-text runs, xml:space, <si/>) by the general rules.
    # Excel's plain run of strings is one literal replacement of the boundary between two of them
    # (4x cheaper than replacing each of the four tags).
    body = body.replace("</t></si><si><t>", "\x00")
    if body.startswith("<si><t>"):
        body = body[7:]
    if body.endswith("</t></si>"):
        body = body[:-9]
    if "<" in body:
        body = body.replace("</si>", "\x00").replace("<si>", "").replace("<t>", "").replace("</t>", "")
        if "<" in body:
            body = _TAG.sub("", _EMPTY_SI.sub("\x00", body))
    strings = body.split("\x00")
    if strings and not strings[-1].strip():
        strings.pop()
    return strings


def sheet_text(xml: str, table: SharedTable) -> str:
    """Rows as lines, cells joined by tabs. Sheets can be large, so there is no Python work per cell:
    literal same-length replacements turn each cell's end into a tab inside its value's text node and
    mark shared-string values ("<v>12</v></c>" -> "<v>\x0112\t</v><c>"), one scan collects the text
    nodes (what lies between ">" and "<"), and a dict lookup mapped over them splices the strings in."""
    text = xml.replace("\x00", "").replace("\x01", "") if "\x01" in xml or "\x00" in xml else xml
    if "</f>" in text:  # self-closing <f .../> (shared formulas) hold no text to drop
        text = _FORMULA.sub("", text)  # a formula's text is not the cell's value (its <v> is)
    if "t='s'" in text:  # the single-quoted spelling, as the fast reading (sheets.py) takes it too
        text = text.replace(" t='s'", ' t="s"')
    text = text.replace(' t="s"><v>', 't="s"><v>\x01')
    if ' t="s"' in text:  # t="s" before other attributes, or <v> padded: the general pattern
        text = _SHARED_VALUE.sub(_MARKED_VALUE, text)
    text = text.replace("</v></c>", "\t</v><c>").replace("</row>", "<row>\n")
    if "</c>" in text:  # inline strings (<is><t>...</t></is></c>), cells with no value
        text = text.replace("</c>", "<c>\t")
    text = _EMPTY_ROW.sub("<row>\n", text) if "<row " in text else text
    start, end = text.find("<sheetData>"), text.rfind("</sheetData>")
    if 0 <= start < end:  # in the sheet's cells, the one self-closing tag with attributes is an empty cell
        text = text[:start] + text[start:end].replace('"/>', '">\t') + text[end:]
    else:
        text = _EMPTY_CELL.sub("<c>\t", text)
    first = text.find("<")
    angles = text.translate(_ANGLES_ONLY)
    if first < 0 or "<<" in angles or angles.endswith("<"):
        flat = _TAG.sub("", text)  # a "<" that opens no tag: tags deleted instead, stray text kept
    else:
        nodes = _TEXT_NODE.findall(text, first)
        table.used.update(nodes)
        flat = "".join(map(table.cells.get, nodes, nodes))  # all C-level: no Python work per cell
    if "\x01" in flat:  # marked values the dict did not know: "007", past the table, or tags deleted
        flat = _LEFTOVER_VALUE.sub(table.spell_out, flat).replace("\x01", "")
    flat = flat.replace("\t\n", "\n")
    if "\t\n" in flat:  # rows ending in several empty cells
        flat = _TRAILING_TABS.sub("\n", flat)
    flat = flat.rstrip("\t\n")
    return html.unescape(flat) if "&" in flat else flat


# ------------------------------------------------------------------------------------- other formats


def extract_document(kind: FileType, data: bytes, where: Where, budget: Budget) -> None:
    if kind is FileType.PDF:
        extract_pdf(data, where, budget)
    elif kind is FileType.RTF:
        add_text(rtf_text(data), where, budget, "text/rtf")
    elif kind is FileType.CFB:
        extract_cfb(data, where, budget)


_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")


def extract_cfb(data: bytes, where: Where, budget: Budget) -> None:
    """An OLE compound file: a password-protected Office file (encrypted OOXML package, Word fEncrypted,
    Excel FILEPASS, encrypted PowerPoint) is encrypted_content; legacy .doc / .xls / .msg get their
    printable strings (UTF-16 and ASCII). A directory that does not parse falls back to a byte search."""
    try:
        why = office_encryption(CompoundFile(data))
    except (DecodeError, struct.error, ValueError, IndexError):
        why = "password-protected Office document" if _ENCRYPTED_PACKAGE in data else None
    if why:
        budget.skip(where.location, Reason.ENCRYPTED_CONTENT, why)
        return
    add_text(printable_strings(data), where, budget, "application/x-ole-strings")


def extract_pdf(data: bytes, where: Where, budget: Budget) -> None:
    """Each page's text (pdfium, ~3x pypdf's speed), image-only pages reported, embedded files extracted.
    A PDF that needs a user password is encrypted_content; an owner password alone restricts nothing."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    _check_pdf_streams(data, where, budget)
    with _PDFIUM:  # pdfium is not thread-safe; inline inspection runs messages on threads
        try:
            document = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            if exc.err_code == pdfium_c.FPDF_ERR_PASSWORD:
                budget.skip(where.location, Reason.ENCRYPTED_CONTENT, "password-protected PDF")
                return
            raise DecodeError("corrupt PDF") from exc
        try:
            _pdf_pages(document, where, budget)
            attachments = _pdf_attachments(document)
        finally:
            document.close()
    for name, content in attachments:
        extract_bytes(content, where.child(f"{where.location}/{name}", archive=1), budget, name=name)


def _check_pdf_streams(data: bytes, where: Where, budget: Budget) -> None:
    """pdfium inflates a content stream whole, however big (a 1 MB PDF took 2 GB of memory), so every
    Flate stream (bare or under ASCII85 / hex) is inflated here first, bounded, output discarded: its
    size is charged to the message's budget and held to the compression-ratio cap."""
    cap = budget.limits.compression_ratio * max(len(data), 64 * 1024)
    total = 0
    found = data.find(b"stream")
    while found >= 0:
        start = found + 6
        found = data.find(b"stream", start)
        if data[start - 9 : start - 6] == b"end" or data[start : start + 1] not in (b"\r", b"\n"):
            continue
        start += 2 if data[start : start + 2] == b"\r\n" else 1
        head = data[max(0, start - 520) : start]
        head = head[head.rfind(b"<<") :]
        if b"/Fl" not in head:
            continue
        end = data.find(b"endstream", start)
        body = data[start : end if end >= 0 else len(data)]
        if b"/A85" in head or b"/ASCII85" in head or b"/AHx" in head or b"/ASCIIHex" in head:
            body = _ascii_decoded(body, hex_digits=b"/AHx" in head or b"/ASCIIHex" in head)
        produced = _inflated_size(body, cap - total + 1)
        total += produced
        budget.charge(produced)
        if total > cap:
            raise LimitHit(Reason.ARCHIVE_LIMITS_EXCEEDED, "PDF streams inflate past the compression-ratio limit")
        if budget.expired():
            budget.check_time()


def _ascii_decoded(body: bytes, hex_digits: bool) -> bytes:
    try:
        if hex_digits:
            digits = bytes(b for b in body.split(b">", 1)[0] if b not in b" \t\r\n\f\x00")
            return binascii.unhexlify(digits + b"0" * (len(digits) % 2))
        return base64.a85decode(body.split(b"~>", 1)[0].strip().removeprefix(b"<~"), adobe=False)
    except ValueError:
        return b""


def _inflated_size(body: bytes, limit: int) -> int:
    inflater = zlib.decompressobj()
    produced = 0
    pending = body
    try:
        while pending and produced < limit and not inflater.eof:
            produced += len(inflater.decompress(pending, 1 << 20))
            pending = inflater.unconsumed_tail
    except zlib.error:
        pass  # pdfium keeps what inflated before the damage; so is that counted
    return produced


def _pdf_pages(document: Any, where: Where, budget: Budget) -> None:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    pages = len(document)
    if pages > budget.limits.pdf_pages:
        cap = budget.limits.pdf_pages
        budget.skip(where.location, Reason.TRUNCATED, f"PDF has {pages} pages; the first {cap} read")
    for index in range(min(pages, budget.limits.pdf_pages)):
        budget.check_time()
        location = f"{where.location}/page[{index + 1}]"
        try:
            page = document[index]
        except pdfium.PdfiumError:
            budget.skip(location, Reason.EXTRACTION_FAILED, "page could not be read")
            continue
        try:
            textpage = page.get_textpage()
            text = textpage.get_text_range()
            textpage.close()
            if text.strip():
                add_text(text.replace("\r\n", "\n"), where.child(location), budget, "application/pdf")
            elif any(True for _ in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=4)):
                budget.skip(location, Reason.NOT_INSPECTED_IMAGE, "page is an image (no OCR)")
        finally:
            page.close()


def _pdf_attachments(document: Any) -> list[tuple[str, bytes]]:
    out = []
    for index in range(document.count_attachments()):
        try:
            attachment = document.get_attachment(index)
            out.append((attachment.get_name() or f"attachment[{index}]", bytes(attachment.get_data())))
        except Exception:  # one unreadable embedded file does not stop the others
            continue
    return out
