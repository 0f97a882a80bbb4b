"""The fused op: a node that holds a subgraph (its ``body``) and runs it as one kernel.

``fused(operands) {body=graph ..., kind=...}`` computes the body's outputs
from the operands (one body input per operand, in order). The fusion pass
makes these after autodiff, so the op has no gradient rule; the reference
runs the body on the interpreter, and codegen emits one loop nest for it.
"""

from __future__ import annotations

import functools
import weakref

from kcompile.ir.graph import Graph
from kcompile.ir.registry import OpDef, ops_in_families, register
from kcompile.ir.types import ShapeError

KINDS = ("elementwise", "matmul", "row", "reduce")

# Ops that compute each element from the same element of their operands: every kind of
# loop body holds them.
_ELEMENTWISE_FAMILIES = ("unary", "binary", "compare", "select", "cast")


@functools.cache
def elementwise_ops() -> frozenset[str]:
    """Ops that compute each element from the same element of their operands (constants
    and broadcasts included): what every kind of loop body holds."""
    return frozenset(ops_in_families(*_ELEMENTWISE_FAMILIES) | {"broadcast_to", "constant"})


def is_elementwise(op: str) -> bool:
    return op in elementwise_ops()


# What a body of each kind may hold besides its elementwise ops. The fusion pass groups
# only what this allows and codegen's emitters lower exactly this: one predicate, here.
_BODY_EXTRAS = {
    "elementwise": {"slice"},  # a strided read of an operand
    "matmul": {"matmul", "reduce_sum"},  # the product, and column sums of its epilogue
    "reduce": {"reduce_sum", "reduce_max"},
    "row": {"reshape", "reduce_sum", "reduce_max", "argmax", "one_hot"},
}


def body_may_hold(kind: str, op: str) -> bool:
    """Whether a ``fused`` body of this kind can hold a node of op ``op``."""
    return op in _BODY_EXTRAS[kind] or is_elementwise(op)


def check_body(kind: str, body: Graph) -> None:
    """Refuse a body holding an op its kind cannot run, naming the op."""
    for node in body.nodes:
        if not body_may_hold(kind, node.op):
            raise ShapeError(f"a fused {kind} loop cannot hold {node.op} (in {body.name})")


def _infer(types, attrs):
    body = attrs.get("body")
    if not isinstance(body, Graph):
        raise ShapeError("fused needs a body graph")
    if attrs.get("kind") not in KINDS:
        raise ShapeError(f"fused kind must be one of {KINDS}, got {attrs.get('kind')!r}")
    check_body(attrs["kind"], body)
    expected = [v.type for v in body.inputs]
    if list(types) != expected:
        shown = ", ".join(str(t) for t in expected)
        raise ShapeError(f"operands do not match the body's inputs ({shown})")
    return [v.type for _, v in body.outputs]


_interpreters: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _reference(ctx, args, attrs):
    from kcompile.ir.interpreter import Interpreter

    body = attrs["body"]
    interpreter = _interpreters.get(body)
    if interpreter is None:
        interpreter = _interpreters[body] = Interpreter(body)
    out = interpreter.run({v.name: a for v, a in zip(body.inputs, args)}, ctx.float_dtype)
    return [out[name] for name, _ in body.outputs]


register(OpDef("fused", "fused", None, _infer, _reference, None))
