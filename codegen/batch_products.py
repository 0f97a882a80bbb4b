"""Batched matrix products (``batch_matmul``): one packed product per matrix of the
shared leading axes."""

from __future__ import annotations

from llvmlite import ir

from kcompile.codegen.emitters import emits
from kcompile.codegen.gemm import declare_gemm
from kcompile.codegen.loops import F32, PTR, for_range, i64
from kcompile.ir.memory import numel


@emits("batch_matmul")
def batch_matmul(k, m, node, outs, ins) -> None:
    """One packed product per matrix of the shared leading axes (a batch row's matrices
    at a time when the kernel is split by rows); transpositions are strides."""
    b = k.b
    a = node.inputs[0]
    (out,) = node.outputs
    rows, cols = out.shape[-2], out.shape[-1]
    depth = a.shape[-2] if node.attrs["transpose_a"] else a.shape[-1]
    rs_a, cs_a = (1, rows) if node.attrs["transpose_a"] else (depth, 1)
    rs_b, cs_b = (1, depth) if node.attrs["transpose_b"] else (cols, 1)
    gemm = declare_gemm(k.module)
    null = ir.Constant(PTR, None)
    with for_range(b, k.value(numel(out.shape[:-2])), "mat") as i:

        def matrix(ptr, elements):
            return b.gep(ptr, [b.mul(i, i64(elements))], inbounds=True, source_etype=F32)

        args = [
            *(i64(x) for x in (rows, cols, depth)),
            matrix(ins[0].ptr, rows * depth),
            i64(rs_a),
            i64(cs_a),
            matrix(ins[1].ptr, depth * cols),
            i64(rs_b),
            i64(cs_b),
            matrix(outs[0].ptr, rows * cols),
            i64(cols),
            i64(0),
            null,
            null,
        ]
        b.call(gemm, args)
