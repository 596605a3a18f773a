"""Durability: a full disk (ENOSPC) during a quarantine write leaves no partial item; a SIGKILL in the middle
of writes leaves a consistent store whose next open removes the leftovers."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from storekit import Factory

from dlp.config import Settings
from dlp.store import StoreError, open_store


def _assert_consistent(settings: Settings) -> None:
    """Every row that claims an original has one that decrypts; no file is unreferenced; no temporaries."""
    store = open_store(settings)
    try:
        with_original = {s.id for s in store.list_incidents() if s.has_original}
        for iid in with_original:
            assert store._sealed(iid)[1]
        files = {p.name for p in (settings.data_path / "quarantine").iterdir()}
        assert files == {f"{i}.q" for i in with_original}
        conn = sqlite3.connect(settings.data_path / "store" / "incidents.db")
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
        assert store.audit_verify().ok
    finally:
        store.close()


@pytest.fixture
def tiny_tmpfs(tmp_path: Path):
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount_point)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root); the RLIMIT_FSIZE test covers the failure path")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_enospc_on_a_real_full_tmpfs_leaves_no_partial_item(tiny_tmpfs: Path, factory: Factory) -> None:
    settings = Settings(data_dir=str(tiny_tmpfs / "data"))
    store = open_store(settings)
    message, verdict, raw = factory.message()
    store.record(message, verdict, raw)  # fits
    big_msg, big_verdict, _ = factory.message()
    with pytest.raises(StoreError, match="No space left"):
        store.record(big_msg, big_verdict, os.urandom(2 * 1024 * 1024))
    # Fill the disk to a few pages of slack so that some originals fit but their database commit does not.
    filler = tiny_tmpfs / "filler"
    free = os.statvfs(tiny_tmpfs).f_bavail * os.statvfs(tiny_tmpfs).f_frsize
    filler.write_bytes(b"\0" * max(0, free - 48 * 1024))
    failures: list[str] = []
    for size in (40_000, 30_000, 20_000, 10_000, 4_000, 1_000):
        m, v, _ = factory.message()
        try:
            store.record(m, v, os.urandom(size))
        except StoreError as exc:
            failures.append(str(exc))
            with pytest.raises(StoreError, match="no incident"):
                store.get(v.incident_id)
            assert not (settings.data_path / "quarantine" / f"{v.incident_id}.q").exists()
        else:
            assert store.get(v.incident_id).summary.has_original
    # the original was written, then the commit hit the full disk and the original was removed again
    assert any("incident write failed" in f for f in failures), failures
    assert not [p for p in (settings.data_path / "quarantine").iterdir() if p.name.startswith(".tmp-")]
    filler.unlink()
    m, v, raw2 = factory.message()
    store.record(m, v, raw2)  # space is back: the store works again
    assert store.read_original(v.incident_id, "rita", "after disk full") == raw2
    store.close()
    _assert_consistent(settings)


_RLIMIT_WRITER = textwrap.dedent("""
    import os, resource, signal, sys
    from dlp.config import Settings
    from dlp.model import Action, Channel, Message, Severity, Verdict, new_incident_id
    from dlp.store import StoreError, open_store
    store = open_store(Settings(data_dir=sys.argv[1]))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # then write() fails with EFBIG instead of killing us
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))
    verdict = Verdict(Action.QUARANTINE, Severity.HIGH, ("r",), incident_id=new_incident_id())
    try:
        store.record(Message(Channel.SMTP, b"x"), verdict, os.urandom(1024 * 1024))
    except StoreError as exc:
        print("refused:", exc, flush=True)
    store.close()
""")


def test_file_size_limit_during_quarantine_write_leaves_no_partial_item(settings: Settings) -> None:
    """The same failure path without root: RLIMIT_FSIZE (EFBIG) in a subprocess."""
    open_store(settings).close()
    done = subprocess.run([sys.executable, "-c", _RLIMIT_WRITER, settings.data_dir], capture_output=True,
                          text=True, timeout=60)
    assert "refused: quarantine write failed: File too large" in done.stdout, done.stderr
    _assert_consistent(settings)
    store = open_store(settings)
    assert store.count() == 0
    store.close()


_LOOPING_WRITER = textwrap.dedent("""
    import os, sys
    from dlp.config import Settings
    from dlp.model import Action, Channel, Envelope, Finding, Message, Severity, Verdict, new_incident_id
    from dlp.store import open_store
    store = open_store(Settings(data_dir=sys.argv[1]))
    finding = Finding("CREDIT_CARD", "payment_cards", 1.0, "body", 0, 16, "411111******1111", "abc123")
    n = 0
    while True:
        verdict = Verdict(Action.QUARANTINE, Severity.HIGH, ("sensitive-data-leaving",), (finding,),
                          incident_id=new_incident_id())
        message = Message(Channel.SMTP, b"", envelope=Envelope("a@callcenter.example", ("b@x.example",)))
        store.record(message, verdict, os.urandom(64 * 1024))
        n += 1
        print(n, flush=True)
""")


def test_sigkill_mid_writes_leaves_a_consistent_store_and_leftovers_are_purged(settings: Settings) -> None:
    open_store(settings).close()
    proc = subprocess.Popen([sys.executable, "-c", _LOOPING_WRITER, settings.data_dir], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if int(line) >= 25:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    quarantine = settings.data_path / "quarantine"
    # Whatever the kill interrupted, also plant both kinds of leftover explicitly.
    (quarantine / ".tmp-0123456789ab-INC-20260101-DEADBEEF.q").write_bytes(b"half written")
    (quarantine / "INC-20260101-0000ABCD.q").write_bytes(b"written, never committed")
    _assert_consistent(settings)
    store = open_store(settings)
    assert store.count() >= 25
    store.close()


def test_a_second_process_does_not_sweep_a_live_writers_files(settings: Settings) -> None:
    """The sweep lock: a CLI opening the store next to `dlp serve` must not delete in-flight files."""
    first = open_store(settings)
    in_flight = settings.data_path / "quarantine" / ".tmp-aaaaaaaaaaaa-INC-20260101-00000001.q"
    in_flight.write_bytes(b"being written by the relay")
    second = open_store(settings)
    assert in_flight.exists()
    second.close()
    first.close()
    open_store(settings).close()
    assert not in_flight.exists()
