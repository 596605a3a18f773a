"""The fused loop for classic Ethernet pcap files (dlp.channels.passive.fastpath) gives exactly what the
frame-by-frame path gives: same counts, anomalies, gaps, verdicts and transactions, in the same order,
on every capture we have and under the settings that change reassembly's decisions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dlp.bench import pcap as bench
from dlp.channels.passive.monitor import Monitor, Result
from dlp.channels.passive.reader import LINKTYPE_ETHERNET, Capture
from dlp.config import PassiveSettings
from dlp.inspect import Inspector

REPO = Path(__file__).resolve().parents[4]
PCAPS = REPO / "pcaps"
REAL_PCAPS = REPO.parent / "shared" / "pcaps-real"


@pytest.fixture(scope="module")
def bench_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fastpath") / "bench.pcap"
    bench.generate(path, 2000)
    return path


def _captures(bench_capture: Path) -> list[Path]:
    paths = sorted(PCAPS.glob("*.pcap")) + sorted(REAL_PCAPS.glob("*.pcap")) + [bench_capture]
    return [p for p in paths if p.is_file()]


def _outcome(results: list[Result], monitor: Monitor, capture: Capture) -> dict[str, Any]:
    return {
        "stats": monitor.stats.as_dict(),
        "warnings": list(capture.info.warnings),
        "results": [(r.summary, r.flow.protocol, r.flow.client, r.flow.server, r.flow.midstream, r.flow.started,
                     str(r.verdict.action), [(f.entity, f.location, f.start, f.end) for f in r.verdict.findings],
                     [(u.location, str(u.reason)) for u in r.verdict.uninspected], r.message.raw,
                     r.message.envelope.destination, r.message.received) for r in results],
    }


def _run(path: Path, env: tuple[Inspector, bytes], settings: PassiveSettings, fused: bool) -> dict[str, Any]:
    inspector, key = env
    results: list[Result] = []
    monitor = Monitor(inspector, key, settings, on_result=results.append)
    with Capture(path) as capture:
        if fused:
            monitor.feed(capture)
            assert capture.take_layout() is None  # the fused loop took the records (or the format has none)
        else:
            for ts, linktype, frame in capture:
                monitor.packet(ts, linktype, frame)
        monitor.finish()
        return _outcome(results, monitor, capture)


SETTINGS = {
    "default": PassiveSettings(),
    "verify-checksums": PassiveSettings(checksums="verify"),
    "ignore-checksums": PassiveSettings(checksums="ignore"),
    "idle-sweeps": PassiveSettings(flow_idle_seconds=0.002),
    "tiny-memcaps": PassiveSettings(flow_memcap_bytes=3000, global_memcap_bytes=6000, max_flows=3),
}


@pytest.mark.parametrize("variant", sorted(SETTINGS))
def test_fused_loop_matches_frame_by_frame(variant: str, bench_capture: Path,
                                           passive_env: tuple[Inspector, bytes]) -> None:
    settings = SETTINGS[variant]
    fused_ran = 0
    for path in _captures(bench_capture):
        with Capture(path) as probe:
            fused_ran += probe.take_layout(LINKTYPE_ETHERNET) is not None
        assert _run(path, passive_env, settings, fused=True) == _run(path, passive_env, settings, fused=False), path
    assert fused_ran >= 10  # most of pcaps/ are classic Ethernet pcap: the fused loop was exercised


def test_cut_short_and_corrupt_files_warn_as_frame_by_frame(tmp_path: Path, bench_capture: Path,
                                                            passive_env: tuple[Inspector, bytes]) -> None:
    data = bench_capture.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) // 2 + 7])
    corrupt = tmp_path / "corrupt.pcap"
    # The 11th record header claims a gigabyte: the rest of the file is skipped with a warning.
    offset = 24
    for _ in range(10):
        offset += 16 + int.from_bytes(data[offset + 8 : offset + 12], "little")
    corrupt.write_bytes(data[: offset + 8] + (1 << 30).to_bytes(4, "little") + data[offset + 12 :])
    for path in (cut, corrupt):
        fused = _run(path, passive_env, PassiveSettings(), fused=True)
        assert fused == _run(path, passive_env, PassiveSettings(), fused=False)
        assert fused["warnings"]
    assert _run(corrupt, passive_env, PassiveSettings(), fused=True)["stats"]["packets"] == 10


def _write(path: Path, frames: list[bytes]) -> None:
    records = [len(f).to_bytes(4, "little") * 2 + f for f in frames]
    ts = [(1767261600 + i).to_bytes(4, "little") + bytes(4) for i in range(len(frames))]
    path.write_bytes(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000")
                     + b"".join(t + r for t, r in zip(ts, records, strict=True)))


def test_acknowledged_bytes_missing_from_the_capture_are_a_gap(tmp_path: Path,
                                                               passive_env: tuple[Inspector, bytes]) -> None:
    """The server acknowledges a request segment the capture never saw, in pure ACKs (the fused loop's
    inline case): the stream ends with a gap, exactly as frame by frame."""
    client, server, c, s = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 1000, 5000
    head = b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 40\r\n\r\n"
    frames = [
        bench._frame(client, server, 40000, 80, c, 0, 0x02, b"", True),
        bench._frame(server, client, 80, 40000, s, c + 1, 0x12, b"", False),
        bench._frame(client, server, 40000, 80, c + 1, s + 1, 0x10, b"", True),
        bench._frame(client, server, 40000, 80, c + 1, s + 1, 0x18, head + b"x" * 20, True),
        bench._frame(client, server, 40000, 80, c + 1 + len(head) + 20, s + 1, 0x18, b"y" * 5, True),
        bench._frame(server, client, 80, 40000, s + 1, c + 1 + len(head) + 25, 0x10, b"", False),
        # the last 15 bytes of the body never made it into the capture, but were acknowledged
        bench._frame(server, client, 80, 40000, s + 1, c + 1 + len(head) + 40, 0x10, b"", False),
    ]
    path = tmp_path / "acked-gap.pcap"
    _write(path, frames)
    fused = _run(path, passive_env, PassiveSettings(), fused=True)
    assert fused == _run(path, passive_env, PassiveSettings(), fused=False)
    assert fused["stats"]["gaps"] == 1 and fused["stats"]["gap_bytes"] == 15
    assert [reason for r in fused["results"] for _, reason in r[8]] == ["reassembly_gap"]
