"""The fused op: a node that holds a subgraph (its ``body``) and runs it as one kernel.

``fused(operands) {body=graph ..., kind=...}`` computes the body's outputs
from the operands (one body input per operand, in order). The fusion pass
makes these after autodiff, so the op has no gradient rule; the reference
runs the body on the interpreter, and codegen emits one loop nest for it.
"""

from __future__ import annotations

import weakref

from ir.graph import Graph
from ir.registry import OpDef, register
from ir.types import ShapeError

KINDS = ("elementwise", "matmul", "row", "reduce")


def _infer(types, attrs):
    body = attrs.get("body")
    if not isinstance(body, Graph):
        raise ShapeError("fused needs a body graph")
    if attrs.get("kind") not in KINDS:
        raise ShapeError(f"fused kind must be one of {KINDS}, got {attrs.get('kind')!r}")
    expected = [v.type for v in body.inputs]
    if list(types) != expected:
        shown = ", ".join(str(t) for t in expected)
        raise ShapeError(f"operands do not match the body's inputs ({shown})")
    return [v.type for _, v in body.outputs]


_interpreters: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _reference(ctx, args, attrs):
    from ir.interpreter import Interpreter

    body = attrs["body"]
    interpreter = _interpreters.get(body)
    if interpreter is None:
        interpreter = _interpreters[body] = Interpreter(body)
    out = interpreter.run({v.name: a for v, a in zip(body.inputs, args)}, ctx.float_dtype)
    return [out[name] for name, _ in body.outputs]


register(OpDef("fused", "fused", None, _infer, _reference, None))
