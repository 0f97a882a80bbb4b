"""Constant folding and common-subexpression elimination."""

from __future__ import annotations

import numpy as np

from kcompile.ir import build as B
from kcompile.ir.graph import Graph, Node, Value
from kcompile.ir.ops.constant import constant_value, splat_value
from kcompile.ir.registry import RefContext, get_op
from kcompile.ir.traits import Pattern
from kcompile.ir.types import BATCH
from kcompile.passes.dce import eliminate_dead_code
from kcompile.passes.rewrite import rebuild

MAX_FOLDED_ELEMENTS = 4096


def _constant_data(v: Value) -> np.ndarray | None:
    if constant_value(v) is None or BATCH in v.shape:
        return None
    return get_op("constant").reference(RefContext(None), [], v.node.attrs)[0]


def _rearranges(node: Node) -> bool:
    """A rearrangement of its operand's values: a splat stays the same splat."""
    traits = node.traits
    return traits.carries_values and traits.pattern in (Pattern.INJECTIVE, Pattern.BROADCAST)


def _fold(g: Graph, node: Node, ins: list[Value]):
    if not node.traits.folds or not ins:
        return None
    out = node.outputs[0]
    if len(node.outputs) != 1:
        return None
    splats = [splat_value(v) for v in ins]
    if all(s is not None for s in splats) and _rearranges(node):
        return [B.const(g, splats[0], out.dtype, out.shape)]
    if all(s is not None for s in splats) and node.traits.is_elementwise:
        args = [
            np.asarray(s, dtype=v.dtype.numpy).reshape((1,) * v.rank) for s, v in zip(splats, ins)
        ]
        attrs = dict(node.attrs)
        with np.errstate(all="ignore"):
            value = get_op(node.op).reference(RefContext(1), args, attrs)[0]
        return [B.const(g, value.reshape(-1)[0].item(), out.dtype, out.shape)]
    if BATCH in out.shape or out.type.static_size() > MAX_FOLDED_ELEMENTS:
        return None
    arrays = [_constant_data(v) for v in ins]
    if any(a is None for a in arrays):
        return None
    with np.errstate(all="ignore"):
        value = get_op(node.op).reference(RefContext(None), arrays, dict(node.attrs))[0]
    flat = value.reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return [B.const(g, flat[0].item(), out.dtype, out.shape)]
    return [B.const_array(g, [x.item() for x in flat], out.dtype, out.shape)]


def fold_constants(graph: Graph) -> Graph:
    """Evaluate nodes whose operands are all constants."""
    return eliminate_dead_code(rebuild(graph, _fold))


def _key(node: Node, ins: list[Value]):
    attrs = tuple((k, id(v) if isinstance(v, Graph) else v) for k, v in node.attrs.items())
    return node.op, attrs, tuple(id(v) for v in ins)


def eliminate_common_subexpressions(graph: Graph) -> Graph:
    """Reuse the result of an identical earlier node (same op, attributes, operands)."""
    seen: dict = {}

    def visit(g: Graph, node: Node, ins: list[Value]):
        key = _key(node, ins)
        if key in seen:
            return seen[key]
        outs = g.emit(node.op, ins, dict(node.attrs), layer=node.layer)
        seen[key] = outs
        return outs

    return eliminate_dead_code(rebuild(graph, visit))
