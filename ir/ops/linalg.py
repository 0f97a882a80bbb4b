"""Matrix product with transposition flags.

``matmul(a, b)`` contracts the last axis of ``a`` (all leading axes flattened
into rows, as a Dense layer applies to any rank) with a 2-D ``b``:

- default:        a[*L, K] · b[K, M]   -> [*L, M]
- transpose_b:    a[*L, K] · b[M, K]ᵀ  -> [*L, M]
- transpose_a:    a[*L, K]ᵀ · b[*L, M] -> [K, M]  (sums over all of *L: a weight gradient)

These three cover a dense layer's forward pass and both of its gradients.

``batch_matmul(a, b)`` multiplies matrices stacked along leading axes *L shared by
both operands (attention's scores and mixing, ``keras.ops.matmul`` of rank-3 tensors):
a[*L, M, K] · b[*L, K, N] -> [*L, M, N], with ``transpose_a`` (a is [*L, K, M]) and
``transpose_b`` (b is [*L, N, K]) in any combination.
"""

from __future__ import annotations

from kcompile.ir import build as B
from kcompile.ir import traits as T
from kcompile.ir.ops.common import expect_arity, expect_float, same_dtype
from kcompile.ir.registry import OpDef, register
from kcompile.ir.types import ShapeError, TensorType


def _infer(types, attrs):
    expect_arity(types, 2)
    a, b = types
    same_dtype(types)
    expect_float(a)
    ta, tb = attrs["transpose_a"], attrs["transpose_b"]
    if a.rank < 1:
        raise ShapeError(f"matmul needs a tensor operand, got {a}")
    if ta and tb:
        raise ShapeError("matmul with both transpose_a and transpose_b is not supported")
    if ta:
        if a.rank < 2 or b.rank != a.rank or a.shape[:-1] != b.shape[:-1]:
            raise ShapeError(f"transpose_a needs a[*L,K] and b[*L,M] with equal *L, got {a}, {b}")
        return [TensorType(a.dtype, (a.shape[-1], b.shape[-1]))]
    if b.rank != 2:
        raise ShapeError(f"matmul needs a 2-D right operand, got {b}")
    k_b, m = (b.shape[1], b.shape[0]) if tb else b.shape
    if a.shape[-1] != k_b:
        raise ShapeError(f"contracted dimensions differ: {a.shape[-1]} and {k_b} ({a} · {b})")
    return [TensorType(a.dtype, (*a.shape[:-1], m))]


def _reference(ctx, args, attrs):
    a, b = args
    if attrs["transpose_a"]:
        a2 = a.reshape(-1, a.shape[-1])
        b2 = b.reshape(-1, b.shape[-1])
        return [a2.T @ b2]
    return [a @ (b.T if attrs["transpose_b"] else b)]


def _vjp(node, g):
    a, b = node.inputs
    gy = g[0]
    if node.attrs["transpose_a"]:
        return [B.matmul(b, gy, transpose_b=True), B.matmul(a, gy)]
    if node.attrs["transpose_b"]:
        return [B.matmul(gy, b), B.matmul(gy, a, transpose_a=True)]
    return [B.matmul(gy, b, transpose_b=True), B.matmul(a, gy, transpose_a=True)]


register(
    OpDef(
        "matmul",
        "matmul",
        2,
        _infer,
        _reference,
        _vjp,
        traits=T.Traits(T.Pattern.PRODUCT, loop_bodies=frozenset({"matmul"})),
    )
)


def _infer_batch(types, attrs):
    expect_arity(types, 2)
    a, b = types
    same_dtype(types)
    expect_float(a)
    if a.rank < 3 or b.rank != a.rank or a.shape[:-2] != b.shape[:-2]:
        raise ShapeError(f"batch_matmul needs a[*L,M,K] and b[*L,K,N] with equal *L, got {a}, {b}")
    m, k_a = (a.shape[-1], a.shape[-2]) if attrs["transpose_a"] else a.shape[-2:]
    k_b, n = (b.shape[-1], b.shape[-2]) if attrs["transpose_b"] else b.shape[-2:]
    if k_a != k_b:
        raise ShapeError(f"contracted dimensions differ: {k_a} and {k_b} ({a} · {b})")
    return [TensorType(a.dtype, (*a.shape[:-2], m, n))]


def _swap(x, flag: bool):
    return x.swapaxes(-1, -2) if flag else x


def _reference_batch(ctx, args, attrs):
    a, b = args
    return [_swap(a, attrs["transpose_a"]) @ _swap(b, attrs["transpose_b"])]


def _vjp_batch(node, g):
    """y = op(A)·op(B): d op(A) = g·op(B)ᵀ and d op(B) = op(A)ᵀ·g, each written as one
    batch_matmul of the stored operands (a transposed operand's gradient transposed)."""
    a, b = node.inputs
    gy = g[0]
    ta, tb = node.attrs["transpose_a"], node.attrs["transpose_b"]
    bmm = B.batch_matmul
    da = bmm(b, gy, transpose_a=tb, transpose_b=True) if ta else bmm(gy, b, transpose_b=not tb)
    db = bmm(gy, a, transpose_a=True, transpose_b=ta) if tb else bmm(a, gy, transpose_a=not ta)
    return [da, db]


register(
    OpDef(
        "batch_matmul",
        "matmul",
        2,
        _infer_batch,
        _reference_batch,
        _vjp_batch,
        # one product per matrix of *L: a batch row's matrices depend on that row alone
        traits=T.Traits(T.Pattern.OPAQUE, rows_independent=lambda node: True),
    )
)
