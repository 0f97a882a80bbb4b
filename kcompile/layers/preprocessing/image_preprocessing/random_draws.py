"""Draws several of Keras's augmentation layers share: whether each image is augmented
(Keras's ``random_threshold < U(factor)``), and the clip to a value range."""

from __future__ import annotations

from kcompile.backend.symbolic import TracedTensor
from kcompile.ir import Value
from kcompile.ir import build as B


def applied(layer, ctx, x: Value, k: int, factor: tuple[float, float]) -> Value:
    """Per image ([N, 1, 1, 1] bool): a uniform threshold below a probability drawn in
    ``factor``, as Keras's ``should_apply`` draws (draws ``k`` and ``k + 1``)."""
    probability = layer.uniform(ctx, x, k, factor[0], factor[1])
    threshold = layer.uniform(ctx, x, k + 1, 0.0, 1.0)
    return B.reshape(B.lt(threshold, probability), (x.shape[0], 1, 1, 1))


def where(mask: Value, a: Value, b: Value) -> Value:
    """``a`` where the per-image ``mask`` [N, 1, 1, 1] holds, else ``b``."""
    return B.select(B.broadcast_to(mask, a.shape), a, b)


def clip(x: Value, value_range: tuple) -> Value:
    low, high = (float(v) for v in value_range)
    return B.minimum(B.maximum(x, low), high)


def on_values(fn, *values: Value, **kwargs) -> Value:
    """A ``keras.ops`` function applied to IR values inside a layer's traced call."""
    out = fn(*(TracedTensor(v) for v in values), **kwargs)
    return out.value


# Marsaglia and Tsang's gamma sampler accepts a candidate with probability > 0.95 for
# shape >= 1; of this many candidates the first accepted is taken, so the draw is the
# gamma's except with probability < 0.05^16 (then the last candidate is kept).
CANDIDATES = 16


def gamma_candidates(layer, ctx, x: Value, k: int, d, c, count: int | str):
    """Marsaglia and Tsang's candidates for a shape ``d + 1/3`` >= 1 (``d`` and
    ``c = 1 / sqrt(9 d)`` numbers or [1, 1] values known when the step runs), draws ``k``
    and ``k + 1``: ([CANDIDATES, count] v, whether each is accepted); the draw is ``d v``
    of the first accepted."""
    from kcompile.random import standard_normal

    size = (CANDIDATES, count)
    z = standard_normal(layer.uniform(ctx, x, k, 0.0, 1.0, size))
    u = layer.uniform(ctx, x, k + 1, 0.0, 1.0, size)
    cube = z * c + 1.0
    v = cube * cube * cube
    positive = B.gt(v, 0.0)
    safe_v = B.select(positive, v, 1.0)
    bound = z * z * 0.5 + d - safe_v * d + B.log(safe_v) * d
    accept = B.logical_and(positive, B.lt(B.log(u + 2.0**-25), bound))
    return safe_v, accept


def first_accepted(values: Value, accept: Value, count: int | str) -> Value:
    """[1, count]: each column's first accepted candidate (its last when none is)."""
    out = None
    for i in reversed(range(CANDIDATES)):
        row = B.slice_(values, [i, 0], [i + 1, count])
        ok = B.slice_(accept, [i, 0], [i + 1, count])
        out = row if out is None else B.select(ok, row, out)
    return out


def gamma(layer, ctx, x: Value, k: int, alpha: float, count: int) -> Value:
    """[1, count] Gamma(alpha, 1) draws, batch-wide (draws ``k`` to ``k + 2``): Marsaglia
    and Tsang's method over a fixed number of candidates; for alpha < 1, Gamma(alpha + 1)
    × U^(1/alpha)."""
    shape = alpha if alpha >= 1.0 else alpha + 1.0
    d = shape - 1.0 / 3.0
    v, accept = gamma_candidates(layer, ctx, x, k, d, 1.0 / (9.0 * d) ** 0.5, count)
    out = first_accepted(v * d, accept, count)
    if alpha < 1.0:
        boost = layer.uniform(ctx, x, k + 2, 0.0, 1.0, (1, count)) + 2.0**-25
        out = out * B.exp(B.log(boost) * (1.0 / alpha))
    return out
