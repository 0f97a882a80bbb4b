"""``keras.ops``'s trigonometric and hyperbolic functions.

``sin``, ``cos`` and ``atan`` are IR primitives (vectorized polynomials in compiled code,
``codegen/lowering/mathfn.py``); the rest are compositions of them and of ``exp``/``log``, written
where numpy's float32 results need it to keep precision (``arccos`` near 1 through the
half-angle form, ``sinh`` and ``arcsinh`` near 0 through series and ``log1p``). Each
composition's gradient comes from its primitives' VJPs.
"""

from __future__ import annotations

import math

from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.ops.core import fvals, op
from kcompile.ops.numpy import _unary


def _where(cond: Value, a: Value | float, b: Value | float) -> Value:
    return B.select(cond, a, b)


def _safe(x: Value, bad: Value) -> Value:
    """``x`` with 1.0 where ``bad``: a divisor whose unused branch must not make NaN
    gradients."""
    return B.select(bad, B.const(x.graph, 1.0, x.dtype), x)


sin = _unary("sin", B.sin)
cos = _unary("cos", B.cos)
tan = _unary("tan", lambda v: B.sin(v) / B.cos(v))
arctan = _unary("arctan", B.atan)


def _arcsin(v: Value) -> Value:
    # atan(x / sqrt(1 - x²)), with 1 - x² as (1 - x)(1 + x) for precision near ±1.
    return B.atan(v / B.sqrt((1.0 - v) * (v + 1.0)))


def _arccos(v: Value) -> Value:
    # 2·atan(sqrt((1 - x) / (1 + x))): no cancellation near 1, where arccos is small.
    return 2.0 * B.atan(B.sqrt((1.0 - v) / (v + 1.0)))


arcsin = _unary("arcsin", _arcsin)
arccos = _unary("arccos", _arccos)


@op
def arctan2(x1, x2):
    """The angle of the point (x2, x1), in [-pi, pi] (numpy's ``arctan2``)."""
    y, x = fvals(x1, x2)
    on_axis = B.eq(x, 0.0)
    base = B.atan(y / _safe(x, on_axis))
    half_turn = _where(B.ge(y, 0.0), B.const(y.graph, math.pi, y.dtype), -math.pi)
    left = base + _where(B.lt(x, 0.0), half_turn, 0.0)
    vertical = B.sign(y) * (math.pi / 2)
    return _where(on_axis, vertical, left)


def _sinh(v: Value) -> Value:
    # Below |x| = 0.5 the series to x⁹ (exp's difference would cancel).
    e = B.exp(v)
    wide = (e - 1.0 / e) * 0.5
    z = B.square(v)
    series = v * (1.0 + z * (1.0 / 6 + z * (1.0 / 120 + z * (1.0 / 5040 + z * (1.0 / 362880)))))
    return _where(B.lt(B.abs(v), 0.5), series, wide)


def _arcsinh(v: Value) -> Value:
    # sign(x)·log1p(|x| + x²/(1 + sqrt(x² + 1))): exact near 0, no cancellation for x < 0.
    a = B.abs(v)
    z = B.square(a)
    return B.sign(v) * B.log1p(a + z / (B.sqrt(z + 1.0) + 1.0))


sinh = _unary("sinh", _sinh)
cosh = _unary("cosh", lambda v: (B.exp(v) + B.exp(-v)) * 0.5)
arcsinh = _unary("arcsinh", _arcsinh)
arccosh = _unary("arccosh", lambda v: B.log(v + B.sqrt((v - 1.0) * (v + 1.0))))
arctanh = _unary("arctanh", lambda v: 0.5 * B.log1p(2.0 * v / (1.0 - v)))


def _sinc(v: Value) -> Value:
    zero = B.eq(v, 0.0)
    t = _safe(v * math.pi, zero)
    return _where(zero, 1.0, B.sin(t) / t)


sinc = _unary("sinc", _sinc)

__all__ = [
    "arccos",
    "arccosh",
    "arcsin",
    "arcsinh",
    "arctan",
    "arctan2",
    "arctanh",
    "cos",
    "cosh",
    "sin",
    "sinc",
    "sinh",
    "tan",
]
