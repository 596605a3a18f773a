"""Archives and compression (adversarial cases D1-D11): nesting, bombs, encryption, corruption,
header tricks, member caps, type by magic bytes."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import struct
import tarfile
import zipfile
import zlib

import pytest

from dlp.config import Limits
from dlp.extract import extract, extract_file
from dlp.model import ContentKind, Reason
from tests.helpers.extraction import make_zip, parts, reasons
from tests.helpers.measure import peak_memory

PAN = "4111111111111111"
CSV = f"name,card\nBob,{PAN}\n".encode()
MiB = 1024 * 1024


def make_tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_d1_zip_with_customer_csv() -> None:
    rows = "name,card\n" + "".join(f"Customer {i},{PAN}\n" for i in range(1000))
    e = extract_file(make_zip({"export/clients.csv": rows.encode()}), "clients.zip")
    text = parts(e)["clients.zip/export/clients.csv"]
    assert text.count("\n") == 1000 and text.splitlines()[1] == f"Customer 0\t{PAN}"
    assert not e.uninspected


def test_d2_nested_depth_found_then_depth_exceeded() -> None:
    inner = make_zip({"clients.csv": CSV})
    data = gzip.compress(make_tar({"b.zip": make_zip({"a.zip": inner})}))
    e = extract_file(data, "bundle.tar.gz")
    assert parts(e)["bundle.tar.gz/bundle.tar/b.zip/a.zip/clients.csv"] == f"name\tcard\nBob\t{PAN}"
    deep = CSV
    for level in range(13):
        deep = make_zip({f"level{level}.zip" if level else "clients.csv": deep})
    e = extract_file(deep, "deep.zip")
    assert Reason.ARCHIVE_DEPTH_EXCEEDED in reasons(e)
    assert not any(PAN in p.text for p in e.parts)


def deflated_zeros(mib: int) -> tuple[bytes, int]:
    """Raw deflate of `mib` MiB of zeros, built from one fully flushed block repeated (a flush resets the
    compressor's history, so copies concatenate into a valid stream), and the data's CRC-32."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(b"\x00" * MiB) + compressor.flush(zlib.Z_FULL_FLUSH)
    final = zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    crc = 0
    if mib <= 64:  # the huge streams are never read to their end, so their checksum does not matter
        for _ in range(mib):
            crc = zlib.crc32(b"\x00" * MiB, crc)
    return block * mib + final, crc


def _recursive_bomb(levels: int, copies: int, leaf_bytes: int) -> bytes:
    raw, crc = deflated_zeros(leaf_bytes // MiB)
    level = _zip_raw_deflate("zeros.bin", raw, leaf_bytes, crc)
    for depth in range(levels):
        level = make_zip({f"{depth}-{i}.zip": level for i in range(copies)}, zipfile.ZIP_STORED)
    return level


def _zip_raw_deflate(name: str, raw: bytes, size: int, crc: int) -> bytes:
    """A zip with one deflated member whose compressed bytes are given (no need to hold the original)."""
    n = name.encode()
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(raw), size, len(n), 0) + n
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(raw), size,
                          len(n), 0, 0, 0, 0, 0, 0) + n
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local) + len(raw), 0)
    return local + raw + central + end




def test_d3_recursive_zip_bomb_stops_within_memory() -> None:
    bomb = _recursive_bomb(levels=3, copies=8, leaf_bytes=16 * MiB)  # 8^3 leaves x 16 MiB = 8 GiB
    e, peak, elapsed = peak_memory(lambda: extract_file(bomb, "42.zip"))
    assert reasons(e) & {Reason.ARCHIVE_LIMITS_EXCEEDED, Reason.DECOMPRESSION_RATIO_EXCEEDED}
    assert Reason.ARCHIVE_LIMITS_EXCEEDED in reasons(e) or Reason.DECOMPRESSION_RATIO_EXCEEDED in reasons(e)
    assert peak < 96 * MiB, peak
    assert elapsed < 20


def test_d3_total_extracted_budget_is_enforced() -> None:
    data = make_zip({f"f{i}.txt": b"x" * MiB for i in range(8)})
    e = extract_file(data, "many.zip", Limits(total_extracted_bytes=3 * MiB, compression_ratio=10_000))
    assert Reason.ARCHIVE_LIMITS_EXCEEDED in reasons(e)
    assert len(e.parts) <= 3


def _overlapping_zip() -> bytes:
    """Fifield-style: several central entries whose data ranges overlap one shared kernel."""
    kernel = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw = kernel.compress(b"A" * (8 * MiB)) + kernel.flush()
    crc = zlib.crc32(b"A" * (8 * MiB))
    headers = b""
    offsets = []
    names = [f"{i}".encode() for i in range(3)]
    for n in names:  # each local header is followed by the next; each entry's data runs to the kernel's end
        offsets.append(len(headers))
        headers += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(n), 0) + n
    central = b""
    for n, off in zip(names, offsets, strict=True):
        csize = len(headers) - off - 30 - len(n) + len(raw)
        central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, csize, 8 * MiB,
                               len(n), 0, 0, 0, 0, 0, off) + n
    body = headers + raw
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(names), len(names), len(central), len(body), 0)
    return body + central + end


def test_d4_overlapping_entries_zip_bomb() -> None:
    e = extract_file(_overlapping_zip(), "overlap.zip")
    assert reasons(e) == {Reason.UNDECODABLE_ARCHIVE}
    assert not e.parts


def test_d5_gigabyte_of_zeros_deflated() -> None:
    raw, _ = deflated_zeros(1024)
    gz = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + raw + struct.pack("<II", 0, 0)
    assert len(gz) < 2 * MiB
    e, peak, elapsed = peak_memory(lambda: extract_file(gz, "zeros.gz"))
    assert reasons(e) == {Reason.DECOMPRESSION_RATIO_EXCEEDED}
    assert peak < 32 * MiB and elapsed < 5
    e = extract_file(_zip_raw_deflate("zeros.bin", raw, 1024 * MiB, 0), "zeros.zip")
    assert Reason.ARCHIVE_LIMITS_EXCEEDED in reasons(e)  # declared size over member_bytes: never inflated
    # A declared size that lies low: zipfile stops at the declared size, then the checksum fails.
    liar = _zip_raw_deflate("zeros.bin", raw, 1000, 0)
    assert reasons(extract_file(liar, "liar.zip")) == {Reason.UNDECODABLE_ARCHIVE}


def _flag(data: bytes, *, flag_bits: int = 0, method: int | None = None) -> bytes:
    out = bytearray(data)
    for sig, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        pos = out.find(sig)
        while pos != -1:
            struct.pack_into("<H", out, pos + flag_at, struct.unpack_from("<H", out, pos + flag_at)[0] | flag_bits)
            if method is not None:
                struct.pack_into("<H", out, pos + method_at, method)
            pos = out.find(sig, pos + 4)
    return bytes(out)


def test_d6_encrypted_archives() -> None:
    zipcrypto = extract_file(_flag(make_zip({"a.csv": CSV}), flag_bits=1), "enc.zip")
    assert reasons(zipcrypto) == {Reason.ENCRYPTED_ARCHIVE}
    assert zipcrypto.uninspected[0].location == "enc.zip/a.csv"
    aes = extract_file(_flag(make_zip({"a.csv": CSV}), flag_bits=1, method=99), "aes.zip")
    assert reasons(aes) == {Reason.ENCRYPTED_ARCHIVE}
    seven = extract_file(b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\x00" * 64, "x.7z")
    assert reasons(seven) == {Reason.UNSUPPORTED_ARCHIVE}
    rar = extract_file(b"Rar!\x1a\x07\x01\x00" + b"\x00" * 64, "x.rar")
    assert reasons(rar) == {Reason.UNSUPPORTED_ARCHIVE}


def test_d7_multi_member_and_multi_stream() -> None:
    second = f"card {PAN}".encode()
    assert parts(extract_file(gzip.compress(b"first ") + gzip.compress(second), "a.txt.gz"))["a.txt.gz/a.txt"] == (
        f"first card {PAN}")
    assert PAN in parts(extract_file(bz2.compress(b"first ") + bz2.compress(second), "a.bz2"))["a.bz2/a"]
    assert PAN in parts(extract_file(lzma.compress(b"first ") + lzma.compress(second), "a.xz"))["a.xz/a"]


def test_d8_truncated_and_corrupted_zip() -> None:
    data = make_zip({"a.csv": CSV * 100})
    assert reasons(extract_file(data[: len(data) // 2], "t.zip")) == {Reason.UNDECODABLE_ARCHIVE}
    corrupt = bytearray(data)
    corrupt[60] ^= 0xFF
    e = extract_file(bytes(corrupt), "c.zip")
    assert reasons(e) == {Reason.UNDECODABLE_ARCHIVE}
    assert reasons(extract_file(gzip.compress(CSV)[:-12], "t.gz")) == {Reason.UNDECODABLE_ARCHIVE}
    assert reasons(extract_file(b"PK\x03\x04" + b"\xff" * 50, "junk.zip")) == {Reason.UNDECODABLE_ARCHIVE}


def test_d9_member_cap() -> None:
    data = make_zip({f"f{i}.txt": b"x" for i in range(1500)}, zipfile.ZIP_STORED)
    e = extract_file(data, "many.zip", Limits(archive_members=1000))
    assert Reason.ARCHIVE_LIMITS_EXCEEDED in reasons(e)
    assert len(e.parts) == 1000


@pytest.mark.slow
def test_d9_hundred_thousand_members_default_limit() -> None:
    data = make_zip({f"f{i}": b"" for i in range(100_000)}, zipfile.ZIP_STORED)
    assert Reason.ARCHIVE_LIMITS_EXCEEDED in reasons(extract_file(data, "huge.zip"))


def test_d10_zip_named_txt_is_a_zip() -> None:
    e = extract(make_zip({"clients.csv": CSV}), ContentKind.AUTO, name="notes.txt")
    assert parts(e) == {"notes.txt/clients.csv": f"name\tcard\nBob\t{PAN}"}


def test_d11_duplicate_names_and_disagreeing_headers() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z, pytest.warns(UserWarning):
        z.writestr("a.csv", b"harmless")
        z.writestr("a.csv", CSV)
    e = extract_file(buf.getvalue(), "dup.zip")
    assert Reason.AMBIGUOUS_ARCHIVE in reasons(e)
    assert [p.text for p in e.parts] == ["harmless", f"name\tcard\nBob\t{PAN}"]
    data = bytearray(make_zip({"good.txt": CSV}))
    data[30:38] = b"evil.txt"  # the local header names another file than the central directory
    assert Reason.AMBIGUOUS_ARCHIVE in reasons(extract_file(bytes(data), "mixed.zip"))


def test_hidden_local_entry_not_in_central_directory() -> None:
    hidden = make_zip({"hidden.csv": CSV})
    hidden_local = hidden[: hidden.find(b"PK\x01\x02")]
    visible = make_zip({"ok.txt": b"fine"})
    cd = visible.find(b"PK\x01\x02")
    # Prepend the hidden entry and shift the visible central directory's offsets.
    shifted = bytearray(visible[cd:])
    struct.pack_into("<I", shifted, 42, len(hidden_local))
    eocd = shifted.find(b"PK\x05\x06")
    struct.pack_into("<I", shifted, eocd + 16, len(hidden_local) + cd)
    data = hidden_local + visible[:cd] + bytes(shifted)
    assert Reason.AMBIGUOUS_ARCHIVE in reasons(extract_file(data, "hidden.zip"))


def test_tar_xz_zstd_and_gzip_name() -> None:
    import zstandard

    assert parts(extract_file(lzma.compress(make_tar({"c.csv": CSV})), "x.txz"))["x.txz/x.tar/c.csv"]
    assert parts(extract_file(zstandard.ZstdCompressor().compress(CSV), "c.csv.zst"))["c.csv.zst/c.csv"]
    buf = io.BytesIO()
    with gzip.GzipFile("clients.csv", "wb", fileobj=buf) as g:
        g.write(CSV)
    assert parts(extract_file(buf.getvalue(), "upload.bin")) == {"upload.bin/clients.csv": f"name\tcard\nBob\t{PAN}"}
