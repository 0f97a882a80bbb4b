"""``keras.ops.linalg``'s iterative factorizations, on concrete arrays: ``qr``, ``svd``,
``eigh``, ``eig``, ``lstsq``, ``pinv``, ``matrix_rank``, ``lu_factor``.

Eigenvalues, singular values and Householder reflections need iterations whose count
depends on the values (or pivots that reorder the rows), which kcompile's IR has no
primitive for, so these are not traced: on arrays, numbers and variables outside a
compiled step they compute with numpy's LAPACK in float32, with the defaults and dtypes
of Keras's JAX backend; inside a compiled step, or on the functional API's symbolic
tensors, they raise ``NotImplementedError`` naming the op and why. ``eig`` returns
complex64 numpy arrays, as Keras's does: they are results to read, not tensors kcompile
computes on (it has no complex dtype).
"""

from __future__ import annotations

import numpy as np

from kcompile.ops.concrete_only import concrete

_ITERATIVE = "it needs an iterative LAPACK solver, which kcompile's IR has no primitive for"
_EPS = float(np.finfo(np.float32).eps)


def _matrices(name: str, *xs) -> list[np.ndarray]:
    arrays = concrete(name, _ITERATIVE, *xs)
    out = []
    for a in arrays:
        a = np.asarray(a, np.float32)
        if a.ndim < 2:
            raise ValueError(
                f"keras.ops.{name}: expected input to have rank >= 2. Received input with "
                f"shape {a.shape}."
            )
        out.append(a)
    return out


def _square(name: str, a: np.ndarray) -> None:
    if a.shape[-1] != a.shape[-2]:
        raise ValueError(
            f"keras.ops.{name}: expected a square matrix (..., M, M). Received input with "
            f"shape {a.shape}."
        )


def qr(x, mode: str = "reduced") -> tuple[np.ndarray, np.ndarray]:
    """q, r with x = q·r (``mode`` "reduced": q (..., M, K), r (..., K, N), K = min(M, N);
    "complete": q (..., M, M), r (..., M, N))."""
    if mode not in {"reduced", "complete"}:
        raise ValueError(
            "`mode` argument value not supported. Expected one of {'reduced', 'complete'}. "
            f"Received: mode={mode}"
        )
    (a,) = _matrices("qr", x)
    q, r = np.linalg.qr(a, mode=mode)
    return q.astype(np.float32), r.astype(np.float32)


def svd(x, full_matrices: bool = True, compute_uv: bool = True):
    """u, s, vh with x = u·diag(s)·vh, singular values descending (only s when not
    ``compute_uv``)."""
    (a,) = _matrices("svd", x)
    if not compute_uv:
        return np.linalg.svd(a, compute_uv=False).astype(np.float32)
    u, s, vh = np.linalg.svd(a, full_matrices=full_matrices)
    return u.astype(np.float32), s.astype(np.float32), vh.astype(np.float32)


def eigh(x) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors (columns) of symmetric matrices; the
    input is symmetrized first, (x + xᵀ) / 2, as JAX's ``eigh`` does."""
    (a,) = _matrices("eigh", x)
    _square("eigh", a)
    sym = (a + np.swapaxes(a, -1, -2)) / 2
    w, v = np.linalg.eigh(sym)
    return w.astype(np.float32), v.astype(np.float32)


def eig(x) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and right eigenvectors (columns, unit norm) of square matrices, as
    complex64 arrays (Keras's are complex too)."""
    (a,) = _matrices("eig", x)
    _square("eig", a)
    w, v = np.linalg.eig(a)
    return w.astype(np.complex64), v.astype(np.complex64)


def lstsq(a, b, rcond=None) -> np.ndarray:
    """The least-squares solution x of a·x ≈ b (singular values ≤ ``rcond`` × the
    largest are dropped; by default rcond = eps × max(M, N))."""
    arrays = concrete("lstsq", _ITERATIVE, a, b)
    m, rhs = (np.asarray(v, np.float32) for v in arrays)
    if m.ndim != 2:
        raise ValueError(f"keras.ops.lstsq: expected `a` of rank 2. Received shape {m.shape}.")
    if rhs.ndim not in (1, 2):
        raise ValueError(
            f"keras.ops.lstsq: expected `b` of rank 1 or 2. Received shape {rhs.shape}."
        )
    if rcond is None:
        rcond = _EPS * max(m.shape)
    return np.linalg.lstsq(m, rhs, rcond=rcond)[0].astype(np.float32)


def pinv(x, rcond=None) -> np.ndarray:
    """The Moore-Penrose pseudoinverse (..., N, M), by SVD; singular values ≤ ``rcond`` ×
    the largest are dropped (JAX's default rcond: 10 × max(M, N) × eps)."""
    (a,) = _matrices("pinv", x)
    if rcond is None:
        rcond = 10.0 * max(a.shape[-2:]) * _EPS
    u, s, vh = np.linalg.svd(a, full_matrices=False)
    cutoff = rcond * np.max(s, axis=-1, keepdims=True) if s.size else 0.0
    inv = np.where(s > cutoff, 1.0 / np.where(s > cutoff, s, 1.0), 0.0)
    out = np.swapaxes(vh, -1, -2) * inv[..., None, :] @ np.swapaxes(u, -1, -2)
    return out.astype(np.float32)


def matrix_rank(x, tol=None) -> np.ndarray:
    """The number of singular values above ``tol`` (default: the largest × max(M, N) ×
    eps), as int32."""
    (a,) = _matrices("matrix_rank", x)
    s = np.linalg.svd(a, compute_uv=False)
    if tol is None:
        tol = np.max(s, axis=-1, keepdims=True) * max(a.shape[-2:]) * _EPS
    else:
        tol = np.asarray(tol)[..., None]
    return np.sum(s > tol, axis=-1).astype(np.int32)


def lu_factor(x) -> tuple[np.ndarray, np.ndarray]:
    """LAPACK's ``getrf`` (scipy's ``lu_factor``): the (..., M, N) matrix holding L
    (unit diagonal, below) and U (on and above), and the (..., K) int32 pivots, row i
    swapped with row piv[i] (partial pivoting on the largest magnitude, first on ties)."""
    (a,) = _matrices("lu_factor", x)
    batch = a.shape[:-2]
    flat = a.reshape(-1, *a.shape[-2:])
    k = min(a.shape[-2:])
    lus = np.empty_like(flat)
    pivots = np.empty((flat.shape[0], k), np.int32)
    for i, matrix in enumerate(flat):
        lus[i], pivots[i] = _getrf(matrix)
    return lus.reshape(a.shape), pivots.reshape(*batch, k)


def _getrf(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lu = matrix.astype(np.float32).copy()
    m, n = lu.shape
    pivots = np.zeros(min(m, n), np.int32)
    for j in range(min(m, n)):
        p = j + int(np.argmax(np.abs(lu[j:, j])))
        pivots[j] = p
        if p != j:
            lu[[j, p]] = lu[[p, j]]
        if lu[j, j] != 0:
            lu[j + 1 :, j] /= lu[j, j]
        lu[j + 1 :, j + 1 :] -= np.outer(lu[j + 1 :, j], lu[j, j + 1 :])
    return lu, pivots


__all__ = ["eig", "eigh", "lstsq", "lu_factor", "matrix_rank", "pinv", "qr", "svd"]
