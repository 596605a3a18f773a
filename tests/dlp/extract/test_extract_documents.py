"""Documents (adversarial cases C14, C15 for files): docx / xlsx / pptx with hidden content, OpenDocument,
PDF, RTF, encrypted Office and PDF, images, corrupt files."""

from __future__ import annotations

import io

import docx
import openpyxl
from openpyxl.comments import Comment
from pypdf import PdfReader, PdfWriter

from dlp.bench.extract import assemble_pdf
from dlp.extract import extract_file
from dlp.model import Reason
from tests.helpers.extraction import make_zip, parts, reasons

PAN = "4111111111111111"


def make_pdf(*page_streams: bytes, image: bool = False) -> bytes:
    """A minimal PDF, one page per content stream, Helvetica text (and optionally an image XObject)."""
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids = []
    for stream in page_streams:
        page_no = len(objects) + 1
        kids.append(f"{page_no} 0 R".encode())
        res = b"/Font << /F1 " + str(page_no + 1).encode() + b" 0 R >>"
        if image:
            res += b" /XObject << /Im1 " + str(page_no + 3).encode() + b" 0 R >>"
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << " + res
                       + b" >> /Contents " + str(page_no + 2).encode() + b" 0 R >>")
        objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        if image:
            objects.append(b"<< /Type /XObject /Subtype /Image /Width 1 /Height 1 /ColorSpace /DeviceGray "
                           b"/BitsPerComponent 8 /Length 1 >>\nstream\n\x00\nendstream")
    objects[1] = b"<< /Type /Pages /Kids [" + b" ".join(kids) + b"] /Count %d >>" % len(kids)
    return assemble_pdf(objects)


def text_stream(text: str) -> bytes:
    return b"BT /F1 12 Tf 72 712 Td (" + text.encode() + b") Tj ET"


def test_docx_body_table_header_footer_comment() -> None:
    document = docx.Document()
    paragraph = document.add_paragraph("Customer card ")
    run = paragraph.add_run(PAN)
    table = document.add_table(rows=1, cols=2)
    table.cell(0, 0).text = "SSN"
    table.cell(0, 1).text = "123-45-6789"
    document.sections[0].header.paragraphs[0].text = "Header 5500000000000004"
    document.sections[0].footer.paragraphs[0].text = "Footer CONFIDENTIAL"
    document.add_comment(run, text="comment 378282246310005", author="QA")
    buf = io.BytesIO()
    document.save(buf)
    p = parts(extract_file(buf.getvalue(), "report.docx"))
    body = p["report.docx/word/document.xml"]
    assert f"Customer card {PAN}" in body
    assert "SSN\t123-45-6789" in body
    assert "5500000000000004" in "".join(v for k, v in p.items() if "header" in k)
    assert "CONFIDENTIAL" in "".join(v for k, v in p.items() if "footer" in k)
    assert "378282246310005" in p["report.docx/word/comments.xml"]


def test_xlsx_hidden_sheet_comment_and_rows() -> None:
    workbook = openpyxl.Workbook()
    visible = workbook.active
    visible.title = "Summary"
    visible.append(["total", 3])
    hidden = workbook.create_sheet("Secret")
    hidden.sheet_state = "hidden"
    hidden.append(["name", "card"])
    hidden.append(["Bob", PAN])
    hidden.append(["Ann", 5500000000000004])
    visible["C1"].comment = Comment("note 378282246310005", "QA")
    buf = io.BytesIO()
    workbook.save(buf)
    e = extract_file(buf.getvalue(), "book.xlsx")
    p = parts(e)
    assert p["book.xlsx/sheet:Summary"] == "total\t3"
    assert p["book.xlsx/sheet:Secret"] == f"name\tcard\nBob\t{PAN}\nAnn\t5500000000000004"
    assert any("378282246310005" in v for k, v in p.items() if "comments" in k)
    assert not e.uninspected


def test_pptx_slides_and_notes() -> None:
    ns = 'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"'
    slide = f'<p:sld {ns}><a:p><a:r><a:t>4111 1111 </a:t></a:r><a:r><a:t>1111 1111</a:t></a:r></a:p></p:sld>'
    notes = f"<p:notes {ns}><a:p><a:r><a:t>speaker note &amp; 123-45-6789</a:t></a:r></a:p></p:notes>"
    data = make_zip({"[Content_Types].xml": "<Types/>", "ppt/slides/slide1.xml": slide,
                     "ppt/notesSlides/notesSlide1.xml": notes, "ppt/theme/theme1.xml": "<a:theme>Office</a:theme>"})
    p = parts(extract_file(data, "deck.pptx"))
    assert p["deck.pptx/ppt/slides/slide1.xml"] == "4111 1111 1111 1111"
    assert p["deck.pptx/ppt/notesSlides/notesSlide1.xml"] == "speaker note & 123-45-6789"
    assert "deck.pptx/ppt/theme/theme1.xml" not in p


def test_opendocument_text_and_spreadsheet() -> None:
    content = ('<office:document-content><office:body><office:text><text:p>card <text:span>4111</text:span>'
               '<text:s/>1111 1111 1111</text:p></office:text></office:body></office:document-content>')
    styles = "<office:document-styles><text:p>Footer 123-45-6789</text:p></office:document-styles>"
    odt = make_zip({"mimetype": "application/vnd.oasis.opendocument.text", "content.xml": content,
                    "styles.xml": styles})
    p = parts(extract_file(odt, "letter.odt"))
    assert p["letter.odt/content.xml"] == "card 4111 1111 1111 1111"
    assert "123-45-6789" in p["letter.odt/styles.xml"]
    sheet = ("<office:document-content><table:table><table:table-row><table:table-cell><text:p>Bob</text:p>"
             "</table:table-cell><table:table-cell><text:p>" + PAN + "</text:p></table:table-cell></table:table-row>"
             "</table:table></office:document-content>")
    ods = make_zip({"mimetype": "application/vnd.oasis.opendocument.spreadsheet", "content.xml": sheet})
    assert parts(extract_file(ods, "s.ods"))["s.ods/content.xml"] == f"Bob\t{PAN}"


def test_pdf_text_encrypted_image_only_and_corrupt() -> None:
    pdf = make_pdf(text_stream("Intro"), text_stream(f"Card {PAN}"))
    p = parts(extract_file(pdf, "statement.pdf"))
    assert p["statement.pdf/page[2]"] == f"Card {PAN}"
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password="s3cret", owner_password="owner", algorithm="AES-256")
    buf = io.BytesIO()
    writer.write(buf)
    encrypted = extract_file(buf.getvalue(), "locked.pdf")
    assert reasons(encrypted) == {Reason.ENCRYPTED_CONTENT} and not encrypted.parts
    owner_only = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    owner_only.encrypt(user_password="", owner_password="owner", algorithm="AES-128")
    buf = io.BytesIO()
    owner_only.write(buf)
    assert PAN in parts(extract_file(buf.getvalue(), "restricted.pdf"))["restricted.pdf/page[2]"]
    scanned = extract_file(make_pdf(b"q 612 0 0 792 0 0 cm /Im1 Do Q", image=True), "scan.pdf")
    assert reasons(scanned) == {Reason.NOT_INSPECTED_IMAGE}
    corrupt = extract_file(b"%PDF-1.7\n" + b"\x00garbage" * 50, "broken.pdf")
    assert reasons(corrupt) == {Reason.EXTRACTION_FAILED}


def test_encrypted_office_document_in_cfb() -> None:
    cfb = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100 + "EncryptedPackage".encode("utf-16-le") + b"\x00" * 50
    e = extract_file(cfb, "salaries.xlsx")
    assert reasons(e) == {Reason.ENCRYPTED_CONTENT} and not e.parts


def test_legacy_ole_document_strings() -> None:
    cfb = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64 + "Customer card 4111111111111111".encode("utf-16-le")
           + b"\x00\x01\x02" + b"plain ascii 5500000000000004" + b"\x00")
    text = parts(extract_file(cfb, "old.doc"))["old.doc"]
    assert PAN in text and "5500000000000004" in text


def test_rtf_control_words_hex_and_unicode() -> None:
    rtf = (rb"{\rtf1\ansi\ansicpg1252{\fonttbl{\f0 Arial;}}{\*\generator Riched20;}\f0 Card 4111\'201111 "
           rb"\u49?\u49?11 1111\par Caf\'e9 \b bold\b0}")
    assert parts(extract_file(rtf, "memo.rtf"))["memo.rtf"] == "Card 4111 1111 1111 1111\nCafé bold"


def test_images_and_corrupt_docx() -> None:
    assert reasons(extract_file(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "scan.png")) == {Reason.NOT_INSPECTED_IMAGE}
    assert reasons(extract_file(b"\xff\xd8\xff\xe0" + b"\x00" * 64, "photo.jpg")) == {Reason.NOT_INSPECTED_IMAGE}
    assert reasons(extract_file(b"RIFF\x00\x00\x00\x00WEBPVP8 ", "x.webp")) == {Reason.NOT_INSPECTED_IMAGE}
    document = docx.Document()
    document.add_paragraph(PAN)
    buf = io.BytesIO()
    document.save(buf)
    assert reasons(extract_file(buf.getvalue()[:-200], "broken.docx")) == {Reason.EXTRACTION_FAILED}


def test_unknown_binary() -> None:
    e = extract_file(bytes(range(128, 256)) * 8, "blob.bin")
    assert reasons(e) == {Reason.BINARY_CONTENT} and not e.parts
    # Text behind binary padding is still binary_content (policy: pass), but its strings are scanned.
    padded = extract_file(bytes(range(256)) * 40 + f"name,card\nAlice,{PAN}\n".encode(), "blob.bin")
    assert reasons(padded) == {Reason.BINARY_CONTENT} and PAN in parts(padded)["blob.bin"]
