"""Vectorizable f32 math in LLVM IR: no libm call per element.

Each function is straight-line scalar IR (selects, ``llvm.floor``, integer bit
tricks, polynomials) marked ``alwaysinline``, so once inlined into a loop
LLVM's loop vectorizer turns it into 8-wide AVX2 code. Polynomials are
Cephes's single-precision minimax fits. Maximum errors against float64
numpy, measured over 2 million f32 inputs spread over each range (the bound
``tests/test_codegen_math.py`` asserts, then the measured maximum):

    exp       1 ulp  (0.96)  on -103..88.7; above -> inf, below -> 0, denormals exact
    log       1 ulp  (0.64)  on 1e-30..1e5; denormals handled, log(0) = -inf, log(<0) = nan
    log1p     2 ulp  (1.86)  on -0.999..1e4
    tanh      2 ulp  (1.39)  on -12..12
    logistic  3 ulp  (2.20)  on -90..30
    erf       3 ulp  (2.63)  on -6..6
    gelu      6 ulp  (5.5)   on -12..10, x·Φ(x) from Φ's tail below -0.5 (1 + erf(x/√2)
                             lost up to 6e5 ulp there, 16e6 below -5)
    gelu'     2 ulp  (1.3), or 1.2e-7 absolute near its zero at -0.75, on -12..10
    sin, cos  2 ulp, or 1.2e-7 absolute near zeros, on -8192..8192 (Cephes reduction)
    atan      2 ulp  on -1e4..1e4

NaN propagates through every function, as in numpy.
"""

from __future__ import annotations

import math

from llvmlite import ir

from kcompile.codegen.loops import F32, I32

LOG2E = 1.44269504088896341
EXP_HI = 88.72283935546875  # above: inf
EXP_LO = -103.972076416015625  # below: 0
ROUNDING = 12582912.0  # 1.5 * 2**23: adding it rounds a float of magnitude < 2**22 to an integer


# Φ(x) - 0.5 = x·P(x²) on |x| < 1.5, and 0.5·erfcx(t/√2) = s·Q(s) with s = 1/(1 + t/2) on
# t >= 0.5 (least-squares fits, highest power first; see MathLib._normal).
_NORMAL_NEAR = [
    4.184045678812254e-07,
    -8.761971002968494e-06,
    0.00011446030111983418,
    -0.0011866018176078796,
    0.009973296895623207,
    -0.06649034470319748,
    0.3989422917366028,
]
_NORMAL_TAIL = [
    -0.12364310771226883,
    0.5980752110481262,
    -1.1801273822784424,
    1.1390093564987183,
    -0.4463522136211395,
    -0.00825563445687294,
    -0.07857263833284378,
    0.05136990174651146,
    0.14952920377254486,
    0.19947271049022675,
    0.1994711309671402,
]
# Cephes's expf polynomial (exp(r) = 1 + r + r²·P(r) on |r| <= ln2/2).
_EXP_POLY = [
    1.9875691500e-4,
    1.3981999507e-3,
    8.3334519073e-3,
    4.1665795894e-2,
    1.6666665459e-1,
    5.0000001201e-1,
]


def _c(x: float) -> ir.Constant:
    return ir.Constant(F32, x)


def _poly(b: ir.IRBuilder, x: ir.Value, coeffs: list[float]) -> ir.Value:
    """Horner's rule, highest power first."""
    acc = _c(coeffs[0])
    for c in coeffs[1:]:
        acc = b.fadd(b.fmul(acc, x, flags=["contract"]), _c(c), flags=["contract"])
    return acc


class MathLib:
    """Defines the math functions in a module on first use."""

    def __init__(self, module: ir.Module) -> None:
        self.module = module
        self.functions: dict[str, ir.Function] = {}

    def intrinsic(
        self, name: str, nargs: int = 1, type_: ir.Type = F32, ret: ir.Type | None = None
    ) -> ir.Function:
        fn = self.module.globals.get(name)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(ret or type_, [type_] * nargs), name)
        return fn

    def call(self, b: ir.IRBuilder, name: str, *args: ir.Value) -> ir.Value:
        fn = self.functions.get(name)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(F32, [F32]), f"kc_{name}")
            fn.linkage = "internal"
            fn.attributes.add("alwaysinline")
            fb = ir.IRBuilder(fn.append_basic_block())
            fb.ret(getattr(self, f"_{name}")(fb, fn.args[0]))
            self.functions[name] = fn
        return b.call(fn, list(args))

    # --- the functions ----------------------------------------------------------

    def _exp(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        xc = b.call(self.intrinsic("llvm.maxnum.f32", 2), [x, _c(EXP_LO)])
        xc = b.call(self.intrinsic("llvm.minnum.f32", 2), [xc, _c(EXP_HI)])
        fx = b.call(self.intrinsic("llvm.floor.f32"), [b.fadd(b.fmul(xc, _c(LOG2E)), _c(0.5))])
        r = b.fsub(xc, b.fmul(fx, _c(0.693359375)))
        r = b.fsub(r, b.fmul(fx, _c(-2.12194440e-4)))
        z = b.fmul(r, r)
        p = _poly(b, r, _EXP_POLY)
        y = b.fadd(b.fadd(b.fmul(p, z), r), _c(1.0))
        # 2**n in two factors so that denormal results stay exact.
        n = b.fptosi(fx, I32)
        n1 = b.ashr(n, ir.Constant(I32, 1))
        n2 = b.sub(n, n1)
        y = b.fmul(y, self._pow2(b, n1))
        y = b.fmul(y, self._pow2(b, n2))
        y = b.select(b.fcmp_ordered(">", x, _c(EXP_HI)), _c(math.inf), y)
        y = b.select(b.fcmp_ordered("<", x, _c(EXP_LO)), _c(0.0), y)
        return b.select(b.fcmp_unordered("uno", x, x), x, y)

    @staticmethod
    def _pow2(b: ir.IRBuilder, n: ir.Value) -> ir.Value:
        bits = b.shl(b.add(n, ir.Constant(I32, 127)), ir.Constant(I32, 23))
        return b.bitcast(bits, F32)

    def _log(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        tiny = b.fcmp_ordered("<", x, _c(1.17549435e-38))
        xs = b.select(tiny, b.fmul(x, _c(8388608.0)), x)  # denormals: scale by 2**23
        bits = b.bitcast(xs, I32)
        e = b.sub(
            b.and_(b.lshr(bits, ir.Constant(I32, 23)), ir.Constant(I32, 0xFF)),
            ir.Constant(I32, 126),
        )
        e = b.select(tiny, b.sub(e, ir.Constant(I32, 23)), e)
        m = b.bitcast(
            b.or_(b.and_(bits, ir.Constant(I32, 0x807FFFFF)), ir.Constant(I32, 0x3F000000)), F32
        )
        small = b.fcmp_ordered("<", m, _c(0.707106781186547524))
        e = b.select(small, b.sub(e, ir.Constant(I32, 1)), e)
        m = b.select(small, b.fsub(b.fadd(m, m), _c(1.0)), b.fsub(m, _c(1.0)))
        ef = b.sitofp(e, F32)
        z = b.fmul(m, m)
        p = _poly(
            b,
            m,
            [
                7.0376836292e-2,
                -1.1514610310e-1,
                1.1676998740e-1,
                -1.2420140846e-1,
                1.4249322787e-1,
                -1.6668057665e-1,
                2.0000714765e-1,
                -2.4999993993e-1,
                3.3333331174e-1,
            ],
        )
        y = b.fmul(b.fmul(p, m), z)
        y = b.fadd(y, b.fmul(ef, _c(-2.12194440e-4)))
        y = b.fsub(y, b.fmul(z, _c(0.5)))
        y = b.fadd(b.fadd(m, y), b.fmul(ef, _c(0.693359375)))
        y = b.select(b.fcmp_ordered("==", x, _c(math.inf)), x, y)
        y = b.select(b.fcmp_ordered("==", x, _c(0.0)), _c(-math.inf), y)
        nan = b.fcmp_unordered("uno", x, x)
        negative = b.fcmp_ordered("<", x, _c(0.0))
        return b.select(b.or_(nan, negative), _c(math.nan), y)

    def _log1p(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        # log(u) * x / (u - 1) with u = 1 + x corrects the rounding of 1 + x.
        u = b.fadd(x, _c(1.0))
        d = b.fsub(u, _c(1.0))
        y = b.fdiv(b.fmul(self.call(b, "log", u), x), d)
        y = b.select(b.fcmp_ordered("==", d, _c(0.0)), x, y)
        return b.select(b.fcmp_ordered("==", x, _c(math.inf)), x, y)

    def _tanh(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        ax = b.call(self.intrinsic("llvm.fabs.f32"), [x])
        z = b.fmul(x, x)
        p = _poly(
            b,
            z,
            [
                -5.70498872745e-3,
                2.06390887954e-2,
                -5.37397155531e-2,
                1.33314422036e-1,
                -3.33332819422e-1,
            ],
        )
        small = b.fadd(b.fmul(b.fmul(p, z), x), x)
        # tanh|x| = 1 - 2e/(1 + e) with e = exp(-2|x|) <= 0.29 here: the quotient's error
        # is halved by the subtraction, and e never overflows.
        e = self.exp_nonpositive(b, b.fmul(ax, _c(-2.0)))
        big = b.fsub(_c(1.0), b.fdiv(b.fadd(e, e), b.fadd(e, _c(1.0))))
        big = b.call(self.intrinsic("llvm.copysign.f32", 2), [big, x])
        # NaN takes the first branch, whose polynomial propagates it.
        return b.select(b.fcmp_unordered("<", ax, _c(0.625)), small, big)

    def _logistic(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        # Computed on -|x| so exp never overflows, then reflected: s(x) = 1 - s(-x).
        ax = b.call(self.intrinsic("llvm.fabs.f32"), [x])
        e = self.exp_nonpositive(b, b.fneg(ax))
        # One division: 1 / (1 + e) for x >= 0, e / (1 + e) below (the same bits as two).
        top = b.select(b.fcmp_ordered(">=", x, _c(0.0)), _c(1.0), e)
        value = b.fdiv(top, b.fadd(e, _c(1.0)))
        return b.select(b.fcmp_unordered("uno", x, x), x, value)

    def exp_nonpositive(self, b: ir.IRBuilder, t: ir.Value) -> ir.Value:
        """exp(t) for t <= 0 (NaN: any number; the callers select NaN themselves), for
        logistic, tanh and softmax rows' exp(x - max x) (``codegen.lowering.row_loops``), which are
        bound by their math (an LSTM's gate kernel, attention's softmax): no
        overflow to handle, and below -87.7 (2**-126.5) the result is 0 or a denormal,
        which compiled code flushes to 0. n = round(t·log2 e) by adding 1.5·2**23: its
        bits then hold n + 0x4B400000, whose low 9 bits are zero, so shifted into 2**n's
        exponent only n remains; no floor and no float-to-int conversion. An LSTM's
        gate math (three logistics, two tanh) ran 241 -> 164 cycles per 16 elements
        against ``_exp``, with the same maximum errors, on AVX-512 and on AVX2
        (x86-64-v3) code. A reciprocal estimate with a Newton step in place of the
        division was slower (the divider is not the bottleneck: the op count is) and,
        with AVX2's 12-bit estimate, put logistic at 3.5 ulp."""
        fma = self.intrinsic("llvm.fma.f32", 3)
        t = b.call(self.intrinsic("llvm.maxnum.f32", 2), [t, _c(-88.0)])  # n >= -127
        shifted = b.call(fma, [t, _c(LOG2E), _c(ROUNDING)])
        fx = b.fsub(shifted, _c(ROUNDING))
        r = b.call(fma, [fx, _c(-0.693359375), t])
        r = b.call(fma, [fx, _c(2.12194440e-4), r])
        p = _poly(b, r, _EXP_POLY)
        y = b.fadd(b.call(fma, [p, b.fmul(r, r), r]), _c(1.0))
        # n = -127 gives the bits of 0.0: exp(t) is below every normal float there.
        bits = b.add(b.bitcast(shifted, I32), ir.Constant(I32, 127))
        return b.fmul(y, b.bitcast(b.shl(bits, ir.Constant(I32, 23)), F32))

    def _erf(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        ax = b.call(self.intrinsic("llvm.fabs.f32"), [x])
        z = b.fmul(x, x)
        # |x| < 0.5: the Taylor series of erf, 2/sqrt(pi) * x * (1 - x²/3 + x⁴/10 - ...).
        series = _poly(
            b, z, [-1 / 75600, 1 / 9360, -1 / 1320, 1 / 216, -1 / 42, 1 / 10, -1 / 3, 1.0]
        )
        near = b.fmul(b.fmul(series, x), _c(2 / math.sqrt(math.pi)))
        # Otherwise 1 - erfc(|x|) with Numerical Recipes' Chebyshev fit (relative error of
        # erfc below 1.2e-7).
        t = b.fdiv(_c(1.0), b.fadd(_c(1.0), b.fmul(_c(0.5), ax)))
        q = _poly(
            b,
            t,
            [
                0.17087277,
                -0.82215223,
                1.48851587,
                -1.13520398,
                0.27886807,
                -0.18628806,
                0.09678418,
                0.37409196,
                1.00002368,
                -1.26551223,
            ],
        )
        erfc = b.fmul(t, self.call(b, "exp", b.fsub(q, z)))
        far = b.call(self.intrinsic("llvm.copysign.f32", 2), [b.fsub(_c(1.0), erfc), x])
        return b.select(b.fcmp_unordered("<", ax, _c(0.5)), near, far)

    # --- the normal distribution: gelu and its derivative -----------------------------

    def _normal(self, b: ir.IRBuilder, x: ir.Value) -> tuple[ir.Value, ir.Value]:
        """(Φ(x), exp(-x²/2)) of the standard normal, in one exp and no erf: gelu and
        its derivative both call this on the same x, and LLVM computes it once for both.

        Φ(x) = 0.5 + x·P(x²) for -0.5 < x < 1.5; elsewhere Φ(-|x|) = exp(-x²/2)·s·Q(s) with
        s = 1/(1 + |x|/2) (the tail times a smooth function of s: 0.5·erfcx(|x|/√2)/s), and
        Φ(|x|) = 1 - Φ(-|x|). P and Q are least-squares fits (relative error below 1e-8 in
        float64). The tail has no cancellation, so x·Φ(x) is accurate to a few ulps on
        the negative side too, where 1 + erf(x/√2) loses all but a few bits. x² is carried
        as hi + lo (an FMA) so that exp(-x²/2) keeps its accuracy for large |x|. (One
        formula on the whole line, the tail's, saves the second polynomial but is 4 ulps
        off near 0, where gelu' is bound to 2.) The exp is ``exp_nonpositive`` (-x²/2 is
        at most 0; n rounded by adding 1.5·2**23, no floor and no float-to-int conversion):
        the encoder's GELU epilogue took 3-10% less CPU time than with ``_exp``'s clamps
        and floor (two interleaved runs), with the same maximum errors (2M points: 5.80
        and 1.28 ulp). Past |x| = 13
        exp is below float32's normal range and set to 0 (compiled code flushes denormals
        to zero). Φ(NaN) is any number: its callers multiply it by x."""
        fma = self.intrinsic("llvm.fma.f32", 3)
        ax = b.call(self.intrinsic("llvm.fabs.f32"), [x])
        hi = b.fmul(x, x)
        lo = b.call(fma, [x, x, b.fneg(hi)])
        e = self.exp_nonpositive(b, b.fmul(hi, _c(-0.5)))
        e = b.call(fma, [e, b.fmul(lo, _c(-0.5)), e])  # exp(t - lo/2) = exp(t)·(1 - lo/2)
        # lo may be inf or NaN past that, and tail·x must be 0 there.
        e = b.select(b.fcmp_ordered(">", ax, _c(13.0)), _c(0.0), e)
        near = _poly(b, hi, _NORMAL_NEAR)
        near = b.call(fma, [near, x, _c(0.5)])
        s = b.fdiv(_c(1.0), b.call(fma, [ax, _c(0.5), _c(1.0)]))
        tail = b.fmul(e, b.fmul(s, _poly(b, s, _NORMAL_TAIL)))
        far = b.select(b.fcmp_ordered("<", x, _c(0.0)), tail, b.fsub(_c(1.0), tail))
        inside = b.and_(b.fcmp_ordered(">", x, _c(-0.5)), b.fcmp_ordered("<", x, _c(1.5)))
        cdf = b.select(inside, near, far)
        # No NaN select: gelu and gelu' multiply by x, so a NaN x makes them NaN.
        return cdf, e

    def _gelu(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        cdf, _ = self._normal(b, x)
        return b.fmul(x, cdf)

    def _gelu_grad(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        # Φ(x) + x·φ(x); at ±inf NaN (inf·0), as numpy's reference computes it.
        cdf, e = self._normal(b, x)
        density = b.fmul(e, _c(1 / math.sqrt(2 * math.pi)))
        return b.call(self.intrinsic("llvm.fma.f32", 3), [x, density, cdf])

    # --- trigonometry (Cephes's sinf, cosf, atanf) ----------------------------------

    def _octant(self, b: ir.IRBuilder, ax: ir.Value) -> tuple[ir.Value, ir.Value]:
        """|x| reduced by multiples of pi/4 to r in [-pi/4, pi/4], and the octant j
        (0..7) it came from; the reduction subtracts pi/4 in three parts so that r
        stays exact up to |x| of 8192."""
        sat = self.intrinsic("llvm.fptosi.sat.i32.f32", 1, F32, I32)
        j = b.call(sat, [b.fmul(ax, _c(1.27323954473516))])
        j = b.add(j, b.and_(j, ir.Constant(I32, 1)))  # odd octants round up
        y = b.sitofp(j, F32)
        r = b.fsub(ax, b.fmul(y, _c(0.78515625)))
        r = b.fsub(r, b.fmul(y, _c(2.4187564849853515625e-4)))
        r = b.fsub(r, b.fmul(y, _c(3.77489497744594108e-8)))
        return r, b.and_(j, ir.Constant(I32, 7))

    @staticmethod
    def _sin_cos_poly(b: ir.IRBuilder, r: ir.Value, use_cos: ir.Value) -> ir.Value:
        z = b.fmul(r, r)
        s = _poly(b, z, [-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1])
        s = b.fadd(b.fmul(b.fmul(s, z), r), r)
        c = _poly(b, z, [2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2])
        c = b.fadd(b.fsub(b.fmul(b.fmul(c, z), z), b.fmul(z, _c(0.5))), _c(1.0))
        return b.select(use_cos, c, s)

    def _trig(self, b: ir.IRBuilder, x: ir.Value, cosine: bool) -> ir.Value:
        ax = b.call(self.intrinsic("llvm.fabs.f32"), [x])
        r, j = self._octant(b, ax)
        high = b.icmp_signed(">", j, ir.Constant(I32, 3))
        j = b.select(high, b.sub(j, ir.Constant(I32, 4)), j)  # now 0..3
        one_or_two = b.or_(
            b.icmp_signed("==", j, ir.Constant(I32, 1)), b.icmp_signed("==", j, ir.Constant(I32, 2))
        )
        if cosine:
            # cos: the sine polynomial on octants 1 and 2, negative from octant 2 on.
            y = self._sin_cos_poly(b, r, b.not_(one_or_two))
            flip = b.xor(high, b.icmp_signed(">", j, ir.Constant(I32, 1)))
        else:
            y = self._sin_cos_poly(b, r, one_or_two)
            flip = b.xor(high, b.fcmp_ordered("<", x, _c(0.0)))
        y = b.select(flip, b.fneg(y), y)
        bad = b.or_(b.fcmp_unordered("uno", x, x), b.fcmp_ordered("==", ax, _c(math.inf)))
        return b.select(bad, _c(math.nan), y)

    def _sin(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        return self._trig(b, x, cosine=False)

    def _cos(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        return self._trig(b, x, cosine=True)

    def _atan(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        ax = b.call(self.intrinsic("llvm.fabs.f32"), [x])
        # Reduced to |t| <= tan(pi/8): atan(x) = pi/2 + atan(-1/x) or pi/4 + atan((x-1)/(x+1)).
        big = b.fcmp_ordered(">", ax, _c(2.414213562373095))
        mid = b.fcmp_ordered(">", ax, _c(0.4142135623730950))
        t = b.select(
            big,
            b.fdiv(_c(-1.0), ax),
            b.select(mid, b.fdiv(b.fsub(ax, _c(1.0)), b.fadd(ax, _c(1.0))), ax),
        )
        base = b.select(big, _c(math.pi / 2), b.select(mid, _c(math.pi / 4), _c(0.0)))
        z = b.fmul(t, t)
        p = _poly(b, z, [8.05374449538e-2, -1.38776856032e-1, 1.99777106478e-1, -3.33329491539e-1])
        y = b.fadd(base, b.fadd(b.fmul(b.fmul(p, z), t), t))
        return b.call(self.intrinsic("llvm.copysign.f32", 2), [y, x])
