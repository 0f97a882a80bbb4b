"""The report's memory section: a planned graph's arena as a timeline, the arena's size
for each batch size, and ``kcompile memory``'s text.

The timeline reads like a Gantt chart of the arena. Left to right runs the schedule
(node index: the kernel that makes a value, up to the last one that reads it; graph
outputs live to the end); bottom to top runs the offset in the arena. Each bar is one
buffer that owns arena storage, as tall as its bytes at the plan's ``max_batch`` and as
wide as its live range, coloured by what it holds (activations kept for backward,
gradients, scratch: the classes ``kcompile memory`` sums). Bars never overlap: two
buffers live at once have disjoint bytes, and a buffer reuses the bytes of one that died.
The dashed line is the peak, the arena's size; a tall, empty band below it is memory a
better order or layout could save. Views (reshapes) and results written in place into
a weight or an optimizer slot own no storage: the legend counts them.
"""

from __future__ import annotations

from typing import Any

from kcompile.ir import Graph
from kcompile.ir.memory import MemoryPlan
from kcompile.ir.printer import Namer
from kcompile.passes.memory import buffer_kinds, memory_report
from kcompile.report import svg
from kcompile.report.section import Section

BATCHES = (1, 32, 128, 512, 2048)
KIND_COLOURS = {
    "activations kept for backward": "#4e79a7",
    "gradients": "#e15759",
    "scratch": "#f1a340",
}
OTHER_COLOUR = "#9d9d9d"
WIDTH, HEIGHT = 960, 380
LEFT, RIGHT, TOP, BOTTOM = 72, 16, 16, 44
CURVE_WIDTH, CURVE_HEIGHT = 520, 260


def memory_section(graph: Graph, batches: tuple[int, ...] = BATCHES) -> Section:
    """The section ``memory``: the arena timeline of planned ``graph``, the batch → arena
    curve at ``batches``, and ``memory_report``'s text. ``data``: ``graph``,
    ``max_batch``, ``arena_bytes``, ``nodes``, ``buffers`` (one per owned allocation:
    ``value``, ``layer``, ``start``, ``end``, ``offset``, ``bytes``, ``kind``),
    ``unowned`` (views and in-place results: ``value``, ``layer``, ``bytes``, ``kind``,
    ``into``), ``kinds`` (kind → ``count``, ``bytes``) and ``curve`` ([batch, bytes])."""
    plan = planned(graph)
    if not batches or any(not isinstance(b, int) or b < 1 for b in batches):
        raise ValueError(f"batches must be positive integers, got {batches!r}")
    buffers, unowned = buffer_rows(graph)
    kinds = _kind_totals(buffers + unowned)
    report = memory_report(graph, tuple(batches))
    curve = [[b, report.peaks[b]] for b in batches]  # plan.layout(b)'s arena bytes
    data = {
        "graph": graph.name,
        "max_batch": plan.max_batch,
        "arena_bytes": plan.arena_bytes,
        "nodes": len(graph.nodes),
        "buffers": buffers,
        "unowned": unowned,
        "kinds": kinds,
        "curve": curve,
    }
    html = "".join(
        [
            svg.figure(timeline_svg(data), _TIMELINE_CAPTION),
            _legend(_kind_totals(buffers), _kind_totals(unowned)),
            svg.figure(curve_svg(curve, plan.max_batch, plan.arena_bytes), _CURVE_CAPTION),
            f'<pre class="kc-text">{svg.esc(report.text())}</pre>',
        ]
    )
    return Section("memory", f"Memory plan of {graph.name}", html, data)


def planned(graph: Graph) -> MemoryPlan:
    """``graph``'s memory plan; an error naming the graph if it has none or is a loop body."""
    plan = getattr(graph, "memory", None)
    if plan is None:
        name = getattr(graph, "name", repr(graph))
        raise ValueError(f"graph {name} has no memory plan: expected a planned graph")
    if plan.per_row_bytes is not None:
        raise ValueError(
            f"graph {graph.name} is a loop body (its storage is a fixed and a per-row "
            "region): expected a step's graph"
        )
    return plan


def buffer_rows(graph: Graph) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(one row per allocation owning arena bytes, one per view or in-place result), in
    schedule order, values named as the graph's text names them."""
    plan = graph.memory
    name = Namer(graph)
    for node in graph.nodes:  # number the results as print_graph does
        for v in node.outputs:
            name(v)
    kinds = buffer_kinds(graph)  # the classes memory_report sums
    owned, unowned = [], []
    for v, a in plan.allocations.items():
        row = {"value": name(v), "layer": v.node.layer if v.node else "", "kind": kinds[v]}
        size = a.size.at(plan.max_batch)
        if a.alias is None:
            live = {"start": a.start, "end": a.end, "offset": a.offset, "bytes": size}
            owned.append(row | live)
        else:
            unowned.append(row | {"bytes": size, "into": name(a.alias)})
    return owned, unowned


def _kind_totals(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = {}
    for row in rows:
        entry = totals.setdefault(row["kind"], {"count": 0, "bytes": 0})
        entry["count"] += 1
        entry["bytes"] += row["bytes"]
    return totals


def timeline_scales(nodes: int, arena_bytes: int) -> tuple[svg.Scale, svg.Scale]:
    """(schedule position → x, arena offset → y) of the timeline; a bar spans
    [start, end + 1) so that a value made and last read by one node is one column wide."""
    x = svg.Scale(0, nodes + 1, LEFT, WIDTH - RIGHT)
    y = svg.Scale(0, max(arena_bytes, 1) * 1.08, HEIGHT - BOTTOM, TOP)
    return x, y


def timeline_svg(data: dict[str, Any]) -> str:
    """The arena over the schedule: one bar per owned buffer, the peak as a dashed line."""
    xs, ys = timeline_scales(data["nodes"], data["arena_bytes"])
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    ticks = [t for t in svg.linear_ticks(0, data["nodes"], 10) if t == int(t)]
    parts = [
        svg.x_axis(xs, ticks, bottom, TOP, svg.fmt_number, "position in the schedule (node)"),
        svg.y_axis(ys, svg.byte_ticks(data["arena_bytes"]), LEFT, right, svg.fmt_bytes, ""),
        svg.text(LEFT, TOP - 4, "offset in the arena", fill=svg.INK),
    ]
    by_kind: dict[str, list[str]] = {}
    for b in data["buffers"]:
        by_kind.setdefault(b["kind"], []).append(_bar(b, xs, ys))
    # A white outline separates neighbours, but would wash out bars a few pixels tall.
    heights = sorted(ys(0) - ys(b["bytes"]) for b in data["buffers"])
    tall = bool(heights) and heights[len(heights) // 2] >= 4
    outline = {"stroke": "#fff", "stroke_width": "0.5"} if tall else {}
    for kind, bars in sorted(by_kind.items(), key=lambda kb: _kind_order(kb[0])):
        parts.append(svg.group(bars, fill=_colour(kind), **outline))
    peak = ys(data["arena_bytes"])
    label = f"peak: arena {svg.fmt_bytes(data['arena_bytes'])} at batch {data['max_batch']}"
    parts.append(svg.line(LEFT, peak, right, peak, stroke="#000", stroke_dasharray="5 3"))
    parts.append(svg.text(right - 4, peak - 4, label, text_anchor="end", font_weight="bold"))
    title = f"arena of {data['graph']}: buffers by schedule position and offset"
    return svg.svg(WIDTH, HEIGHT, parts, title)


def _bar(b: dict[str, Any], xs: svg.Scale, ys: svg.Scale) -> str:
    x, x_end = xs(b["start"]), xs(b["end"] + 1)
    y_low, y_high = ys(b["offset"]), ys(b["offset"] + b["bytes"])
    height = max(2, y_low - y_high)  # a buffer too small for a pixel still shows
    tip = (
        f"{b['value']} ({b['layer'] or 'no layer'}): {svg.fmt_bytes(b['bytes'])} at offset "
        f"{svg.fmt_bytes(b['offset'])}, live from node {b['start']} to {b['end']}; {b['kind']}"
    )
    return svg.rect(x, y_low - height, max(1, x_end - x), height, tip, data_value=b["value"])


def curve_svg(curve: list[list[int]], max_batch: int, arena_bytes: int) -> str:
    """Arena bytes against the batch size, both on log scales (base 2), the plan's own
    batch ringed. Sizes linear in the batch make a straight line of slope 1; a flatter
    start is the fixed-size buffers (weight gradients, optimizer scratch)."""
    points = [(b, n) for b, n in curve if n > 0]
    if not points:
        return svg.svg(CURVE_WIDTH, 40, [svg.text(8, 24, "no buffers in the arena")], "empty")
    batches = [b for b, _ in points] + [max_batch]
    sizes = [n for _, n in points] + [max(arena_bytes, 1)]
    xs = svg.Scale(*svg.log_bounds(min(batches), max(batches), 2), LEFT, CURVE_WIDTH - 24, True)
    ys = svg.Scale(*svg.log_bounds(min(sizes), max(sizes), 2), CURVE_HEIGHT - BOTTOM, TOP, True)
    bottom = CURVE_HEIGHT - BOTTOM
    parts = [
        svg.x_axis(xs, svg.log_ticks(xs.lo, xs.hi, 2, 7), bottom, TOP, svg.fmt_number, "batch"),
        svg.y_axis(ys, svg.log_ticks(ys.lo, ys.hi, 2, 6), LEFT, xs.stop, svg.fmt_bytes, ""),
        svg.text(LEFT, TOP - 4, "arena bytes", fill=svg.INK),
        svg.polyline([(xs(b), ys(n)) for b, n in points], stroke="#4e79a7", stroke_width=2),
    ]
    for b, n in points:
        tip = f"batch {b}: arena {svg.fmt_bytes(n)} ({n} bytes)"
        parts.append(svg.circle(xs(b), ys(n), 3, tip, fill="#4e79a7", data_batch=b))
    tip = f"the plan's batch {max_batch}: arena {svg.fmt_bytes(arena_bytes)}"
    ring = svg.circle(xs(max_batch), ys(max(arena_bytes, 1)), 6, tip, fill="none")
    parts.append(svg.group(ring, stroke="#000", stroke_width=1.5))
    return svg.svg(CURVE_WIDTH, CURVE_HEIGHT, parts, "arena bytes by batch size")


def _kind_order(kind: str) -> tuple[int, str]:
    names = list(KIND_COLOURS)
    return (names.index(kind) if kind in names else len(names), kind)


def _colour(kind: str) -> str:
    return KIND_COLOURS.get(kind, OTHER_COLOUR)


def _legend(owned: dict[str, dict[str, int]], unowned: dict[str, dict[str, int]]) -> str:
    """A line of swatches for the kinds that own storage, a line for those that do not."""

    def entry(kind: str, totals: dict[str, int]) -> str:
        return f"{svg.esc(kind)}: {totals['count']} ({svg.fmt_bytes(totals['bytes'])})"

    kinds = sorted(owned, key=_kind_order)
    swatches = "".join(svg.swatch(_colour(k)) + entry(k, owned[k]) for k in kinds)
    lines = [f'<p class="kc-legend">{swatches}</p>']
    if unowned:
        others = "; ".join(entry(k, t) for k, t in unowned.items())
        lines.append(f'<p class="kc-legend">no storage of their own: {others}</p>')
    return "".join(lines)


_TIMELINE_CAPTION = (
    "The arena over the schedule: each bar is a buffer, from the node that makes it to "
    "the last node that reads it, at its offset, as tall as its bytes at the plan's batch. "
    "Bars never overlap: a buffer reuses the bytes of buffers that died. The dashed line "
    "is the peak, the arena's size. Hover over a bar to name its value."
)
_CURVE_CAPTION = (
    "The arena's size for each batch size (log scales; the same intervals laid out again "
    "for that batch), the plan's own batch ringed: the curve <code>kcompile memory</code> "
    "prints."
)
