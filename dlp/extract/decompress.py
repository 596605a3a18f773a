"""Streaming, capped decompression: gzip (every member), zlib/deflate, bzip2 and xz (every stream), lzma,
brotli and zstd. Output is produced in bounded chunks and the caps (member size, total budget,
compression ratio) are checked while it grows, so a bomb never inflates in memory."""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable, Iterator

import brotli
import zstandard

from dlp.extract.budget import Budget, DecodeError, LimitHit
from dlp.model import Reason

CHUNK = 64 * 1024
RATIO_FLOOR = 1024 * 1024  # below this much output, any ratio is fine (small repetitive files)

# A generator of (output chunk, compressed bytes consumed so far).
Stream = Iterator[tuple[bytes, int]]


def _zlib_members(data: bytes, wbits: int, multi: bool) -> Stream:
    pos = 0
    while True:
        d = zlib.decompressobj(wbits)
        fed = 0
        while True:
            chunk = data[pos + fed : pos + fed + CHUNK]
            fed += len(chunk)
            try:
                out = d.decompress(chunk, CHUNK)
                yield out, pos + fed - len(d.unconsumed_tail)
                while d.unconsumed_tail and not d.eof:
                    out = d.decompress(d.unconsumed_tail, CHUNK)
                    yield out, pos + fed - len(d.unconsumed_tail)
            except zlib.error as exc:
                raise DecodeError("corrupt compressed data") from exc
            if d.eof:
                break
            if not chunk:
                raise DecodeError("compressed data is truncated")
        pos = pos + fed - len(d.unused_data)
        rest = data[pos:]
        if not multi or not rest.strip(b"\x00"):
            return
        if wbits == 31 and not rest.startswith(b"\x1f\x8b"):
            raise DecodeError("trailing garbage after a gzip member")


def _deflate(data: bytes) -> Stream:
    """HTTP `deflate` is meant to be zlib-wrapped; many clients send raw deflate."""
    if len(data) >= 2 and (data[0] & 0x0F) == 8 and (data[0] << 8 | data[1]) % 31 == 0:
        return _zlib_members(data, 15, False)
    return _zlib_members(data, -15, False)


def _stdlib_streams(data: bytes, factory: Callable[[], bz2.BZ2Decompressor | lzma.LZMADecompressor]) -> Stream:
    pos = 0
    while True:
        d = factory()
        fed = 0
        while not d.eof:
            if d.needs_input:
                chunk = data[pos + fed : pos + fed + CHUNK]
                if not chunk:
                    raise DecodeError("compressed data is truncated")
                fed += len(chunk)
            else:
                chunk = b""
            try:
                out = d.decompress(chunk, CHUNK)
            except (OSError, EOFError, lzma.LZMAError) as exc:
                raise DecodeError("corrupt compressed data") from exc
            yield out, pos + fed
        pos = pos + fed - len(d.unused_data)
        if not data[pos:].strip(b"\x00"):
            return


def _brotli(data: bytes) -> Stream:
    d = brotli.Decompressor()
    fed = 0
    try:
        while fed < len(data) or not d.can_accept_more_data():
            if d.can_accept_more_data():
                chunk = data[fed : fed + CHUNK]
                fed += len(chunk)
                out = d.process(chunk, output_buffer_limit=CHUNK)
            else:
                out = d.process(b"", output_buffer_limit=CHUNK)
            yield out, fed
    except brotli.error as exc:
        raise DecodeError("corrupt brotli data") from exc
    if not d.is_finished():
        raise DecodeError("brotli data is truncated")


def _zstd(data: bytes) -> Stream:
    import io

    source = io.BytesIO(data)
    try:
        reader = zstandard.ZstdDecompressor(max_window_size=1 << 27).stream_reader(source, read_across_frames=True)
        while True:
            out = reader.read(CHUNK)
            if not out:
                return
            yield out, source.tell()
    except zstandard.ZstdError as exc:
        raise DecodeError("corrupt zstd data") from exc


METHODS: dict[str, Callable[[bytes], Stream]] = {
    "gzip": lambda data: _zlib_members(data, 31, True),
    "x-gzip": lambda data: _zlib_members(data, 31, True),
    "deflate": _deflate,
    "zlib": lambda data: _zlib_members(data, 15, False),
    "bzip2": lambda data: _stdlib_streams(data, bz2.BZ2Decompressor),
    "xz": lambda data: _stdlib_streams(data, lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ)),
    "lzma": lambda data: _stdlib_streams(data, lambda: lzma.LZMADecompressor(lzma.FORMAT_ALONE)),
    "br": _brotli,
    "zstd": _zstd,
}


def decompress(method: str, data: bytes, budget: Budget) -> bytes:
    """Decode `data` with caps. Raises LimitHit (ratio, size, time) or DecodeError (corrupt, truncated)."""
    return drain(METHODS[method](data), budget)


def drain(stream: Stream, budget: Budget) -> bytes:
    """Collect a stream's output, checking the caps after every chunk."""
    limits = budget.limits
    cap = min(limits.member_bytes, limits.max_message_bytes)
    out: list[bytes] = []
    total = 0
    for chunk, consumed in stream:
        if not chunk:
            continue
        total += len(chunk)
        budget.charge(len(chunk))
        if total > RATIO_FLOOR and total > limits.compression_ratio * max(consumed, 1):
            raise LimitHit(Reason.DECOMPRESSION_RATIO_EXCEEDED, "compression ratio over the limit")
        if total > cap:
            raise LimitHit(Reason.ARCHIVE_LIMITS_EXCEEDED, "decompressed size over the limit")
        out.append(chunk)
        budget.check_time()
    return b"".join(out)
