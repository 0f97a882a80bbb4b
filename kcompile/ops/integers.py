"""``keras.ops``'s integer functions: the bitwise ones on int32 (and bool) tensors, and
``gcd``/``lcm``. kcompile's IR has no
bit operations, so they are arithmetic: shifts are products and floor divisions by
powers of two (an arithmetic right shift is a floor division), ``invert`` is -x - 1, and
``and``/``or``/``xor`` take the 32 bits of each operand apart (bit i of the floor
quotient by 2^i), combine them, and sum them back with weights 2^i (-2^31 for the sign
bit, as in two's complement). About 200 element-wise operations each, fused into one
loop in compiled code. ``gcd`` is Euclid's algorithm unrolled to the most steps any
pair of int32 can take (46: consecutive Fibonacci numbers are the worst case).
"""

from __future__ import annotations

from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.ops.core import op, vals
from kcompile.ops.numpy import _named


def _ints(name: str, *xs) -> list[Value]:
    values = vals(*xs)
    if values[0].dtype is DType.f32:
        raise TypeError(f"keras.ops.{name} takes integer or boolean tensors, not float32")
    return values


def _halve(v: Value) -> Value:
    return B.div(v, B.const(v.graph, 2, DType.i32))  # i32 division floors


def _bitwise(name: str, combine, logical):
    def fn(x, y):
        a, b = _ints(name, x, y)
        if a.dtype is DType.bool:
            return logical(a, b)
        total = None
        for i in range(32):
            bit_a, bit_b = a - _halve(a) * 2, b - _halve(b) * 2
            weight = -(2**31) if i == 31 else 2**i
            term = combine(bit_a, bit_b) * weight
            total = term if total is None else total + term
            a, b = _halve(a), _halve(b)
        return total

    return _named(name, fn)


bitwise_and = _bitwise("bitwise_and", lambda p, q: p * q, B.logical_and)
bitwise_or = _bitwise("bitwise_or", lambda p, q: p + q - p * q, B.logical_or)
bitwise_xor = _bitwise("bitwise_xor", lambda p, q: p + q - p * q * 2, B.ne)


@op
def bitwise_invert(x):
    (v,) = _ints("bitwise_invert", x)
    return B.logical_not(v) if v.dtype is DType.bool else B.neg(v) - 1


bitwise_not = _named("bitwise_not", lambda x: bitwise_invert.__kcompile_op__(x))


def _power_of_two(y: Value) -> Value:
    """2^(y - 1) as int32 for shifts y in 1..31 (2^31 itself does not fit)."""
    exponent = B.cast(y, DType.f32) - 1.0
    return B.cast(B.power(B.const(y.graph, 2.0, DType.f32), exponent), DType.i32)


@op
def left_shift(x, y):
    """x · 2^y, wrapping as int32 arithmetic does."""
    a, s = _ints("left_shift", x, y)
    shifted = a * _power_of_two(B.maximum(s, 1)) * 2
    return B.select(B.eq(s, 0), a, shifted)


@op
def right_shift(x, y):
    """The arithmetic shift: floor(x / 2^y)."""
    a, s = _ints("right_shift", x, y)
    shifted = _halve(B.div(a, _power_of_two(B.maximum(s, 1))))
    return B.select(B.eq(s, 0), a, shifted)


bitwise_left_shift = _named("bitwise_left_shift", lambda x, y: left_shift.__kcompile_op__(x, y))
bitwise_right_shift = _named("bitwise_right_shift", lambda x, y: right_shift.__kcompile_op__(x, y))

# Euclid's algorithm on numbers below 2^31 ends within 46 steps (Lamé's theorem: the
# worst case is two consecutive Fibonacci numbers, and F(47) > 2^31).
_EUCLID_STEPS = 46


def _gcd(a: Value, b: Value) -> Value:
    a, b = B.abs(a), B.abs(b)
    for _ in range(_EUCLID_STEPS):
        zero = B.eq(b, 0)
        safe = B.select(zero, B.const(b.graph, 1, DType.i32), b)  # no division by zero
        a, b = B.select(zero, a, b), B.select(zero, b, a - B.div(a, safe) * safe)
    return a


@op
def gcd(x1, x2):
    a, b = _ints("gcd", x1, x2)
    return _gcd(a, b)


@op
def lcm(x1, x2):
    a, b = _ints("lcm", x1, x2)
    g = _gcd(a, b)
    safe = B.select(B.eq(g, 0), B.const(g.graph, 1, DType.i32), g)
    return B.abs(B.div(a, safe) * b)


__all__ = [
    "bitwise_and",
    "bitwise_invert",
    "bitwise_left_shift",
    "bitwise_not",
    "bitwise_or",
    "bitwise_right_shift",
    "bitwise_xor",
    "gcd",
    "lcm",
    "left_shift",
    "right_shift",
]
