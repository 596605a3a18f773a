"""`dlp bench edm` on a small index: the result carries the ratio and finds every planted record."""

from __future__ import annotations

import argparse

from dlp.bench import edm, targets


def test_bench_edm_reports_ratio_and_recall(tmp_path):
    assert targets()["edm"] is edm
    args = argparse.Namespace(edm_records=3000, edm_rounds=1, edm_dir=str(tmp_path), size_mb=0.05, seed=3)
    result = edm.run(args)
    assert result["ratio"] > 0 and result["recall"] == 1.0
    assert len(result["ratio_per_round"]) == 1 and result["ratio"] == result["ratio_per_round"][0]
    assert result["ratio_total"] > 0 and "added_us_per_message" in result
    assert result["corpus"]["with_customer_record"] > 0
    assert result["build"]["keys"] == 3000 * 7 and result["load_seconds"] < 1
    again = edm.run(args)  # reuses the export and the index kept in --edm-dir
    assert "build" not in again and again["recall"] == 1.0
