"""Server-rendered inline SVG charts (bar and grouped bar), every label escaped."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

__all__ = ["PALETTE", "Bar", "bar_chart", "grouped_bar_chart"]

PALETTE = ("#3b6ea5", "#e08a2c", "#4a9a5b", "#b5475b", "#7a5ba8", "#5d8f99")

_W, _H = 640, 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 12, 14, 46


@dataclass(frozen=True)
class Bar:
    """One bar: its x-axis label, its value, and the tooltip text."""

    label: str
    value: float
    title: str = ""


def _axis(y_max: float, fmt: Callable[[float], str]) -> list[str]:
    parts = []
    plot_h = _H - _TOP - _BOTTOM
    for i in range(5):
        frac = i / 4
        y = _TOP + plot_h * (1 - frac)
        parts.append(
            f'<line class="grid" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt(y_max * frac))}</text>'
        )
    return parts


def _x_label(x: float, label: str, rotate: bool) -> str:
    y = _H - _BOTTOM + 14
    text = escape(label if len(label) <= 14 else label[:13] + "…")
    if rotate:
        return (f'<text class="tick" x="{x:.1f}" y="{y:.1f}" text-anchor="end" '
                f'transform="rotate(-35 {x:.1f} {y:.1f})">{text}</text>')
    return f'<text class="tick" x="{x:.1f}" y="{y:.1f}" text-anchor="middle">{text}</text>'


def _svg(parts: list[str], title: str) -> Markup:
    body = "".join(parts)
    return Markup(
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>{body}</svg>'
    )


def bar_chart(
    bars: Sequence[Bar],
    *,
    title: str,
    y_max: float | None = None,
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
    color: str = PALETTE[0],
) -> Markup:
    """A vertical bar chart.

    Args:
        bars: the bars, left to right.
        title: the accessible title (also the tooltip of the whole chart).
        y_max: the top of the y axis (default: the largest value).
        fmt: formats y-axis ticks.
        color: the bar fill.

    Returns:
        Safe SVG markup; an empty-state note when there is nothing to draw.
    """
    if not bars:
        return Markup('<p class="empty">No data for this chart yet.</p>')
    top = y_max if y_max is not None else max(b.value for b in bars)
    top = top if top > 0 else 1.0
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    slot = plot_w / len(bars)
    width = max(1.0, slot * 0.8)
    parts = _axis(top, fmt)
    rotate = len(bars) > 12 or any(len(b.label) > 6 for b in bars) and len(bars) > 6
    step = max(1, -(-len(bars) // 10))  # at most ~10 x labels
    for i, bar in enumerate(bars):
        h = plot_h * max(0.0, bar.value) / top
        x = _LEFT + i * slot + (slot - width) / 2
        tip = escape(bar.title or f"{bar.label}: {bar.value:g}")
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{_TOP + plot_h - h:.1f}" width="{width:.1f}" height="{h:.1f}" '
            f'fill="{color}"><title>{tip}</title></rect>'
        )
        if i % step == 0:
            parts.append(_x_label(x + width / 2, bar.label, rotate))
    parts.append(f'<line class="axis" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{_TOP + plot_h}" y2="{_TOP + plot_h}"/>')
    return _svg(parts, title)


def grouped_bar_chart(
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    title: str,
    y_max: float = 1.0,
    fmt: Callable[[float], str] = lambda v: f"{v:.0%}",
) -> Markup:
    """Bars grouped by category, one colour per series (e.g. success rate per family, before vs after).

    Args:
        categories: the x-axis groups.
        series: (name, one value per category; None = no data) for each series.
        title: the accessible title.
        y_max: the top of the y axis.
        fmt: formats y-axis ticks and tooltips.

    Returns:
        Safe SVG markup with a legend; an empty-state note when there is nothing to draw.
    """
    if not categories or not series:
        return Markup('<p class="empty">No data for this chart yet.</p>')
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    slot = plot_w / len(categories)
    width = slot * 0.8 / len(series)
    parts = _axis(y_max, fmt)
    for ci, category in enumerate(categories):
        x0 = _LEFT + ci * slot + slot * 0.1
        for si, (name, values) in enumerate(series):
            value = values[ci]
            if value is None:
                continue
            h = plot_h * max(0.0, value) / y_max
            x = x0 + si * width
            tip = escape(f"{name} · {category}: {fmt(value)}")
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{_TOP + plot_h - h:.1f}" width="{max(1.0, width - 1):.1f}" '
                f'height="{h:.1f}" fill="{PALETTE[si % len(PALETTE)]}"><title>{tip}</title></rect>'
            )
        parts.append(_x_label(x0 + slot * 0.4, category, len(categories) > 8))
    parts.append(f'<line class="axis" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{_TOP + plot_h}" y2="{_TOP + plot_h}"/>')
    legend = "".join(
        f'<span class="legend-item"><svg class="swatch" viewBox="0 0 10 10" aria-hidden="true">'
        f'<rect width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/></svg>{escape(name)}</span>'
        for i, (name, _) in enumerate(series)
    )
    return Markup(f'{_svg(parts, title)}<div class="legend">{legend}</div>')
