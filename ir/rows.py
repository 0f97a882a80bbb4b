"""Which graphs compute each batch row from that row alone.

A loop body whose every kernel writes rows of the batch, each from the same row of
its operands and from values that hold no batch axis (weights), can run on slices of
the batch side by side: a recurrent layer's step over 32 of 64 sequences needs
nothing of the other 32. ``separable_rows`` says so of a graph, looking inside fused
kernels; anything it does not know (gathers, random numbers, a reduction over the
batch, a product that contracts it) makes the answer no.
"""

from __future__ import annotations

from kcompile.ir.graph import Graph, Node, Value
from kcompile.ir.memory import nbytes
from kcompile.ir.ops.scan import split_operands
from kcompile.ir.types import BATCH, TensorType

ROW, SHARED = "row", "shared"
# Ops that read an element of each operand at the element they write, or broadcast.
_SHAPE_OK = ("broadcast_to",)


def kind_of(v: Value) -> str | None:
    """ROW for a value with the batch as its leading axis (and no other batch axis),
    SHARED for one without any; None for anything else."""
    return kind_of_type(v.type)


def kind_of_type(t: TensorType) -> str | None:
    if BATCH not in t.shape:
        return SHARED
    return ROW if t.shape[0] == BATCH and nbytes(t).power == 1 else None


def separable_rows(
    graph: Graph, kinds: dict[Value, str] | None = None, unfused: bool = False
) -> bool:
    """Whether every result of ``graph`` that has the batch axis holds in row r only
    what row r of the inputs makes, each node's results too. ``kinds`` gives the
    inputs' kinds (default: by their shapes). A graph that is a kernel of its own
    (not inside a fused node) must moreover write only row values: two slices of the
    batch running at once would both write a value without a batch axis. ``unfused``:
    the graph is not fused yet, and a constant without the batch axis is let stand
    (fusion takes it into the kernels that read it)."""
    top = kinds is None
    known: dict[Value, str] = dict(kinds or {})
    for v in graph.inputs:
        if v not in known:
            kind = kind_of(v)
            if kind is None:
                return False
            known[v] = kind
    for node in graph.nodes:
        results = _node_kinds(node, [known[v] for v in node.inputs])
        if results is None:
            return False
        lets_stand = unfused and node.op == "constant"
        if top and any(k != ROW for k in results) and not lets_stand:
            return False
        known.update(zip(node.outputs, results))
    return all(kind_of(v) == known[v] for _, v in graph.outputs)


def splits_by_rows(attrs: dict, unfused: bool = False) -> bool:
    """Whether a scan (its attributes) may run on slices of the batch, one loop per
    slice: its body computes each row alone, every sequence and per-step output has the
    batch axis, and a carry without it is passed through unchanged (a hoisted
    accumulator). ``unfused``: of a body not fused yet (``separable_rows``)."""
    body: Graph = attrs["body"]
    c = attrs["carries"]
    carries, steps, _ = split_operands(attrs, list(body.inputs))
    if any(kind_of(v) != ROW for v in steps):
        return False
    if any(kind_of(v) != ROW for _, v in body.outputs[c:]):
        return False
    for v, (_, out) in zip(carries, body.outputs[:c]):
        kind = kind_of(v)
        if kind is None or (kind == SHARED and (out is not v or attrs["saved"])):
            return False
    return separable_rows(body, unfused=unfused)


def _node_kinds(node: Node, kinds: list[str]) -> list[str] | None:
    """The kinds of ``node``'s results given its operands', or None when a row of a
    result may depend on other rows."""
    outs = [kind_of(v) for v in node.outputs]
    if None in outs:
        return None
    if ROW not in kinds:
        # Shared operands only: a shared result is the same in every slice; a result
        # with a batch axis must repeat one row (a splat, a broadcast).
        if all(k == SHARED for k in outs):
            return outs if _known_op(node) else None
        if node.op == "constant":
            return outs if not isinstance(node.attrs["value"], tuple) else None
        return outs if node.traits.is_elementwise or node.op in _SHAPE_OK else None
    if any(k != ROW for k in outs):
        return None
    rows = [v for v, k in zip(node.inputs, kinds) if k == ROW]
    op = node.op
    if node.traits.is_elementwise or op in _SHAPE_OK:
        rank = node.outputs[0].rank
        return outs if all(v.rank == rank for v in rows) else None
    if op == "slice":
        return outs if (node.attrs["begin"][0], node.attrs["end"][0]) == (0, BATCH) else None
    if op == "concat":
        return outs if node.attrs["axis"] != 0 else None
    if op == "reshape":
        return outs
    if op == "reverse":
        return outs if node.attrs["axis"] != 0 else None
    if op == "transpose":
        return outs if node.attrs["perm"][0] == 0 else None
    if op == "matmul":
        a, b = kinds
        ok = a == ROW and b == SHARED and not node.attrs["transpose_a"]
        return outs if ok and node.inputs[1].rank == 2 else None
    if node.traits.reduction is not None and op.startswith("reduce_"):
        return outs if 0 not in node.attrs["axes"] else None
    if op == "fused":
        body: Graph = node.attrs["body"]
        inner = dict(zip(body.inputs, kinds))
        return outs if separable_rows(body, inner) else None
    return None


def _known_op(node: Node) -> bool:
    """An op on shared values that the slices may each compute: anything but a loop
    or an op that draws random numbers (each slice would draw its own)."""
    return node.op not in ("scan", "random_uniform")
