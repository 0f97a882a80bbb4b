"""The report's profile section: where a step's time goes, kernel by kernel, and how
close each kernel comes to what the machine can do.

Two pictures and a table, from one ``KernelProfile`` (``kcompile profile``'s numbers):

- kernels by time: a horizontal bar for each of the slowest kernels, as long as its
  microseconds per step call; beside it its share of the step, and its rate: GFLOP/s
  for a kernel that runs products (with its share of the peak of the unit it ran on),
  GB/s of the bytes it reads and writes for the others (with their share of the measured
  copy bandwidth). Bars are coloured by that unit; memory kernels are orange.
- the roofline: each kernel with products is a point, at its arithmetic intensity
  (flops per byte it reads and writes, across) and its achieved GFLOP/s (up), both on
  log scales. The roofs are what the machine allows: the slanted one is the copy
  bandwidth times the intensity (a kernel left of where it meets a flat roof is
  memory-bound at best), the flat ones each unit's peak. A point's distance below the
  roof over it is the speed left on the table.

Every bar, point and table row carries ``data-kernel`` (the profile's kernel name, e.g.
``k12_fused``), which the page uses to link it to that kernel's node in the graph.
"""

from __future__ import annotations

import math
from typing import Any

from kcompile.report import svg
from kcompile.report.section import Section
from kcompile.tools.inspect import KernelProfile

TOP_KERNELS = 20
ENGINE_NAMES = {
    "fma": "FMA peak",
    "fma_i8": "FMA peak (int8 in f32)",
    "madd_i8": "int8 multiply-add peak",
    "amx_bf16": "AMX-BF16 peak",
    "dp_bf16": "AVX512_BF16 peak",
}
ENGINE_COLOURS = {
    "fma": "#4e79a7",
    "fma_i8": "#76b7b2",
    "madd_i8": "#59a14f",
    "amx_bf16": "#b07aa1",
    "dp_bf16": "#e15759",
}
MEMORY_COLOUR = "#f1a340"
ROOF_COLOUR = "#555"
WIDTH = 960
LABEL_WIDTH, BAR_WIDTH, ROW = 168, 380, 18
ROOF_HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 420, 72, 32, 20, 44


def kernel_times(profile: KernelProfile) -> dict[str, dict[str, Any]]:
    """Kernel name → ``us`` (µs per step call), ``share`` (of the step's time in
    kernels), ``rate`` (the rate text ``kcompile profile`` prints, spaces collapsed; ""
    inside loops, whose work is not counted) and ``calls`` (calls per step call: 1, or a
    loop body's trip count). The one source of these numbers for every section."""
    _check(profile)
    total = sum(r[3] for r in profile.rows)
    times = {}
    for rows, inside in ((profile.rows, False), (profile.inner, True)):
        for name, _, count, seconds in rows:
            # KernelProfile has no public accessor for the rate text yet.
            rate = "" if inside else " ".join(profile.rate(name, seconds).split())
            times[name] = {
                "us": seconds / profile.calls * 1e6,
                "share": seconds / total if total else 0.0,
                "rate": rate,
                "calls": count // profile.calls,
            }
    return times


def kernel_rows(profile: KernelProfile) -> list[dict[str, Any]]:
    """The kernels of the step (not those inside loops), slowest first: ``name``,
    ``what``, ``us``, ``share``, ``rate`` (from ``kernel_times``), ``flops`` and ``bytes``
    a call, ``intensity`` (flops per byte; None without bytes), ``gflops``, ``gbs``,
    ``engine`` (the unit its products ran on) and ``peak_share`` (GFLOP/s over that
    unit's peak for a kernel with products, else GB/s over the copy bandwidth; None
    without a machine)."""
    times = kernel_times(profile)
    machine = profile.machine
    rows = []
    for name, what, _, seconds in sorted(profile.rows, key=lambda r: -r[3]):
        flops, nbytes, engine = profile.work.get(name, (0.0, 0.0, "fma"))
        per_call = seconds / profile.calls
        gflops = flops / per_call / 1e9 if per_call else 0.0
        gbs = nbytes / per_call / 1e9 if per_call else 0.0
        peak_share = None
        if machine is not None:
            peak_share = gflops / machine.engine_peak(engine) if flops else gbs / machine.copy_gbs
        rows.append(
            {"name": name, "what": what}
            | {k: times[name][k] for k in ("us", "share", "rate")}
            | {"flops": flops, "bytes": nbytes, "intensity": flops / nbytes if nbytes else None}
            | {"gflops": gflops, "gbs": gbs, "engine": engine, "peak_share": peak_share}
        )
    return rows


def roofs(profile: KernelProfile) -> dict[str, float]:
    """Engine → peak GFLOP/s of the flat roofs drawn: the FMAs', the int8 multiply-adds'
    when a kernel ran on them, AMX-BF16's (else AVX512_BF16's) when the machine has it or
    a kernel ran there.
    Empty without a machine."""
    machine = profile.machine
    if machine is None:
        return {}
    used = {engine for flops, _, engine in profile.work.values() if flops}
    engines = ["fma"]
    if "madd_i8" in used:
        engines.append("madd_i8")
    if machine.amx or "amx_bf16" in used:
        engines.append("amx_bf16")
    elif machine.dp_bf16 or "dp_bf16" in used:
        engines.append("dp_bf16")
    return {e: machine.engine_peak(e) for e in engines}


def profile_section(profile: KernelProfile, top: int = TOP_KERNELS) -> Section:
    """The section ``profile``: kernels by time (the ``top`` slowest), the roofline, and a
    table of every kernel. ``data``: ``step``, ``batch``, ``calls``, ``total_us``,
    ``machine`` (its description or None), ``copy_gbs``, ``roofs`` (engine → GFLOP/s),
    ``kernels`` (``kernel_rows``), ``inner`` (kernels inside loops: ``name``, ``what``,
    ``us``, ``share``, ``calls``)."""
    rows = kernel_rows(profile)
    times = kernel_times(profile)
    machine = profile.machine
    inner = [
        {"name": n, "what": what} | {k: times[n][k] for k in ("us", "share", "calls")}
        for n, what, _, _ in sorted(profile.inner, key=lambda r: -r[3])
    ]
    data = {
        "step": profile.step,
        "batch": profile.batch,
        "calls": profile.calls,
        "total_us": sum(r[3] for r in profile.rows) / profile.calls * 1e6,
        "machine": machine.describe() if machine is not None else None,
        "copy_gbs": machine.copy_gbs if machine is not None else None,
        "roofs": roofs(profile),
        "kernels": rows,
        "inner": inner,
    }
    head = (
        f"{profile.step} step at batch {profile.batch}, {profile.calls} calls: "
        f"{data['total_us']:.1f} µs per call in kernels"
    )
    if data["machine"]:
        head += f". Machine: {data['machine']}"
    html = "".join(
        [
            f"<p>{svg.esc(head)}</p>",
            svg.figure(bars_svg(rows[:top]), _BARS_CAPTION),
            svg.figure(roofline_svg(rows, data["roofs"], data["copy_gbs"]), _ROOF_CAPTION),
            kernel_table(rows),
            inner_table(inner),
        ]
    )
    title = f"Kernel profile: {profile.step} step at batch {profile.batch}"
    return Section("profile", title, html, data)


def _check(profile: Any) -> None:
    if not isinstance(profile, KernelProfile):
        raise TypeError(
            f"expected a KernelProfile (kcompile.tools.inspect.profile_step), got "
            f"{type(profile).__name__}"
        )
    if profile.calls < 1:
        raise ValueError(f"a profile of {profile.calls} calls: expected at least one call")


def _colour(row: dict[str, Any]) -> str:
    return ENGINE_COLOURS.get(row["engine"], "#888") if row["flops"] else MEMORY_COLOUR


def _rate_words(row: dict[str, Any]) -> str:
    """``45.3 GFLOP/s, 24% of FMA peak`` or ``3.1 GB/s, 16% of copy bandwidth``."""
    if row["flops"]:
        rate = f"{row['gflops']:.1f} GFLOP/s"
        of = ENGINE_NAMES.get(row["engine"], row["engine"])
    else:
        rate, of = f"{row['gbs']:.1f} GB/s", "copy bandwidth"
    if row["peak_share"] is None:
        return rate
    return f"{rate}, {row['peak_share']:.0%} of {of}"


def bars_svg(rows: list[dict[str, Any]]) -> str:
    """Kernels by time: one bar per row (slowest first), µs per call across."""
    if not rows:
        return svg.svg(WIDTH, 40, [svg.text(8, 24, "no kernels were timed")], "empty")
    height = TOP + ROW * len(rows) + BOTTOM
    longest = max(r["us"] for r in rows) or 1.0
    xs = svg.Scale(0, longest, LABEL_WIDTH, LABEL_WIDTH + BAR_WIDTH)
    bottom = height - BOTTOM
    ticks = svg.linear_ticks(0, longest, 6)
    parts = [svg.x_axis(xs, ticks, bottom, TOP - 4, svg.fmt_number, "µs per step call")]
    for i, r in enumerate(rows):
        y = TOP + ROW * i
        end = xs(r["us"])
        tip = f"{r['name']}: {svg.fmt_us(r['us'])} µs a call, {r['share']:.1%}; {r['what']}"
        note = f"{svg.fmt_us(r['us'])} µs · {r['share']:.1%} · {_rate_words(r)}"
        parts.append(svg.text(LABEL_WIDTH - 6, y + 12, r["name"], text_anchor="end"))
        width = max(1, end - LABEL_WIDTH)
        parts.append(
            svg.rect(
                LABEL_WIDTH, y + 3, width, ROW - 5, tip, fill=_colour(r), data_kernel=r["name"]
            )
        )
        parts.append(svg.text(end + 6, y + 12, note, fill=svg.INK))
    return svg.svg(WIDTH, height, parts, "kernels by time per step call")


def roofline_svg(
    rows: list[dict[str, Any]], peaks: dict[str, float], copy_gbs: float | None
) -> str:
    """The roofline: kernels with products at (flops per byte, GFLOP/s), log-log, under
    the copy-bandwidth roof and each unit's flat peak."""
    points = [r for r in rows if r["flops"] and r["bytes"] and r["gflops"] > 0]
    if not points:
        note = "no kernel of this step runs products: the table reads each against the bandwidth"
        return svg.svg(WIDTH, 40, [svg.text(8, 24, note)], "no roofline")
    xs, ys = roofline_scales(points, peaks, copy_gbs)
    bottom, right = ROOF_HEIGHT - BOTTOM, WIDTH - RIGHT
    parts = [
        svg.x_axis(xs, svg.log_ticks(xs.lo, xs.hi), bottom, TOP, svg.fmt_number, ""),
        svg.y_axis(ys, svg.log_ticks(ys.lo, ys.hi), LEFT, right, svg.fmt_number, ""),
        svg.text(LEFT, TOP - 6, "achieved GFLOP/s", fill=svg.INK),
        svg.text(right, bottom + 32, "arithmetic intensity (flops per byte)", text_anchor="end"),
    ]
    if copy_gbs and peaks:
        parts.append(_roofs(xs, ys, peaks, copy_gbs))
    for r in points:
        x, y = xs(r["intensity"]), ys(r["gflops"])
        tip = (
            f"{r['name']}: {r['intensity']:.3g} flops per byte, {_rate_words(r)}; "
            f"{svg.fmt_us(r['us'])} µs a call ({r['share']:.1%}); {r['what']}"
        )
        parts.append(svg.circle(x, y, 4, tip, fill=_colour(r), data_kernel=r["name"]))
    parts += _point_labels(points, xs, ys)
    return svg.svg(WIDTH, ROOF_HEIGHT, parts, "roofline: kernels against the machine's peaks")


def _point_labels(points: list[dict[str, Any]], xs: svg.Scale, ys: svg.Scale) -> list[str]:
    """Names beside the slowest points (five at most), skipping any that would cover a
    name already written (a kernel's name is in its point's tooltip either way)."""
    placed: list[tuple[int, int, int]] = []  # x, y, width of the names written
    labels = []
    for r in sorted(points, key=lambda r: -r["us"]):
        x, y = xs(r["intensity"]) + 6, ys(r["gflops"]) - 5
        width = 6 * len(r["name"])  # about 6 px a character at 10 px
        if any(abs(y - py) < 12 and x < px + pw and px < x + width for px, py, pw in placed):
            continue
        placed.append((x, y, width))
        labels.append(svg.text(x, y, r["name"], font_size="10px"))
        if len(labels) == 5:
            break
    return labels


def roofline_scales(
    points: list[dict[str, Any]], peaks: dict[str, float], copy_gbs: float | None
) -> tuple[svg.Scale, svg.Scale]:
    """(intensity → x, GFLOP/s → y), whole decades holding every point and every ridge
    (where the bandwidth roof meets a flat one)."""
    across = [r["intensity"] for r in points]
    up = [r["gflops"] for r in points] + list(peaks.values())
    if copy_gbs:
        across += [p / copy_gbs for p in peaks.values()]
    x_lo, x_hi = svg.log_bounds(min(across) / 1.5, max(across) * 1.5)
    y_lo, y_hi = svg.log_bounds(min(up) / 1.5, max(up) * 1.5)
    return (
        svg.Scale(x_lo, x_hi, LEFT, WIDTH - RIGHT, True),
        svg.Scale(y_lo, y_hi, ROOF_HEIGHT - BOTTOM, TOP, True),
    )


def _roofs(xs: svg.Scale, ys: svg.Scale, peaks: dict[str, float], copy_gbs: float) -> str:
    """The slanted bandwidth roof up to the highest peak, and each flat peak from its ridge."""
    top = max(peaks.values())
    start = max(xs.lo, ys.lo / copy_gbs)  # where copy_gbs × intensity enters the plot
    end = min(xs.hi, top / copy_gbs)
    a, b = (xs(start), ys(copy_gbs * start)), (xs(end), ys(copy_gbs * end))
    parts = [svg.line(*a, *b, stroke=ROOF_COLOUR, stroke_width=2)]
    angle = math.degrees(math.atan2(b[1] - a[1], b[0] - a[0]))
    lx, ly = a[0] + (b[0] - a[0]) // 5, a[1] + (b[1] - a[1]) // 5 - 6
    label = f"memory: {copy_gbs:.1f} GB/s × intensity"
    parts.append(svg.text(lx, ly, label, transform=f"rotate({angle:.0f} {lx} {ly})"))
    for engine, peak in sorted(peaks.items(), key=lambda ep: ep[1]):
        ridge = max(xs.lo, peak / copy_gbs)
        y = ys(peak)
        colour = ENGINE_COLOURS.get(engine, ROOF_COLOUR)
        parts.append(svg.line(xs(ridge), y, xs.stop, y, stroke=colour, stroke_width=2))
        name = f"{ENGINE_NAMES.get(engine, engine)} {peak:.0f} GFLOP/s"
        parts.append(svg.text(xs.stop - 4, y - 5, name, text_anchor="end", fill=colour))
    return svg.group(parts)


# (heading, whether its cells are numbers) of the tables' columns
KERNEL_COLUMNS = (
    ("kernel", False),
    ("µs/call", True),
    ("share", True),
    ("GFLOP/s", True),
    ("GB/s", True),
    ("flops/byte", True),
    ("unit", False),
    ("of peak", True),
    ("computes", False),
)
INNER_COLUMNS = (
    ("kernel", False),
    ("µs/step call", True),
    ("share", True),
    ("calls/step call", True),
    ("computes", False),
)


def kernel_table(rows: list[dict[str, Any]]) -> str:
    """Every kernel of the step, slowest first, with the numbers behind both pictures."""
    body = [
        (
            r["name"],
            svg.fmt_us(r["us"]),
            f"{r['share']:.1%}",
            f"{r['gflops']:.1f}" if r["flops"] else "",
            f"{r['gbs']:.1f}",
            f"{r['intensity']:.3g}" if r["flops"] and r["intensity"] else "",
            r["engine"] if r["flops"] else "memory",
            f"{r['peak_share']:.0%}" if r["peak_share"] is not None else "",
            r["what"],
        )
        for r in rows
    ]
    return _table(KERNEL_COLUMNS, body, "kernels of the step")


def inner_table(inner: list[dict[str, Any]]) -> str:
    """Kernels inside loop bodies: their time is part of their loop's."""
    if not inner:
        return ""
    body = [
        (r["name"], svg.fmt_us(r["us"]), f"{r['share']:.1%}", str(r["calls"]), r["what"])
        for r in inner
    ]
    return _table(INNER_COLUMNS, body, "inside loops (part of their loop's time)")


def _table(columns: tuple[tuple[str, bool], ...], rows: list[tuple[str, ...]], caption: str) -> str:
    """A table whose rows each start with a kernel name, which names the row (data-kernel)."""

    def cell(tag: str, content: str, number: bool) -> str:
        return f'<{tag} class="kc-num">{content}</{tag}>' if number else f"<{tag}>{content}</{tag}>"

    head = "".join(cell("th", svg.esc(name), number) for name, number in columns)
    body = []
    for row in rows:
        first = cell("td", f"<code>{svg.esc(row[0])}</code>", False)
        rest = "".join(cell("td", svg.esc(c), n) for c, (_, n) in zip(row[1:], columns[1:]))
        body.append(f"<tr{svg.attrs(data_kernel=row[0])}>{first}{rest}</tr>")
    return (
        f'<table class="kc-table"><caption>{svg.esc(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


_BARS_CAPTION = (
    "The slowest kernels, by microseconds per step call, with their share of the step and "
    "their rate: GFLOP/s against the peak of the unit their products ran on, or, for "
    "kernels without products (orange), GB/s read and written against the measured copy "
    "bandwidth. Hover over a bar for what the kernel computes."
)
_ROOF_CAPTION = (
    "The roofline (log scales): each kernel with products at its flops per byte (across) "
    "and achieved GFLOP/s (up). The slanted roof is the copy bandwidth times the "
    "intensity, the flat ones the peaks; a point far below the roof over it has speed to "
    "gain, one left of a ridge is bound by memory."
)
