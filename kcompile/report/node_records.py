"""What the report says of each node of a stage when it is clicked: its IR line as the
stage's text prints it, its op, layer and result types, the ops of the body it runs, and
the kernel it compiles to."""

from __future__ import annotations

from typing import Any

from kcompile.ir import Graph, Node
from kcompile.ir.printer import Namer, format_attr, node_line, output_name, value_ref


def _attrs(node: Node) -> str:
    """The node's attributes as the printer writes them, a body graph said in its size
    (the body's ops are listed apart)."""
    if not node.attrs:
        return ""
    parts = []
    for key, value in node.attrs.items():
        text = f"<{len(value.nodes)} ops>" if isinstance(value, Graph) else format_attr(value)
        parts.append(f"{key}={text}")
    return " {" + ", ".join(parts) + "}"


def node_lines(graph: Graph, name: Namer | None = None) -> list[str]:
    """One line a node, in order: the line the stage's text prints for it (value numbers
    and all), except that a body graph is said as ``body=<k ops>``. ``name``, if given,
    is left naming every value as the text does."""
    name = Namer(graph) if name is None else name
    return [node_line(node, name, _attrs(node)) for node in graph.nodes]


def node_record(node: Node, line: str) -> dict[str, Any]:
    """``ir`` (its line), ``op``, ``layer``, ``types`` (one a result); a node that runs a
    body graph adds ``kind`` (when it has one) and ``body`` (the body's lines)."""
    record: dict[str, Any] = {
        "ir": line,
        "op": node.op,
        "layer": node.layer,
        "types": [str(v.type) for v in node.outputs],
    }
    body = node.attrs.get("body")
    if isinstance(body, Graph):
        if "kind" in node.attrs:
            record["kind"] = node.attrs["kind"]
        record["body"] = node_lines(body)
    return record


def input_record(graph: Graph, k: int) -> dict[str, Any]:
    """Input k as the text's header declares it."""
    v = graph.inputs[k]
    return {
        "ir": f"{value_ref(v.name)}: {v.type} {v.role}",
        "op": "input",
        "layer": "",
        "types": [str(v.type)],
    }


def output_record(graph: Graph, j: int, name: Namer) -> dict[str, Any]:
    """Output j as the text's ``return`` names it (``name``: the stage's value names)."""
    out, v = graph.outputs[j]
    line = f"return {output_name(out)}={name(v)}"
    return {"ir": line, "op": "output", "layer": "", "types": [str(v.type)]}
