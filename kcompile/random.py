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


def _eager_dtype(dtype: Any, default: str = "float32") -> np.dtype:
    from kcompile.backend.dtypes import standardize_dtype

    return np.dtype(standardize_dtype(dtype or default))


def _traced_only_with(name: str, why: str) -> NotImplementedError:
    return NotImplementedError(
        f"keras.random.{name} inside a traced step is not supported by kcompile yet: {why}; "
        "it works eagerly (on arrays, outside a model's call)"
    )


# erf(√2): the share of a unit normal's mass within two standard deviations.
_ERF_SQRT2 = 0.9544997361036416


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Normal draws kept within two standard deviations of the mean (Keras's rule)."""
    ctx = current_context()
    if ctx is None:
        rng = np.random.default_rng(_seed(seed))
        out = rng.normal(size=tuple(shape))
        bad = np.abs(out) > 2.0
        while bad.any():
            out[bad] = rng.normal(size=int(bad.sum()))
            bad = np.abs(out) > 2.0
        return (out * stddev + mean).astype(_eager_dtype(dtype))
    u = B.random_uniform(ctx.step_counter(), _shape(shape), _seed(seed))
    # The inverse CDF on the middle 95.45% of the mass: erfinv((2u - 1)·erf(√2)).
    inner = (u - 0.5) * _ERF_SQRT2 + 0.5
    return TracedTensor(standard_normal(inner) * float(stddev) + float(mean))


def categorical(logits, num_samples, dtype="int32", seed=None):
    """``num_samples`` class indices per row of ``logits`` (unnormalized log-probabilities),
    drawn by the Gumbel-max trick in a traced step and by numpy eagerly."""
    ctx = current_context()
    if ctx is None and not isinstance(logits, TracedTensor | KerasTensor):
        x = np.asarray(logits, np.float64)
        if x.ndim != 2:
            raise ValueError(f"categorical: logits must have rank 2, got shape {x.shape}")
        p = np.exp(x - x.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)
        rng = np.random.default_rng(_seed(seed))
        draws = [rng.choice(x.shape[1], size=int(num_samples), p=row) for row in p]
        return (
            np.asarray(draws)
            .reshape(x.shape[0], int(num_samples))
            .astype(_eager_dtype(dtype, "int32"))
        )
    return _categorical(_traced(ctx, logits), int(num_samples), _seed(seed))


def _traced(ctx, x):
    """``x`` as a tensor of the step being traced: arrays known while tracing become
    constants of its graph (so an op on them alone does not run eagerly)."""
    if isinstance(x, TracedTensor | KerasTensor):
        return x
    array = np.asarray(x, np.float32)
    values = [float(v) for v in array.ravel()]
    return TracedTensor(B.const_array(ctx.graph, values, DType.f32, array.shape))


@op
def _categorical(logits, num_samples, seed):
    x = val(logits, DType.f32)
    if x.rank != 2:
        raise ValueError(f"categorical: logits must have rank 2, got shape {x.shape}")
    rows, classes = x.shape
    u = B.random_uniform(current_context().step_counter(), (rows, num_samples, classes), seed)
    gumbel = -B.log(-B.log(u * (1.0 - 2.0**-24) + 2.0**-25))
    return B.argmax(B.reshape(x, (rows, 1, classes)) + gumbel, -1)


def shuffle(x, axis=0, seed=None):
    """``x`` with its slices along ``axis`` in a random order."""
    if current_context() is not None or isinstance(x, TracedTensor | KerasTensor):
        raise _traced_only_with("shuffle", "a permutation needs a sort, which the IR lacks")
    x = np.asarray(x)
    order = np.random.default_rng(_seed(seed)).permutation(x.shape[axis])
    return np.take(x, order, axis=axis)


def gamma(shape, alpha, dtype=None, seed=None):
    """Gamma draws of shape ``alpha`` (scale 1)."""
    if current_context() is not None:
        raise _traced_only_with("gamma", "its sampler is a rejection loop")
    rng = np.random.default_rng(_seed(seed))
    return rng.gamma(alpha, 1.0, size=tuple(shape)).astype(_eager_dtype(dtype))


def beta(shape, alpha, beta, dtype=None, seed=None):
    """Beta(alpha, beta) draws, as X / (X + Y) of two gamma draws."""
    if current_context() is not None:
        raise _traced_only_with("beta", "it is drawn from gamma draws, a rejection loop")
    rng = np.random.default_rng(_seed(seed))
    return rng.beta(alpha, beta, size=tuple(shape)).astype(_eager_dtype(dtype))


def binomial(shape, counts, probabilities, dtype=None, seed=None):
    """The number of successes in ``counts`` trials of probability ``probabilities``. In a
    traced step ``counts`` must be a Python int: the trials are that many uniform draws
    per element, counted."""
    if current_context() is None and not isinstance(probabilities, TracedTensor | KerasTensor):
        rng = np.random.default_rng(_seed(seed))
        draws = rng.binomial(np.asarray(counts), np.asarray(probabilities), size=tuple(shape))
        return draws.astype(_eager_dtype(dtype))
    if current_context() is None:
        raise _traced_only_with("binomial", "symbolic probabilities need a traced step")
    if isinstance(counts, bool) or not isinstance(counts, int | np.integer) or counts < 0:
        raise _traced_only_with(
            "binomial", f"counts must be a non-negative Python int there, got {counts!r}"
        )
    ctx = current_context()
    return _binomial(_traced(ctx, probabilities), _shape(shape), int(counts), _seed(seed))


@op
def _binomial(probabilities, shape, counts, seed):
    p = val(probabilities, DType.f32)
    trials = B.random_uniform(current_context().step_counter(), (*shape, counts), seed)
    hits = B.cast(B.lt(trials, B.reshape(p, (*p.shape, 1))), DType.f32)
    return B.reduce_sum(hits, -1)


__all__ = [
    "SeedGenerator",
    "beta",
    "binomial",
    "categorical",
    "dropout",
    "gamma",
    "normal",
    "randint",
    "shuffle",
    "truncated_normal",
    "uniform",
]
