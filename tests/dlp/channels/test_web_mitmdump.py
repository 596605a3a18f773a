"""The `mitmdump -s dlp/channels/mitmdump_addon.py` shim: a real mitmdump process with the DLP addon,
configured from a dlp config file, blocking a card upload, passing a clean one, and still doing so after
mitmproxy reloads the script (without registering the Prometheus metrics twice)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers.http_upstream import RecordingUpstream

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "dlp" / "channels" / "mitmdump_addon.py"
MITMDUMP = Path(sys.executable).parent / "mitmdump"
CARD_BODY = b"card 4111 1111 1111 1111"


class Mitmdump:
    def __init__(self, config: Path, script: Path) -> None:
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.proc = subprocess.Popen(
            [str(MITMDUMP), "--listen-host", "127.0.0.1", "--listen-port", "0", "--flow-detail", "0",
             "-s", str(script), "--set", f"dlp_config={config}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=dict(os.environ))
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 60, after: int = 0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for line in self.lines[after:]:
                    if m := re.search(pattern, line):
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"{pattern!r} not seen; output:\n" + "\n".join(self.lines))
                self.changed.wait(left)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def mitmdump(tmp_path: Path) -> Iterator[Mitmdump]:
    config = tmp_path / "dlp.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[inspection]\nworkers = -1\n'
                      '[metrics]\nlisten = "off"\n[proxy]\nmax_body_bytes = 100000\n')
    # A copy of the shim, so the reload test can touch it without touching the repository.
    script = tmp_path / "mitmdump_addon.py"
    script.write_text(SCRIPT.read_text())
    proc = Mitmdump(config, script)
    yield proc
    proc.stop()


def test_mitmdump_shim_blocks_passes_and_survives_a_reload(mitmdump: Mitmdump, tmp_path: Path) -> None:
    port = int(mitmdump.wait_for(r"proxy listening at 127\.0\.0\.1:(\d+)").group(1))
    proxy = f"http://127.0.0.1:{port}"
    with RecordingUpstream() as up:
        blocked = httpx.post(up.url("/u"), content=CARD_BODY, proxy=proxy, timeout=30)
        assert blocked.status_code == 403 and blocked.headers["x-dlp-incident"].startswith("INC-")
        assert httpx.post(up.url("/u"), content=b"hello", proxy=proxy, timeout=30).status_code == 200
        assert [r.body for r in up.wait_for_requests(1)] == [b"hello"]

        mark = len(mitmdump.lines)
        script = tmp_path / "mitmdump_addon.py"
        script.write_text(script.read_text() + "\n# touched\n")
        mitmdump.wait_for(r"Loading script", after=mark)
        deadline = time.monotonic() + 30
        while True:  # until the reloaded addon is configured and answering
            again = httpx.post(up.url("/u"), content=CARD_BODY, proxy=proxy, timeout=30)
            if again.status_code == 403 or time.monotonic() > deadline:
                break
        assert again.status_code == 403 and again.headers.get("x-dlp-incident", "").startswith("INC-")
        assert len(up.requests) == 1
    output = "\n".join(mitmdump.lines)
    assert "Duplicated timeseries" not in output and "Traceback" not in output
    assert "4111 1111 1111 1111" not in output
