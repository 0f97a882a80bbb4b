"""One stage's graph as a picture: Graphviz text made from a ``Graph``, laid out by
``dot -Tsvg``, and the SVG trimmed to be inlined in the report's page.

What the picture shows: every node of the graph as a small ellipse labelled with its op,
filled with the colour of the layer that made it (the top-level name of its layer, so
``dense/grad`` is drawn like ``dense``); a node that runs a body graph (``fused``,
``batch_rows``, ``scan``) as a box (a cluster) holding its body's ops, or, past
``body_limit`` ops, as one box naming its kind and how many ops it holds; the graph's
inputs as plain boxes and its outputs as dashed boxes; an arrow from each value to every
node that reads it. Labels stay short (an op name): the rest of a node (its IR line,
types, layer, kernel and time) is in the records the page's script shows on a click.

Every drawn element carries ``data-*`` attributes for that script: ``data-node="n{i}"``
on node i of the graph (its ellipse, summary box or cluster: exactly one element a node),
``data-input="in{k}"`` and ``data-output="out{j}"`` on the boxes of inputs and outputs,
``data-in="n{i}"`` on the ops drawn inside node i's box, and ``data-kernel`` where the
caller names a node's kernel.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field

from kcompile.ir import Graph, Node, Value

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
ET.register_namespace("", SVG_NS)
ET.register_namespace("xlink", XLINK_NS)

# Soft fills that keep black labels readable, one a top-level layer in order of first
# appearance; a report with more layers than colours reuses them in order.
PALETTE = (
    "#8dd3c7",
    "#ffffb3",
    "#bebada",
    "#fb8072",
    "#80b1d3",
    "#fdb462",
    "#b3de69",
    "#fccde5",
    "#bc80bd",
    "#ccebc5",
    "#ffed6f",
    "#d9d9d9",
    "#a6cee3",
    "#f4cae4",
    "#e5d8bd",
)
NO_LAYER = "#ffffff"  # nodes made outside every layer
BODY_LIMIT = 16  # a body with more ops than this is drawn as one box naming its size
DOT_SECONDS = 60.0  # longer than this laying out one stage, and the stage gets no picture
EDGE_WIDTH = "0.6"  # points: thin lines keep a crowded graph readable
# More drawn nodes than this (a graph's nodes, the ops drawn in its boxes, its inputs and
# outputs) and the picture is laid out fast: straight lines, and dot's searches for fewer
# crossings and straighter edges cut short. A train step's long edges (a weight or an
# activation used forward and again backward) cross hundreds of ranks; with splines and
# full searches, dot took 30 to 60 s on 900 nodes of a small ResNet, this way 2 to 4 s.
FAST_FROM = 800


class GraphvizError(RuntimeError):
    """``dot`` is missing, failed, or took too long."""


class LayoutTimeout(GraphvizError):
    """``dot`` did not finish within the time it was given."""


def top_layer(layer: str) -> str:
    """The layer a node's colour is keyed by: the first component of its layer's name."""
    return layer.split("/", 1)[0]


def layer_colours(layers: Iterable[str]) -> dict[str, str]:
    """A colour for each top-level layer name, in order of first appearance (stable for
    one model across every stage); nodes with no layer are white."""
    colours: dict[str, str] = {}
    for layer in layers:
        name = top_layer(layer)
        if name not in colours:
            colours[name] = NO_LAYER if not name else PALETTE[len(colours) % len(PALETTE)]
    return colours


def pale(colour: str, strength: float = 0.3) -> str:
    """``colour`` (``#rrggbb``) mixed with white: a box's fill that its ops stand out on."""
    rgb = [int(colour[k : k + 2], 16) for k in (1, 3, 5)]
    return "#" + "".join(f"{round(255 - (255 - c) * strength):02x}" for c in rgb)


@dataclass
class Drawing:
    """Graphviz text of one graph, and the ``data-*`` attributes of each element of its
    SVG, keyed by the dot name of the node or cluster that element draws."""

    dot: str
    attrs: dict[str, dict[str, str]] = field(default_factory=dict)
    fast: bool = False  # laid out the fast way (``FAST_FROM``)


def body_of(node: Node) -> Graph | None:
    """The graph a node runs (a fused kernel's body, a loop's body), if it runs one."""
    body = node.attrs.get("body")
    return body if isinstance(body, Graph) else None


def drawn_ops(body: Graph) -> list[int]:
    """The body nodes a picture draws: constants are left out (they are in the IR line),
    except one that is itself a result of the body."""
    results = {v for _, v in body.outputs}
    return [j for j, n in enumerate(body.nodes) if n.inputs or set(n.outputs) & results]


def _quote(text: str) -> str:
    """A dot string: a newline breaks the label's line, anything else is said as it is."""
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def _short(name: str, width: int = 22) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def _label(node: Node) -> str:
    if node.op == "constant":
        return "const"
    kind = node.attrs.get("kind")
    return f"{node.op} {kind}" if body_of(node) is not None and kind else node.op


class _Writer:
    """Builds one graph's dot text: node lines, cluster blocks and edges."""

    def __init__(self, colours: dict[str, str], body_limit: int) -> None:
        self.colours = colours
        self.body_limit = body_limit
        self.lines: list[str] = []
        self.edges: dict[tuple[str, str], None] = {}
        self.attrs: dict[str, dict[str, str]] = {}

    def colour(self, layer: str) -> str:
        return self.colours.get(top_layer(layer), NO_LAYER)

    def node(self, name: str, label: str, attrs: dict[str, str], extra: str = "") -> None:
        self.lines.append(f"  {_quote(name)} [label={_quote(label)}{extra}];")
        self.attrs[name] = attrs

    def edge(self, source: str | None, target: str) -> None:
        if source is not None:
            self.edges[(source, target)] = None

    def text(self, title: str, fast: bool) -> str:
        # Network simplex placing nodes across is dot's cost on big graphs (50 s for 850
        # nodes of a transformer's train step); two passes a node lay those out in 2 s and
        # small graphs as before.
        limits = (
            "splines=line, mclimit=0.1, nslimit=0.02, nslimit1=0.02"
            if fast
            else "nslimit=2, nslimit1=2"
        )
        head = [
            f"digraph {_quote(title)} {{",
            "  graph [rankdir=TB, ranksep=0.22, nodesep=0.12, fontname=Helvetica, fontsize=8,",
            f"    {limits}];",
            "  node [shape=ellipse, style=filled, fontname=Helvetica, fontsize=8, height=0.2,"
            ' width=0.3, margin="0.04,0.01"];',
            f"  edge [arrowhead=none, penwidth={EDGE_WIDTH}];",
        ]
        edges = [f"  {_quote(a)} -> {_quote(b)};" for a, b in self.edges]
        return "\n".join([*head, *self.lines, *edges, "}"]) + "\n"


def graph_dot(
    graph: Graph,
    colours: dict[str, str],
    kernels: dict[int, str] | None = None,
    body_kernels: dict[tuple[int, int], str] | None = None,
    body_limit: int = BODY_LIMIT,
    fast_from: int = FAST_FROM,
) -> Drawing:
    """Graphviz text for ``graph`` (see the module's docstring for what it draws).
    ``kernels`` names node i's kernel (``data-kernel``); ``body_kernels`` names the
    kernel of op j of node i's body where a loop's body ops get kernels of their own;
    past ``fast_from`` drawn nodes the layout is the fast one (``FAST_FROM``)."""
    kernels = kernels or {}
    body_kernels = body_kernels or {}
    w = _Writer(colours, body_limit)
    source: dict[Value, str] = {}
    for k, v in enumerate(graph.inputs):
        name = f"in{k}"
        w.node(name, _short(v.name), {"data-input": name}, ", shape=box, style=solid")
        source[v] = name
    for i, node in enumerate(graph.nodes):
        attrs = {"data-node": f"n{i}"}
        if i in kernels:
            attrs["data-kernel"] = kernels[i]
        body = body_of(node)
        if body is None or len(drawn_ops(body)) > body_limit:
            name = f"n{i}"
            label = _label(node)
            extra = f", fillcolor={_quote(w.colour(node.layer))}"
            if body is not None:
                label += f"\n{len(drawn_ops(body))} ops"
                extra += ", shape=box"
            w.node(name, label, attrs, extra)
            for v in node.inputs:
                w.edge(source.get(v), name)
            for v in node.outputs:
                source[v] = name
        else:
            _cluster(w, graph, i, node, body, attrs, source, body_kernels)
    for j, (out, v) in enumerate(graph.outputs):
        name = f"out{j}"
        w.node(name, _short(out), {"data-output": name}, ", shape=box, style=dashed")
        w.edge(source.get(v), name)
    fast = len(w.attrs) > fast_from
    return Drawing(w.text(graph.name, fast), w.attrs, fast)


def _cluster(
    w: _Writer,
    graph: Graph,
    i: int,
    node: Node,
    body: Graph,
    attrs: dict[str, str],
    source: dict[Value, str],
    body_kernels: dict[tuple[int, int], str],
) -> None:
    """Node i as a box holding its body's ops; arrows run from the operands' producers
    to the body ops that read them, and from the body ops that make its results on."""
    cluster = f"cluster_n{i}"
    colour = w.colour(node.layer)
    w.lines.append(f"  subgraph {_quote(cluster)} {{")
    w.lines.append(
        f"    label={_quote(_label(node))}; style=filled; color={_quote(colour)};"
        f" fillcolor={_quote(pale(colour))};"
    )
    w.attrs[cluster] = attrs
    inner = {x: source[v] for x, v in zip(body.inputs, node.inputs, strict=False) if v in source}
    for j in drawn_ops(body):
        op = body.nodes[j]
        name = f"n{i}b{j}"
        op_attrs = {"data-in": f"n{i}"}
        if (i, j) in body_kernels:
            op_attrs["data-kernel"] = body_kernels[(i, j)]
        w.node(name, _label(op), op_attrs, f", fillcolor={_quote(w.colour(op.layer))}")
        for x in op.inputs:
            w.edge(inner.get(x), name)
        for x in op.outputs:
            inner[x] = name
    w.lines.append("  }")
    for (_, x), v in zip(body.outputs, node.outputs, strict=False):
        made = inner.get(x)
        if made is not None:
            source[v] = made


# --- running dot and trimming its SVG -----------------------------------------------


def run_dot(text: str, timeout: float = DOT_SECONDS) -> str:
    """``dot -Tsvg`` of ``text``: the SVG it writes. Raises ``GraphvizError`` when dot is
    missing or fails, ``LayoutTimeout`` when it runs past ``timeout`` seconds."""
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizError(
            "kcompile report draws graphs with Graphviz's `dot` program, which is not "
            "installed (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz)"
        )
    try:
        done = subprocess.run(
            [dot, "-Tsvg"], input=text.encode(), capture_output=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise LayoutTimeout(f"`dot` took longer than {timeout:g} s") from None
    if done.returncode != 0:
        raise GraphvizError(f"`dot -Tsvg` failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode()


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_GEOMETRY = ("d", "points", "x", "y", "cx", "cy", "rx", "ry", "transform", "viewBox")
# Attributes dot repeats on every label: said once on the root, where SVG inherits them.
_INHERITED = ("font-family", "font-size", "text-anchor")


def _round(text: str) -> str:
    """Coordinates to the point (1/72 inch): half the bytes, no visible change."""
    return _NUMBER.sub(lambda m: str(round(float(m.group()))), text)


def _tag(element: ET.Element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def inline_svg(svg: str, attrs: dict[str, dict[str, str]]) -> str:
    """dot's SVG ready to sit inside HTML: no XML prolog, doctype or comments; each node
    and cluster's ``<title>`` (its dot name) replaced by the ``data-*`` attributes
    ``attrs`` gives that name; ids, classes and repeated font attributes dropped;
    coordinates rounded to the point; the edges' lines gathered under one group that
    says once how they are drawn, beneath the nodes."""
    root = ET.fromstring(svg[svg.index("<svg") :])
    inherited: dict[str, str] = {}
    for element in root.iter():
        for key in ("id", "class"):
            element.attrib.pop(key, None)
        for key in _GEOMETRY:
            if key in element.attrib:
                element.set(key, _round(element.attrib[key]))
        if _tag(element) == "text":
            for key in _INHERITED:
                value = element.attrib.pop(key, None)
                if value is not None and inherited.setdefault(key, value) != value:
                    element.set(key, value)
    root.attrib.update(inherited)
    clusters = []
    for group in root.iter():
        for child in list(group):
            if _tag(child) == "title":
                group.remove(child)
                name = child.text or ""
                if name.startswith("cluster_"):
                    clusters.append(group)
                for key, value in attrs.get(name, {}).items():
                    group.set(key, value)
    _gather_edges(root, clusters)
    return ET.tostring(root, encoding="unicode")


def _gather_edges(root: ET.Element, clusters: list[ET.Element]) -> None:
    """Move every edge's line (a ``<g>`` holding one path and nothing else) into one
    group with the edges' stroke and fill, placed after the clusters' boxes and before
    the first node, so that nodes are painted over the lines."""
    layer = next((g for g in root if _tag(g) == "g"), None)
    if layer is None:
        return
    edges = ET.Element(
        f"{{{SVG_NS}}}g", {"fill": "none", "stroke": "black", "stroke-width": EDGE_WIDTH}
    )
    first_node = None
    for child in list(layer):
        parts = list(child)
        if _tag(child) == "g" and not child.attrib and [_tag(p) for p in parts] == ["path"]:
            path = parts[0]
            if path.get("fill") == "none":
                del path.attrib["fill"]
            for key, value in (("stroke", "black"), ("stroke-width", EDGE_WIDTH)):
                if path.get(key) == value:
                    del path.attrib[key]
            path.set("d", relative_path(path.get("d", "")))
            edges.append(path)
            layer.remove(child)
        elif first_node is None and _tag(child) == "g" and child not in clusters:
            first_node = child
    at = list(layer).index(first_node) if first_node is not None else len(layer)
    layer.insert(at, edges)


_CURVE = re.compile(r"M(-?\d+),(-?\d+)C((?:\s*-?\d+,-?\d+)+)\s*\Z")


def relative_path(d: str) -> str:
    """A path of cubic pieces (dot's edges: ``Mx,yC`` then three points a piece) with
    the pieces' points relative to where each piece starts: short numbers, the same
    curve. Any other path is returned as it is."""
    m = _CURVE.match(d)
    if m is None:
        return d
    x, y = int(m.group(1)), int(m.group(2))
    points = [tuple(map(int, p.split(","))) for p in m.group(3).split()]
    if len(points) % 3:
        return d
    numbers = []
    for k in range(0, len(points), 3):
        for px, py in points[k : k + 3]:
            numbers += [px - x, py - y]
        x, y = points[k + 2]
    text = "".join(f"{n}" if n < 0 or i == 0 else f" {n}" for i, n in enumerate(numbers))
    return f"M{m.group(1)},{m.group(2)}c{text}"
