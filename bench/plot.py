"""A small SVG line chart on log-log axes, so the benchmark docs show the scaling at a glance.

No plotting library is needed to read or regenerate the docs; the output is
deterministic for the same figures.
"""

from __future__ import annotations

import math
from pathlib import Path

COLORS = ("#2563eb", "#16a34a", "#dc2626", "#9333ea")


def line_chart(title: str, xs: list[float], series: dict[str, list[float]], path: Path, *, unit: str = "s") -> None:
    width, height, left, right, top, bottom = 640, 360, 70, 170, 40, 50
    values = [v for ys in series.values() for v in ys if v > 0]
    y_low = 10 ** math.floor(math.log10(min(values)))
    y_high = 10 ** math.ceil(math.log10(max(values)))
    x_low, x_high = min(xs), max(xs)

    def px(x: float) -> float:
        return left + (math.log10(x) - math.log10(x_low)) / (math.log10(x_high) - math.log10(x_low)) * (
            width - left - right
        )

    def py(y: float) -> float:
        return top + (math.log10(y_high) - math.log10(y)) / (math.log10(y_high) - math.log10(y_low)) * (
            height - top - bottom
        )

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="22" font-size="14" font-weight="bold">{title}</text>',
    ]
    decade = y_low
    while decade <= y_high * 1.0001:
        y = py(decade)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        parts.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{decade:g} {unit}</text>')
        decade *= 10
    for x in xs:
        parts.append(f'<line x1="{px(x):.1f}" y1="{top}" x2="{px(x):.1f}" y2="{height - bottom}" stroke="#f3f4f6"/>')
        parts.append(f'<text x="{px(x):.1f}" y="{height - bottom + 18}" text-anchor="middle">{x:,.0f}</text>')
    parts.append(
        f'<text x="{(left + width - right) / 2:.1f}" y="{height - 12}" text-anchor="middle">deployments</text>'
    )
    for index, (name, ys) in enumerate(series.items()):
        color = COLORS[index % len(COLORS)]
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys, strict=True) if y > 0)
        parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in zip(xs, ys, strict=True):
            if y > 0:
                parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"/>')
        legend_y = top + 16 + index * 20
        parts.append(
            f'<line x1="{width - right + 14}" y1="{legend_y - 4}" x2="{width - right + 34}" y2="{legend_y - 4}" stroke="{color}" stroke-width="2"/>'
        )
        parts.append(f'<text x="{width - right + 40}" y="{legend_y}">{name}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
