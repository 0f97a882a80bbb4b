"""Batched matrix products (``batch_matmul``): one packed product per matrix of the
shared leading axes. Every operand is read, and the result written, through strides:
the transpositions a product holds (``transpose_a``/``transpose_b`` and the folded
``perm_a``/``perm_b``/``perm_out``) cost no copy.

A product on bf16 operands (``precision="bf16"``: attention's under ``mixed_bfloat16``)
runs each matrix on ``kc_bgemm`` (``codegen.library.bf16_gemm``) where the CPU lowered for has a
bf16 engine and every dimension is at least ``BGEMM_MIN_DIM`` (``on_bf16_engine``, as a
``matmul`` decides), unless the matrices are small enough for the kernels emitted per
shape (``codegen.lowering.small_products``); elsewhere on the f32 kernels, which give the same
products (its operands hold bf16 values) with f32 sums. Measured on the Emerald Rapids
Xeon, one thread, each product's kernel over fresh matrices: at the encoder block's
sizes one ``kc_bgemm`` call per head lost to the small kernels (M x K x N 128 x 32 x 128,
B transposed, 11.6 against 9.0 us a matrix; 128 x 128 x 32 8.7 against 6.6; the mixed train
step 38.4 against 34.3 ms), its setup per call (B packed into a buffer it allocates, the
tile configuration) as long as the product; past the small kernels it gains where the
products are deep (512 x 512 x 32: 80 against 87 us; 512 x 512 x 64: 135 against 146)
and ties where they are shallow (512 x 64 x 512: 189 against 187), their f32 operands
and results, not the arithmetic, setting the pace (a 512-long attention's train step:
14.95 against 15.48 ms). bf16 storage is what would speed them up further."""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from kcompile.codegen.library.bf16_gemm import declare_bgemm
from kcompile.codegen.library.gemm import declare_gemm
from kcompile.codegen.loops import F32, PTR, for_range, i64
from kcompile.codegen.lowering.emitters import emits
from kcompile.codegen.lowering.products import on_bf16_engine
from kcompile.codegen.lowering.small_products import b_layout, fits_small, small_product
from kcompile.ir import Node
from kcompile.ir.memory import Size, numel, size_of

# Whether bf16 batch products go to kc_bgemm on an engine (False: the f32 kernels; for
# benchmarks/mixed_flag_ab.py).
ON_ENGINES = True


def matrix_dims(node: Node) -> tuple:
    """(rows, columns, depth) of each matrix product of a ``batch_matmul`` node."""
    attrs = node.attrs
    a, b = (
        tuple(v.shape[p] for p in attrs[perm]) if attrs.get(perm) else v.shape
        for v, perm in zip(node.inputs, ("perm_a", "perm_b"))
    )
    rows, depth = (a[-1], a[-2]) if attrs["transpose_a"] else (a[-2], a[-1])
    return rows, b[-2] if attrs["transpose_b"] else b[-1], depth


def batch_on_bf16_engine(node: Node, features: Callable[[str], bool] | None = None) -> bool:
    """Whether a ``batch_matmul`` node's matrices go to ``kc_bgemm``: on bf16 operands
    where the CPU lowered for (``features``, as ``on_bf16_engine``'s) has an engine, every
    dimension at least ``BGEMM_MIN_DIM`` and the matrices too large for the small kernels
    (see the module's docstring)."""
    dims = matrix_dims(node)
    return ON_ENGINES and on_bf16_engine(node, dims, features) and not fits_small(*dims)


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
    # On a bf16 engine: each matrix on kc_bgemm (its ABI is kc_sgemm's). Else small
    # static products (attention's heads) take a kernel emitted for their shape.
    engine = batch_on_bf16_engine(node)
    small = None
    if not engine and fits_small(rows, cols, depth):
        static = [s.coef if s.power == 0 else None for s in (rs_b, cs_b)]
        small = small_product(k.module, rows, cols, depth, layout=b_layout(*static))
    gemm = declare_bgemm(k.module) if engine else declare_gemm(k.module)
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
