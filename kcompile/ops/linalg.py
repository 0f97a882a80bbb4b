"""``keras.ops.linalg``: ``norm``, and the factorizations a fixed number of row
operations computes: ``inv``, ``solve``, ``det``, ``slogdet``, ``logdet`` (Gauss-Jordan
elimination with partial pivoting), ``cholesky``, ``cholesky_inverse`` and
``solve_triangular`` (substitution). kcompile has no loop over a matrix's size, so each is
unrolled while tracing: n steps of whole-row operations for an n×n matrix (any leading
batch axes), which suits the small matrices of models; each step is made of the IR's
differentiable ops, so gradients flow (the pivot choice itself has none, as in LAPACK's).
The iterative ones (``qr``, ``svd``, ``eig``, ``eigh``, ``lstsq``, ``pinv``,
``matrix_rank``, ``lu_factor``) are refused with why (``kcompile.ops.refusals``).
"""

from __future__ import annotations

import math

import numpy as np

from kcompile.ir import BATCH, DType, Value
from kcompile.ir import build as B
from kcompile.ir.types import normalize_axes
from kcompile.ops import numpy as N
from kcompile.ops.core import op, unsupported, val
from kcompile.ops.refusals import refusal


def _vector_norm(v: Value, ord, axis: int, keepdims: bool) -> Value:
    a = B.abs(v)
    axes = (axis,)
    if ord is None or ord == 2:
        return B.sqrt(B.reduce_sum(B.square(v), axes, keepdims))
    if ord == math.inf:
        return B.reduce_max(a, axes, keepdims)
    if ord == -math.inf:
        return B.neg(B.reduce_max(B.neg(a), axes, keepdims))
    if ord == 0:
        return B.reduce_sum(B.cast(B.ne(v, 0.0), DType.f32), axes, keepdims)
    if ord == 1:
        return B.reduce_sum(a, axes, keepdims)
    if isinstance(ord, str):
        raise ValueError(f"linalg.norm: ord {ord!r} is for matrices (give a 2-tuple axis)")
    p = float(ord)
    return B.power(B.reduce_sum(B.power(a, p), axes, keepdims), 1.0 / p)


def _matrix_norm(v: Value, ord, axes: tuple[int, int], keepdims: bool) -> Value:
    rows, cols = axes
    if ord in (None, "fro"):
        return B.sqrt(B.reduce_sum(B.square(v), axes, keepdims))
    if ord in ("nuc", 2, -2):
        raise unsupported("linalg.norm", f"ord={ord!r}: it needs the singular values")
    a = B.abs(v)
    if ord in (1, -1):  # the largest (smallest) column sum
        sums, other = B.reduce_sum(a, (rows,), True), cols
    elif ord in (math.inf, -math.inf):  # the largest (smallest) row sum
        sums, other = B.reduce_sum(a, (cols,), True), rows
    else:
        raise ValueError(f"linalg.norm: invalid ord {ord!r} for a matrix norm")
    largest = ord in (1, math.inf)
    out = B.reduce_max(sums if largest else B.neg(sums), (other,), True)
    out = out if largest else B.neg(out)
    if keepdims:
        return out
    return B.reshape(out, tuple(d for i, d in enumerate(v.shape) if i not in axes))


@op
def norm(x, ord=None, axis=None, keepdims=False):
    """numpy's (and Keras's) vector and matrix norms, as float32."""
    v = val(x, DType.f32)
    if axis is None:
        if ord is None or v.rank == 1:
            flat = B.reshape(v, (math.prod(v.shape),))
            out = _vector_norm(flat, ord, 0, False)
            return B.reshape(out, (1,) * v.rank) if keepdims else out
        if v.rank != 2:
            raise ValueError(f"linalg.norm: ord {ord!r} needs a vector or a matrix, or an axis")
        axis = (0, 1)
    if isinstance(axis, int) or len(axis) == 1:
        a = axis if isinstance(axis, int) else axis[0]
        return _vector_norm(v, ord, normalize_axes(a, v.rank)[0], keepdims)
    if len(axis) != 2:
        raise ValueError(f"linalg.norm: axis must be an int or 2 ints, got {axis}")
    axes = tuple(normalize_axes(a, v.rank)[0] for a in axis)
    return _matrix_norm(v, ord, axes, keepdims)


def _square(v: Value, name: str) -> int:
    if v.rank < 2 or v.shape[-1] != v.shape[-2] or v.shape[-1] == BATCH:
        raise ValueError(f"linalg.{name}: needs square matrices [..., n, n], got {v.shape}")
    return v.shape[-1]


def _col(m: Value, j: int) -> Value:
    """Column j of [..., n, k] as [..., n, 1]."""
    return N._slice_axis(m, m.rank - 1, j, j + 1)


def _row(m: Value, i: int) -> Value:
    """Row i of [..., n, k] as [..., 1, k]."""
    return N._slice_axis(m, m.rank - 2, i, i + 1)


def _unit(m: Value, i: int, n: int) -> Value:
    """e_i as a column [n, 1]."""
    return B.const_array(m.graph, [float(r == i) for r in range(n)], DType.f32, (n, 1))


def _eliminate(a: Value, rhs: Value) -> tuple[Value, Value, Value]:
    """Gauss-Jordan with partial pivoting on [a | rhs]: a⁻¹·rhs, the product of the
    pivots and the sign of the row swaps ([..., 1, 1] each)."""
    n = a.shape[-1]
    m = B.concat([a, rhs], a.rank - 1)
    sign = B.const(a.graph, 1.0, DType.f32, (1, 1))
    product = B.const(a.graph, 1.0, DType.f32, (1, 1))
    below = [[float(r >= k) for r in range(n)] for k in range(n)]
    for k in range(n):
        e_k = _unit(m, k, n)
        column = B.reshape(_col(m, k), m.shape[:-1])  # [..., n]
        eligible = B.const_array(m.graph, below[k], DType.f32, (n,))
        p = B.argmax(B.abs(column) * eligible - (1.0 - eligible), column.rank - 1)
        e_p = B.reshape(B.one_hot(p, n), (*p.shape, n, 1))
        r_k = _row(m, k)
        r_p = B.reduce_sum(e_p * m, (m.rank - 2,), keepdims=True)
        m = m + (e_k - e_p) * (r_p - r_k)  # rows k and p swapped
        swapped = B.reduce_sum(B.abs(e_k - e_p), (m.rank - 2,), keepdims=True)  # 0 or 2
        sign = sign * (1.0 - swapped)
        pivot = N._slice_axis(_row(m, k), m.rank - 1, k, k + 1)  # [..., 1, 1]
        product = product * pivot
        row_k = _row(m, k) / pivot
        m = m - _col(m, k) * row_k + e_k * row_k
    width = m.shape[-1]
    return N._slice_axis(m, m.rank - 1, n, width), product, sign


def _squeezed(v: Value) -> Value:
    return B.reshape(v, v.shape[:-2])


@op
def inv(x):
    a = val(x, DType.f32)
    n = _square(a, "inv")
    eye = B.const_array(a.graph, np.eye(n, dtype=np.float32).ravel().tolist(), DType.f32, (n, n))
    return _eliminate(a, B.broadcast_to(eye, a.shape))[0]


@op
def solve(a, b):
    """x with a·x = b; ``b`` a vector [n] or matrices [..., n, k] (jax's rule: a batch of
    vectors is given as [..., n, 1])."""
    m = val(a, DType.f32)
    rhs = val(b, DType.f32)
    _square(m, "solve")
    vector = rhs.rank == 1
    if vector:
        rhs = B.reshape(rhs, (*rhs.shape, 1))
    x = _eliminate(m, rhs)[0]
    return B.reshape(x, x.shape[:-1]) if vector else x


@op
def det(x):
    a = val(x, DType.f32)
    _square(a, "det")
    _, product, sign = _eliminate(a, B.const(a.graph, 0.0, DType.f32, (*a.shape[:-1], 1)))
    return _squeezed(product * sign)


@op
def slogdet(x):
    """(sign, log|det|) of square matrices."""
    a = val(x, DType.f32)
    _square(a, "slogdet")
    _, product, sign = _eliminate(a, B.const(a.graph, 0.0, DType.f32, (*a.shape[:-1], 1)))
    return _squeezed(sign * B.sign(product)), _squeezed(B.log(B.abs(product)))


@op
def logdet(x):
    """log det x (NaN where the determinant is negative, as Keras's)."""
    return B.log(det.__kcompile_op__(x))


def _transpose_last(v: Value) -> Value:
    perm = (*range(v.rank - 2), v.rank - 1, v.rank - 2)
    return B.transpose(v, perm)


@op
def cholesky(x, upper=False):
    """L with L·Lᵀ = x (x symmetric positive definite), column by column; ``upper``: Lᵀ."""
    a = val(x, DType.f32)
    n = _square(a, "cholesky")
    lower = B.const(a.graph, 0.0, DType.f32, a.shape)
    for j in range(n):
        e_j = _unit(a, j, n)
        l_j = _row(lower, j)  # [..., 1, n], zero from column j on
        update = N.matmul.__kcompile_op__(lower, _transpose_last(l_j))  # [..., n, 1]
        residual = _col(a, j) - update  # [..., n, 1]
        diagonal = B.sqrt(N._slice_axis(residual, residual.rank - 2, j, j + 1))
        mask = B.const_array(a.graph, [float(r > j) for r in range(n)], DType.f32, (n, 1))
        column = residual / diagonal * mask + e_j * diagonal
        lower = lower + column * B.reshape(e_j, (1, n))
    return _transpose_last(lower) if upper else lower


@op
def solve_triangular(a, b, lower=False):
    """x with a·x = b for triangular ``a`` (only its ``lower`` or upper triangle is
    read), by substitution; ``b`` a vector [n] or matrices [..., n, k]."""
    m = val(a, DType.f32)
    rhs = val(b, DType.f32)
    n = _square(m, "solve_triangular")
    vector = rhs.rank == 1
    if vector:
        rhs = B.reshape(rhs, (*rhs.shape, 1))
    order = range(n) if lower else range(n - 1, -1, -1)
    x = B.const(m.graph, 0.0, DType.f32, rhs.shape) * rhs  # zeros, broadcast like rhs
    for i in order:
        coeffs = _row(m, i)  # [..., 1, n]
        done = N.matmul.__kcompile_op__(coeffs, x)
        pivot = N._slice_axis(coeffs, coeffs.rank - 1, i, i + 1)
        value = (_row(rhs, i) - done) / pivot  # [..., 1, k]
        x = x + _unit(m, i, n) * value
    return B.reshape(x, x.shape[:-1]) if vector else x


@op
def cholesky_inverse(x, upper=False):
    """(L·Lᵀ)⁻¹ from a Cholesky factor L (``upper``: from U = Lᵀ, (Uᵀ·U)⁻¹)."""
    factor = val(x, DType.f32)
    product = N.matmul.__kcompile_op__(
        _transpose_last(factor) if upper else factor,
        factor if upper else _transpose_last(factor),
    )
    return inv.__kcompile_op__(product)


__all__ = [
    "cholesky",
    "cholesky_inverse",
    "det",
    "inv",
    "logdet",
    "norm",
    "slogdet",
    "solve",
    "solve_triangular",
]

__getattr__ = refusal(__name__)
