"""Matrix product with transposition flags.

``matmul(a, b)`` contracts the last axis of ``a`` (all leading axes flattened
into rows, as a Dense layer applies to any rank) with a 2-D ``b``:

- default:        a[*L, K] · b[K, M]   -> [*L, M]
- transpose_b:    a[*L, K] · b[M, K]ᵀ  -> [*L, M]
- transpose_a:    a[*L, K]ᵀ · b[*L, M] -> [K, M]  (sums over all of *L: a weight gradient)

These three cover a dense layer's forward pass and both of its gradients.

Operands of ``i8`` (a quantized layer's: ``model.quantize("int8")``) give an ``i32``
result: the integer products summed exactly, as Keras's int8 ``matmul`` (int32
accumulation) does. Such a product has no gradient (its operands are integers); a
quantized layer gives its input Keras's gradient through ``gradient_via``.

``batch_matmul(a, b)`` multiplies matrices stacked along leading axes *L shared by
both operands (attention's scores and mixing, ``keras.ops.matmul`` of rank-3 tensors):
a[*L, M, K] · b[*L, K, N] -> [*L, M, N], with ``transpose_a`` (a is [*L, K, M]) and
``transpose_b`` (b is [*L, N, K]) in any combination. Optional ``perm_a``, ``perm_b`` and
``perm_out`` hold transpositions folded into the product (passes/simplify.py): the product
reads ``transpose(a, perm_a)`` and ``transpose(b, perm_b)`` and writes
``transpose(result, perm_out)``, all as strides, so attention's head-splitting transposes
are never copied; an optional ``alpha`` scales the product (attention's 1/sqrt(d), folded
in by passes/simplify.py from a multiply of its result or of an operand).
"""

from __future__ import annotations

import numpy as np

from kcompile.ir import build as B
from kcompile.ir import traits as T
from kcompile.ir.ops.common import (
    expect_arity,
    expect_float,
    product_dtype,
    same_dtype,
    widened,
)
from kcompile.ir.registry import OpDef, register
from kcompile.ir.types import DType, ShapeError, TensorType

# ``precision="bf16"`` (set by passes/narrow_floats.py): both operands hold bf16 values,
# so native code may multiply them on the CPU's bf16 engines (f32 sums); the reference
# computes the f32 product either way. With ``round_operands`` (operand positions, set by
# passes/narrow_floats.py's ``round_in_products``) the product rounds those operands to
# bf16 itself (to nearest, ties to even) before multiplying: they hold f32 values whose
# rounding was a pass over memory of its own, which the engines do while packing anyway.
PRECISIONS = (None, "bf16", "i8")
# ``precision="i8"`` (set by passes/int8_products.py): both operands hold int8 values (in
# bytes, or held in f32) and the result is the f32 of their exact integer sum (the i32
# product's cast); native code sums them in int32 (``kc_igemm``) or, held in f32, in f32
# products short enough (``EXACT_I8_DEPTH``) that every partial sum is exact.


def _check_precision(attrs) -> None:
    if attrs.get("precision") not in PRECISIONS:
        raise ShapeError(f"matmul precision {attrs['precision']!r}: expected bf16, i8 or none")
    rounds = attrs.get("round_operands")
    if rounds is None:
        return
    if attrs.get("precision") != "bf16":
        raise ShapeError("matmul round_operands needs precision=bf16")
    if not rounds or any(i not in (0, 1) for i in rounds) or len(set(rounds)) != len(rounds):
        raise ShapeError(f"matmul round_operands {list(rounds)}: expected operand positions 0, 1")


def _rounded_operands(ctx, args, attrs) -> list:
    """A product's operands as it multiplies them: those of ``round_operands`` rounded to
    bf16 (not in float64 runs, where narrow floats are not rounded: ``RefContext.storage``)."""
    rounds = attrs.get("round_operands") or ()
    bf16 = ctx.storage(DType.bf16)
    args = widened(ctx, args)
    return [a.astype(bf16).astype(a.dtype) if i in rounds else a for i, a in enumerate(args)]


def _infer(types, attrs):
    expect_arity(types, 2)
    _check_precision(attrs)
    if {t.dtype for t in types} == {DType.i8} and attrs.get("precision") is None:
        a, b = types
        (out,) = _infer([a.with_dtype(DType.f32), b.with_dtype(DType.f32)], attrs)
        return [out.with_dtype(DType.i32)]
    dtype = product_dtype(types, attrs)
    a, b = (t.with_dtype(dtype) for t in types)
    expect_float(a, "matmul operand (f32, bf16, f16, or both i8)")
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
    if args[0].dtype.kind in "iu" and attrs.get("precision") is None:
        # Exact: int64 sums, then int32 as Keras's int8 product gives (no wrap for any
        # depth below 2**17).
        a, b = (x.astype(np.int64) for x in args)
        if attrs["transpose_a"]:
            return [(a.reshape(-1, a.shape[-1]).T @ b.reshape(-1, b.shape[-1])).astype(np.int32)]
        return [(a @ (b.T if attrs["transpose_b"] else b)).astype(np.int32)]
    if attrs.get("precision") == "i8":
        # int8 values (in bytes or held in f32): the exact sums, rounded once to f32.
        ints = [np.asarray(x).astype(np.int64) for x in args]
        (out,) = _reference(ctx, ints, {**attrs, "precision": None})
        return [out.astype(ctx.storage(DType.f32))]
    a, b = _rounded_operands(ctx, args, attrs)
    if attrs["transpose_a"]:
        a2 = a.reshape(-1, a.shape[-1])
        b2 = b.reshape(-1, b.shape[-1])
        return [a2.T @ b2]
    return [a @ (b.T if attrs["transpose_b"] else b)]


def _vjp(node, g):
    a, b = node.inputs
    if not a.dtype.is_float:
        return [None, None]  # integer operands: a quantized layer's, see gradient_via
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


def _permuted(shape: tuple, perm) -> tuple:
    return tuple(shape[p] for p in perm) if perm else tuple(shape)


def _inverse(perm) -> tuple:
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    return tuple(inverse)


def _check_perm(perm, rank: int, what: str) -> None:
    if perm is not None and sorted(perm) != list(range(rank)):
        raise ShapeError(f"batch_matmul's {what} {perm} is not a permutation of {rank} axes")


def _infer_batch(types, attrs):
    expect_arity(types, 2)
    same_dtype(types)
    expect_float(types[0])
    rank = types[0].rank
    for what in ("perm_a", "perm_b", "perm_out"):
        _check_perm(attrs.get(what), rank, what)
    if attrs.get("round_operands"):
        raise ShapeError("batch_matmul takes no round_operands (passes round its operands)")
    _check_precision(attrs)  # bf16: as matmul's, its operands hold bf16 values
    a = _permuted(types[0].shape, attrs.get("perm_a"))
    b = _permuted(types[1].shape, attrs.get("perm_b"))
    if len(a) < 3 or len(b) != len(a) or a[:-2] != b[:-2]:
        raise ShapeError(
            f"batch_matmul needs a[*L,M,K] and b[*L,K,N] with equal *L, got {types[0]}, {types[1]}"
        )
    m, k_a = (a[-1], a[-2]) if attrs["transpose_a"] else a[-2:]
    k_b, n = (b[-1], b[-2]) if attrs["transpose_b"] else b[-2:]
    if k_a != k_b:
        raise ShapeError(f"contracted dimensions differ: {k_a} and {k_b} ({types[0]} · {types[1]})")
    return [TensorType(types[0].dtype, _permuted((*a[:-2], m, n), attrs.get("perm_out")))]


def _swap(x, flag: bool):
    return x.swapaxes(-1, -2) if flag else x


def _reference_batch(ctx, args, attrs):
    a, b = (
        x.transpose(attrs[p]) if attrs.get(p) else x for x, p in zip(args, ("perm_a", "perm_b"))
    )
    y = _swap(a, attrs["transpose_a"]) @ _swap(b, attrs["transpose_b"])
    if attrs.get("alpha", 1.0) != 1.0:
        y = y * y.dtype.type(attrs["alpha"])
    return [y.transpose(attrs["perm_out"]) if attrs.get("perm_out") else y]


def _batch_rows_independent(node) -> bool:
    """One product per matrix of *L: a batch row's matrices depend on that row alone,
    unless a permutation moves the batch axis (axis 0) of an operand or of the result."""
    perms = (node.attrs.get(p) for p in ("perm_a", "perm_b", "perm_out"))
    return all(not perm or perm[0] == 0 for perm in perms)


def _vjp_batch(node, g):
    """y = op(A)·op(B): d op(A) = g·op(B)ᵀ and d op(B) = op(A)ᵀ·g, each written as one
    batch_matmul of the stored operands (a transposed operand's gradient transposed).
    Folded transpositions are explicit transposes here; simplify folds them again."""
    a, b = node.inputs
    gy = g[0]
    perm_a, perm_b, perm_out = (node.attrs.get(p) for p in ("perm_a", "perm_b", "perm_out"))
    a = B.transpose(a, perm_a) if perm_a else a
    b = B.transpose(b, perm_b) if perm_b else b
    gy = B.transpose(gy, _inverse(perm_out)) if perm_out else gy
    if node.attrs.get("alpha", 1.0) != 1.0:
        gy = gy * float(node.attrs["alpha"])
    ta, tb = node.attrs["transpose_a"], node.attrs["transpose_b"]
    bmm = B.batch_matmul
    da = bmm(b, gy, transpose_a=tb, transpose_b=True) if ta else bmm(gy, b, transpose_b=not tb)
    db = bmm(gy, a, transpose_a=True, transpose_b=ta) if tb else bmm(a, gy, transpose_a=not ta)
    da = B.transpose(da, _inverse(perm_a)) if perm_a else da
    db = B.transpose(db, _inverse(perm_b)) if perm_b else db
    return [da, db]


register(
    OpDef(
        "batch_matmul",
        "matmul",
        2,
        _infer_batch,
        _reference_batch,
        _vjp_batch,
        traits=T.Traits(T.Pattern.OPAQUE, rows_independent=_batch_rows_independent),
    )
)
