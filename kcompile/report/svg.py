"""Small inline-SVG pieces the report's charts are drawn with: scales (linear and log),
tick positions and labels, axes with light grid lines, rects, lines, polylines, circles
and text, every string escaped.

Coordinates are whole pixels and attributes short, so that a chart of thousands of
buffers stays a few hundred kilobytes; colours and strokes sit on groups (``<g>``), not
on each shape. Every chart is a ``<svg class="kc-chart">`` with a ``viewBox``, so the
page may scale it; hovering an element that names a value or a kernel outlines it.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

FONT = "font-family:system-ui,sans-serif;font-size:11px"
GRID = "#e4e4e4"
INK = "#333"
# Outline whatever names a value or a kernel when the pointer is over it.
HOVER = (
    "<style>.kc-chart [data-value]:hover,.kc-chart [data-kernel]:hover"
    "{stroke:#000;stroke-width:1.5}</style>"
)
BINARY_UNITS = ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB"), (1, "B"))


def esc(text: object) -> str:
    """``text`` safe inside an element or a double-quoted attribute."""
    return html.escape(str(text), quote=True)


def attrs(**values: object) -> str:
    """` name="value"` pairs: ``class_`` is ``class``, ``data_value`` is ``data-value``;
    ``None`` leaves the attribute out, floats are rounded to whole pixels."""
    out = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, float):
            value = round(value)
        out.append(f' {key.rstrip("_").replace("_", "-")}="{esc(value)}"')
    return "".join(out)


def _shape(tag: str, tip: str | None, **values: object) -> str:
    if tip is None:
        return f"<{tag}{attrs(**values)}/>"
    return f"<{tag}{attrs(**values)}><title>{esc(tip)}</title></{tag}>"


def rect(x: int, y: int, w: int, h: int, tip: str | None = None, **values: object) -> str:
    return _shape("rect", tip, x=x, y=y, width=w, height=h, **values)


def line(x1: int, y1: int, x2: int, y2: int, **values: object) -> str:
    return _shape("line", None, x1=x1, y1=y1, x2=x2, y2=y2, **values)


def circle(cx: int, cy: int, r: int, tip: str | None = None, **values: object) -> str:
    return _shape("circle", tip, cx=cx, cy=cy, r=r, **values)


def polyline(points: list[tuple[float, float]], **values: object) -> str:
    path = " ".join(f"{round(x)},{round(y)}" for x, y in points)
    return f'<polyline points="{path}" fill="none"{attrs(**values)}/>'


def text(x: int, y: int, content: object, **values: object) -> str:
    return f"<text{attrs(x=x, y=y, **values)}>{esc(content)}</text>"


def group(body: list[str] | str, **values: object) -> str:
    inner = "".join(body) if isinstance(body, list) else body
    return f"<g{attrs(**values)}>{inner}</g>"


def svg(width: int, height: int, body: list[str], label: str, **values: object) -> str:
    """The chart's root element; ``label`` is what a screen reader says it shows."""
    head = attrs(
        xmlns="http://www.w3.org/2000/svg",
        class_="kc-chart",
        viewBox=f"0 0 {width} {height}",
        width=width,
        height=height,
        role="img",
        aria_label=label,
        style=FONT,
        **values,
    )
    return f"<svg{head}>{HOVER}{''.join(body)}</svg>"


@dataclass(frozen=True)
class Scale:
    """Maps data in [lo, hi] to pixels in [start, stop] (stop < start for a y axis, whose
    pixels grow downwards), on a log scale when ``log``; whole pixels."""

    lo: float
    hi: float
    start: int
    stop: int
    log: bool = False

    def __post_init__(self) -> None:
        if self.log and not 0 < self.lo < self.hi:
            raise ValueError(f"a log scale needs 0 < lo < hi, got [{self.lo}, {self.hi}]")
        if not self.lo < self.hi:
            raise ValueError(f"a scale needs lo < hi, got [{self.lo}, {self.hi}]")

    def fraction(self, value: float) -> float:
        if self.log:
            return math.log(value / self.lo) / math.log(self.hi / self.lo)
        return (value - self.lo) / (self.hi - self.lo)

    def __call__(self, value: float) -> int:
        return round(self.start + (self.stop - self.start) * self.fraction(value))


def nice_step(span: float, count: int) -> float:
    """A step of 1, 2 or 5 times a power of ten giving about ``count`` ticks over ``span``."""
    raw = span / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def linear_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round values from ``lo`` to ``hi`` (both inside), about ``count`` of them."""
    step = nice_step(hi - lo, count)
    first = math.ceil(lo / step)
    return [i * step for i in range(first, math.floor(hi / step + 1e-9) + 1)]


def byte_ticks(hi: int, count: int = 6) -> list[float]:
    """Ticks from 0 to ``hi`` bytes at round numbers of the unit ``hi`` is read in."""
    unit = next(u for u, _ in BINARY_UNITS if hi >= u or u == 1)
    return [t * unit for t in linear_ticks(0, hi / unit, count)]


def log_ticks(lo: float, hi: float, base: int = 10, most: int = 8) -> list[float]:
    """Powers of ``base`` in [lo, hi], every k-th one so that at most ``most`` remain;
    in base 10, 2x and 5x each decade too when the range spans three decades or fewer."""
    first = math.ceil(math.log(lo, base) - 1e-9)
    last = math.floor(math.log(hi, base) + 1e-9)
    stride = max(1, math.ceil((last - first + 1) / most))
    ticks = [float(base) ** e for e in range(first, last + 1, stride)]
    if base == 10 and last - first <= 3:
        more = [m * 10.0**e for e in range(first - 1, last + 1) for m in (2, 5)]
        ticks = sorted(ticks + [t for t in more if lo <= t <= hi])
    return ticks


def log_bounds(lo: float, hi: float, base: int = 10) -> tuple[float, float]:
    """[lo, hi] widened to whole powers of ``base`` (and to one step if they coincide)."""
    a = float(base) ** math.floor(math.log(lo, base) + 1e-9)
    b = float(base) ** math.ceil(math.log(hi, base) - 1e-9)
    return (a, b * base) if a >= b else (a, b)


def fmt_bytes(n: float) -> str:
    """Bytes in binary units, as short as a tick label wants: ``512 B``, ``1.5 MiB``."""
    unit, name = next((u, s) for u, s in BINARY_UNITS if abs(n) >= u or u == 1)
    return f"{n / unit:.3g} {name}"


def fmt_number(x: float) -> str:
    """A tick label: ``0.01``, ``5``, ``20,000``, ``1e+06``."""
    return f"{x:,.6g}"


def fmt_us(us: float) -> str:
    """Microseconds with the digits that matter: ``0.42``, ``12.3``, ``14,111``."""
    if us >= 1000:
        return f"{us:,.0f}"
    return f"{us:.1f}" if us >= 10 else f"{us:.2f}"


def x_axis(scale: Scale, ticks: list[float], y: int, top: int, fmt, label: str) -> str:
    """Ticks and labels under the plot at pixel row ``y``, grid lines up to ``top``, and
    the axis title centred below."""
    parts = [line(scale.start, y, scale.stop, y, stroke=INK)]
    for t in ticks:
        x = scale(t)
        parts.append(line(x, top, x, y, stroke=GRID))
        parts.append(line(x, y, x, y + 4, stroke=INK))
        parts.append(text(x, y + 16, fmt(t), text_anchor="middle"))
    middle = (scale.start + scale.stop) // 2
    parts.append(text(middle, y + 32, label, text_anchor="middle", fill=INK))
    return group(parts)


def y_axis(scale: Scale, ticks: list[float], x: int, right: int, fmt, label: str) -> str:
    """Ticks and labels left of the plot at pixel column ``x``, grid lines across to
    ``right``, and the axis title written upwards at the far left."""
    parts = [line(x, scale.start, x, scale.stop, stroke=INK)]
    for t in ticks:
        y = scale(t)
        parts.append(line(x, y, right, y, stroke=GRID))
        parts.append(line(x - 4, y, x, y, stroke=INK))
        parts.append(text(x - 6, y + 4, fmt(t), text_anchor="end"))
    middle = (scale.start + scale.stop) // 2
    parts.append(
        text(14, middle, label, text_anchor="middle", transform=f"rotate(-90 14 {middle})")
    )
    return group(parts)


def swatch(colour: str) -> str:
    """A small coloured square for an HTML legend line."""
    return (
        f'<span style="display:inline-block;width:10px;height:10px;'
        f'background:{esc(colour)};margin:0 4px 0 10px"></span>'
    )


def figure(chart: str, caption: str) -> str:
    """A chart with its caption (HTML), as the report's sections show them."""
    return f'<figure class="kc-figure">{chart}<figcaption>{caption}</figcaption></figure>'
