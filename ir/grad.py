"""Reverse-mode differentiation of a graph: the core that ``passes.autodiff`` and the
VJP rules of ops with a body graph (``scan``) share.

The backward pass is built from each op's VJP rule (``ir.registry``) as
ordinary IR appended to the graph, so later passes optimize it like any other
code. Only nodes on a path from a differentiated input to the loss get a
gradient; data inputs get none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kcompile.ir import build as B
from kcompile.ir.graph import Graph, IRError, Value
from kcompile.ir.registry import get_op
from kcompile.ir.types import TensorType


@dataclass(frozen=True)
class Zero:
    """A symbolic zero cotangent of type ``type``, as JAX's ``ad.Zero``: what a VJP rule
    gets for an output no gradient reaches. Nothing is computed for it; a rule that
    needs its value calls ``instantiate``."""

    type: TensorType


def instantiate(graph: Graph, cotangent: Value | Zero) -> Value:
    """The cotangent as a value: zeros of its type for a symbolic zero."""
    return B.zeros(graph, cotangent.type) if isinstance(cotangent, Zero) else cotangent


def _needs_gradient(graph: Graph, loss: Value, wrt: Sequence[Value], first: int) -> set[Value]:
    """Values that depend on some ``wrt`` and that the loss depends on, through the
    nodes from index ``first`` on."""
    nodes = graph.nodes[first:]
    forward = set(wrt)
    for node in nodes:
        if get_op(node.op).vjp is not None and any(v in forward for v in node.inputs):
            forward.update(v for v in node.outputs if v.dtype.is_float)
    backward = {loss}
    for node in reversed(nodes):
        if any(v in backward for v in node.outputs):
            backward.update(node.inputs)
    return forward & backward


def append_gradients(
    graph: Graph, loss: Value, wrt: Sequence[Value], first_node: int = 0
) -> list[Value]:
    """Append the backward pass to ``graph``; return d(loss)/d(w) for each ``w`` in ``wrt``.

    ``loss`` must be a float scalar. A rule gets a symbolic ``Zero`` for each output no
    gradient reaches and returns None (or a ``Zero``) for an operand it gives none. The
    results are values: a ``w`` the loss does not depend on gets zeros. Only the nodes
    from index ``first_node`` on are differentiated through: values computed before are
    constants (a gradient tape opened after them, a variable's updated value).
    """
    if loss.type.shape != () or not loss.dtype.is_float:
        raise IRError(f"can only differentiate a float scalar, got {loss.type}")
    live = _needs_gradient(graph, loss, wrt, first_node)
    cotangent: dict[Value, Value] = {}
    forward_nodes = list(graph.nodes[first_node:])
    with graph.layer_scope("grad"):
        cotangent[loss] = B.const(graph, 1.0, loss.dtype)
    for node in reversed(forward_nodes):
        if not any(v in cotangent for v in node.outputs):
            continue
        if not any(v in live for v in node.inputs):
            continue
        rule = get_op(node.op).vjp
        if rule is None:
            continue
        outs = [cotangent.get(v, Zero(v.type)) for v in node.outputs]
        with graph.layer_scope(_grad_scope(node.layer)):
            grads = rule(node, outs)
            for v, g in zip(node.inputs, grads):
                if g is None or isinstance(g, Zero) or v not in live:
                    continue
                if g.type != v.type:
                    raise IRError(f"VJP of {node.op} gave {g.type} for an operand of {v.type}")
                cotangent[v] = cotangent[v] + g if v in cotangent else g
    with graph.layer_scope("grad"):
        return [instantiate(graph, cotangent.get(w, Zero(w.type))) for w in wrt]


def _grad_scope(layer: str) -> str:
    return f"{layer}/grad" if layer else "grad"
