"""The file pipeline: bytes of any kind -> Parts, dispatched on the sniffed type (archives, documents,
mail, markup, text), with the caps and failure reasons in one place."""

from __future__ import annotations

import csv
import io
import posixpath
import re
from dataclasses import dataclass, replace

from dlp.extract.blobs import decode_blobs
from dlp.extract.budget import Budget, DecodeError, LimitHit
from dlp.extract.charset import decode_text
from dlp.extract.html import html_to_text
from dlp.extract.sealed import armored, sealed_format
from dlp.extract.sniff import FileType, sniff
from dlp.model import Reason


@dataclass(frozen=True, slots=True)
class Where:
    """Where a piece of content sits: its readable location and how deep in containers it is."""

    location: str
    archive_depth: int = 0  # enclosing archives and compressed streams
    mime_depth: int = 0  # enclosing multiparts and attached messages
    blob_nesting: int = 0  # enclosing opportunistic decodings

    def child(self, location: str, *, archive: int = 0, mime: int = 0, blob: int = 0) -> Where:
        return replace(
            self,
            location=location,
            archive_depth=self.archive_depth + archive,
            mime_depth=self.mime_depth + mime,
            blob_nesting=self.blob_nesting + blob,
        )


def extract_bytes(
    data: bytes,
    where: Where,
    budget: Budget,
    *,
    name: str = "",
    content_type: str = "",
    charset: str | None = None,
) -> None:
    """Extract whatever `data` is. Never raises for bad input: problems are recorded in the budget."""
    location = where.location
    kind = FileType.TEXT
    try:
        budget.check_time()
        kind = sniff(data)
        if kind is not FileType.PKCS7 and _declared_pkcs7(name, content_type):
            kind = FileType.PKCS7  # promised a PKCS#7 body: it is read as one, or fails (never "binary")
        _HANDLERS.get(kind, _text)(data, where, budget, name, content_type, charset)
    except LimitHit as exc:
        budget.hit(location, exc)
    except DecodeError as exc:
        reason = _DECODE_REASONS.get(kind, Reason.EXTRACTION_FAILED)
        if name.lower().endswith(_OFFICE_SUFFIXES):  # a broken document, rather than a broken archive
            reason = Reason.EXTRACTION_FAILED
        budget.skip(location, reason, str(exc)[:80])
    except RecursionError:
        budget.skip(location, Reason.EXTRACTION_FAILED, "structure nested too deeply")
    except MemoryError:
        budget.skip(location, Reason.EXTRACTION_FAILED, "out of memory")
    except Exception:
        budget.skip(location, Reason.EXTRACTION_FAILED, f"{kind} could not be read")


def add_text(text: str, where: Where, budget: Budget, content_type: str = "text/plain") -> None:
    """A piece of text, plus whatever encoded blobs it carries. An armoured encrypted block in it is
    content nobody here can read: reported, while the text around it is still scanned."""
    sealed = armored(text)
    if sealed:
        budget.skip(where.location, Reason.ENCRYPTED_CONTENT, f"encrypted block ({sealed})")
    budget.add(where.location, text, content_type)
    decode_blobs(
        text,
        where.location,
        budget,
        lambda data, loc: extract_bytes(data, where.child(loc, blob=1), budget),
        where.blob_nesting,
    )


def _text(data: bytes, where: Where, budget: Budget, name: str, content_type: str, charset: str | None) -> None:
    text = decode_text(data, charset)
    lower = name.lower()
    delimiter = None
    if lower.endswith(".csv") or content_type in ("text/csv", "application/csv"):
        delimiter = ","
    elif lower.endswith((".tsv", ".tab")) or content_type == "text/tab-separated-values":
        delimiter = "\t"
    elif lower.endswith((".htm", ".html", ".xhtml")) or content_type in ("text/html", "application/xhtml+xml"):
        add_text(html_to_text(text), where, budget, "text/html")
        return
    elif lower.endswith((".xml", ".xsd", ".svg")) or content_type.endswith("xml"):
        from dlp.extract.xmltext import attribute_values, markup_text

        add_text(markup_text(text), where, budget, content_type or "application/xml")
        attributes = attribute_values(text)
        if attributes:
            add_text(attributes, where.child(f"{where.location}/attributes"), budget, "text/plain")
        return
    if delimiter:
        add_text(csv_text(text, delimiter), where, budget, "text/csv")
        return
    add_text(text, where, budget, content_type if content_type.startswith("text/") else "text/plain")


def csv_text(text: str, delimiter: str) -> str:
    """One row per line, cells separated by a tab (quoted newlines inside a cell become spaces)."""
    if '"' not in text:  # no quoting: a plain substitution does the same, at C speed
        return text.replace("\r\n", "\n").replace(delimiter, "\t").rstrip("\n")
    unix = text.replace("\r\n", "\n") if "\r" in text else text
    lines = unix.split("\n")
    quoted = [i for i, line in enumerate(lines) if '"' in line]
    if len(quoted) * 4 < len(lines) and "\r" not in unix:
        # Few quoted lines: only those go through the csv parser, the rest by substitution. A line that
        # leaves a quoted cell open would run on into the next quoted line and give one row fewer than
        # the lines read (zip's strict check): then the whole file is parsed as one, below.
        tabbed = unix.replace(delimiter, "\t").split("\n")
        try:
            for i, row in zip(quoted, csv.reader([lines[i] for i in quoted], delimiter=delimiter), strict=True):
                tabbed[i] = "\t".join(row)
        except (csv.Error, ValueError):
            tabbed = []
        if tabbed:
            if not tabbed[-1]:
                tabbed.pop()  # the final line break ends the last row; it starts no empty one
            return "\n".join(tabbed)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error:
        return text
    joined = "\n".join(map("\t".join, rows))  # C-level joins; per-cell Python work was most of the cost
    if joined.count("\n") == max(len(rows) - 1, 0) and "\r" not in joined:
        return joined
    return "\n".join("\t".join(cell.replace("\r", " ").replace("\n", " ") for cell in row) for row in rows)


def _html(data: bytes, where: Where, budget: Budget, name: str, content_type: str, charset: str | None) -> None:
    add_text(html_to_text(decode_text(data, charset)), where, budget, "text/html")


def _email(data: bytes, where: Where, budget: Budget, name: str, content_type: str, charset: str | None) -> None:
    from dlp.extract.mime import extract_message_into

    extract_message_into(data, where.child(where.location, mime=1), budget)


def _image(data: bytes, where: Where, budget: Budget, name: str, content_type: str, charset: str | None) -> None:
    budget.skip(where.location, Reason.NOT_INSPECTED_IMAGE, "image content is not inspected (no OCR)")


def _binary(data: bytes, where: Where, budget: Budget, name: str, content_type: str, charset: str | None) -> None:
    """Of no known type (executables, media, proprietary formats). Its printable strings are scanned all
    the same: a CSV behind a few KB of binary padding must not pass as "binary"."""
    budget.skip(where.location, Reason.BINARY_CONTENT, "binary content of no known type; printable strings scanned")
    budget.add(where.location, printable_strings(data), "application/x-binary-strings")


def _sealed(data: bytes, where: Where, budget: Budget, name: str, content_type: str, charset: str | None) -> None:
    found = sealed_format(data)
    reason, detail = found if found else (Reason.EXTRACTION_FAILED, "encrypted container")
    budget.skip(where.location, reason, detail)


_PRINTABLE_RUN = re.compile(rb"[\x20-\x7e\t\r\n]{6,}")
_UTF16_RUN = re.compile(rb"(?:[\x20-\x7e\t\r\n]\x00){6,}")


def printable_strings(data: bytes) -> str:
    """Runs of 6+ printable characters, UTF-16LE (how Windows formats store text) then ASCII."""
    wide = [m.group().decode("utf-16-le") for m in _UTF16_RUN.finditer(data)] if b"\x00" in data else []
    return "\n".join([*wide, *(m.group().decode("ascii") for m in _PRINTABLE_RUN.finditer(data))])


def _unsupported(data: bytes, where: Where, budget: Budget, name: str, content_type: str, charset: str | None) -> None:
    budget.skip(where.location, Reason.UNSUPPORTED_ARCHIVE, "archive format not supported (7z / rar)")


def _declared_pkcs7(name: str, content_type: str) -> bool:
    from dlp.extract.pkcs7 import PKCS7_CONTENT_TYPES, PKCS7_SUFFIXES

    return content_type in PKCS7_CONTENT_TYPES or name.lower().endswith(PKCS7_SUFFIXES)


_MIME_ENTITY = re.compile(rb"(?i)\s*content-[a-z-]+[ \t]*:")


def _pkcs7(data: bytes, where: Where, budget: Budget, name: str, content_type: str, charset: str | None) -> None:
    """S/MIME opaque-signed (or compressed) content is readable by anyone: unwrap it and extract the
    inner MIME entity or file one MIME level deeper. Encrypted layers are reported as such."""
    from dlp.extract.pkcs7 import PKCS7_SUFFIXES, unwrap

    if where.mime_depth >= budget.limits.mime_depth:
        budget.skip(where.location, Reason.MIME_DEPTH_EXCEEDED, "S/MIME layers nested deeper than the limit")
        return
    unwrapped = unwrap(data, budget)
    if unwrapped.reason is not None:
        budget.skip(where.location, unwrapped.reason, unwrapped.detail)
        return
    content = unwrapped.content
    if not content:
        return  # a detached signature: certificates and signatures only, nothing written by the sender
    inner = where.child(f"{where.location}/signed-content", mime=1)
    if _MIME_ENTITY.match(content[:256]) or sniff(content) is FileType.EMAIL:
        from dlp.extract.mime import extract_message_into

        extract_message_into(content, inner, budget)
    else:
        extract_bytes(content, inner, budget, name=inner_name(name, PKCS7_SUFFIXES) if name else "")


def _archive(data: bytes, where: Where, budget: Budget, name: str, content_type: str, charset: str | None) -> None:
    from dlp.extract import archives

    archives.extract_archive(sniff(data), data, where, budget, name)


def _document(data: bytes, where: Where, budget: Budget, name: str, content_type: str, charset: str | None) -> None:
    from dlp.extract import documents

    documents.extract_document(sniff(data), data, where, budget)


def _tnef(data: bytes, where: Where, budget: Budget, name: str, content_type: str, charset: str | None) -> None:
    from dlp.extract.tnef import extract_tnef

    extract_tnef(data, where, budget)


def inner_name(name: str, suffixes: tuple[str, ...]) -> str:
    """`report.csv.gz` -> `report.csv`; a name without a known suffix keeps its base name."""
    base = posixpath.basename(name.replace("\\", "/"))
    for suffix in suffixes:
        if base.lower().endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)]
    return base or "data"


_HANDLERS = {
    FileType.TEXT: _text,
    FileType.HTML: _html,
    FileType.EMAIL: _email,
    FileType.IMAGE: _image,
    FileType.BINARY: _binary,
    FileType.SEVEN_ZIP: _unsupported,
    FileType.RAR: _unsupported,
    FileType.ZIP: _archive,
    FileType.GZIP: _archive,
    FileType.BZIP2: _archive,
    FileType.XZ: _archive,
    FileType.LZMA: _archive,
    FileType.ZSTD: _archive,
    FileType.TAR: _archive,
    FileType.PDF: _document,
    FileType.CFB: _document,
    FileType.RTF: _document,
    FileType.PKCS7: _pkcs7,
    FileType.SEALED: _sealed,
    FileType.TNEF: _tnef,
}

_OFFICE_SUFFIXES = (".docx", ".docm", ".xlsx", ".xlsm", ".pptx", ".pptm", ".odt", ".ods", ".odp")
_DECODE_REASONS = {
    FileType.ZIP: Reason.UNDECODABLE_ARCHIVE,
    FileType.GZIP: Reason.UNDECODABLE_ARCHIVE,
    FileType.BZIP2: Reason.UNDECODABLE_ARCHIVE,
    FileType.XZ: Reason.UNDECODABLE_ARCHIVE,
    FileType.LZMA: Reason.UNDECODABLE_ARCHIVE,
    FileType.ZSTD: Reason.UNDECODABLE_ARCHIVE,
    FileType.TAR: Reason.UNDECODABLE_ARCHIVE,
    FileType.TNEF: Reason.UNDECODABLE_TNEF,
}
