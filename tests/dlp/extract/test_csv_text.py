"""csv_text: the quoted-lines-only path gives what parsing the whole file with the csv module gives."""

from __future__ import annotations

import csv
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from dlp.extract.files import csv_text

CELLS = ["a", "b c", '"q, x"', '"say ""hi"""', "", '"multi\nline"', 'ab"c', "4111,1111", "\r", "\x00z"]


def reference(text: str) -> str:
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=","))
    except csv.Error:
        return text
    return "\n".join("\t".join(cell.replace("\r", " ").replace("\n", " ") for cell in row) for row in rows)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(st.sampled_from(CELLS), max_size=4), min_size=1, max_size=12),
       st.sampled_from(["\n", "\r\n"]), st.sampled_from(["", "\n", "\n\n"]))
def test_same_rows_as_the_csv_module(rows: list[list[str]], newline: str, end: str) -> None:
    text = newline.join(",".join(row) for row in rows) + end
    if '"' in text and "\r" not in text.replace("\r\n", "") and "\x00" not in text:
        assert csv_text(text, ",") == reference(text)


def test_export_with_a_few_quoted_cells() -> None:
    lines = [f"C{i},Name {i},{i}.50" for i in range(40)]
    lines[7] = 'C7,"Smith, Ann","card 4111 1111 1111 1111, exp ""12/29"""'
    rows = csv_text("\r\n".join(lines) + "\r\n", ",").split("\n")
    assert len(rows) == 40 and rows[8] == "C8\tName 8\t8.50"
    assert rows[7] == 'C7\tSmith, Ann\tcard 4111 1111 1111 1111, exp "12/29"'
