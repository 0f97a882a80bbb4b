"""``keras.random``: seeded random numbers, in traced steps and eagerly.

In a traced step, draws come from kcompile's counter-based generator keyed by the
seed and the step counter (``random_uniform``), so each training step draws anew
and a compiled step and the reference interpreter draw the same numbers. Eagerly,
numpy draws them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.backend import session as backend
from kcompile.backend.keras_tensor import KerasTensor
from kcompile.backend.symbolic import TracedTensor, current_context, static_dims
from kcompile.ir import BATCH, DType
from kcompile.ir import build as B
from kcompile.ops.core import op, unsupported, val


class SeedGenerator:
    """Keras's ``SeedGenerator``: each draw gets a seed of its own, from ``seed``."""

    def __init__(self, seed: int | None = None, name: str | None = None, **kwargs: Any) -> None:
        self.seed = backend.draw_seed() if seed is None else int(seed)
        self.name = name
        self._draws = 0

    def next(self) -> int:
        self._draws += 1
        return (self.seed * 1_000_003 + self._draws) % (2**31 - 1)


def _seed(seed: Any) -> int:
    if isinstance(seed, SeedGenerator):
        return seed.next()
    return backend.draw_seed() if seed is None else int(seed)


def _shape(shape) -> tuple:
    return tuple(BATCH if d is None else int(d) for d in static_dims(shape))


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    ctx = current_context()
    if ctx is None:
        rng = np.random.default_rng(_seed(seed))
        return rng.uniform(minval, maxval, size=tuple(shape)).astype(np.float32)
    u = B.random_uniform(ctx.step_counter(), _shape(shape), _seed(seed))
    return TracedTensor(u * (maxval - minval) + minval if (minval, maxval) != (0, 1) else u)


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    ctx = current_context()
    if ctx is None:
        rng = np.random.default_rng(_seed(seed))
        return rng.normal(mean, stddev, size=tuple(shape)).astype(np.float32)
    u = B.random_uniform(ctx.step_counter(), _shape(shape), _seed(seed))
    return TracedTensor(standard_normal(u) * float(stddev) + float(mean))


# Giles's single-precision erfinv ("Approximating the erfinv function", 2010): two
# polynomials in w = -log(1 - x²), for the centre (w < 5) and the tails.
_ERFINV_CENTRE = (
    2.81022636e-08,
    3.43273939e-07,
    -3.5233877e-06,
    -4.39150654e-06,
    0.00021858087,
    -0.00125372503,
    -0.00417768164,
    0.246640727,
    1.50140941,
)
_ERFINV_TAIL = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844,
                0.00573950773, -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)  # fmt: skip


def standard_normal(u):
    """Normal draws from uniform ones in [0, 1): sqrt(2)·erfinv(2u - 1), the uniform
    moved off 0 by half its resolution (2⁻²⁵) so no draw is infinite; built from IR
    ops, so the compiled step and the reference draw alike."""
    x = (u + 2.0**-25) * 2.0 - 1.0
    w = -B.log((1.0 - x) * (1.0 + x))

    def horner(coefficients, t):
        p = B.const(t.graph, coefficients[0])
        for c in coefficients[1:]:
            p = p * t + c
        return p

    centre = horner(_ERFINV_CENTRE, w - 2.5)
    tail = horner(_ERFINV_TAIL, B.sqrt(B.maximum(w, 5.0)) - 3.0)
    return B.select(B.lt(w, 5.0), centre, tail) * x * 2.0**0.5


def randint(shape, minval, maxval, dtype="int32", seed=None):
    if current_context() is not None:
        raise unsupported("random.randint", "inside a traced step")
    rng = np.random.default_rng(_seed(seed))
    return rng.integers(minval, maxval, size=tuple(shape)).astype(np.int32)


def dropout(inputs, rate, noise_shape=None, seed=None):
    """Zero each element with probability ``rate`` and scale the rest by 1/(1-rate)."""
    if current_context() is None and not isinstance(inputs, TracedTensor | KerasTensor):
        x = np.asarray(inputs, np.float32)
        keep = np.random.default_rng(_seed(seed)).uniform(size=noise_shape or x.shape) >= rate
        return np.where(keep, x / (1.0 - rate), 0.0).astype(np.float32)
    return _dropout(inputs, rate, noise_shape, seed)


@op
def _dropout(inputs, rate, noise_shape, seed):
    x = val(inputs, DType.f32)
    if rate == 0:
        return x
    shape = x.shape if noise_shape is None else _shape(noise_shape)
    keep = B.ge(B.random_uniform(current_context().step_counter(), shape, _seed(seed)), rate)
    return B.select(keep, x * (1.0 / (1.0 - rate)), 0.0)


__all__ = ["SeedGenerator", "dropout", "normal", "randint", "uniform"]
