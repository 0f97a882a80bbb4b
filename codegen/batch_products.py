"""Batched matrix products (``batch_matmul``): one packed product per matrix of the
shared leading axes. Every operand is read, and the result written, through strides:
the transpositions a product holds (``transpose_a``/``transpose_b`` and the folded
``perm_a``/``perm_b``/``perm_out``) cost no copy."""

from __future__ import annotations

from llvmlite import ir

from kcompile.codegen.emitters import emits
from kcompile.codegen.gemm import declare_gemm
from kcompile.codegen.loops import F32, PTR, for_range, i64
from kcompile.codegen.small_products import b_layout, fits_small, small_product
from kcompile.ir.memory import Size, numel, size_of


def logical_strides(shape: tuple, perm) -> list[Size]:
    """The strides, in elements, of ``transpose(x, perm)`` for a row-major ``x`` of
    ``shape``: the transposition read in place."""
    strides = [numel(shape[i + 1 :]) for i in range(len(shape))]
    return [strides[p] for p in perm] if perm else strides


@emits("batch_matmul")
def batch_matmul(k, m, node, outs, ins) -> None:
    """One packed product per matrix of the shared leading axes (a batch row's matrices
    at a time when the kernel is split by rows)."""
    b = k.b
    attrs = node.attrs
    a_val, b_val = node.inputs
    a_shape = tuple(a_val.shape[p] for p in attrs["perm_a"]) if attrs.get("perm_a") else a_val.shape
    sa = logical_strides(a_val.shape, attrs.get("perm_a"))
    sb = logical_strides(b_val.shape, attrs.get("perm_b"))
    out_shape = node.outputs[0].shape
    perm_out = attrs.get("perm_out")
    logical_out = [0] * len(out_shape)
    for i, p in enumerate(perm_out or range(len(out_shape))):
        logical_out[p] = out_shape[i]
    so = [Size(0)] * len(out_shape)
    physical = logical_strides(out_shape, None)
    for i, p in enumerate(perm_out or range(len(out_shape))):
        so[p] = physical[i]
    if not so[-1].is_one:
        raise NotImplementedError(
            "codegen: batch_matmul writing its columns with a stride (perm_out moving the "
            "last axis)"
        )
    rows, cols = logical_out[-2], logical_out[-1]
    alpha = float(attrs.get("alpha", 1.0))
    depth = a_shape[-2] if attrs["transpose_a"] else a_shape[-1]
    # (row stride, column stride) of op(A) and op(B) as the product reads them.
    rs_a, cs_a = (sa[-1], sa[-2]) if attrs["transpose_a"] else (sa[-2], sa[-1])
    rs_b, cs_b = (sb[-1], sb[-2]) if attrs["transpose_b"] else (sb[-2], sb[-1])
    # Small static products (attention's heads) take a kernel emitted for their shape.
    small = None
    if fits_small(rows, cols, depth):
        static = [s.coef if s.power == 0 else None for s in (rs_b, cs_b)]
        small = small_product(k.module, rows, cols, depth, layout=b_layout(*static))
    gemm = declare_gemm(k.module)
    null = ir.Constant(PTR, None)
    batch_axes = len(out_shape) - 2
    offsets = [i64(0)] * 3

    def matrices(axis: int, offsets: list) -> None:
        if axis == batch_axes:
            a_ptr, b_ptr, c_ptr = (
                b.gep(op.ptr, [offset], inbounds=True, source_etype=F32)
                for op, offset in zip((ins[0], ins[1], outs[0]), offsets)
            )
            if small is not None:
                strides = [k.value(x) for x in (rs_a, cs_a, rs_b, cs_b, so[-2])]
                scale = ir.Constant(F32, alpha)
                b.call(small, [a_ptr, *strides[:2], b_ptr, *strides[2:4], c_ptr, strides[4], scale])
                return
            args = [
                *(k.value(size_of(x)) for x in (rows, cols, depth)),
                a_ptr,
                k.value(rs_a),
                k.value(cs_a),
                b_ptr,
                k.value(rs_b),
                k.value(cs_b),
                c_ptr,
                k.value(so[-2]),
                i64(0),
                null,
                null,
            ]
            b.call(gemm, args)
            if alpha != 1.0:  # the runtime's GEMM has no alpha: a pass over the matrix
                ldc = k.value(so[-2])
                with (
                    for_range(b, k.value(size_of(rows)), "sr") as i,
                    for_range(b, k.value(size_of(cols)), "sc") as j,
                ):
                    at = b.gep(c_ptr, [b.add(b.mul(i, ldc), j)], source_etype=F32)
                    b.store(b.fmul(b.load(at, typ=F32), ir.Constant(F32, alpha)), at)
            return
        with for_range(b, k.value(size_of(logical_out[axis])), f"mat{axis}") as i:
            moved = [
                b.add(offset, b.mul(i, k.value(stride[axis])))
                for offset, stride in zip(offsets, (sa, sb, so))
            ]
            matrices(axis + 1, moved)

    matrices(0, offsets)
