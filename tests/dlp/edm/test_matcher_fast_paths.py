"""The matcher's shortcuts give what the plain computations give: phone readings built per digit count,
number digits cut without their groups."""

from __future__ import annotations

import random

import pytest

from detectors.base import ScanText
from dlp.edm.matcher import Candidates, PhoneReader
from dlp.edm.normalize import PhoneRegion
from dlp.normalize import normalize


@pytest.mark.parametrize("region", ["US", "GB", "FR", "DE", "IN", "BR", "JP"])
def test_phone_readings_are_the_region_readings_of_indexed_lengths(region):
    rng = random.Random(region)
    for lengths in (set(range(8, 17)), {12}, {13, 14}):
        phone = PhoneRegion.for_region(region)
        reader = PhoneReader(phone, frozenset(lengths))
        heads = ["", "0", "00", "011", phone.country_code, phone.national_prefix, "1", "44"]
        for _ in range(5000):
            n = rng.randrange(7, 16)
            digits = (rng.choice(heads) + "".join(rng.choice("0123456789") for _ in range(n)))[:n]
            plus = rng.random() < 0.1
            expected = {e for e in phone.candidates(digits, plus) if len(e) in lengths}
            viable = n in (reader.viable_plus if plus else reader.viable)
            got = reader.readings(digits, plus) if viable else []
            assert set(got) == expected and len(got) == len(expected), (digits, plus)


class _Runs:
    """The engine's view of a text, with the number runs its pass would report."""

    def __init__(self, text: str) -> None:
        from detectors._numbers import NUMBER_RUN  # noqa: F401 - the expression the spans stand for

        self.view = ScanText(normalize(text))
        import re

        run = re.compile(r"\+?[0-9](?:[ \t\r\n\\\-./|()]{0,3}[0-9]){6,}")
        self.spans = [m.span() for m in run.finditer(self.view.text)]


@pytest.mark.parametrize("text", [
    "acct 6100 11888, tracking 9400 6131 8609 1390 9960 30, +44 (0)20 7946 0958",
    "Order #4246 2819 4821 9935 shipped; call 1-555-201-4567 or 00 33 1 42 68 53 00",
    "ｏｒｄｅｒ ７３００-４５１-２８９ and 12345678901234567890123",
])
def test_number_values_and_spans_are_those_of_the_groups(text):
    runs = _Runs(text)
    wanted = frozenset(range(5, 20))
    cand = Candidates(runs.view.text, runs.view, wanted, runs.spans)
    values = cand.number_values
    numbers = Candidates(runs.view.text, runs.view, wanted, runs.spans).numbers
    assert values == [(d, plus) for d, _s, _e, plus in numbers] and values
    assert [cand.number_span(k) for k in range(len(values))] == [(s, e) for _d, s, e, _p in numbers]


def _dates_by_regex(text: str) -> list[tuple[str, int, int]]:
    """text_dates as the plain patterns give it (no shortcut)."""
    from dlp.edm import normalize as nz

    out = [(d.isoformat(), m.start(), m.end()) for m in nz._NUMERIC_DATE.finditer(text)
           for d in nz.date_readings(*m.groups())]
    for pattern, day_group, month_group in ((nz._TEXT_DATE_DMY, 1, 2), (nz._TEXT_DATE_MDY, 2, 1)):
        for m in pattern.finditer(text):
            month = nz._month(m.group(month_group))
            if month and (d := nz._safe_date(int(m.group(3)), month, int(m.group(day_group)))):
                out.append((d.isoformat(), m.start(), m.end()))
    return out


def test_date_shortcuts_find_what_the_patterns_find():
    from dlp.edm import normalize as nz

    rng = random.Random(13)
    pieces = ["jan", "March", "sept", "may", "xmar", "summary", "Dec", ".", ",", " ", "-", "/", "1", "12", "2024",
              "1985", "03", "a", "z", "\n", "_", "é", "5th", "mayo", "31"]
    for _ in range(40_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        lower = text.lower()
        assert nz._names_a_month(lower) == (nz._MONTH_THEN_NUMBER.search(lower) is not None), text
        middle = nz._NUMERIC_DATE_MIDDLE.search(text)
        assert nz._first_numeric_date_middle(text) == (middle.start() if middle else -1), text
        assert nz.text_dates(text, lower) == _dates_by_regex(text), text
