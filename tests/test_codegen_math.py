"""The vectorized math functions over dense sweeps of f32 inputs against float64 numpy.

The bounds asserted here are the ones stated in codegen/lowering/mathfn.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from kcompile.ir import BATCH, DType, Graph, TensorType
from kcompile.ir import build as B
from kcompile.runtime import make_executable

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _sigmoid(x):
    return np.where(
        x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x)))
    )


def sweep(lo: float, hi: float, count: int = 400_000) -> np.ndarray:
    """Evenly spaced values plus every f32 around 0 and 1 (denser where rounding is hardest)."""
    x = np.linspace(lo, hi, count, dtype=np.float64).astype(np.float32)
    edges = np.concatenate(
        [
            np.nextafter(np.float32(v), np.float32(v) + d, dtype=np.float32)
            * np.ones(1, np.float32)
            for v in (0.0, 1.0, -1.0)
            for d in (-1, 1)
        ]
    )
    x = np.unique(np.concatenate([x, edges]))
    return x[(x >= lo) & (x <= hi)]


FUNCTIONS = {
    # name: (build, exact float64 function, sweep range, max ulp, extra absolute tolerance)
    "exp": (B.exp, np.exp, (-103.0, 88.7), 1, 0.0),
    "log": (B.log, np.log, (1e-30, 1e5), 1, 0.0),
    "log1p": (B.log1p, np.log1p, (-0.999, 1e4), 2, 0.0),
    "tanh": (B.tanh, np.tanh, (-12.0, 12.0), 2, 0.0),
    "logistic": (B.logistic, _sigmoid, (-90.0, 30.0), 3, 0.0),
    "erf": (B.erf, _erf, (-6.0, 6.0), 3, 0.0),
    # sin and cos near their zeros: an absolute bound (float32's spacing at 1).
    "sin": (B.sin, np.sin, (-8192.0, 8192.0), 2, 1.2e-7),
    "cos": (B.cos, np.cos, (-8192.0, 8192.0), 2, 1.2e-7),
    "atan": (B.atan, np.arctan, (-1e4, 1e4), 2, 0.0),
}


def ulp_error(got: np.ndarray, exact: np.ndarray) -> np.ndarray:
    spacing = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    return np.abs(got.astype(np.float64) - exact) / spacing


@pytest.fixture(scope="module")
def math_exe():
    g = Graph("math")
    x = g.add_input("x", TensorType(DType.f32, (BATCH,)), "data")
    g.set_outputs([(name, build(x)) for name, (build, *_rest) in FUNCTIONS.items()])
    return make_executable(g, "llvm")


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_max_error_within_stated_bound(math_exe, name):
    _, exact_fn, (lo, hi), max_ulp, abs_tol = FUNCTIONS[name]
    x = sweep(lo, hi)
    got = np.array(math_exe({"x": x})[name])
    exact = exact_fn(x.astype(np.float64))
    # Compiled code flushes denormal results to zero (codegen/fpmode.py), as Keras's
    # backends do on CPU: below the smallest normal float the exact value is zero.
    exact = np.where(np.abs(exact) < np.finfo(np.float32).tiny, 0.0, exact)
    errors = ulp_error(got, exact)
    if abs_tol:
        errors = np.where(np.abs(got - exact) <= abs_tol, 0.0, errors)
    worst = int(np.argmax(errors))
    assert errors[worst] <= max_ulp, (
        f"{name}({x[worst]!r}) = {got[worst]!r}, exact {exact[worst]!r}: {errors[worst]:.2f} ulp"
    )


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.vectorize(math.erfc)(-x / math.sqrt(2.0))


@pytest.mark.parametrize("name, max_ulp", [("gelu", 6), ("gelu_grad", 2)])
def test_gelu_and_its_derivative_within_stated_bound(name, max_ulp):
    """gelu and gelu's derivative share Φ(x) and exp(-x²/2) (codegen/lowering/mathfn.py's _normal):
    ulps against float64 on -12..10 (below, gelu is under float32's normal range); the
    derivative crosses zero at -0.75, where an absolute bound of float32's spacing at 1
    applies."""
    g = Graph("normal")
    x = g.add_input("x", TensorType(DType.f32, (BATCH,)), "data")
    y = B.gelu(x)
    g.set_outputs([("gelu", y), ("gelu_grad", g.emit1("gelu_grad", [x, y]))])
    xs = sweep(-12.0, 10.0)
    got = np.array(make_executable(g, "llvm")({"x": xs})[name]).astype(np.float64)
    wide = xs.astype(np.float64)
    cdf = _normal_cdf(wide)
    if name == "gelu":
        exact = wide * cdf
    else:
        exact = cdf + wide * np.exp(-0.5 * wide * wide) / math.sqrt(2 * math.pi)
    errors = ulp_error(got, exact)
    if name == "gelu_grad":
        errors = np.where(np.abs(got - exact) <= 1.2e-7, 0.0, errors)
    worst = int(np.argmax(errors))
    assert errors[worst] <= max_ulp, (
        f"{name}({xs[worst]!r}) = {got[worst]!r}, exact {exact[worst]!r}: {errors[worst]:.2f} ulp"
    )


def test_gelu_special_values_as_numpy():
    g = Graph("normal")
    x = g.add_input("x", TensorType(DType.f32, (BATCH,)), "data")
    y = B.gelu(x)
    g.set_outputs([("gelu", y), ("gelu_grad", g.emit1("gelu_grad", [x, y]))])
    xs = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 14.5, -14.5, 30.0, -30.0], np.float32)
    out = make_executable(g, "llvm")({"x": xs})
    np.testing.assert_array_equal(out["gelu"], [np.nan, np.inf, np.nan, 0, 0, 14.5, 0, 30, 0])
    np.testing.assert_array_equal(out["gelu_grad"], [np.nan, np.nan, np.nan, 0.5, 0.5, 1, 0, 1, 0])


def test_special_values_as_numpy(math_exe):
    x = np.array(
        [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1.0, 89.0, -104.0, 200.0, -200.0], np.float32
    )
    out = math_exe({"x": x})
    x = np.where(np.abs(x) < np.finfo(np.float32).tiny, np.float32(0), x)  # DAZ: 1e-45 is 0
    with np.errstate(all="ignore"):
        expected = {
            "exp": np.exp(x),
            "log": np.log(x),
            "log1p": np.log1p(x),
            "tanh": np.tanh(x),
            "logistic": _sigmoid(x.astype(np.float64)).astype(np.float32),
            "erf": _erf(x.astype(np.float64)).astype(np.float32),
            "sin": np.sin(x),
            "cos": np.cos(x),
            "atan": np.arctan(x),
        }
    for name, want in expected.items():
        got = np.array(out[name])
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
        finite = ~np.isnan(want)
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-6, atol=1e-30, err_msg=name)


def test_denormals_are_flushed_inside_and_kept_outside():
    """Inside compiled code denormal operands read as zero and denormal results are
    zero (FTZ and DAZ); numpy, after the call, still computes with denormals."""
    g = Graph("flush")
    x = g.add_input("x", TensorType(DType.f32, (BATCH,)), "data")
    g.set_outputs([("y", B.mul(x, B.const(g, 1.5, DType.f32, ())))])
    exe = make_executable(g, "llvm")
    tiny = np.finfo(np.float32).tiny
    x = np.array([tiny / 4, -tiny / 8, tiny, 2.0], np.float32)
    got = np.array(exe({"x": x})["y"])
    assert list(got) == [0.0, 0.0, np.float32(tiny * 1.5), 3.0]
    assert np.float32(tiny) / np.float32(4) != 0  # the caller's mode was restored
