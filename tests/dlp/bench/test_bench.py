"""`dlp bench`: the command runs end to end, and dlp's accuracy on the corpus holds."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dlp.bench import targets
from dlp.bench.corpus import generate
from dlp.cli import main


def test_core_is_a_target():
    assert "core" in targets()
    assert "corpus" not in targets()


def test_corpus_is_seeded_and_sized():
    a, b = generate(50_000, seed=3), generate(50_000, seed=3)
    assert [s.text for s in a] == [s.text for s in b]
    assert sum(len(s.text.encode()) for s in a) >= 50_000
    share = sum(1 for s in a if s.truth) / len(a)
    assert 0.1 < share < 0.3
    assert any(s.hard_negatives for s in a)


def test_bench_json_structure_and_recall():
    proc = subprocess.run(
        [sys.executable, "-m", "dlp", "bench", "--size-mb", "0.5", "--presidio-mb", "0.03", "--repeat", "2",
         "--json"],
        capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["target"] == "core" and result["repeat"] == 2
    for key in ("dlp", "inspector", "presidio", "dlp_same_texts"):
        assert {"mb_per_s", "cpu_mb_per_s", "messages_per_s", "p50_ms", "p99_ms"} <= set(result[key])
        assert result[key]["rounds"] == 2
    # The ratio compares both engines on the very same texts (each round on a fresh corpus).
    assert abs(result["dlp_same_texts"]["bytes"] - result["presidio"]["bytes"]) < 0.01 * 1024 * 1024
    assert result["ratio"] == round(result["dlp_same_texts"]["cpu_mb_per_s"] / result["presidio"]["cpu_mb_per_s"], 1)
    assert result["ratio"] > 1 and result["ratio_wall"] > 1
    accuracy = result["dlp"]["accuracy"]
    assert accuracy["recall"] >= 0.99
    assert accuracy["precision"] >= 0.99
    for entity in ("CREDIT_CARD", "US_SSN", "IBAN_CODE"):
        assert accuracy["entities"][entity]["recall"] >= 0.99
        assert accuracy["entities"][entity]["precision"] >= 0.99


def test_unknown_target_is_a_usage_error(capsys):
    assert main(["bench", "nosuch", "--size-mb", "0.01"]) == 2
    assert "no benchmark named" in capsys.readouterr().err


@pytest.mark.parametrize("size", ["0", "-1"])
def test_size_must_be_positive(size, capsys):
    assert main(["bench", "--size-mb", size]) == 2


def test_text_table_names_the_ratio_and_the_engines(capsys):
    assert main(["bench", "--size-mb", "0.05", "--presidio-mb", "0.01", "--repeat", "1", "--no-inspector"]) == 0
    out = capsys.readouterr().out
    assert "dlp DetectorSet.scan" in out and "presidio analyze()" in out and "dlp scan, presidio's texts" in out
    assert "throughput ratio, same texts:" in out and "by CPU time" in out
    assert "dlp Inspector.inspect" not in out


def test_each_round_scans_a_fresh_corpus():
    from dlp.bench.core import _Corpora

    corpora = _Corpora(20_000, seed=5)
    assert [s.text for s in corpora[0]] == [s.text for s in generate(20_000, seed=5)]
    assert [s.text for s in corpora[1]] == [s.text for s in generate(20_000, seed=6)]
    assert corpora[0] is corpora[0]  # generated once
