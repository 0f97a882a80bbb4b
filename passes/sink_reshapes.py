"""Elementwise ops moved above the reshapes that split their operand's last axis.

A projection into heads, ``einsum("abc,cde->abde")``, is a product whose result is
reshaped, [N, T, H*D] -> [N, T, H, D], before its bias, scales and casts: the reshape
stands between the product and the elementwise ops that would be its epilogue, so those
ran as a kernel of their own over memory (a quantized attention's rescale: 6% of its
predict step). An elementwise op is the same op on the operands seen before the split,
the reshape after it::

    add(reshape(x, [N, T, H, D]), b[H, D])  ->  reshape(add(x, reshape(b, [H*D])), [N, T, H, D])

so ops are moved above such a reshape, one after another in graph order, when each
operand has a form before the split: the split value itself (its reshape's operand), an
operand whose last two axes are the split's (reshaped alike) or (1, 1) (to one), a
constant-sized one broadcast along one of them (made whole first), or a scalar.
Nothing else changes: the same ops on the same elements, in the same order.
"""

from __future__ import annotations

from kcompile.ir import Graph, Node, Value
from kcompile.ir import build as B
from kcompile.passes.dce import eliminate_dead_code
from kcompile.passes.rewrite import copy_node, rebuild

# Above this many elements an operand broadcast along one of the split axes is not made
# whole (it would be a copy of the size of the result).
SMALL_OPERAND = 1 << 16


def _split(v: Value) -> Value | None:
    """``v``'s operand if ``v`` is a reshape that splits the last axis in two (or makes
    a last axis of 1 into two of 1), the leading axes unchanged."""
    node = v.node
    if node is None or node.op != "reshape" or v.rank < 2:
        return None
    x = node.inputs[0]
    if x.rank != v.rank - 1 or x.shape[:-1] != v.shape[:-2] or not x.shape:
        return None
    a, b = v.shape[-2:]
    if not (isinstance(a, int) and isinstance(b, int)) or x.shape[-1] != a * b:
        return None
    return x


def _form(v: Value, split: tuple[int, int], rank: int) -> str | None:
    """How ``v`` (an operand of an op whose result has ``rank`` axes, the last two
    ``split``) reads before the split: "scalar" as it is, "split" its reshape's operand,
    "flat" its last two axes merged, "whole" made whole along them first, then merged;
    None if it has no such form."""
    if v.rank == 0:
        return "scalar"
    x = _split(v)
    if x is not None and v.rank == rank and tuple(v.shape[-2:]) in (split, (1, 1)):
        return "split"
    if v.rank < 2:  # broadcast along the last axis only: no form before the split
        return None
    lead, tail = v.shape[:-2], tuple(v.shape[-2:])
    if tail in (split, (1, 1)):
        return "flat"
    whole = all(isinstance(d, int) for d in v.shape) and all(d == 1 for d in lead)
    if not whole or (tail[0] not in (1, split[0])) or (tail[1] not in (1, split[1])):
        return None
    return "whole" if split[0] * split[1] <= SMALL_OPERAND else None


def _before_split(v: Value, form: str, split: tuple[int, int]) -> Value:
    """``v`` in its ``form`` (``_form``'s answer) before the split."""
    if form == "scalar":
        return v
    if form == "split":
        return v.node.inputs[0]
    lead = v.shape[:-2]
    if form == "whole":
        v = B.broadcast_to(v, (*lead, *split))
    return B.reshape(v, (*lead, v.shape[-2] * v.shape[-1]))


def _sunk(g: Graph, node: Node, ins: list[Value]):
    if not node.traits.is_elementwise or len(node.outputs) != 1:
        return None
    out = node.outputs[0]
    split = tuple(out.shape[-2:])
    if out.rank < 2 or not all(isinstance(d, int) and d > 1 for d in split):
        return None  # (a last axis given a trailing 1 is a broadcast, not a split)
    forms = [_form(v, split, out.rank) for v in ins]
    if None in forms or not any(_split(v) is not None for v in ins):
        return None
    (result,) = copy_node(g, node, [_before_split(v, f, split) for v, f in zip(ins, forms)])
    if result.shape != (*out.shape[:-2], split[0] * split[1]):
        return None  # (its operands broadcast it otherwise: leave the op where it was)
    return (B.reshape(result, out.shape),)


def sink_reshapes(graph: Graph) -> Graph:
    """``graph`` with each elementwise op that reads a split of a last axis computed
    before the split (the module's docstring)."""
    # (an op left in place may have left the reshapes of its operands unread)
    return eliminate_dead_code(rebuild(graph, _sunk))
