"""Scalar bodies of elementwise ops: one rule per op, looked up in a table.

Floats use only the ``contract`` fast-math flag (mul+add may become FMA);
nothing here reassociates, so results match numpy within a few ulp.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from llvmlite import ir

from kcompile.codegen.loops import F32, I1, I8, I32, round_bf16
from kcompile.codegen.lowering.mathfn import MathLib
from kcompile.ir import DType
from kcompile.ir.traits import Reduction

CONTRACT = ["contract"]

ScalarRule = Callable[[ir.IRBuilder, MathLib, list[ir.Value], list[DType], dict], ir.Value]


def _is_float(dtypes: list[DType]) -> bool:
    return dtypes[0] is DType.f32


def _bool(b: ir.IRBuilder, bit: ir.Value) -> ir.Value:
    return b.zext(bit, I8)


def _neg(b, m, a, t, attrs):
    return b.fneg(a[0]) if _is_float(t) else b.sub(ir.Constant(a[0].type, 0), a[0])


def _abs(b, m, a, t, attrs):
    if _is_float(t):
        return b.call(m.intrinsic("llvm.fabs.f32"), [a[0]])
    x = a[0]
    return b.select(b.icmp_signed("<", x, ir.Constant(I32, 0)), b.neg(x), x)


def _sign(b, m, a, t, attrs):
    x = a[0]
    if _is_float(t):
        one, zero = ir.Constant(F32, 1.0), ir.Constant(F32, 0.0)
        s = b.select(
            b.fcmp_ordered(">", x, zero),
            one,
            b.select(
                b.fcmp_ordered("<", x, zero),
                ir.Constant(F32, -1.0),
                # NaN stays NaN; either zero is +0, as numpy's sign gives it.
                b.select(b.fcmp_unordered("uno", x, x), x, zero),
            ),
        )
        return s
    zero = ir.Constant(I32, 0)
    pos = b.zext(b.icmp_signed(">", x, zero), I32)
    neg = b.zext(b.icmp_signed("<", x, zero), I32)
    return b.sub(pos, neg)


def _math(name):
    return lambda b, m, a, t, attrs: m.call(b, name, a[0])


def _sqrt(b, m, a, t, attrs):
    return b.call(m.intrinsic("llvm.sqrt.f32"), [a[0]])


def _arith(fop, iop):
    def rule(b, m, a, t, attrs):
        if _is_float(t):
            return getattr(b, fop)(a[0], a[1], flags=CONTRACT)
        return getattr(b, iop)(a[0], a[1])

    return rule


def _div(b, m, a, t, attrs):
    if _is_float(t):
        return b.fdiv(a[0], a[1], flags=CONTRACT)
    # numpy's floor division; a zero divisor divides by 1 (as the reference does).
    x, y = a
    zero = ir.Constant(I32, 0)
    y = b.select(b.icmp_signed("==", y, zero), ir.Constant(I32, 1), y)
    q = b.sdiv(x, y)
    r = b.srem(x, y)
    adjust = b.and_(
        b.icmp_signed("!=", r, zero),
        b.icmp_signed("!=", b.icmp_signed("<", r, zero), b.icmp_signed("<", y, zero)),
    )
    return b.sub(q, b.zext(adjust, I32))


def _minmax(fname, pred):
    def rule(b, m, a, t, attrs):
        if _is_float(t):
            # llvm.maximum/minimum propagate NaN, as numpy.maximum does.
            return b.call(m.intrinsic(fname, 2), a)
        return b.select(b.icmp_signed(pred, a[0], a[1]), a[0], a[1])

    return rule


def _pow(b, m, a, t, attrs):
    if not _is_float(t):
        raise NotImplementedError("codegen: pow on i32 is not supported")
    # Scalar powf: pow appears on scalars (Adam's beta**t), never in a hot loop of a model.
    return b.call(m.intrinsic("llvm.pow.f32", 2), a)


_FCMP = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def _compare(op):
    def rule(b, m, a, t, attrs):
        pred = _FCMP[op]
        if _is_float(t):
            # numpy: every comparison with NaN is False, except != which is True.
            bit = (
                b.fcmp_unordered(pred, a[0], a[1])
                if op == "ne"
                else b.fcmp_ordered(pred, a[0], a[1])
            )
        else:
            bit = b.icmp_signed(pred, a[0], a[1])
        return _bool(b, bit)

    return rule


def _select(b, m, a, t, attrs):
    return b.select(b.trunc(a[0], I1), a[1], a[2])


def _cast(b, m, a, t, attrs):
    src, dst = t[0], DType.parse(attrs["dtype"])
    x = a[0]
    if src is dst:
        return x
    # A bf16 value is held in an f32 register (``codegen.lowering.kernel.LOWERED``): from it, a
    # cast is the f32's; to it, the f32 rounded.
    if src is DType.bf16:
        return _cast(b, m, a, [DType.f32], attrs)
    if dst is DType.bf16:
        wide = _cast(b, m, a, t, {"dtype": DType.f32.value})
        return _round_to(b, m, [wide], [DType.f32], {"dtype": DType.bf16.value})
    unsigned = src in (DType.bool, DType.u8)
    if dst is DType.f32:
        return b.uitofp(x, F32) if unsigned else b.sitofp(x, F32)
    if dst in (DType.i32, DType.i8, DType.u8):
        width = I32 if dst is DType.i32 else I8
        if src is DType.f32 and width is I8:
            return _float_to_byte(b, m, x, dst)
        if src is DType.f32:
            # Saturating, so out-of-range values do not become poison; NaN gives 0.
            return b.call(m.intrinsic("llvm.fptosi.sat.i32.f32", 1, F32, I32), [x])
        if x.type.width > width.width:
            return b.trunc(x, width)  # wraps, as numpy's astype
        if x.type.width < width.width:
            return b.zext(x, width) if unsigned else b.sext(x, width)
        return x  # i8 <-> u8 <-> bool bits (a bool is 0 or 1)
    if src is DType.f32:
        return _bool(b, b.fcmp_unordered("!=", x, ir.Constant(F32, 0.0)))
    return _bool(b, b.icmp_signed("!=", x, ir.Constant(x.type, 0)))


def _float_to_byte(b, m, x, dst: DType):
    """f32 to i8 or u8 as ``fptosi.sat`` gives it (NaN 0, out-of-range values the nearest
    end), spelled as a clamp and an f32-to-i32 conversion: vectorized, where LLVM
    scalarized the saturating conversion to bytes (a quantizer's row kernel ran at
    ~5 GB/s)."""
    low, high = (0.0, 255.0) if dst is DType.u8 else (-128.0, 127.0)
    nan = b.fcmp_unordered("uno", x, x)
    x = b.select(nan, ir.Constant(F32, 0.0), x)
    x = b.call(m.intrinsic("llvm.maxnum.f32", 2), [x, ir.Constant(F32, low)])
    x = b.call(m.intrinsic("llvm.minnum.f32", 2), [x, ir.Constant(F32, high)])
    return b.trunc(b.fptosi(x, I32), I8)


def _round_to(b, m, a, t, attrs):
    """f32 rounded to a narrow float, held in f32: bf16 by integer rounding of the bits
    (``codegen.loops.round_bf16``), f16 through LLVM's half type."""
    x = a[0]
    if attrs["dtype"] == "f16":
        half = ir.HalfType()
        if isinstance(x.type, ir.VectorType):
            half = ir.VectorType(half, x.type.count)
        return b.fpext(b.fptrunc(x, half), x.type)
    return round_bf16(b, x)


SCALAR_RULES: dict[str, ScalarRule] = {
    "neg": _neg,
    "abs": _abs,
    "sign": _sign,
    "exp": _math("exp"),
    "log": _math("log"),
    "log1p": _math("log1p"),
    "tanh": _math("tanh"),
    "logistic": _math("logistic"),
    "erf": _math("erf"),
    "sin": _math("sin"),
    "cos": _math("cos"),
    "atan": _math("atan"),
    # Both from Φ and exp(-x²/2) computed once (codegen/lowering/mathfn.py's _normal): in the loop
    # that computes both, LLVM merges the two copies.
    "gelu": _math("gelu"),
    "gelu_grad": _math("gelu_grad"),
    "sqrt": _sqrt,
    "floor": lambda b, m, a, t, attrs: b.call(m.intrinsic("llvm.floor.f32"), [a[0]]),
    "ceil": lambda b, m, a, t, attrs: b.call(m.intrinsic("llvm.ceil.f32"), [a[0]]),
    "round": lambda b, m, a, t, attrs: b.call(m.intrinsic("llvm.roundeven.f32"), [a[0]]),
    "stop_gradient": lambda b, m, a, t, attrs: a[0],
    # (simplify removes it after autodiff; a pipeline without simplify lowers it so)
    "gradient_via": lambda b, m, a, t, attrs: a[0],
    "not": lambda b, m, a, t, attrs: b.xor(a[0], ir.Constant(I8, 1)),
    "add": _arith("fadd", "add"),
    "sub": _arith("fsub", "sub"),
    "mul": _arith("fmul", "mul"),
    "div": _div,
    "max": _minmax("llvm.maximum.f32", ">"),
    "min": _minmax("llvm.minimum.f32", "<"),
    "pow": _pow,
    "and": lambda b, m, a, t, attrs: b.and_(a[0], a[1]),
    "or": lambda b, m, a, t, attrs: b.or_(a[0], a[1]),
    "select": _select,
    "cast": _cast,
    "round_to": _round_to,
    **{op: _compare(op) for op in _FCMP},
}


# --- reductions -------------------------------------------------------------------------

Combine = Callable[[ir.Value, ir.Value], ir.Value]


def reduction_start(reduction: Reduction, dtype: DType) -> ir.Constant:
    """The reduction's identity as a constant of ``dtype`` (-inf is INT_MIN for i32)."""
    if dtype is DType.f32:
        return ir.Constant(F32, float(reduction.identity))
    if math.isinf(reduction.identity):
        return ir.Constant(I32, -(2**31) if reduction.identity < 0 else 2**31 - 1)
    return ir.Constant(I32, int(reduction.identity))


def reduction_combine(b: ir.IRBuilder, m: MathLib, reduction: Reduction, dtype: DType) -> Combine:
    """``combine(accumulated, value)``. A float sum may reassociate, so that LLVM
    vectorizes it; its order then differs from numpy's pairwise summation by a few ulp
    per element summed (see the tests' tolerances)."""
    if reduction.combine == "add" and dtype is DType.f32:
        return lambda acc, x: b.fadd(acc, x, flags=["reassoc", "contract"])
    rule = SCALAR_RULES[reduction.combine]
    return lambda acc, x: rule(b, m, [acc, x], [dtype, dtype], {})
