"""Rewrites that leave fewer full-size passes over memory around sums, the ones a
normalization's gradient is made of.

- A factor that is constant along a sum's axes leaves the sum:
  ``sum(dy * gamma * r) -> gamma * r * sum(dy)``, with the remaining factors in one
  canonical order, so the sums autodiff wrote once per path (BatchNormalization's
  backward has five over full tensors) become the few distinct ones and common
  subexpression elimination merges the rest. A negation leaves too.
- ``sum(x - mean(x))`` over the axes of that mean is zero: the gradient of the variance
  with respect to the mean is one such sum, computed over a whole tensor.
- ``numel`` reads only its operand's shape, so it is moved to the earliest value of the
  same shape along an elementwise chain: counting ``(x - mean)²``'s elements must not
  keep that square in memory.

Reassociating a sum's factors changes its rounding as any compiler's reassociation does
(a few ulps); the zero sum is exact in real arithmetic.
"""

from __future__ import annotations

from kcompile.ir import build as B
from kcompile.ir.graph import Graph, Node, Value
from kcompile.ir.ops.reduce import reduced_shape
from kcompile.ir.registry import ops_in_families
from kcompile.ir.types import BATCH, DType
from kcompile.passes.dce import eliminate_dead_code
from kcompile.passes.fold import eliminate_common_subexpressions
from kcompile.passes.rewrite import rebuild

ELEMENTWISE = ops_in_families("unary", "binary", "compare", "select")


def simplify_reductions(graph: Graph) -> Graph:
    def visit(g: Graph, node: Node, ins: list[Value]):
        out = None
        if node.op == "numel":
            out = _numel_of_earliest(node, ins[0])
        elif node.op == "reduce_sum":
            out = (
                _sum_of_broadcast(g, node, ins[0])
                or _zero_centered_sum(g, node, ins[0])
                or _factor_out(g, node, ins[0])
            )
        return None if out is None else [out]

    # Common subexpressions first (autodiff writes a square's gradient as g*x + g*x with
    # two products) and after (the sums put in one order become one).
    graph = rebuild(eliminate_common_subexpressions(graph), visit)
    return eliminate_common_subexpressions(eliminate_dead_code(graph))


def _canonical(g: Graph, values: list[Value]) -> list[Value]:
    """``values`` in the order the graph made them (inputs first), so that two products
    of the same factors are built alike and merged."""
    wanted = {v.node for v in values if v.node is not None}
    position = {n: i for i, n in enumerate(g.nodes) if n in wanted}

    def key(v: Value):
        if v.node is None:
            return (0, g.inputs.index(v), 0)
        return (1, position[v.node], v.index)

    return sorted(values, key=key)


def _numel_of_earliest(node: Node, x: Value) -> Value | None:
    start = x
    while x.node is not None and x.node.op in ELEMENTWISE:
        same = [u for u in x.node.inputs if u.shape == x.shape]
        if not same:
            break
        x = same[0]
    return None if x is start else B.numel(x, node.attrs["axes"])


def _varies(v: Value, rank: int, axes: tuple[int, ...]) -> bool:
    """Whether ``v`` (broadcast against a rank-``rank`` operand) changes along ``axes``."""
    shape = (1,) * (rank - v.rank) + tuple(v.shape)
    return any(shape[a] != 1 for a in axes)


def _factors(x: Value, rank: int, axes) -> tuple[list[Value], list[Value], bool] | None:
    """A product's factors that vary along ``axes``, those that do not, and whether it
    is negated; None if ``x`` is no product."""
    varying, fixed, negated = [], [], False
    stack, seen_product = [x], False
    while stack:
        v = stack.pop()
        op = v.node.op if v.node is not None else None
        if op == "mul" and v.dtype == x.dtype:
            stack.extend(v.node.inputs)
            seen_product = True
        elif op == "neg":
            stack.append(v.node.inputs[0])
            negated = not negated
            seen_product = True
        elif op == "add" and v.node.inputs[0] is v.node.inputs[1]:
            # x + x, as the gradient of a square writes it: 2 * x.
            stack.append(v.node.inputs[0])
            fixed.append(B.const(v.graph, 2.0, v.dtype))
            seen_product = True
        elif _varies(v, rank, axes):
            varying.append(v)
        else:
            fixed.append(v)
    if not seen_product:
        return None
    return varying, fixed, negated


def _factor_out(g: Graph, node: Node, x: Value) -> Value | None:
    axes, keepdims = node.attrs["axes"], node.attrs["keepdims"]
    found = _factors(x, x.rank, axes)
    if found is None or not found[0]:
        return None
    varying, fixed, negated = found
    varying = _canonical(g, varying)
    if not fixed and not negated and list(x.node.inputs) == varying:
        return None  # already a product of two in canonical order
    product = varying[0]
    for v in varying[1:]:
        product = B.mul(product, v)
    if product.shape != x.shape:
        return None  # a sum over a broadcast: leave it as autodiff wrote it
    total = B.reduce_sum(product, axes, keepdims)
    if product.node is not None and product.node.op == "sub":
        total = _zero_centered_sum(g, total.node, product) or total
    out_shape = node.outputs[0].shape
    for f in fixed:
        aligned = (1,) * (x.rank - f.rank) + tuple(f.shape)
        total = B.mul(total, B.reshape(f, reduced_shape(aligned, axes, keepdims)))
    if negated:
        total = B.neg(total)
    return total if total.shape == tuple(out_shape) else None


def _sum_of_broadcast(g: Graph, node: Node, x: Value) -> Value | None:
    """``sum(broadcast_to(v))`` over axes that hold every broadcast one -> ``v``'s sum
    times the copies, a static count: the expanded tensor is not read (the encoder's
    LayerNormalization beta gradient summed 2 MB of one row per sequence repeated)."""
    if x.node is None or x.node.op != "broadcast_to" or x.dtype is not DType.f32:
        return None
    v = x.node.inputs[0]
    axes = node.attrs["axes"]
    shape = (1,) * (x.rank - v.rank) + tuple(v.shape)
    copies = 1
    for a, (d, full) in enumerate(zip(shape, x.shape)):
        if d == full:
            continue
        if a not in axes or full == BATCH:
            return None
        copies *= full
    aligned = v if shape == tuple(v.shape) else B.reshape(v, shape)
    total = B.reduce_sum(aligned, axes, node.attrs["keepdims"])
    if total.shape != tuple(node.outputs[0].shape):
        return None
    return total if copies == 1 else B.mul(total, B.const(g, float(copies), x.dtype))


def _zero_centered_sum(g: Graph, node: Node, x: Value) -> Value | None:
    """``sum(x - sum(x) / numel(x))`` over the same axes -> zeros."""
    if x.node is None or x.node.op != "sub":
        return None
    data, mean = x.node.inputs
    axes = node.attrs["axes"]
    while mean.node is not None and mean.node.op in ("reshape", "broadcast_to"):
        mean = mean.node.inputs[0]
    if mean.node is None or mean.node.op != "div":
        return None
    total, count = mean.node.inputs
    if total.node is None or count.node is None:
        return None
    if total.node.op != "reduce_sum" or count.node.op != "numel":
        return None
    same = total.node.inputs[0] is data and tuple(total.node.attrs["axes"]) == tuple(axes)
    if not same or tuple(count.node.attrs["axes"]) != tuple(axes):
        return None
    if data.shape != x.shape:
        return None
    return B.const(g, 0.0, x.dtype, node.outputs[0].shape)
