"""PDF extraction (pdfium): page cap, embedded files, and hostile page trees and content streams, each
ending in text or a named Uninspected reason, quickly."""

from __future__ import annotations

import base64
import io
import time
import zlib

from pypdf import PdfReader, PdfWriter

from dlp.bench.extract import assemble_pdf
from dlp.config import Limits
from dlp.extract import extract_file
from dlp.model import Reason

PAN = "4556737586899855"
FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def text_stream(text: str) -> bytes:
    return b"BT /F1 12 Tf 72 712 Td (" + text.encode() + b") Tj ET"


def stream(content: bytes) -> bytes:
    return b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream"


def page(contents: int, parent: int = 2, extra: bytes = b"") -> bytes:
    return (b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> %s >>"
            b" /Contents %d 0 R >>" % (parent, extra, contents))


def pdf(objects: list[bytes]) -> bytes:
    """Objects numbered from 1; object 1 is the catalog. The xref table is correct."""
    return assemble_pdf(objects)


def pages_pdf(texts: list[str]) -> bytes:
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", FONT]
    kids = []
    for text in texts:
        kids.append(b"%d 0 R" % (len(objects) + 1))
        objects += [page(len(objects) + 2), stream(text_stream(text))]
    objects[1] = b"<< /Type /Pages /Kids [" + b" ".join(kids) + b"] /Count %d >>" % len(kids)
    return pdf(objects)


def one_page(pages_node: bytes, *more: bytes, page_extra: bytes = b"", before: bytes = b"") -> bytes:
    return pdf([b"<< /Type /Catalog /Pages 2 0 R >>", pages_node, FONT, page(5, extra=page_extra),
                stream(before + text_stream(f"Card {PAN}")), *more])


def texts(name: str, data: bytes, limits: Limits | None = None) -> tuple[dict[str, str], set[tuple[str, Reason]]]:
    result = extract_file(data, name, limits)
    return {p.location: p.text for p in result.parts}, {(u.location, u.reason) for u in result.uninspected}


def test_pages_past_the_cap_are_reported_truncated() -> None:
    got, skipped = texts("long.pdf", pages_pdf([f"page {i}" for i in range(1, 6)]), Limits(pdf_pages=3))
    assert got == {f"long.pdf/page[{i}]": f"page {i}" for i in range(1, 4)}
    assert skipped == {("long.pdf", Reason.TRUNCATED)}


def test_embedded_file_is_extracted() -> None:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pages_pdf(["cover letter"]))))
    writer.add_attachment("customers.csv", f"name,card\nBob,{PAN}\n".encode())
    buf = io.BytesIO()
    writer.write(buf)
    got, _ = texts("mail.pdf", buf.getvalue())
    assert got["mail.pdf/page[1]"] == "cover letter"
    assert PAN in got["mail.pdf/customers.csv"]


def test_hostile_page_trees_end_in_text_or_a_reason() -> None:
    started = time.process_time()
    # A page tree that claims a billion pages holds one.
    got, skipped = texts("count.pdf", one_page(b"<< /Type /Pages /Kids [4 0 R] /Count 1000000000 >>"))
    assert got == {"count.pdf/page[1]": f"Card {PAN}"} and not skipped
    # A Pages node that lists itself as a kid: the real page is still read.
    got, _ = texts("cycle.pdf", one_page(b"<< /Type /Pages /Kids [2 0 R 4 0 R 2 0 R] /Count 3 >>"))
    assert f"Card {PAN}" in got.values()
    # 3000 nested Pages nodes: pdfium gives up on the page; that is reported, not passed.
    depth = 3000
    objects = [b"<< /Type /Catalog /Pages 6 0 R >>", b"<< >>", FONT, page(5, parent=5 + depth),
               stream(text_stream(f"Card {PAN}"))]
    objects += [b"<< /Type /Pages /Kids [%d 0 R] /Count 1 >>" % (4 if i == depth - 1 else 7 + i) for i in range(depth)]
    got, skipped = texts("deep.pdf", pdf(objects))
    assert not got and skipped == {("deep.pdf/page[1]", Reason.EXTRACTION_FAILED)}
    # A form XObject that draws itself: drawn to a bounded depth, the page text still comes out.
    form = stream(b"/X Do").replace(b"<< ", b"<< /Type /XObject /Subtype /Form /BBox [0 0 10 10] "
                                    b"/Resources << /XObject << /X 6 0 R >> >> ", 1)
    data = one_page(b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>", form, page_extra=b"/XObject << /X 6 0 R >>",
                    before=b"/X Do ")
    got, skipped = texts("bomb.pdf", data)
    assert got == {"bomb.pdf/page[1]": f"Card {PAN}"} and not skipped
    assert time.process_time() - started < 5.0


def test_truncated_pdf_is_extraction_failed() -> None:
    data = pages_pdf([f"Card {PAN}"])
    for cut in (len(data) // 2, 200):
        got, skipped = texts("cut.pdf", data[:cut])
        assert not got and skipped == {("cut.pdf", Reason.EXTRACTION_FAILED)}


def test_concurrent_threads_share_pdfium_safely() -> None:
    # Inline inspection runs messages on threads; pdfium is not thread-safe, so extraction serializes it.
    from concurrent.futures import ThreadPoolExecutor

    data = pages_pdf([f"Card {PAN}", "second page"] * 5)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: texts("t.pdf", data)[0], range(24)))
    assert all(len(r) == 10 and r["t.pdf/page[1]"] == f"Card {PAN}" for r in results)


def _bomb_stream(megabytes: int, ascii85: bool = False) -> bytes:
    inflater = zlib.compressobj(9)
    body = b"".join(inflater.compress(b" " * (1 << 20)) for _ in range(megabytes)) + inflater.flush()
    filters = b"/FlateDecode"
    if ascii85:
        body, filters = base64.a85encode(body) + b"~>", b"[/ASCII85Decode /FlateDecode]"
    return b"<< /Length %d /Filter %s >>\nstream\n" % (len(body), filters) + body + b"\nendstream"


def test_content_stream_bomb_is_refused_before_pdfium_inflates_it() -> None:
    # pdfium would inflate a content stream whole: 1 GB of memory for a 1 MB file.
    for ascii85 in (False, True):
        started = time.process_time()
        data = pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>", FONT,
                    page(5), _bomb_stream(300, ascii85)])
        got, skipped = texts("bomb.pdf", data)
        assert not got and skipped == {("bomb.pdf", Reason.ARCHIVE_LIMITS_EXCEEDED)}
        assert time.process_time() - started < 3.0


def test_ordinary_compressed_pdf_passes_the_stream_check() -> None:
    content = zlib.compress(text_stream(f"Card {PAN}"))
    data = pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>", FONT, page(5),
                b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content) + content + b"\nendstream"])
    assert texts("ok.pdf", data) == ({"ok.pdf/page[1]": f"Card {PAN}"}, set())
