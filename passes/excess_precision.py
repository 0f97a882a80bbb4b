"""Excess precision inside a kernel: a narrow float's rounding kept only where the value
leaves the kernel.

``narrow_floats.hold_narrow_floats`` rounds every narrow result once, as each op of a
``mixed_bfloat16`` layer rounds in Keras's eager arithmetic. Inside a fused kernel most
of those values never reach memory: a product's result rounded before its bias is added
and rounded again, a softmax's shifted scores, exponentials and their sum each rounded
before the next op reads them. Each rounding is nine vector operations an element
(``codegen.loops.round_bf16``) on kernels that are compute bound on a CPU without a bf16
engine, where they are the whole cost of the policy (the mixed step ran 3-13% behind
float32 there).

This pass drops a rounding inside a ``fused`` body whose value stays in the body: the
kernel then computes the chain in f32 and rounds once, where the value is stored. That
is what XLA does by default (``--xla_allow_excess_precision``: its CPU backend computes
bf16 elementwise chains in f32 and removes the convert pairs between fused ops), so
Keras-JAX's numbers carry the same excess precision; the difference from rounding every
op is below one bf16 rounding per stored value. The reference interpreter runs the same
bodies, so native code still gives its bits.

Kept: a rounding whose value a body returns (the stored value is a narrow number,
``store_narrow`` keeps it in 2 bytes), and one a bf16 product reads (its engine takes
bf16 operands). ``KCOMPILE_DISABLE=allow_excess_precision`` rounds every op, as eager
Keras does.
"""

from __future__ import annotations

from kcompile.ir import Graph, Node, Value
from kcompile.passes.rewrite import rebuild

# Off: every rounding kept (for A/B measurements; ``benchmarks/mixed_flag_ab.py``).
ON = True


def allow_excess_precision(graph: Graph) -> Graph:
    """``graph`` with the roundings that stay inside a fused kernel dropped (the same graph
    when there are none)."""
    if not ON or not any(_has_inner_roundings(n) for n in graph.nodes):
        return graph

    def visit(new: Graph, node: Node, args: list[Value]):
        if not _has_inner_roundings(node):
            return None
        attrs = dict(node.attrs)
        attrs["body"] = _without_inner_roundings(node.attrs["body"])
        return new.emit(node.op, args, attrs, node.layer)

    return rebuild(graph, visit)


def _has_inner_roundings(node: Node) -> bool:
    return node.op == "fused" and bool(_inner_roundings(node.attrs["body"]))


def _inner_roundings(body: Graph) -> set[Node]:
    """The roundings of ``body`` that no returned value and no bf16 product reads."""
    kept = _roundings_reaching(body, [v for _, v in body.outputs])
    for node in body.nodes:
        if node.attrs.get("precision") == "bf16":  # (a product: its engine reads bf16)
            kept |= _roundings_reaching(body, node.inputs)
    return {n for n in body.nodes if n.op == "round_to" and n not in kept}


def _roundings_reaching(body: Graph, values) -> set[Node]:
    """The last rounding on each path into ``values``: the one whose bits they hold. Ops
    that leave a narrow value unrounded (a maximum, a view, ReLU's select:
    ``narrow_floats.EXACT_ON_NARROW``) pass their operand's rounding on, so the walk goes
    through every op that is not a rounding."""
    found: set[Node] = set()
    seen: set[Value] = set()
    stack = list(values)
    while stack:
        v = stack.pop()
        if v in seen or v.node is None:
            continue
        seen.add(v)
        if v.node.op == "round_to":
            found.add(v.node)
        else:
            stack += v.node.inputs
    return found


def _without_inner_roundings(body: Graph) -> Graph:
    dropped = _inner_roundings(body)
    return rebuild(body, lambda new, node, args: [args[0]] if node in dropped else None)
