"""Elementwise ops: unary math, binary arithmetic with broadcasting, compare, select, cast."""

from __future__ import annotations

import math

import numpy as np

from kcompile.ir import build as B
from kcompile.ir import traits as T
from kcompile.ir.ops.common import expect_arity, expect_dtype, expect_float, same_dtype
from kcompile.ir.registry import OpDef, RefContext, register
from kcompile.ir.types import DType, ShapeError, TensorType, broadcast_shapes

# --- unary ------------------------------------------------------------------


def _infer_unary_float(types, attrs):
    expect_arity(types, 1)
    expect_float(types[0])
    return [types[0]]


def _infer_unary_numeric(types, attrs):
    expect_arity(types, 1)
    if types[0].dtype is DType.bool:
        raise ShapeError(f"operand must be numeric, got {types[0]}")
    return [types[0]]


def _logistic(x: np.ndarray) -> np.ndarray:
    # Stable on both tails: never exponentiates a large positive number.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


_erf = np.vectorize(math.erf, otypes=[np.float64])


# A polynomial or a division: about nine plain operations per element.
COSTLY = 9


def _unary(name, fn, vjp, numeric=False, doc="", cost=1):
    register(
        OpDef(
            name=name,
            family="unary",
            arity=1,
            infer=_infer_unary_numeric if numeric else _infer_unary_float,
            reference=lambda ctx, args, attrs: [np.asarray(fn(args[0])).astype(args[0].dtype)],
            vjp=vjp,
            doc=doc,
            traits=T.elementwise(cost),
        )
    )


_unary("neg", np.negative, lambda n, g: [-g[0]], numeric=True)
_unary("abs", np.abs, lambda n, g: [g[0] * B.sign(n.inputs[0])], numeric=True)
_unary("sign", np.sign, None, numeric=True, doc="-1, 0 or 1; no gradient")
# Piecewise constant: no gradient flows (jax's derivative is zero too).
_unary("floor", np.floor, None, doc="the largest integer not above x; no gradient")
_unary("ceil", np.ceil, None, doc="the smallest integer not below x; no gradient")
_unary("round", np.round, None, doc="the nearest integer, ties to even; no gradient")
_unary("exp", np.exp, lambda n, g: [g[0] * n.outputs[0]], cost=COSTLY)
_unary("log", np.log, lambda n, g: [g[0] / n.inputs[0]], cost=COSTLY)
_unary("log1p", np.log1p, lambda n, g: [g[0] / (n.inputs[0] + 1.0)], cost=COSTLY)
_unary("sqrt", np.sqrt, lambda n, g: [g[0] * 0.5 / n.outputs[0]], cost=COSTLY)
_unary("tanh", np.tanh, lambda n, g: [g[0] * (1.0 - B.square(n.outputs[0]))], cost=COSTLY)
_unary(
    "logistic",
    _logistic,
    lambda n, g: [g[0] * n.outputs[0] * (1.0 - n.outputs[0])],
    doc="1 / (1 + exp(-x))",
    cost=COSTLY,
)
_unary(
    "erf",
    _erf,
    lambda n, g: [g[0] * (2.0 / math.sqrt(math.pi)) * B.exp(-B.square(n.inputs[0]))],
    cost=COSTLY,
)

_unary("sin", np.sin, lambda n, g: [g[0] * B.cos(n.inputs[0])], cost=COSTLY)
_unary("cos", np.cos, lambda n, g: [-(g[0] * B.sin(n.inputs[0]))], cost=COSTLY)
_unary(
    "atan",
    np.arctan,
    lambda n, g: [g[0] / (B.square(n.inputs[0]) + 1.0)],
    doc="the arc tangent, in (-pi/2, pi/2)",
    cost=COSTLY,
)


def _gelu(x: np.ndarray) -> np.ndarray:
    wide = x.astype(np.float64)
    return 0.5 * wide * (1.0 + _erf(wide / math.sqrt(2.0)))


def _vjp_gelu(node, g):
    # d/dx x·Φ(x) = Φ(x) + x·φ(x), as one op that also reads gelu's result, so that the
    # fused loop computing gelu computes the derivative too (see gelu_grad).
    # The derivative first: placed next to gelu it is the earlier factor, so a rewrite
    # that orders a product's factors as the graph made them (as the bias gradient's sum
    # may be) finds this product already in order, and both stay one product.
    x = node.inputs[0]
    return [x.graph.emit1("gelu_grad", [x, node.outputs[0]]) * g[0]]


_unary("gelu", _gelu, _vjp_gelu, doc="x·Φ(x), exact (erf) form", cost=COSTLY)


def _density(x):
    return B.exp(-0.5 * B.square(x)) * (1.0 / math.sqrt(2.0 * math.pi))


def _gelu_grad(x: np.ndarray) -> np.ndarray:
    wide = x.astype(np.float64)
    cdf = 0.5 * (1.0 + _erf(wide / math.sqrt(2.0)))
    return cdf + wide * np.exp(-0.5 * wide * wide) / math.sqrt(2.0 * math.pi)


def _infer_gelu_grad(types, attrs):
    expect_arity(types, 2)
    expect_float(types[0])
    if types[1] != types[0]:
        raise ShapeError(f"gelu_grad's operands must agree, got {types[0]} and {types[1]}")
    return [types[0]]


# gelu_grad(x, y) = Φ(x) + x·φ(x), gelu's derivative at x. ``y`` (gelu(x)) does not enter the
# value: it is an operand so that the derivative is a consumer of gelu. Placed next to gelu
# (passes/simplify.py), fusion then computes both in the loop (or product epilogue) that
# makes gelu — the two share Φ(x) and exp(-x²/2) (codegen/lowering/mathfn.py) — and keeps the
# derivative for the backward product instead of the pre-activation, so the backward
# epilogue is one multiply.
register(
    OpDef(
        name="gelu_grad",
        family="binary",
        arity=2,
        infer=_infer_gelu_grad,
        reference=lambda ctx, args, attrs: [_gelu_grad(args[0]).astype(args[0].dtype)],
        # d/dx (Φ + x·φ) = φ·(2 − x²); y only orders the computation.
        vjp=lambda n, g: [g[0] * _density(n.inputs[0]) * (2.0 - B.square(n.inputs[0])), None],
        doc="Φ(x) + x·φ(x), gelu's derivative; the second operand is gelu(x), unread",
        traits=T.elementwise(COSTLY),
    )
)


def _infer_not(types, attrs):
    expect_arity(types, 1)
    expect_dtype(types[0], DType.bool)
    return [types[0]]


register(
    OpDef(
        "not",
        "unary",
        1,
        _infer_not,
        lambda ctx, a, at: [np.logical_not(a[0])],
        None,
        traits=T.elementwise(),
    )
)

# --- binary -----------------------------------------------------------------


def _infer_binary(types, attrs, numeric=True, result=None):
    expect_arity(types, 2)
    dtype = same_dtype(types)
    if numeric and dtype is DType.bool:
        raise ShapeError(f"operands must be numeric, got {types[0]} and {types[1]}")
    shape = broadcast_shapes(types[0].shape, types[1].shape)
    return [TensorType(result or dtype, shape)]


def _unbroadcast(node, grads):
    a, b = node.inputs
    return [None if g is None else B.sum_to(g, v.shape) for g, v in zip(grads, (a, b))]


def _balanced_share(node, take_a):
    """The share of the gradient that goes to ``a`` of a max or min: all where ``a`` wins,
    half where ``a == b`` (as jax's lax.max and lax.min, Keras's JAX backend, split ties);
    activations that need another derivative at a kink (relu, relu6) say so themselves."""
    a, b = node.inputs
    return B.cast(take_a, a.dtype) + 0.5 * B.cast(B.eq(a, b), a.dtype)


def _vjp_minmax(compare):
    def vjp(node, g):
        share = _balanced_share(node, compare(*node.inputs))
        return _unbroadcast(node, [g[0] * share, g[0] * (1.0 - share)])

    return vjp


_vjp_max = _vjp_minmax(B.gt)
_vjp_min = _vjp_minmax(B.lt)


def _vjp_pow(node, g):
    a, b = node.inputs
    y = node.outputs[0]
    ga = g[0] * b * B.power(a, b - 1.0)
    # d/db a^b = a^b log a; defined as 0 where a == 0 (as jax does).
    gb = g[0] * B.select(B.eq(a, 0.0), 0.0, y * B.log(B.select(B.eq(a, 0.0), 1.0, a)))
    return _unbroadcast(node, [ga, gb])


def _div(a, b):
    if np.issubdtype(a.dtype, np.integer):
        return np.floor_divide(a, np.where(b == 0, 1, b))
    return np.divide(a, b)


_BINARY = {
    "add": (np.add, lambda n, g: _unbroadcast(n, [g[0], g[0]])),
    "sub": (np.subtract, lambda n, g: _unbroadcast(n, [g[0], -g[0]])),
    "mul": (np.multiply, lambda n, g: _unbroadcast(n, [g[0] * n.inputs[1], g[0] * n.inputs[0]])),
    "div": (
        _div,
        lambda n, g: _unbroadcast(n, [g[0] / n.inputs[1], -g[0] * n.outputs[0] / n.inputs[1]]),
    ),
    "max": (np.maximum, _vjp_max),
    "min": (np.minimum, _vjp_min),
    "pow": (np.power, _vjp_pow),
}

_BINARY_COST = {"div": COSTLY, "pow": COSTLY}

for _name, (_fn, _vjp) in _BINARY.items():
    register(
        OpDef(
            name=_name,
            family="binary",
            arity=2,
            infer=_infer_binary,
            reference=lambda ctx, args, attrs, fn=_fn: [
                np.asarray(fn(args[0], args[1])).astype(args[0].dtype, copy=False)
            ],
            vjp=_vjp,
            traits=T.elementwise(_BINARY_COST.get(_name, 1), T.Pattern.BROADCAST),
        )
    )

_COMPARE = {
    "eq": np.equal,
    "ne": np.not_equal,
    "lt": np.less,
    "le": np.less_equal,
    "gt": np.greater,
    "ge": np.greater_equal,
}

for _name, _fn in _COMPARE.items():
    register(
        OpDef(
            name=_name,
            family="compare",
            arity=2,
            infer=lambda types, attrs: _infer_binary(types, attrs, False, DType.bool),
            reference=lambda ctx, args, attrs, fn=_fn: [np.asarray(fn(args[0], args[1]))],
            vjp=None,
            traits=T.elementwise(pattern=T.Pattern.BROADCAST),
        )
    )


def _infer_logical(types, attrs):
    expect_arity(types, 2)
    for t in types:
        expect_dtype(t, DType.bool)
    return _infer_binary(types, attrs, numeric=False)


for _name, _fn in (("and", np.logical_and), ("or", np.logical_or)):
    register(
        OpDef(
            _name,
            "binary",
            2,
            _infer_logical,
            lambda c, a, at, fn=_fn: [fn(*a)],
            None,
            traits=T.elementwise(pattern=T.Pattern.BROADCAST),
        )
    )

# --- select and cast ----------------------------------------------------------


def _infer_select(types, attrs):
    expect_arity(types, 3)
    expect_dtype(types[0], DType.bool, "condition")
    dtype = same_dtype(types[1:])
    return [TensorType(dtype, broadcast_shapes(*(t.shape for t in types)))]


def _vjp_select(node, g):
    c, a, b = node.inputs
    return [
        None,
        B.sum_to(B.select(c, g[0], 0.0), a.shape),
        B.sum_to(B.select(c, 0.0, g[0]), b.shape),
    ]


register(
    OpDef(
        "select",
        "select",
        3,
        _infer_select,
        lambda ctx, args, attrs: [np.where(args[0], args[1], args[2]).astype(args[1].dtype)],
        _vjp_select,
        doc="select(c, a, b): a where c else b, with broadcasting",
        traits=T.elementwise(pattern=T.Pattern.BROADCAST),
    )
)


def _infer_cast(types, attrs):
    expect_arity(types, 1)
    return [types[0].with_dtype(DType.parse(attrs["dtype"]))]


def _ref_cast(ctx: RefContext, args, attrs):
    dtype = DType.parse(attrs["dtype"])
    target = ctx.storage(dtype)
    x = args[0]
    if dtype.is_int and x.dtype.kind == "f":
        x = np.trunc(x)  # C semantics: round toward zero
        if dtype.itemsize == 1:
            # Bytes saturate and NaN becomes 0 (LLVM's fptosi.sat / fptoui.sat).
            info = np.iinfo(dtype.numpy)
            x = np.clip(np.nan_to_num(x, nan=0.0), info.min, info.max)
    return [x.astype(target)]


def _vjp_cast(node, g):
    src = node.inputs[0]
    if src.dtype.is_float and node.outputs[0].dtype.is_float:
        # The gradient comes back in the operand's dtype (a bf16 use of an f32 weight
        # gives the weight an f32 gradient, as Keras's autocast does).
        return [B.cast(g[0], src.dtype)]
    return [None]


register(
    OpDef(
        "cast",
        "cast",
        1,
        _infer_cast,
        _ref_cast,
        _vjp_cast,
        traits=T.elementwise(carries_values=True),
    )
)


def _infer_round_to(types, attrs):
    expect_arity(types, 1)
    expect_dtype(types[0], DType.f32)
    if not DType.parse(attrs["dtype"]).is_narrow_float:
        raise ShapeError(f"round_to rounds to a narrow float (bf16, f16), not {attrs['dtype']}")
    return [types[0]]


def _ref_round_to(ctx: RefContext, args, attrs):
    narrow = DType.parse(attrs["dtype"])
    # In float64 runs narrow floats are not rounded (see RefContext.storage).
    return [args[0].astype(ctx.storage(narrow)).astype(ctx.float_dtype)]


register(
    OpDef(
        "round_to",
        "cast",
        1,
        _infer_round_to,
        _ref_round_to,
        lambda node, g: [g[0]],  # as a cast's: the value it stands for
        doc="round_to(x) {dtype}: x rounded to the nearest value of a narrow float dtype "
        "(ties to even), held in f32",
        traits=T.elementwise(cost=3),
    )
)


register(
    OpDef(
        "stop_gradient",
        "unary",
        1,
        lambda types, attrs: (expect_arity(types, 1), [types[0]])[1],
        lambda ctx, args, attrs: [args[0]],
        None,
        doc="identity whose gradient is zero",
        traits=T.elementwise(carries_values=True),
    )
)


def _infer_gradient_via(types, attrs):
    expect_arity(types, 2)
    if types[0] != types[1]:
        raise ShapeError(
            f"gradient_via needs a value and a proxy of one type, got {types[0]}, {types[1]}"
        )
    return [types[0]]


register(
    OpDef(
        "gradient_via",
        "unary",
        2,
        _infer_gradient_via,
        lambda ctx, args, attrs: [args[0]],
        lambda node, g: [None, g[0]],
        doc="gradient_via(value, proxy): value, whose gradient flows to proxy as if the "
        "result were proxy (Keras's custom gradients of quantized layers: the int8 "
        "product's input gradient is the float product's); removed after autodiff",
        traits=T.elementwise(carries_values=True),
    )
)
