"""Column sums in a convolution's epilogue (BatchNormalization's batch statistics and the
sums of its gradient), on every thread, with bits that do not depend on the thread count.

The convolution (``codegen.library.conv``, asked with ``COLUMNS_OWNED``) starts its chunks of
rows at multiples of ``SUM_SPAN`` rows, so every span's rows run in one thread, in row
order. The epilogue adds each row into its span's partial sums (``partial``), and the
kernel then adds the partials up in span order (``combine``): the order of every
addition depends on the rows alone. (The GEMM's own column sums still run on one thread
per column chunk, ``COLUMNS_OWNED`` in ``codegen.library.gemm``.)
"""

from __future__ import annotations

from llvmlite import ir

from kcompile.codegen.library.conv import SUM_SPAN
from kcompile.codegen.loops import F32, I64, PTR, for_range, i64
from kcompile.codegen.lowering.kernel import Kernel, Operand
from kcompile.ir import DType
from kcompile.ir.memory import numel


def _declare(module: ir.Module, name: str, ftype: ir.FunctionType) -> ir.Function:
    existing = module.globals.get(name)
    return existing if existing is not None else ir.Function(module, ftype, name)


class SpanSums:
    """Partial column sums of ``sums`` results of a product ``out_shape`` (rows by its
    last axis): ``[span][sum][column]`` floats, allocated zeroed by the kernel ``k``."""

    def __init__(self, k: Kernel, out_shape: tuple, sums: int) -> None:
        b = k.b
        self.columns = int(out_shape[-1])
        self.sums = sums
        rows = k.value(numel(out_shape[:-1]))
        self.spans = b.udiv(b.add(rows, i64(SUM_SPAN - 1)), i64(SUM_SPAN))
        calloc = _declare(k.module, "calloc", ir.FunctionType(PTR, [I64, I64]))
        floats = b.add(b.mul(self.spans, i64(sums * self.columns)), i64(1))
        self.buffer = b.call(calloc, [floats, i64(4)])
        # For the epilogue's context: its one extra value.
        self.extra = [b.ptrtoint(self.buffer, I64)]

    def add(self, epi: Kernel, which: int, i: ir.Value, j: ir.Value, value: ir.Value) -> None:
        """In the epilogue ``epi`` (made with one extra value): partial ``which`` of row
        ``i``'s span at column ``j`` += ``value``."""
        e = epi.b
        buffer = e.inttoptr(epi.extra[0], PTR)
        span = e.udiv(i, i64(SUM_SPAN))
        at = e.add(e.mul(e.add(e.mul(span, i64(self.sums)), i64(which)), i64(self.columns)), j)
        slot = Operand(buffer, DType.f32, [])
        epi.store(slot, at, e.fadd(epi.load(slot, at), value))

    def combine(self, k: Kernel, outs: list[Operand]) -> None:
        """Each sum's total into ``outs`` (in the order of ``which``): its partials added
        span after span; then the partials are freed."""
        b = k.b
        partials = Operand(self.buffer, DType.f32, [])
        for which, out in enumerate(outs):
            flat = Operand(out.ptr, out.dtype, [])
            with for_range(b, i64(self.columns), "sz") as j:
                k.store(flat, j, ir.Constant(F32, 0.0))
            with for_range(b, self.spans, "ss") as s:
                row = b.mul(b.add(b.mul(s, i64(self.sums)), i64(which)), i64(self.columns))
                with for_range(b, i64(self.columns), "sc") as j:
                    total = b.fadd(k.load(flat, j), k.load(partials, b.add(row, j)))
                    k.store(flat, j, total)
        free = _declare(k.module, "free", ir.FunctionType(ir.VoidType(), [PTR]))
        b.call(free, [self.buffer])
