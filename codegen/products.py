"""Matrix products: a ``matmul`` node through the runtime's packed GEMM
(``codegen.gemm``), every transposition a choice of strides."""

from __future__ import annotations

from llvmlite import ir

from kcompile.codegen.emitters import emits
from kcompile.codegen.gemm import ACCUMULATE, COLUMNS_OWNED, declare_gemm
from kcompile.codegen.kernel import Kernel, Operand
from kcompile.codegen.loops import PTR, i64
from kcompile.ir import Node
from kcompile.ir.memory import numel, size_of


def call_gemm(
    k: Kernel,
    node: Node,
    a_shape: tuple,
    b_shape: tuple,
    A: Operand,
    B: Operand,
    C: ir.Value,
    epilogue: ir.Value | None = None,
    context: ir.Value | None = None,
    columns_owned: bool = False,
    accumulate: bool = False,
) -> None:
    """``C (+)= op(A) · op(B)`` for a matmul node's attributes, through the runtime's
    packed micro-kernel (``codegen.gemm``); transpositions become strides. With
    ``columns_owned`` no two threads compute tiles of one column (an epilogue that
    sums columns needs it)."""
    b = k.b
    rows = k.value(numel(a_shape[:-1]))
    width = k.value(size_of(a_shape[-1]))
    if node.attrs["transpose_a"]:  # a[L, K]ᵀ · b[L, N]: C is [K, N]
        m, depth, rs_a, cs_a = width, rows, i64(1), width
    else:
        m, depth, rs_a, cs_a = rows, width, width, i64(1)
    if node.attrs["transpose_b"]:  # b is [N, K]
        n = k.value(size_of(b_shape[0]))
        rs_b, cs_b = i64(1), depth
    else:
        n = k.value(size_of(b_shape[-1]))
        rs_b, cs_b = n, i64(1)
    null = ir.Constant(PTR, None)
    flags = i64((COLUMNS_OWNED if columns_owned else 0) | (ACCUMULATE if accumulate else 0))
    args = [m, n, depth, A.ptr, rs_a, cs_a, B.ptr, rs_b, cs_b, C, n, flags]
    b.call(declare_gemm(k.module), [*args, epilogue or null, context or null])


@emits("matmul")
def matmul(k, m, node, outs, ins) -> None:
    a, bv = node.inputs
    call_gemm(k, node, a.shape, bv.shape, ins[0], ins[1], outs[0].ptr)
