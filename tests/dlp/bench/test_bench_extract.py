"""`dlp bench extract`: runs small end to end through the CLI, and its generated attachments are real
files that their own libraries open."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
import zipfile

import docx
import openpyxl
from pypdf import PdfReader

from dlp.bench import extract as bench
from dlp.bench import targets


def test_extract_is_a_target() -> None:
    assert targets()["extract"] is bench


def test_generated_attachments_are_real_files() -> None:
    files = bench.attachments(60, seed=1)
    book = openpyxl.load_workbook(io.BytesIO(files["customers.xlsx"]))
    assert book.sheetnames == ["Customers", "Archive"] and book["Archive"].sheet_state == "hidden"
    assert book["Customers"].max_row == 61
    with zipfile.ZipFile(io.BytesIO(files["customers.xlsx"])) as z:
        assert 't="s"' in z.read("xl/worksheets/sheet1.xml").decode()  # shared strings, as Excel writes
    document = docx.Document(io.BytesIO(files["review.docx"]))
    assert document.tables and any(bench.PLANTED in p.text for p in document.paragraphs)
    assert bench.PLANTED in "".join(page.extract_text() for page in PdfReader(io.BytesIO(files["report.pdf"])).pages)
    with zipfile.ZipFile(io.BytesIO(files["exports.zip"])) as z:
        assert len(z.namelist()) == 4
    assert bench.customers(60, random.Random(1)) == bench.customers(60, random.Random(1))


def test_bench_extract_cli_json_and_text() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dlp", "bench", "extract", "--extract-rows", "300", "--extract-rounds", "1", "--json"],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert set(result["types"]) == {"xlsx", "docx", "zip", "pdf"}
    assert result["all_planted_found"] is True
    assert result["scanner"] == "compiled (C)"  # the office types were read by the C scanner
    for r in result["types"].values():
        assert r["bytes"] > 0 and r["text_chars"] > 0 and r["cpu_mb_per_s"] > 0 and r["uninspected"] == []
    # `ratio` covers the office and zip types; PDF has its own ratio, printed on its own line.
    office_zip = {k: r for k, r in result["types"].items() if k != "pdf"}
    slowest = min(office_zip, key=lambda k: office_zip[k]["cpu_mb_per_s"])
    assert result["slowest"] == slowest
    assert result["ratio"] == round(office_zip[slowest]["cpu_mb_per_s"] / 20.0, 2)
    assert result["pdf_ratio"] == round(result["types"]["pdf"]["cpu_mb_per_s"] / 20.0, 2)
    assert "20 MB/s target" in result["ratio_means"] and "PDF not included" in result["ratio_means"]
    text = bench.format_text(result)
    assert "ratio" in text and "20 MB/s target" in text and "xlsx" in text
    assert f"pdf ratio {result['pdf_ratio']}" in text
