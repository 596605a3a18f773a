"""The C scanner reads hostile attachments: build it with AddressSanitizer and UBSan and fuzz it
(scanner_fuzz.py) - any out-of-bounds read or write, use after free or undefined behaviour aborts the
run, and every reading must still equal the general path's. DLP_FUZZ_SECONDS runs it longer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SOURCE = ROOT / "dlp" / "extract" / "_markup.c"
SECONDS = float(os.environ.get("DLP_FUZZ_SECONDS", "20"))


def _runtime(compiler: str, name: str) -> str:
    return subprocess.run([compiler, f"-print-file-name={name}"], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no C compiler: the scanner is not built either")
def test_scanner_under_address_and_undefined_behaviour_sanitizers(tmp_path: Path) -> None:
    module = tmp_path / ("_markup" + sysconfig.get_config_var("EXT_SUFFIX"))
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=undefined", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror",
                    f"-I{sysconfig.get_paths()['include']}", str(SOURCE), "-o", str(module)], check=True)
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
           "LD_PRELOAD": f"{_runtime('gcc', 'libasan.so')}:{_runtime('gcc', 'libubsan.so')}"}
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("scanner_fuzz.py")), str(module), str(SECONDS),
                           "7"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=SECONDS + 120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "runtime error" not in done.stderr and "AddressSanitizer" not in done.stderr, done.stderr[-3000:]
    assert int(done.stdout.split()[1]) > 1000  # inputs fuzzed
