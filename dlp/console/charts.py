"""Server-rendered SVG charts (no JavaScript, no inline styles: colours come from CSS classes)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 200
PAD_LEFT, PAD_BOTTOM, PAD_TOP = 36, 22, 8


def _nice_max(value: int) -> int:
    """A round axis maximum at or above value (1, 2, 5, 10, 20, 50 ...)."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if value <= step * m:
                return step * m
        step *= 10


def stacked_bars(buckets: Sequence[str], counts: Mapping[str, Mapping[str, int]], keys: Iterable[str],
                 title: str, short_label: int = 5) -> Markup:
    """One bar per bucket, stacked by key (bottom first); `counts[key][bucket]`. Each segment carries a
    <title> so that hovering shows the number."""
    keys = list(keys)
    totals = [sum(counts.get(k, {}).get(b, 0) for k in keys) for b in buckets]
    top = _nice_max(max(totals, default=0) or 1)
    plot_w, plot_h = WIDTH - PAD_LEFT - 4, HEIGHT - PAD_BOTTOM - PAD_TOP
    slot = plot_w / max(1, len(buckets))
    bar_w = max(2.0, slot * 0.7)
    parts = [Markup('<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}">').format(
        WIDTH, HEIGHT, title), Markup("<title>{}</title>").format(title)]
    for frac in (0.0, 0.5, 1.0):
        y = PAD_TOP + plot_h * (1 - frac)
        parts.append(Markup('<line class="grid" x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}"/>').format(
            PAD_LEFT, WIDTH - 4, y, y))
        if (top * frac).is_integer():  # no "0" half-way up a chart whose top is 1
            parts.append(Markup('<text class="axis" x="{}" y="{:.1f}" text-anchor="end">{}</text>').format(
                PAD_LEFT - 4, y + 4, int(top * frac)))
    label_every = max(1, len(buckets) // 12)
    for i, bucket in enumerate(buckets):
        x = PAD_LEFT + i * slot + (slot - bar_w) / 2
        y = PAD_TOP + plot_h
        for key in keys:
            n = counts.get(key, {}).get(bucket, 0)
            if not n:
                continue
            h = plot_h * n / top
            y -= h
            parts.append(Markup('<rect class="seg seg-{}" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}">'
                                '<title>{} {}: {}</title></rect>').format(
                key, x, y, bar_w, h, bucket, key, n))
        if i % label_every == 0:
            parts.append(Markup('<text class="axis" x="{:.1f}" y="{}" text-anchor="middle">{}</text>').format(
                x + bar_w / 2, HEIGHT - 6, bucket[-short_label:]))
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def legend(keys: Iterable[str]) -> Markup:
    return Markup("").join(Markup('<span class="legend"><svg viewBox="0 0 10 10"><rect class="seg seg-{}" '
                                  'width="10" height="10"/></svg>{}</span>').format(k, escape(k)) for k in keys)
