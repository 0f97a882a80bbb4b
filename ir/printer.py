"""The text form of a graph. Every printed graph parses back (``ir.parser``).

    graph predict(
        %x: f32[N,784] data,
        %dense/kernel: f32[784,128] param,
    ) {
      %0 = matmul(%x, %dense/kernel) {transpose_a=false, transpose_b=false} : f32[N,128]  # dense
      return out=%0
    }

Value names are made by the printer (inputs keep theirs); the trailing
comment on a node line is the Keras layer that made it, and is read back.
"""

from __future__ import annotations

import math
import re

import numpy as np

from kcompile.ir.graph import Graph, Node, Value

_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
KEYWORDS = {"true", "false", "none", "inf", "nan"}
# Value and output names as they print bare; others (a layer named ``odd<&>"name``) quoted.
_BARE_NAME = re.compile(r"[A-Za-z0-9_./]+\Z")
_BARE_OUTPUT = re.compile(r"[A-Za-z_][A-Za-z0-9_./]*\Z")


def quoted(text: str) -> str:
    """``text`` as an IR string: in double quotes, backslashes and quotes escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def value_ref(name: str) -> str:
    """How a value named ``name`` is written: ``%name``, or ``%"name"`` when the name
    holds characters the bare form cannot."""
    return "%" + (name if _BARE_NAME.match(name) else quoted(name))


def output_name(name: str) -> str:
    """How ``return`` writes an output named ``name``: bare, or quoted when it cannot be."""
    return name if _BARE_OUTPUT.match(name) and name not in KEYWORDS else quoted(name)


_NUMBERS = {int, float}
# A tuple of this many floats (or ints) or more, a constant's table, prints packed: its
# numbers' little-endian float64 (int64) bytes in hex, ``packed_f64 "..."`` (``packed_i64``),
# exact and parsed back as the tuple. Printed one by one, a million-entry DFT table took
# seconds at each print (a compile prints its graph for its cache key).
PACKED_FROM = 1024
PACKED = {"packed_f64": "<f8", "packed_i64": "<i8"}


def _packed(value: tuple, floats: bool) -> str | None:
    """``value``'s packed form, or None for ints beyond int64."""
    name = "packed_f64" if floats else "packed_i64"
    try:
        data = np.asarray(value, dtype=PACKED[name])
    except OverflowError:
        return None
    return f'{name} "{data.tobytes().hex()}"'


def format_attr(value: object, indent: str = "") -> str:
    if isinstance(value, Graph):
        body = print_graph(value, indent=indent + "    ").rstrip("\n")
        return "\n" + body
    if value is None:
        return "none"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        if _BARE.match(value) and value not in KEYWORDS:
            return value
        return quoted(value)
    if isinstance(value, tuple):
        kinds = set(map(type, value))
        if len(value) >= PACKED_FROM and kinds in ({float}, {int}):
            packed = _packed(value, float in kinds)
            if packed is not None:
                return packed
        # Numbers alone (a constant's data): Python's repr is the form above for ints and
        # floats (nan, inf and -inf included), at C speed.
        if kinds <= _NUMBERS:
            return "[" + ", ".join(map(repr, value)) + "]"
        return "[" + ", ".join(format_attr(v) for v in value) + "]"
    raise TypeError(f"cannot print attribute {value!r}")


def format_attrs(attrs: dict, indent: str = "") -> str:
    if not attrs:
        return ""
    return " {" + ", ".join(f"{k}={format_attr(v, indent)}" for k, v in attrs.items()) + "}"


class Namer:
    """Names values: graph inputs by their names, everything else %0, %1, ..."""

    def __init__(self, graph: Graph) -> None:
        self.names: dict[Value, str] = {v: v.name for v in graph.inputs}
        self.next = 0

    def __call__(self, v: Value) -> str:
        name = self.names.get(v)
        if name is None:
            name = self.names[v] = str(self.next)
            self.next += 1
        return value_ref(name)


def node_line(node: Node, name: Namer, attrs: str) -> str:
    """A node's line of the text (without its indentation): its results, op, operands,
    ``attrs`` (as ``format_attrs`` writes them, or a caller's shorter form), result types
    and layer."""
    outs = ", ".join(name(v) for v in node.outputs)
    args = ", ".join(name(v) for v in node.inputs)
    if len(node.outputs) == 1:
        types = str(node.outputs[0].type)
    else:
        types = "(" + ", ".join(str(v.type) for v in node.outputs) + ")"
    line = f"{outs} = {node.op}({args}){attrs} : {types}"
    return f"{line}  # {node.layer}" if node.layer else line


def print_graph(graph: Graph, annotate: dict[int, str] | None = None, indent: str = "") -> str:
    """Text of ``graph``; ``annotate`` maps a node index to an extra comment line.

    A fused node's body prints nested, indented, as the value of its ``body``
    attribute."""
    name = Namer(graph)
    lines = [f"{indent}graph {graph.name}("]
    for v in graph.inputs:
        lines.append(f"{indent}    {name(v)}: {v.type} {v.role},")
    lines.append(f"{indent}) {{")
    for i, node in enumerate(graph.nodes):
        if annotate and i in annotate:
            lines.append(f"{indent}  # {annotate[i]}")
        lines.append(f"{indent}  " + node_line(node, name, format_attrs(node.attrs, indent + "  ")))
    rets = ", ".join(f"{output_name(n)}={name(v)}" for n, v in graph.outputs)
    lines.append(f"{indent}  return {rets}")
    if graph.memory is None:
        lines.append(f"{indent}}}")
    else:
        lines.extend(_memory_lines(graph, name, indent))
    return "\n".join(lines) + "\n"


def _memory_lines(graph: Graph, name: Namer, indent: str) -> list[str]:
    plan = graph.memory
    header = f"max_batch={plan.max_batch}, arena={plan.arena_bytes}"
    if plan.per_row_bytes is not None:
        header += f", per_row={plan.per_row_bytes}"
    lines = [f"{indent}}} memory({header}) {{"]
    total = 0
    for v, a in plan.allocations.items():
        where = f"alias={name(a.alias)}" if a.alias is not None else f"offset={a.offset}"
        size = f"{a.size.coef}*N" if a.size.power else str(a.size.coef)
        lines.append(f"{indent}  {name(v)} {where} bytes={size} live={a.start}:{a.end}")
        total += a.size.at(plan.max_batch)
    kernels = sum(
        1
        for n in graph.nodes
        if not (n.traits.view and plan.allocations[n.outputs[0]].alias is not None)
    )
    arena = _kib(plan.arena_bytes)
    if plan.per_row_bytes is not None:
        arena += f" + {plan.per_row_bytes} B per batch row"
    # Inside the braces, so that a nested body's summary cannot swallow the rest of its line.
    lines.append(
        f"{indent}  # arena: {arena} (sum of all buffers {_kib(total)}) "
        f"at batch {plan.max_batch}, {kernels} kernels"
    )
    lines.append(f"{indent}}}")
    return lines


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


Graph.__str__ = lambda self: print_graph(self)  # the text form is a graph's str()
