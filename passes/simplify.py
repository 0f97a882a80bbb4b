"""Algebraic simplification: identities, reshape/transpose chains, broadcast folding.

Each rule looks at one node (with its operands already rewritten) and returns
a replacement value or None. A rule never changes a result's type.
"""

from __future__ import annotations

import itertools

from kcompile.ir import build as B
from kcompile.ir.graph import Graph, Node, Value
from kcompile.ir.registry import ops_in_families
from kcompile.ir.types import broadcast_shapes
from kcompile.passes.dce import eliminate_dead_code
from kcompile.passes.rewrite import rebuild, splat_value


def _same(node: Node, v: Value) -> Value | None:
    return v if v.type == node.outputs[0].type else None


def _identity_operand(node: Node, ins: list[Value], neutral: float, sides: tuple) -> Value | None:
    for keep, drop in sides:
        if splat_value(ins[drop]) == neutral:
            return _same(node, ins[keep])
    return None


def _rule_add(g, node, ins):
    return _identity_operand(node, ins, 0, ((0, 1), (1, 0))) or _adjacent_pads(node, ins)


def _adjacent_pads(node: Node, ins: list[Value]) -> Value | None:
    """A sum of zero pads along one axis whose ranges follow one another, in any order
    -> one pad of their concatenation: the gradient of slices that tile an axis (an
    LSTM's four gates) becomes one copy instead of padded copies summed."""
    pads = _add_leaves(ins)
    if pads is None or any(v.type != node.outputs[0].type for v in ins):
        return None
    axes = {
        tuple(i for i, (lo, hi) in enumerate(zip(p.attrs["low"], p.attrs["high"])) if lo or hi)
        for p in pads
    }
    if len(axes) != 1 or len(next(iter(axes))) != 1:
        return None
    axis = next(iter(axes))[0]
    size = node.outputs[0].shape[axis]
    pads.sort(key=lambda p: p.attrs["low"][axis])
    for before, after in itertools.pairwise(pads):
        if size - before.attrs["high"][axis] != after.attrs["low"][axis]:
            return None
    joined = B.concat([p.inputs[0] for p in pads], axis)
    return B.pad(joined, pads[0].attrs["low"], pads[-1].attrs["high"])


def _add_leaves(ins: list[Value]) -> list[Node] | None:
    """The pad nodes an add tree over ``ins`` sums, if every leaf is a zero pad."""
    leaves, stack = [], list(ins)
    while stack:
        v = stack.pop()
        node = v.node
        if node is not None and node.op == "add" and node.inputs[0].type == node.inputs[1].type:
            stack.extend(node.inputs)
        elif node is not None and node.op == "pad" and node.attrs["value"] == 0.0:
            leaves.append(node)
        else:
            return None
    return leaves


def _rule_pad(g, node, ins):
    """A pad that adds nothing is its operand."""
    if not any(node.attrs["low"]) and not any(node.attrs["high"]):
        return _same(node, ins[0])
    return None


def _rule_concat(g, node, ins):
    """concat(concat(a, b), c) along one axis -> concat(a, b, c)."""
    axis = node.attrs["axis"]
    if not any(
        v.node is not None and v.node.op == "concat" and v.node.attrs["axis"] == axis for v in ins
    ):
        return None
    parts = []
    for v in ins:
        inner = v.node
        nested = inner is not None and inner.op == "concat" and inner.attrs["axis"] == axis
        parts.extend(inner.inputs if nested else [v])
    return B.concat(parts, axis)


def _rule_sub(g, node, ins):
    return _identity_operand(node, ins, 0, ((0, 1),))


def _rule_mul(g, node, ins):
    return _identity_operand(node, ins, 1, ((0, 1), (1, 0)))


def _rule_div(g, node, ins):
    return _identity_operand(node, ins, 1, ((0, 1),))


def _rule_matmul(g, node, ins):
    """A product with a zero splat is zeros (an RNN's first step multiplies its zero state).
    Like ``x * 0 -> 0`` under fast-math, it does not propagate an inf or NaN weight."""
    if any(splat_value(v) == 0 for v in ins):
        out = node.outputs[0].type
        return B.const(g, 0.0, out.dtype, out.shape)
    return None


def _rule_neg(g, node, ins):
    x = ins[0]
    if x.node is not None and x.node.op == "neg":
        return x.node.inputs[0]
    return None


def _rule_reverse(g, node, ins):
    x = ins[0]
    if x.node is not None and x.node.op == "reverse" and x.node.attrs == node.attrs:
        return x.node.inputs[0]
    return None


def _rule_reshape(g, node, ins):
    x = ins[0]
    if x.shape == node.attrs["shape"]:
        return x
    if x.node is not None and x.node.op == "reshape":
        return B.reshape(x.node.inputs[0], node.attrs["shape"])
    value = splat_value(x)
    if value is not None and x.type.is_static:
        # A splat reshaped is the same splat, so the rules after it see one (the 1.0 that
        # seeds a loop body's gradient, reshaped to [1, 1], then multiplies nothing).
        out = node.outputs[0].type
        return B.const(g, value, out.dtype, out.shape)
    return None


def _rule_transpose(g, node, ins):
    x, perm = ins[0], node.attrs["perm"]
    if x.node is not None and x.node.op == "transpose":
        inner = x.node.attrs["perm"]
        perm = tuple(inner[p] for p in perm)
        x = x.node.inputs[0]
    if perm == tuple(range(len(perm))):
        return x
    if x is not ins[0]:
        return B.transpose(x, perm)
    return None


def _rule_broadcast_to(g, node, ins):
    return ins[0] if ins[0].shape == node.attrs["shape"] else None


def _rule_select(g, node, ins):
    return _same(node, ins[1]) if ins[1] is ins[2] else None


def _rule_stop_gradient(g, node, ins):
    # The pipeline runs after autodiff: nothing is left for stop_gradient to stop.
    return ins[0]


def _fold_broadcasts(g: Graph, node: Node, ins: list[Value]) -> Value | None:
    """op(x, broadcast_to(y)) -> op(x, y) when implicit broadcasting gives the same shape."""
    changed = list(ins)
    for i, v in enumerate(ins):
        if v.node is not None and v.node.op == "broadcast_to":
            candidate = [*changed[:i], v.node.inputs[0], *changed[i + 1 :]]
            try:
                shape = broadcast_shapes(*(c.shape for c in candidate))
            except ValueError:
                continue
            if shape == node.outputs[0].shape:
                changed = candidate
    if changed == ins:
        return None
    return g.emit(node.op, changed, dict(node.attrs))[0]


RULES = {
    "add": _rule_add,
    "sub": _rule_sub,
    "mul": _rule_mul,
    "div": _rule_div,
    "neg": _rule_neg,
    "reverse": _rule_reverse,
    "pad": _rule_pad,
    "concat": _rule_concat,
    "matmul": _rule_matmul,
    "reshape": _rule_reshape,
    "transpose": _rule_transpose,
    "broadcast_to": _rule_broadcast_to,
    "select": _rule_select,
    "stop_gradient": _rule_stop_gradient,
}
BROADCASTING = ops_in_families("binary", "compare", "select")


def _visit(g: Graph, node: Node, ins: list[Value]):
    rule = RULES.get(node.op)
    if rule is not None:
        out = rule(g, node, ins)
        if out is not None:
            return [out]
    if node.op in BROADCASTING:
        out = _fold_broadcasts(g, node, ins)
        if out is not None:
            return [out]
    return None


def simplify(graph: Graph) -> Graph:
    """Apply the rules until nothing changes (at most a few rounds)."""
    for _ in range(4):
        before = len(graph.nodes)
        graph = eliminate_dead_code(rebuild(graph, _visit))
        if len(graph.nodes) == before:
            break
    return graph
