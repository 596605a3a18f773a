"""Archives and compressed streams: zip (with our own overlap and header-consistency checks), tar,
gzip / bzip2 / xz / lzma / zstd. Members are read in bounded chunks and fed back to the file pipeline
one level deeper."""

from __future__ import annotations

import io
import itertools
import struct
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from dlp.extract import decompress
from dlp.extract.budget import Budget, DecodeError, LimitHit
from dlp.extract.files import Where, extract_bytes, inner_name
from dlp.extract.names import label, scan_name
from dlp.extract.sniff import FileType
from dlp.model import Reason

try:  # ISA-L's inflate is ~3x zlib's; the two are interchangeable here
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover - a platform without the isal wheel
    import zlib as _zlib  # type: ignore[no-redef]

_STREAM_METHODS = {
    FileType.GZIP: ("gzip", (".gz", ".gzip", ".tgz", ".z")),
    FileType.BZIP2: ("bzip2", (".bz2", ".tbz2", ".tbz")),
    FileType.XZ: ("xz", (".xz", ".txz")),
    FileType.LZMA: ("lzma", (".lzma",)),
    FileType.ZSTD: ("zstd", (".zst", ".zstd")),
}
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_LOCAL_SIGNATURE = b"PK\x03\x04"
_AES_METHOD = 99


def extract_archive(kind: FileType, data: bytes, where: Where, budget: Budget, name: str) -> None:
    if where.archive_depth >= budget.limits.archive_depth:
        budget.skip(where.location, Reason.ARCHIVE_DEPTH_EXCEEDED, "archive nested deeper than the limit")
        return
    if kind is FileType.ZIP:
        extract_zip(data, where, budget)
    elif kind is FileType.TAR:
        extract_tar(data, where, budget)
    else:
        method, suffixes = _STREAM_METHODS[kind]
        inner = _gzip_name(data) if kind is FileType.GZIP else ""
        outer = name or where.location.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        if not inner and outer.lower().endswith((".tgz", ".tbz2", ".tbz", ".txz")):
            inner = outer[: outer.rfind(".")] + ".tar"
        inner = inner or inner_name(outer, suffixes)
        content = decompress.decompress(method, data, budget)
        extract_bytes(content, where.child(f"{where.location}/{inner}", archive=1), budget, name=inner)


def _gzip_name(data: bytes) -> str:
    """The original file name a gzip header may carry (FNAME)."""
    if len(data) < 10 or not data[3] & 0x08:
        return ""
    pos = 10
    if data[3] & 0x04:  # FEXTRA
        pos += 2 + int.from_bytes(data[10:12], "little")
    end = data.find(b"\x00", pos, pos + 256)
    return data[pos:end].decode("latin-1").replace("/", "_") if end > pos else ""


# ---------------------------------------------------------------------------------------------- zip


@dataclass(frozen=True, slots=True)
class ZipMember:
    name: str
    data: bytes


def extract_zip(data: bytes, where: Where, budget: Budget) -> None:
    from dlp.extract import documents

    archive = open_zip(data)
    names = set(archive.namelist())
    if documents.is_office_package(names):
        documents.extract_office_package(data, names, where, budget, archive)
        return
    for member in iter_zip(data, where, budget, archive=archive):  # iter_zip has scanned the member's name
        location = f"{where.location}/{label(member.name)}"
        extract_bytes(member.data, where.child(location, archive=1), budget, name=member.name)


def open_zip(data: bytes) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, struct.error) as exc:
        raise DecodeError("not a readable zip archive") from exc


def iter_zip(data: bytes, where: Where, budget: Budget, *, wanted: frozenset[str] | None = None,
             archive: zipfile.ZipFile | None = None) -> Iterator[ZipMember]:
    """Every readable member, in order, within the caps. Unreadable members are recorded at their own
    location; structural problems (overlaps, header disagreements) at the archive's."""
    archive = archive or open_zip(data)
    infos = archive.infolist()
    problem = check_zip_structure(data, infos)
    if problem is not None:
        reason, detail = problem
        budget.skip(where.location, reason, detail)
        if reason is Reason.UNDECODABLE_ARCHIVE:
            return
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        budget.skip(where.location, Reason.AMBIGUOUS_ARCHIVE, "duplicate member names; every entry inspected")
    limits = budget.limits
    for index, info in enumerate(infos):
        if info.is_dir() or (wanted is not None and info.filename not in wanted):
            continue
        location = f"{where.location}/{label(info.filename)}"
        if index >= limits.archive_members or budget.members >= limits.archive_members:
            budget.skip(where.location, Reason.ARCHIVE_LIMITS_EXCEEDED, "more members than the limit")
            return
        budget.members += 1
        scan_name(info.filename, location, budget)
        if info.flag_bits & 0x1 or info.compress_type == _AES_METHOD:
            budget.skip(location, Reason.ENCRYPTED_ARCHIVE, "encrypted zip member")
            continue
        if info.file_size > limits.member_bytes:
            budget.skip(location, Reason.ARCHIVE_LIMITS_EXCEEDED, "member larger than the limit")
            continue
        try:
            content = _read_member(archive, info, budget, data)
        except LimitHit as exc:
            budget.hit(location, exc)
            if exc.reason in (Reason.TIMEOUT,) or budget.remaining_bytes() == 0:
                return
            continue
        except NotImplementedError:
            budget.skip(location, Reason.UNSUPPORTED_ARCHIVE, "compression method not supported")
            continue
        except RuntimeError:  # zipfile: "File is encrypted"
            budget.skip(location, Reason.ENCRYPTED_ARCHIVE, "encrypted zip member")
            continue
        except zipfile.BadZipFile as exc:
            reason = Reason.AMBIGUOUS_ARCHIVE if "differ" in str(exc) else Reason.UNDECODABLE_ARCHIVE
            budget.skip(location, reason, "member could not be read")
            continue
        except Exception:
            budget.skip(location, Reason.UNDECODABLE_ARCHIVE, "member could not be read")
            continue
        yield ZipMember(info.filename, content)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: Budget, data: bytes) -> bytes:
    if info.compress_type in (zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED):
        return _inflate_member(data, info, budget)
    with archive.open(info) as f:

        def chunks() -> decompress.Stream:
            while True:
                chunk = f.read(decompress.CHUNK)
                if not chunk:
                    return
                left = getattr(f, "_compress_left", 0)  # how much compressed input is still unread
                yield chunk, max(1, info.compress_size - left)

        return decompress.drain(chunks(), budget)


# Output per step; the caps (ratio, sizes, time) are checked between steps. Large enough that a typical
# member comes out in one piece (no joining, no re-copied input tail), small enough to bound what a
# bomb produces before the ratio check stops it.
_INFLATE_STEP = 4 * 1024 * 1024


def _inflate_member(data: bytes, info: zipfile.ZipInfo, budget: Budget) -> bytes:
    """A stored or deflated member straight from the archive's bytes, inflated by ISA-L (zlib when it is
    not installed) in bounded steps through decompress.drain (ratio, size and time caps), with
    zipfile's own checks: local header magic and name, unsupported flags, truncation, CRC-32."""
    start = info.header_offset
    header = data[start : start + _LOCAL_HEADER.size]
    if len(header) < _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
        raise zipfile.BadZipFile("Bad magic number for file header")
    fields = _LOCAL_HEADER.unpack(header)
    name_start = start + _LOCAL_HEADER.size
    if data[name_start : name_start + fields[9]] != info.orig_filename.encode(
            "utf-8" if info.flag_bits & 0x800 else "cp437", "replace"):
        raise zipfile.BadZipFile("File name in directory and header differ")
    if info.flag_bits & 0x60:  # patched data, strong encryption
        raise NotImplementedError("zip feature not supported")
    body = name_start + fields[9] + fields[10]
    packed = memoryview(data)[body : body + info.compress_size]
    if len(packed) < info.compress_size:
        raise zipfile.BadZipFile("member data truncated")
    check = {"crc": 0}

    def steps() -> decompress.Stream:
        # Like zipfile, output stops at the declared size: a size that lies low then fails the CRC.
        left = info.file_size
        if info.compress_type == zipfile.ZIP_STORED:
            for offset in range(0, min(len(packed), left), _INFLATE_STEP):
                chunk = bytes(packed[offset : min(offset + _INFLATE_STEP, left)])
                check["crc"] = _zlib.crc32(chunk, check["crc"])
                yield chunk, offset + len(chunk)
            return
        inflater = _zlib.decompressobj(-15)
        pending: bytes | memoryview = packed
        try:
            while left > 0 and not inflater.eof:
                chunk = inflater.decompress(pending, min(_INFLATE_STEP, left))
                pending = inflater.unconsumed_tail
                if not chunk:
                    break  # out of input (truncated) or at the stream's end
                left -= len(chunk)
                check["crc"] = _zlib.crc32(chunk, check["crc"])
                yield chunk, len(packed) - len(pending)
        except _zlib.error as exc:
            raise zipfile.BadZipFile("corrupt deflate data") from exc
        if left > 0 and not inflater.eof:
            raise zipfile.BadZipFile("member data truncated")

    content = decompress.drain(steps(), budget)
    if check["crc"] != info.CRC:
        raise zipfile.BadZipFile("Bad CRC-32")
    return content


def check_zip_structure(data: bytes, infos: list[zipfile.ZipInfo]) -> tuple[Reason, str] | None:
    """Our own bomb and consistency checks on the central directory:
    - entries whose byte ranges overlap (Fifield's non-recursive zip bomb) -> undecodable_archive;
    - a local header that names a different file than the central directory -> ambiguous_archive;
    - local headers that no central entry points at (hidden entries) -> ambiguous_archive."""
    spans: list[tuple[int, int]] = []
    ambiguous = None
    for info in infos:
        start = info.header_offset
        header = data[start : start + _LOCAL_HEADER.size]
        if len(header) < _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
            return Reason.UNDECODABLE_ARCHIVE, "central directory points at no local header"
        fields = _LOCAL_HEADER.unpack(header)
        name_len, extra_len = fields[9], fields[10]
        local_name = data[start + _LOCAL_HEADER.size : start + _LOCAL_HEADER.size + name_len]
        central_name = info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437", "replace")
        if local_name != central_name:
            ambiguous = (Reason.AMBIGUOUS_ARCHIVE, "local and central headers disagree")
        end = start + _LOCAL_HEADER.size + name_len + extra_len + info.compress_size
        spans.append((start, end))
    spans.sort()
    for (_, end), (next_start, _) in itertools.pairwise(spans):
        if next_start < end:
            return Reason.UNDECODABLE_ARCHIVE, "overlapping entries (possible zip bomb)"
    covered = iter(spans)
    current = next(covered, None)
    pos = data.find(_LOCAL_SIGNATURE)
    while pos != -1 and ambiguous is None:
        while current is not None and current[1] <= pos:
            current = next(covered, None)
        if current is None or pos < current[0]:
            ambiguous = (Reason.AMBIGUOUS_ARCHIVE, "local entries not listed in the central directory")
        pos = data.find(_LOCAL_SIGNATURE, pos + 4)
    return ambiguous


# ---------------------------------------------------------------------------------------------- tar


def extract_tar(data: bytes, where: Where, budget: Budget) -> None:
    limits = budget.limits
    try:
        archive = tarfile.open(fileobj=io.BytesIO(data), mode="r:")  # noqa: SIM115 - closed with its buffer
    except (tarfile.TarError, OSError, ValueError, EOFError) as exc:
        raise DecodeError("not a readable tar archive") from exc
    count = 0
    try:
        for member in archive:
            budget.check_time()
            if not member.isfile():
                continue
            location = f"{where.location}/{label(member.name)}"
            count += 1
            if count > limits.archive_members or budget.members >= limits.archive_members:
                budget.skip(where.location, Reason.ARCHIVE_LIMITS_EXCEEDED, "more members than the limit")
                return
            budget.members += 1
            scan_name(member.name, location, budget)
            if member.size > limits.member_bytes:
                budget.skip(location, Reason.ARCHIVE_LIMITS_EXCEEDED, "member larger than the limit")
                continue
            f = archive.extractfile(member)
            content = f.read() if f is not None else b""
            budget.charge(len(content))
            extract_bytes(content, where.child(location, archive=1), budget, name=member.name)
    except (tarfile.TarError, OSError, ValueError, EOFError) as exc:
        budget.skip(where.location, Reason.UNDECODABLE_ARCHIVE, "tar archive is corrupt or truncated")
        del exc
