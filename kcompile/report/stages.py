"""The report's ``graphs`` section: the graph after tracing, after autodiff (a train
step), after every pass, and planned, each drawn by Graphviz (see ``graph_svg`` for what a
picture shows), with a selector of stages, a legend of the layers' colours, and a record
of every node that a click on it shows.

Counts said of each stage: ``nodes``, ``len(graph.nodes)`` of the stage's text parsed;
``kernels``, how many kernels the stage would compile to as it stands, by the code
generator's own rule (``codegen.lowering.step.kernel_nodes`` over the stage's buffer plan:
every node but a view sharing its operand's buffer, which only a planned graph has);
``fused``, how many nodes run a body graph as one kernel (``traits.kernel_body``).

On the last (planned) stage every node that gets a kernel carries its kernel's name,
``k{i}_{op}``, the name ``kcompile profile`` reports (``data-kernel`` in the picture,
``kernel`` in its record), and the ops of a loop's body that get kernels of their own
carry theirs (``k{i}_scan_k{j}_{op}``).
"""

from __future__ import annotations

import html
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kcompile.ir import Graph, Node, parse_graph
from kcompile.ir.buffers import plan_buffers
from kcompile.ir.printer import Namer
from kcompile.report.graph_svg import (
    BODY_LIMIT,
    DOT_SECONDS,
    Drawing,
    LayoutTimeout,
    graph_dot,
    inline_svg,
    layer_colours,
    run_dot,
)
from kcompile.report.node_records import input_record, node_lines, node_record, output_record
from kcompile.report.section import Section

MAX_NODES = 1000  # more nodes than this and a stage is not laid out (dot: ~10 s, ~300 KB)
JOBS = 2  # dot processes run at once


def kernel_names(graph: Graph) -> dict[Node, str]:
    """Each node of ``graph`` that gets a kernel, with its kernel's name, by the code
    generator's rule over the graph's own buffer plan."""
    from kcompile.codegen.lowering.step import kernel_nodes

    return {node: name for name, node in kernel_nodes(graph, plan_buffers(graph))}


def body_kernel_names(node: Node, name: str) -> dict[int, str]:
    """For a loop (``traits.nested_graph``) whose kernel is ``name``: the kernel of each
    op of its body that gets one, by the op's index in the body."""
    from kcompile.codegen.lowering.step import kernel_nodes

    body = node.attrs["body"]
    index = {n: j for j, n in enumerate(body.nodes)}
    return {index[n]: k for k, n in kernel_nodes(body, plan_buffers(body), f"{name}_")}


def check_stages(stages: Any, who: str = "stage_section") -> None:
    """Refuse anything but what ``inspect.pipeline_stages`` returns, saying so."""
    ok = isinstance(stages, list | tuple) and all(
        isinstance(s, tuple | list) and len(s) == 2 and all(isinstance(x, str) for x in s)
        for s in stages
    )
    if not ok or not stages:
        raise ValueError(
            f"{who} expects a non-empty list of (stage name, graph text) pairs, as "
            "kcompile.tools.inspect.pipeline_stages returns them"
        )


def _records(
    graph: Graph, kernels: dict[Node, str], profile: dict[str, dict]
) -> tuple[dict[str, dict], dict[int, str], dict[tuple[int, int], str]]:
    """Every node's, input's and output's record (keys ``n{i}``, ``in{k}``, ``out{j}``),
    with kernels and their times where ``kernels`` names them; the kernel of each node
    and each loop body's op, for the picture."""
    names = Namer(graph)
    lines = node_lines(graph, names)
    records: dict[str, dict] = {}
    by_index: dict[int, str] = {}
    inside: dict[tuple[int, int], str] = {}
    for k in range(len(graph.inputs)):
        records[f"in{k}"] = input_record(graph, k)
    for i, (node, line) in enumerate(zip(graph.nodes, lines, strict=True)):
        record = records[f"n{i}"] = node_record(node, line)
        kernel = kernels.get(node)
        if kernel is None:
            continue
        by_index[i] = record["kernel"] = kernel
        if kernel in profile:
            record["profile"] = profile[kernel]
        if node.traits.nested_graph:
            body = body_kernel_names(node, kernel)
            record["inside"] = []
            for j, name in body.items():
                inside[(i, j)] = name
                entry = {"kernel": name, "op": node.attrs["body"].nodes[j].op}
                if name in profile:
                    entry["profile"] = profile[name]
                record["inside"].append(entry)
    for j in range(len(graph.outputs)):
        records[f"out{j}"] = output_record(graph, j, names)
    return records, by_index, inside


def _lay_out(drawing: Drawing, timeout: float) -> tuple[str | None, float]:
    """(the inline SVG, or None when dot ran out of time; dot's seconds)."""
    start = time.perf_counter()
    try:
        svg = run_dot(drawing.dot, timeout)
    except LayoutTimeout:
        return None, time.perf_counter() - start
    seconds = time.perf_counter() - start
    return inline_svg(svg, drawing.attrs), seconds


def stage_section(
    stages: list[tuple[str, str]],
    kernels: dict[str, dict] | None = None,
    *,
    max_nodes: int = MAX_NODES,
    timeout: float = DOT_SECONDS,
    body_limit: int = BODY_LIMIT,
    jobs: int = JOBS,
) -> Section:
    """The ``graphs`` section of ``stages`` (``inspect.pipeline_stages``: traced,
    autodiff for a train step, each pass, the planned stage last). ``kernels`` (kernel
    name -> ``{"us", "rate", "share"}``, a profile's numbers) are merged into the last
    stage's records under ``profile``. A stage of more than ``max_nodes`` nodes, or that
    dot cannot lay out in ``timeout`` seconds, says so in place of its picture; a stage
    whose text is the one before it unchanged shows that stage's picture.

    ``data``: ``layers`` (top-level layer -> colour), ``last`` (the last stage's index),
    ``unplaced`` (names in ``kernels`` no node of the last stage has) and ``stages``, one
    dict a stage: ``name``, ``nodes``, ``kernels``, ``fused``; then either ``same_as``
    (the index of the earlier stage with the same text), or ``svg_bytes`` and
    ``dot_seconds`` (0 when not drawn), ``records`` (see ``_records``: for a stage
    drawn, and for the last one always), ``fast_layout`` (whether dot was asked for the
    fast layout, ``graph_svg.FAST_FROM``) when it was given to dot, and ``message`` when
    it has no picture."""
    check_stages(stages)
    profile = dict(kernels or {})
    graphs = _parse_each(stages)
    colours = layer_colours(_layers(graphs))
    last = len(stages) - 1
    first_with: dict[str, int] = {}
    entries: list[dict[str, Any]] = []
    drawings: dict[int, Drawing] = {}
    placed: set[str] = set()
    for k, ((name, text), graph) in enumerate(zip(stages, graphs, strict=True)):
        own = kernel_names(graph)
        entry: dict[str, Any] = {
            "name": name,
            "nodes": len(graph.nodes),
            "kernels": len(own),
            "fused": sum(1 for n in graph.nodes if n.traits.kernel_body),
        }
        entries.append(entry)
        same = first_with.setdefault(text, k)
        if same != k and k != last:  # the last stage always has its kernels drawn
            entry["same_as"] = same
            continue
        entry.update(svg_bytes=0, dot_seconds=0.0)
        big = len(graph.nodes) > max_nodes
        if big:
            entry["message"] = (
                f"Stage {name} has {len(graph.nodes)} nodes, more than the {max_nodes} this "
                "report lays out; its IR is in the passes section (and `kcompile ir`)."
            )
        if big and k != last:
            continue  # no records: nothing to click
        named = own if k == last else {}
        entry["records"], by_index, inside = _records(graph, named, profile if k == last else {})
        if k == last:
            placed = set(named.values()) | set(inside.values())
        if not big:
            drawings[k] = graph_dot(graph, colours, by_index, inside, body_limit)
            entry["fast_layout"] = drawings[k].fast
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        laid = dict(zip(drawings, pool.map(lambda d: _lay_out(d, timeout), drawings.values())))
    pictures: dict[int, str] = {}
    for k, (svg, seconds) in laid.items():
        entry = entries[k]
        entry["dot_seconds"] = round(seconds, 3)
        if svg is not None:
            pictures[k] = svg
            entry["svg_bytes"] = len(svg.encode())
            continue
        entry["message"] = (
            f"Graphviz's dot did not lay out stage {entry['name']} ({entry['nodes']} "
            f"nodes) within {timeout:g} s; its IR is in the passes section."
        )
        if k != last:
            del entry["records"]
    data = {
        "layers": colours,
        "last": last,
        "unplaced": sorted(set(profile) - placed),
        "stages": entries,
    }
    return Section(
        "graphs", "Graphs at each stage", _html(entries, pictures, colours), data, SCRIPT
    )


def _parse_each(stages: list[tuple[str, str]]) -> list[Graph]:
    """Each stage's graph; a text repeated (a pass that changed nothing) parsed once."""
    parsed: dict[str, Graph] = {}
    for name, text in stages:
        if text not in parsed:
            parsed[text] = parse_graph(text, f"<{name}>")
    return [parsed[text] for _, text in stages]


def _layers(graphs: list[Graph]) -> list[str]:
    """Every node's layer, a body's after the graph that holds it: the legend's order."""
    out = [node.layer for graph in graphs for node in graph.nodes]
    bodies = [
        n.attrs["body"] for g in graphs for n in g.nodes if isinstance(n.attrs.get("body"), Graph)
    ]
    return out + (_layers(bodies) if bodies else [])


ABOUT = (
    "Each picture is one stage of the step: every node an ellipse named by its op and "
    "coloured by the layer that made it (gradients and optimizer updates take the "
    "colour of their layer or optimizer); a box holds the ops of a fused kernel or a "
    "loop body (a large body is one box naming how many ops it holds); plain boxes are "
    "the step's inputs, dashed boxes its outputs; values flow down the lines. Click a "
    "node for its IR line, types and layer, and on the last stage its kernel and time."
)


def _tab(k: int, entry: dict[str, Any]) -> str:
    counts = f"{entry['nodes']} nodes, {entry['kernels']} kernels"
    if entry["fused"]:
        counts += f" ({entry['fused']} fused)"
    return (
        f'<button type="button" class="kc-g-tab" data-stage="{k}">'
        f"{html.escape(entry['name'])}<small>{counts}</small></button>"
    )


def _stage_div(k: int, entry: dict[str, Any], picture: str | None, shown: bool) -> str:
    head = (
        f"<h3>{html.escape(entry['name'])}: {entry['nodes']} nodes, {entry['kernels']} "
        f"kernels, {entry['fused']} fused</h3>"
    )
    if picture is None:
        body = f'<p class="kc-g-message">{html.escape(entry["message"])}</p>'
    else:
        body = f'<div class="kc-g-pic">{picture}</div>'
    hidden = "" if shown else " hidden"
    return f'<div class="kc-g-stage" data-stage="{k}"{hidden}>{head}{body}</div>'


def _html(entries: list[dict], pictures: dict[int, str], colours: dict[str, str]) -> str:
    last = len(entries) - 1
    legend = "".join(
        f'<span class="kc-g-key"><i style="background:{colour}"></i>'
        f"{html.escape(name) if name else '(no layer)'}</span>"
        for name, colour in colours.items()
    )
    tabs = "".join(_tab(k, e) for k, e in enumerate(entries))
    stages = "".join(
        _stage_div(k, e, pictures.get(k), k == last)
        for k, e in enumerate(entries)
        if "same_as" not in e
    )
    return (
        f"<style>{STYLE}</style>"
        f'<div class="kc-graphs"><p>{html.escape(ABOUT)}</p>'
        f'<div class="kc-g-legend">{legend}</div>'
        f'<div class="kc-g-tabs">{tabs}</div>'
        '<p class="kc-g-caption"></p>'
        '<label class="kc-g-fit"><input type="checkbox"> fit to width</label>'
        f"{stages}</div>"
    )


STYLE = """
.kc-graphs .kc-g-legend{display:flex;flex-wrap:wrap;gap:.2em 1em;margin:.5em 0}
.kc-graphs .kc-g-key i{display:inline-block;width:.9em;height:.9em;border:1px solid #888;
  margin-right:.3em;vertical-align:middle}
.kc-graphs .kc-g-tabs{display:flex;flex-wrap:wrap;gap:.3em;margin:.5em 0}
.kc-graphs .kc-g-tab{font:inherit;padding:.2em .5em;border:1px solid #bbb;background:#f6f6f6;
  border-radius:3px;cursor:pointer;text-align:left}
.kc-graphs .kc-g-tab small{display:block;color:#666;font-size:75%}
.kc-graphs .kc-g-tab.kc-on{background:#dde8f8;border-color:#4a76b8}
.kc-graphs .kc-g-pic{overflow:auto;max-height:80vh;border:1px solid #ddd}
.kc-graphs.kc-fit .kc-g-pic svg{width:100%;height:auto}
.kc-graphs .kc-g-message{padding:1em;background:#fff6e0;border:1px solid #e0c070}
.kc-graphs [data-node],.kc-graphs [data-input],.kc-graphs [data-output],
.kc-graphs [data-in]{cursor:pointer}
.kc-graphs .kc-sel>polygon,.kc-graphs .kc-sel>ellipse{stroke:#d00;stroke-width:2.5}
"""

# The page runs this once loaded, as a function of ``KC`` and ``section`` (this section's
# element): KC.data.graphs is ``data``; KC.show(html) opens the detail panel. A click on
# an element with ``data-kernel`` is the page's: it calls KC.kernel(name), which sends
# ``kc-kernel`` to this section (to show the last stage and add the node's record to what
# the panel says) and outlines the elements with that kernel.
SCRIPT = (
    r"""
(function () {
  var D = KC.data.graphs;
  var host = (typeof section !== "undefined" && section) || document.getElementById("graphs");
  var root = host && host.querySelector(".kc-graphs");
  if (!D || !root) return;
  var current = D.last, chosen = null;
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }
  function own(k) { var s = D.stages[k]; return s.same_as == null ? k : s.same_as; }
  function select(k) {
    current = k;
    var o = own(k), s = D.stages[k];
    root.querySelectorAll(".kc-g-stage").forEach(function (d) { d.hidden = +d.dataset.stage !== o; });
    root.querySelectorAll(".kc-g-tab").forEach(function (b) {
      b.classList.toggle("kc-on", +b.dataset.stage === k);
      b.setAttribute("aria-pressed", String(+b.dataset.stage === k));
    });
    // A wide graph opens at its middle, where dot centres the step's main line.
    var pic = root.querySelector('.kc-g-stage[data-stage="' + o + '"] .kc-g-pic');
    if (pic && !pic.dataset.centred && pic.clientWidth) {
      pic.scrollLeft = (pic.scrollWidth - pic.clientWidth) / 2;
      pic.dataset.centred = "1";
    }
    root.querySelector(".kc-g-caption").textContent = o === k ? "" :
      s.name + " changed nothing: the graph is the one after " + D.stages[o].name + ".";
  }
  function detail(rec, id, time) {
    var rows = [["op", rec.op + (rec.kind ? " (" + rec.kind + ")" : "")], ["layer", rec.layer],
                ["types", rec.types.join(", ")]];
    if (rec.kernel) rows.push(["kernel", rec.kernel]);
    if (time && rec.profile) rows.push(["time", rec.profile.us.toFixed(2) + " \u00b5s a call, " +
      (100 * rec.profile.share).toFixed(1) + "% of the step" +
      (rec.profile.rate ? ", " + String(rec.profile.rate).trim() : "")]);
    var h = "<h3>" + esc(D.stages[current].name + " \u00b7 " + id) + "</h3><pre>" +
      esc(rec.ir) + "</pre><table>" + rows.map(function (r) {
        return "<tr><th>" + esc(r[0]) + "</th><td>" + esc(r[1]) + "</td></tr>";
      }).join("") + "</table>";
    if (rec.inside) h += "<p>kernels of its body:</p><ul>" + rec.inside.map(function (e) {
      return "<li>" + esc(e.kernel) + (e.profile ? ": " + e.profile.us.toFixed(2) +
        " \u00b5s a call" : "") + "</li>";
    }).join("") + "</ul>";
    if (rec.body) h += "<p>body (" + rec.body.length + " ops):</p><pre>" +
      esc(rec.body.join("\n")) + "</pre>";
    return h;
  }
  function mark(el) {
    if (chosen) chosen.classList.remove("kc-sel");
    chosen = el;
    if (el) el.classList.add("kc-sel");
  }
  root.addEventListener("click", function (e) {
    var tab = e.target.closest(".kc-g-tab");
    if (tab) { select(+tab.dataset.stage); return; }
    var el = e.target.closest("[data-node],[data-input],[data-output],[data-in]");
    if (!el) return;
    var id = el.dataset.node || el.dataset.input || el.dataset.output || el.dataset.in;
    var rec = (D.stages[own(current)].records || {})[id];
    if (!rec) return;
    mark(el);
    // A kernel's node: the page's own click handler shows it (see kc-kernel below).
    if (!el.dataset.kernel) KC.show(detail(rec, id, true));
  });
  host.addEventListener("kc-kernel", function (e) {
    select(D.last);
    var records = D.stages[D.last].records || {}, name = e.detail.kernel;
    for (var id in records) {
      var r = records[id];
      if (r.kernel === name || (r.inside || []).some(function (x) { return x.kernel === name; })) {
        e.detail.html.push(detail(r, id, false));
        return;
      }
    }
  });
  root.querySelector(".kc-g-fit input").addEventListener("change", function (e) {
    root.classList.toggle("kc-fit", e.target.checked);
  });
  select(current);
})();
"""
).strip()
