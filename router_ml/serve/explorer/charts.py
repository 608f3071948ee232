"""Inline SVG charts for the explorer, drawn on the server (no script, no CDN): each bar carries a
<title> the browser shows on hover."""

from __future__ import annotations

import time
from html import escape

PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#eeca3b", "#9d755d", "#bab0ac",
           "#ff9da6")


def colours(models: list[str]) -> dict[str, str]:
    """A colour per model, stable for a given (sorted) list of models."""
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(sorted(models))}


def stacked_timeline(timeline: dict, colour: dict[str, str], width: int = 720, height: int = 180) -> str:
    """Requests per model per time slice, stacked."""
    n = timeline["buckets"]
    counts = timeline["counts"]
    totals = [sum(c[i] for c in counts.values()) for i in range(n)]
    top = max(totals) or 1
    bar = width / n
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height + 20}" role="img" '
             f'aria-label="requests per model over time">']
    for i in range(n):
        y = height
        start = time.strftime("%Y-%m-%d %H:%M", time.gmtime(timeline["since"] + i * timeline["width"]))
        for model in sorted(counts):
            k = counts[model][i]
            if not k:
                continue
            h = k / top * (height - 18)  # room for the scale label above
            y -= h
            parts.append(f'<rect x="{i * bar + 1:.1f}" y="{y:.1f}" width="{max(bar - 2, 1):.1f}" height="{h:.1f}" '
                         f'fill="{colour[model]}"><title>{escape(start)} UTC: {escape(model)} {k:,} of '
                         f'{totals[i]:,}</title></rect>')
    parts.append(f'<text x="0" y="{height + 15}" class="axis">'
                 f'{time.strftime("%Y-%m-%d %H:%M", time.gmtime(timeline["since"]))} UTC</text>')
    parts.append(f'<text x="{width}" y="{height + 15}" class="axis" text-anchor="end">'
                 f'{time.strftime("%Y-%m-%d %H:%M", time.gmtime(timeline["since"] + n * timeline["width"]))}'
                 ' UTC</text>')
    parts.append(f'<text x="{width}" y="10" class="axis" text-anchor="end">max {top:,} per slice</text></svg>')
    return "".join(parts)


def bars(items: list[tuple[str, float, str]], colour: dict[str, str] | None = None, width: int = 360,
         row: int = 22) -> str:
    """Horizontal bars: (label, value, text shown) each, scaled to the largest value."""
    if not items:
        return ""
    top = max(v for _, v, _ in items) or 1.0
    label_w = 150
    parts = [f'<svg class="chart" viewBox="0 0 {width + label_w + 110} {row * len(items)}" role="img">']
    for i, (label, value, shown) in enumerate(items):
        y = i * row
        fill = (colour or {}).get(label, PALETTE[0])
        w = max(value / top * width, 1.0)
        parts.append(f'<text x="{label_w - 6}" y="{y + row * 0.7:.1f}" text-anchor="end" class="axis">'
                     f'{escape(label)}</text><rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" '
                     f'fill="{fill}"><title>{escape(label)}: {escape(shown)}</title></rect>'
                     f'<text x="{label_w + w + 6:.1f}" y="{y + row * 0.7:.1f}" class="axis">{escape(shown)}</text>')
    parts.append("</svg>")
    return "".join(parts)
