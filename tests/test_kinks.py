"""Activation derivatives at their kinks: the values Keras's JAX backend gives (jax.nn's
rules), from the autodiff pass on the reference interpreter and from compiled code.
Away from the kinks the same gradients match central differences."""

from __future__ import annotations

import numpy as np
import pytest

from kcompile import activations
from kcompile.ir import Graph, f32, interpret
from kcompile.ir import build as B
from kcompile.ir.differences import numeric_gradient
from kcompile.passes import append_gradients
from kcompile.runtime import make_executable

_SELU = 1.0507009873554804934193349852946 * 1.6732632423543772848170429916717

# (activation, {kink: derivative there}); jax.nn: relu' = [x > 0], relu6' = [0 < x < 6],
# leaky_relu = where(x >= 0, x, s·x), elu/selu through where(x > 0, x, α·expm1(x)),
# softplus = logaddexp(x, 0), hard_sigmoid = relu6(x + 3) / 6.
KINKS = {
    "relu": {0.0: 0.0},
    "relu6": {0.0: 0.0, 6.0: 0.0},
    "leaky_relu": {0.0: 1.0},
    "elu": {0.0: 1.0},
    "selu": {0.0: _SELU},
    "softplus": {0.0: 0.5},
    "hard_sigmoid": {-3.0: 0.0, 3.0: 0.0},
    "hard_silu": {-3.0: 0.0, 3.0: 1.0},
    "softsign": {0.0: 1.0},
}


def _gradient_graph(name: str, size: int) -> Graph:
    g = Graph("kink")
    x = g.add_input("x", f32(size), "param")
    loss = B.reduce_sum(activations.get(name)(x), (0,))
    (grad,) = append_gradients(g, loss, [x])
    g.set_outputs([("loss", loss), ("grad", grad)])
    return g


@pytest.mark.parametrize("name", sorted(KINKS))
def test_derivative_at_kinks_is_kerass(name):
    points = np.array(sorted(KINKS[name]), dtype=np.float64)
    expected = np.array([KINKS[name][p] for p in points])
    out = interpret(_gradient_graph(name, len(points)), {"x": points}, np.float64)
    np.testing.assert_allclose(out["grad"], expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(KINKS))
def test_compiled_derivative_at_kinks(name):
    points = np.array(sorted(KINKS[name]), dtype=np.float32)
    expected = np.array([KINKS[name][p] for p in points.astype(np.float64)])
    exe = make_executable(_gradient_graph(name, len(points)), "llvm")
    exe.bind("x", points.copy())
    np.testing.assert_allclose(exe({})["grad"], expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(KINKS))
def test_gradient_near_kinks_matches_differences(name, rng):
    # Points a little off each kink, on both sides: the one-sided slopes.
    kinks = np.array(sorted(KINKS[name]))
    points = np.concatenate([kinks - 1e-3, kinks + 1e-3, rng.normal(scale=3, size=6)])
    g = _gradient_graph(name, len(points))
    out = interpret(g, {"x": points}, np.float64)
    numeric = numeric_gradient(g, {"x": points}, "x")
    np.testing.assert_allclose(out["grad"], numeric, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op, share", [(B.maximum, 0.5), (B.minimum, 0.5)])
def test_max_and_min_split_ties_like_jax(op, share):
    g = Graph("tie")
    a = g.add_input("a", f32(3), "param")
    b = g.add_input("b", f32(3), "param")
    loss = B.reduce_sum(op(a, b), (0,))
    ga, gb = append_gradients(g, loss, [a, b])
    g.set_outputs([("loss", loss), ("ga", ga), ("gb", gb)])
    out = interpret(g, {"a": np.array([1.0, 2.0, 3.0]), "b": np.array([1.0, 0.0, 5.0])})
    winner_a = [share, 1.0, 0.0] if op is B.maximum else [share, 0.0, 1.0]
    np.testing.assert_allclose(out["ga"], winner_a)
    np.testing.assert_allclose(out["gb"], 1.0 - np.array(winner_a))
