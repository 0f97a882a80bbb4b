"""The fused op: a node that holds a subgraph (its ``body``) and runs it as one kernel.

``fused(operands) {body=graph ..., kind=...}`` computes the body's outputs
from the operands (one body input per operand, in order); with ``pool=(ph, pw)`` (a
product's epilogue) each output max-pooled over ph x pw windows of its [N, H, W, C]. The fusion pass
makes these after autodiff, so the op has no gradient rule; the reference
runs the body on the interpreter, and codegen emits one loop nest for it.
"""

from __future__ import annotations

import weakref

from kcompile.ir import traits as T
from kcompile.ir.graph import Graph
from kcompile.ir.interpreter import Interpreter
from kcompile.ir.ops.constant import splat_value
from kcompile.ir.registry import OpDef, get_op, register
from kcompile.ir.traits import LOOP_KINDS, Pattern
from kcompile.ir.types import ShapeError

KINDS = LOOP_KINDS


def body_may_hold(kind: str, op: str) -> bool:
    """Whether a ``fused`` body of this kind can hold a node of op ``op``: its traits
    say so. The fusion passes group only what this allows and codegen lowers exactly
    this."""
    return kind in get_op(op).traits.loop_bodies


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
    pool = attrs.get("pool")
    if pool is None:
        return [v.type for _, v in body.outputs]
    return [v.type.with_shape(pooled_shape(v.shape, pool)) for _, v in body.outputs]


def pooled_shape(shape, pool) -> tuple:
    """[N, H, W, C] max-pooled over ``pool = (ph, pw)`` windows that tile H and W."""
    ph, pw = pool
    if len(shape) != 4 or shape[1] % ph or shape[2] % pw:
        raise ShapeError(f"a {ph}x{pw} pooling does not tile {tuple(shape)}")
    return (shape[0], shape[1] // ph, shape[2] // pw, shape[3])


def _pool(x, pool):
    n, h, w, c = x.shape
    ph, pw = pool
    return x.reshape(n, h // ph, ph, w // pw, pw, c).max(axis=(2, 4))


_interpreters: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def run_body(ctx, args, body: Graph) -> list:
    """A kernel body's outputs on the reference interpreter for operands ``args`` (one
    interpreter per body, kept while the body lives)."""
    interpreter = _interpreters.get(body)
    if interpreter is None:
        interpreter = _interpreters[body] = Interpreter(body)
    feeds = {v.name: a for v, a in zip(body.inputs, args)}
    out = interpreter.run(feeds, ctx.float_dtype, batch=ctx.batch)
    return [out[name] for name, _ in body.outputs]


def _reference(ctx, args, attrs):
    results = run_body(ctx, args, attrs["body"])
    pool = attrs.get("pool")
    return results if pool is None else [_pool(x, pool) for x in results]


def product_of(body: Graph):
    """The matrix product of a ``matmul`` body."""
    return next(n for n in body.nodes if n.traits.pattern is Pattern.PRODUCT)


# Ops whose result never decreases as one operand grows, the others fixed; ``sub`` only in
# its first operand. Floating-point rounding keeps them monotone, so a maximum taken
# before them equals the maximum of their results, bit for bit.
_RISING_IN_ANY = frozenset({"add", "max", "min"})
# (round_to: rounding to nearest never decreases as its operand grows, NaN kept.)
_RISING_UNARY = frozenset({"exp", "tanh", "logistic", "round_to"})


def pools_before_body(body: Graph, product) -> bool:
    """Whether the body of a pooled product's epilogue never decreases as the product
    grows (a bias, ReLU, a positive scale, ...), so that its window's maximum may be
    taken on the raw products first. ReLU written as ``select(x <= 0, 0, x)`` counts."""
    rising = {product.outputs[0]}
    for node in body.nodes:
        if node is product:
            continue
        hit = [v for v in node.inputs if v in rising]
        if not hit:
            continue
        if node.op == "le" and _is_relu_mask(body, node):
            continue  # judged with the select that uses it
        ok = (
            node.op in _RISING_IN_ANY
            or (node.op == "sub" and node.inputs[1] not in rising)
            or (node.op in _RISING_UNARY)
            or (node.op == "mul" and _positive_splat(node.inputs[1 - node.inputs.index(hit[0])]))
            or (node.op == "select" and _is_relu(node, rising))
        )
        if not ok:
            return False
        rising.add(node.outputs[0])
    results = [v for _, v in body.outputs]
    return len(results) == 1 and results[0] in rising


def _positive_splat(v) -> bool:
    value = splat_value(v)
    return value is not None and value > 0


def _is_relu_mask(body: Graph, node) -> bool:
    """``x <= c`` read only as the condition of ``select(x <= c, c, x)``."""
    users = [n for n in body.nodes if node.outputs[0] in n.inputs]
    return bool(users) and all(
        n.op == "select" and n.inputs[0] is node.outputs[0] and _is_relu(n, None) for n in users
    )


def _is_relu(node, rising) -> bool:
    """``select(x <= c, c, x)`` with a splat ``c``: ``max(x, c)``."""
    cond, low, x = node.inputs
    mask = cond.node
    if mask is None or mask.op != "le" or mask.inputs[0] is not x:
        return False
    c = splat_value(low)
    if c is None or splat_value(mask.inputs[1]) != c:
        return False
    return rising is None or (x in rising and low not in rising)


def reduction_of(body: Graph):
    """The reduction that a ``reduce`` body ends in."""
    return next(n for n in reversed(body.nodes) if n.traits.reduction is not None)


def _in_place(node, operand, result) -> bool:
    """An elementwise loop reads an operand of the result's shape at the index it
    writes; a product's epilogue does too, but the product's own operands are read
    everywhere while results are written."""
    kind = node.attrs["kind"]
    if kind == "elementwise":
        return T.reads_at_written_index(node, operand, result)
    if kind == "matmul":
        body = node.attrs["body"]
        product = product_of(body)
        operands = {node.inputs[body.inputs.index(v)] for v in product.inputs}
        return operand not in operands and T.reads_at_written_index(node, operand, result)
    return operand not in node.inputs


def _rows_independent(node) -> bool:
    """A reduction loop computes each batch row alone when it keeps the batch axis."""
    if node.attrs["kind"] != "reduce":
        return False
    return 0 not in reduction_of(node.attrs["body"]).attrs["axes"]


register(
    OpDef(
        "fused",
        "fused",
        None,
        _infer,
        _reference,
        None,
        traits=T.Traits(
            T.Pattern.OPAQUE,
            kernel_body=True,
            in_place=_in_place,
            rows_independent=_rows_independent,
        ),
    )
)
