"""``keras.ops``'s functions of NaN and infinity: tests (``isnan``, ``isfinite``, ...),
replacement (``nan_to_num``), the NaN-ignoring reductions (``nansum``, ``nanmax``, ...)
and the NaN-aware binary functions (``fmax``, ``fmin``), plus the other special float
functions (``erfc``, ``erfinv``, ``i0``, ``ldexp``, ``logaddexp2``, ``fmod``) and the
complex-number functions that are defined on real tensors (``real``, ``imag``, ``conj``,
``angle``, ``isreal``: kcompile's tensors are all real).

Integer and boolean tensors hold no NaN or infinity: their tests are all False.
"""

from __future__ import annotations

import math

from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.ops import composite as C
from kcompile.ops import numpy as N
from kcompile.ops.core import fval, fvals, op, val, vals
from kcompile.ops.numpy import _axes, _named, _unary

F32_MAX = 3.4028234663852886e38


def _nan(v: Value) -> Value:
    """True where ``v`` is NaN (False throughout for an integer or boolean tensor)."""
    if v.dtype is not DType.f32:
        return B.const(v.graph, False, DType.bool, v.shape)
    return B.ne(v, v)


def _test(name: str, fn):
    def test(x):
        v = val(x)
        if v.dtype is not DType.f32:
            return B.const(v.graph, fn is _finite, DType.bool, v.shape)
        return fn(v)

    return _named(name, test)


def _finite(v: Value) -> Value:
    return B.lt(B.abs(v), math.inf)


isnan = _named("isnan", lambda x: _nan(val(x)))
isfinite = _test("isfinite", _finite)
isinf = _test("isinf", lambda v: B.eq(B.abs(v), math.inf))
isposinf = _test("isposinf", lambda v: B.eq(v, math.inf))
isneginf = _test("isneginf", lambda v: B.eq(v, -math.inf))


@op
def signbit(x):
    """True where the sign bit is set: negative numbers and -0.0 (told apart from 0.0 by
    the sign of 1/x)."""
    v = val(x)
    if v.dtype is not DType.f32:
        return B.lt(v, B.const(v.graph, 0, v.dtype))
    zero = B.eq(v, 0.0)
    one = B.const(v.graph, 1.0, DType.f32)
    return B.select(zero, B.lt(one / B.select(zero, v, one), 0.0), B.lt(v, 0.0))


@op
def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    v = val(x)
    if v.dtype is not DType.f32:
        return v
    top = F32_MAX if posinf is None else float(posinf)
    bottom = -F32_MAX if neginf is None else float(neginf)
    out = B.select(B.eq(v, math.inf), B.const(v.graph, top, DType.f32), v)
    out = B.select(B.eq(v, -math.inf), bottom, out)
    return B.select(_nan(v), float(nan), out)


def _replace_nan(x, fill: float) -> Value:
    v = val(x)
    return v if v.dtype is not DType.f32 else B.select(_nan(v), fill, v)


def _count(v: Value, axes, keepdims) -> Value:
    present = B.cast(B.logical_not(_nan(v)), DType.f32)
    return B.reduce_sum(present, axes, keepdims)


@op
def nansum(x, axis=None, keepdims=False):
    v = _replace_nan(x, 0.0)
    return B.reduce_sum(v, _axes(v, axis), keepdims)


@op
def nanprod(x, axis=None, keepdims=False):
    v = _replace_nan(x, 1.0)
    return B.reduce_prod(v, _axes(v, axis), keepdims)


@op
def nanmean(x, axis=None, keepdims=False):
    v = fval(x)
    axes = _axes(v, axis)
    total = B.reduce_sum(B.select(_nan(v), 0.0, v), axes, keepdims)
    return total / _count(v, axes, keepdims)  # 0/0: NaN where every value is NaN


@op
def nanvar(x, axis=None, keepdims=False):
    v = fval(x)
    axes = _axes(v, axis)
    mean = nanmean.__kcompile_op__(v, axes, True)
    centred = B.select(_nan(v), 0.0, v - mean)
    return B.reduce_sum(B.square(centred), axes, keepdims) / _count(v, axes, keepdims)


@op
def nanstd(x, axis=None, keepdims=False):
    return B.sqrt(nanvar.__kcompile_op__(x, axis, keepdims))


def _nan_extreme(x, axis, keepdims, reduce, fill: float) -> Value:
    v = val(x)
    if v.dtype is not DType.f32:
        return reduce(v, axis, keepdims)
    axes = _axes(v, axis)
    out = reduce(B.select(_nan(v), fill, v), axes, keepdims)
    return B.select(B.eq(_count(v, axes, keepdims), 0.0), math.nan, out)


@op
def nanmax(x, axis=None, keepdims=False):
    return _nan_extreme(x, axis, keepdims, N.max.__kcompile_op__, -math.inf)


@op
def nanmin(x, axis=None, keepdims=False):
    return _nan_extreme(x, axis, keepdims, N.min.__kcompile_op__, math.inf)


@op
def nanargmax(x, axis=None, keepdims=False):
    return N.argmax.__kcompile_op__(_replace_nan(x, -math.inf), axis, keepdims)


@op
def nanargmin(x, axis=None, keepdims=False):
    return N.argmin.__kcompile_op__(_replace_nan(x, math.inf), axis, keepdims)


@op
def nancumsum(x, axis=None, dtype=None):
    return C.cumsum.__kcompile_op__(_replace_nan(x, 0.0), axis, dtype)


# --- NaN-aware and special binary and unary functions ------------------------------------


def _nan_aware(pick):
    def fn(x1, x2):
        a, b = vals(x1, x2)
        if a.dtype is not DType.f32:
            return pick(a, b)
        return B.select(_nan(a), b, B.select(_nan(b), a, pick(a, b)))

    return fn


fmax = _named("fmax", _nan_aware(B.maximum))
fmin = _named("fmin", _nan_aware(B.minimum))


@op
def fmod(x1, x2):
    """C's remainder: the sign of the dividend (``mod`` takes the divisor's)."""
    a, b = vals(x1, x2)
    fa, fb = B.cast(a, DType.f32), B.cast(b, DType.f32)
    q = fa / fb
    out = fa - B.sign(q) * B.floor(B.abs(q)) * fb  # the quotient truncated toward zero
    return out if a.dtype is DType.f32 else B.cast(out, a.dtype)


@op
def ldexp(x1, x2):
    a = fval(x1)
    return a * B.power(B.const(a.graph, 2.0, DType.f32), fval(x2))


@op
def logaddexp2(x1, x2):
    a, b = fvals(x1, x2)
    top = B.maximum(a, b)
    return top + B.log1p(B.exp(-B.abs(a - b) * math.log(2.0))) * (1.0 / math.log(2.0))


erfc = _unary("erfc", lambda v: 1.0 - B.erf(v))


def _erfinv(v: Value) -> Value:
    # Giles's single-precision approximation ("Approximating the erfinv function", 2010),
    # as XLA computes it: a polynomial in w = -log(1 - x²) on each side of w = 5.
    w = -B.log((1.0 - v) * (v + 1.0))
    near, far = w - 2.5, B.sqrt(B.maximum(w, 5.0)) - 3.0
    central = [
        2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
        -0.00125372503, -0.00417768164, 0.246640727, 1.50140941,
    ]  # fmt: skip
    tail = [
        -0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
        -0.0076224613, 0.00943887047, 1.00167406, 2.83297682,
    ]  # fmt: skip

    def horner(t: Value, coeffs: list[float]) -> Value:
        acc = B.const(t.graph, coeffs[0], DType.f32, t.shape)
        for c in coeffs[1:]:
            acc = acc * t + c
        return acc

    p = B.select(B.lt(w, 5.0), horner(near, central), horner(far, tail))
    return p * v


erfinv = _unary("erfinv", _erfinv)


def _i0(v: Value) -> Value:
    # Abramowitz and Stegun 9.8.1 and 9.8.2 (relative error below 2e-7).
    a = B.abs(v)
    t = B.square(a * (1.0 / 3.75))
    small = B.const(a.graph, 0.0045813, DType.f32, a.shape)
    for c in [0.0360768, 0.2659732, 1.2067492, 3.0899424, 3.5156229, 1.0]:
        small = small * t + c
    u = 3.75 / B.maximum(a, 3.75)
    tail = [0.00392377, -0.01647633, 0.02635537, -0.02057706, 0.00916281, -0.00157565,
            0.00225319, 0.01328592, 0.39894228]  # fmt: skip
    series = B.const(a.graph, tail[0], DType.f32, a.shape)
    for c in tail[1:]:
        series = series * u + c
    large = series * B.exp(a) / B.sqrt(B.maximum(a, 3.75))
    return B.select(B.le(a, 3.75), small, large)


i0 = _unary("i0", _i0)

# --- complex-number functions on real tensors ---------------------------------------------

real = _unary("real", lambda v: v, None)
conj = _unary("conj", lambda v: v, None)
conjugate = _unary("conjugate", lambda v: v, None)
imag = _named("imag", lambda x: N.zeros_like.__kcompile_op__(x))
isreal = _named("isreal", lambda x: B.const(val(x).graph, True, DType.bool, val(x).shape))


@op
def angle(x):
    v = fval(x)
    return B.select(B.lt(v, 0.0), B.const(v.graph, math.pi, DType.f32), 0.0)


__all__ = [
    "angle",
    "conj",
    "conjugate",
    "erfc",
    "erfinv",
    "fmax",
    "fmin",
    "fmod",
    "i0",
    "imag",
    "isfinite",
    "isinf",
    "isnan",
    "isneginf",
    "isposinf",
    "isreal",
    "ldexp",
    "logaddexp2",
    "nan_to_num",
    "nanargmax",
    "nanargmin",
    "nancumsum",
    "nanmax",
    "nanmean",
    "nanmin",
    "nanprod",
    "nanstd",
    "nansum",
    "nanvar",
    "real",
    "signbit",
]
