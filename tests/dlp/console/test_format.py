"""The console's pure helpers: age badges, masked-context highlighting (escaped), SVG charts."""

from __future__ import annotations

from dlp.console import charts
from dlp.console.format import age, age_class, duration, highlight


def test_age_and_age_class() -> None:
    now = 1_000_000.0
    assert [age(now - s, now=now) for s in (5, 125, 3 * 3600, 3 * 86400)] == ["5 s", "2 min", "3 h", "3 d"]
    assert age(now + 30, now=now) == "0 s"  # a clock step backwards is not a negative age
    assert [age_class(now - s, now=now) for s in (60, 5 * 3600, 2 * 86400)] == ["fresh", "aging", "stale"]
    assert duration(7200) == "2 h"


def test_highlight_marks_masked_tokens_and_escapes_the_rest() -> None:
    out = str(highlight("<b>card</b> [411111******1111] & ssn [*****1120] [redacted:16d] [not masked]"))
    assert out.startswith("&lt;b&gt;card&lt;/b&gt; <mark>[411111******1111]</mark> &amp; ssn <mark>[*****1120]</mark>")
    assert "<mark>[redacted:16d]</mark>" in out and "[not masked]" in out and "<mark>[not" not in out
    assert str(highlight("[<script>]")) == "<mark>[&lt;script&gt;]</mark>"


def test_stacked_bars_scale_and_titles() -> None:
    svg = str(charts.stacked_bars(["2026-01-01", "2026-01-02"], {"block": {"2026-01-02": 3},
                                                                "alert": {"2026-01-02": 4}}, ["alert", "block"], "T"))
    assert svg.startswith('<svg class="chart"') and svg.endswith("</svg>")
    assert "<title>2026-01-02 alert: 4</title>" in svg and "<title>2026-01-02 block: 3</title>" in svg
    assert ">10</text>" in svg  # 7 rounds up to an axis of 10
    assert "style=" not in svg  # CSP: no inline styles
    empty = str(charts.stacked_bars(["a"], {}, [], "<x>"))
    assert "<rect" not in empty and "&lt;x&gt;" in empty
