"""One kernel function being emitted, and strided loop nests over its buffers.

Sizes are symbolic products ``coef * N**power`` (``ir.memory.Size``) until emission, so
that adjacent axes can be merged at compile time even when the batch size is
only known at run time: most elementwise kernels become one flat loop, which
LLVM vectorizes best.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llvmlite import ir

from kcompile.codegen.loops import (
    F32,
    I8,
    I16,
    I32,
    I64,
    PTR,
    chunk_range,
    for_range,
    i64,
    memcpy,
    widen_bf16,
)
from kcompile.ir import DType
from kcompile.ir.memory import Size, size_of

ZERO, ONE = Size(0), Size(1)


def dims_of(shape: Sequence) -> list[Size]:
    return [size_of(d) for d in shape]


def contiguous_strides(shape: Sequence) -> list[Size]:
    strides, acc = [], ONE
    for d in reversed(dims_of(shape)):
        strides.append(acc)
        acc = acc * d
    return strides[::-1]


def broadcast_strides(in_shape: Sequence, out_shape: Sequence) -> list[Size]:
    """Strides that read ``in_shape`` broadcast to ``out_shape`` (0 on broadcast axes)."""
    lead = len(out_shape) - len(in_shape)
    own = contiguous_strides(in_shape)
    strides = []
    for axis, d in enumerate(out_shape):
        if axis < lead:
            strides.append(ZERO)
        else:
            src = in_shape[axis - lead]
            strides.append(ZERO if src == 1 and d != 1 else own[axis - lead])
    return strides


@dataclass(frozen=True)
class Lowered:
    """How codegen holds a dtype: its elements in memory, its values in registers, and the
    conversions between them (None where the two are the same type)."""

    memory: ir.Type
    register: ir.Type
    widen: Callable[[ir.IRBuilder, ir.Value], ir.Value] | None = None
    narrow: Callable[[ir.IRBuilder, ir.Value], ir.Value] | None = None


def _bf16_narrow(b: ir.IRBuilder, value: ir.Value) -> ir.Value:
    # The value in the register is a bf16 already (the op that made it rounded it): its
    # top half holds it exactly.
    return b.trunc(b.lshr(b.bitcast(value, I32), ir.Constant(I32, 16)), I16)


# One entry per dtype a buffer may hold. A bf16 value is computed as the f32 that holds
# it (``passes.narrow_floats``) and stored in 2 bytes (``passes.narrow_storage``).
LOWERED = {
    DType.f32: Lowered(F32, F32),
    DType.i32: Lowered(I32, I32),
    DType.bool: Lowered(I8, I8),
    # Bytes (quantized layers' kernels and inputs): a cast converts them (scalar.py).
    DType.i8: Lowered(I8, I8),
    DType.u8: Lowered(I8, I8),
    DType.bf16: Lowered(I16, F32, widen_bf16, _bf16_narrow),
}
# The register type of each dtype (arrays of values in registers or on the stack).
LLVM_TYPES = {d: lowered.register for d, lowered in LOWERED.items()}


@dataclass
class Operand:
    """A buffer seen through a base offset and one stride per loop axis."""

    ptr: ir.Value
    dtype: DType
    strides: list[Size]
    base: Size | ir.Value = ZERO


def _lowered(dtype: DType) -> Lowered:
    try:
        return LOWERED[dtype]
    except KeyError:
        raise NotImplementedError(f"codegen: buffers of dtype {dtype.value}") from None


def collapse(dims: list[Size], operands: list[Operand]) -> tuple[list[Size], list[Operand]]:
    """Drop unit axes and merge adjacent axes that every operand walks contiguously."""
    keep = [a for a, d in enumerate(dims) if not d.is_one]
    dims = [dims[a] for a in keep]
    strides = [[op.strides[a] for a in keep] for op in operands]
    a = len(dims) - 2
    while a >= 0:
        if all(s[a] == s[a + 1] * dims[a + 1] for s in strides):
            dims[a : a + 2] = [dims[a] * dims[a + 1]]
            for s in strides:
                del s[a]
        a -= 1
    out = [Operand(op.ptr, op.dtype, s, op.base) for op, s in zip(operands, strides)]
    return dims, out


class Kernel:
    """A function ``void name(ptr buffers..., i64 n)`` and its builder."""

    def __init__(
        self, module: ir.Module, name: str, nbuffers: int, inline: bool = True, extra: int = 0
    ) -> None:
        ftype = ir.FunctionType(ir.VoidType(), [PTR] * nbuffers + [I64] * (1 + extra))
        self.fn = ir.Function(module, ftype, name)
        self.fn.linkage = "internal"
        if not inline:
            # Each kernel optimized on its own: inlining hundreds of them into the entry
            # makes one huge function that O3 takes superlinear time on.
            self.fn.attributes.add("noinline")
        for i, arg in enumerate(self.fn.args[:nbuffers]):
            arg.add_attribute("noalias")
            arg.name = f"b{i}"
        self.args = list(self.fn.args[:nbuffers])
        self.n = self.fn.args[nbuffers]
        self.n.name = "n"
        self.extra_args = list(self.fn.args[nbuffers + 1 :])
        self.b = ir.IRBuilder(self.fn.append_basic_block("entry"))
        self.module = module

    @classmethod
    def callback(
        cls, module: ir.Module, name: str, nbuffers: int, nparams: int, extra: int = 0
    ) -> Kernel:
        """A kernel called back by the runtime (a chunk of a parallel loop, a matrix
        product's epilogue) as ``void name(ptr ctx, i64 params...)`` (``.entry``): its
        buffers, ``n`` and ``extra`` more values are read from the ``ctx`` that
        ``context()`` of the caller built, then passed to the kernel proper, whose
        pointer arguments are ``noalias`` (so LLVM vectorizes without overlap checks,
        which in-place loops would fail)."""
        self = cls(module, f"{name}_inner", nbuffers, inline=True, extra=nparams + extra)
        self.params = self.extra_args[:nparams]
        self.extra = self.extra_args[nparams:]
        entry = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR] + [I64] * nparams), name)
        entry.linkage = "internal"
        b = ir.IRBuilder(entry.append_basic_block("entry"))
        ctx = entry.args[0]
        slots = [
            b.load(b.gep(ctx, [i64(i)], inbounds=True, source_etype=I64), typ=I64)
            for i in range(nbuffers + 1 + extra)
        ]
        pointers = [b.inttoptr(v, PTR) for v in slots[:nbuffers]]
        b.call(self.fn, [*pointers, slots[nbuffers], *entry.args[1:], *slots[nbuffers + 1 :]])
        b.ret_void()
        self.entry = entry
        return self

    def operands_from(self, caller: Kernel, ops: Sequence[Operand]) -> list[Operand]:
        """``caller``'s operands as this callback kernel sees them: the same buffers
        through its own arguments (read from the context ``caller`` built)."""
        position = {id(a): i for i, a in enumerate(caller.args)}
        return [
            Operand(self.args[position[id(op.ptr)]], op.dtype, op.strides, op.base) for op in ops
        ]

    def context(self, extra: Sequence[ir.Value] = ()) -> ir.Value:
        """This kernel's buffers, ``n`` and ``extra`` i64 values in a stack array, for a
        ``callback`` kernel."""
        count = len(self.args) + 1 + len(extra)
        ctx = self.b.alloca(I64, size=i64(count), name="ctx")
        values = [self.b.ptrtoint(a, I64) for a in self.args] + [self.n, *extra]
        for i, v in enumerate(values):
            self.b.store(v, self.b.gep(ctx, [i64(i)], inbounds=True, source_etype=I64))
        return ctx

    def value(self, size: Size | ir.Value) -> ir.Value:
        if isinstance(size, ir.Value):
            return size
        v = None if size.coef == 1 else i64(size.coef)
        for _ in range(size.power):
            v = self.n if v is None else self.b.mul(v, self.n, flags=["nsw"])
        return i64(1) if v is None else v

    def load(self, op: Operand, offset: ir.Value) -> ir.Value:
        """The element at ``offset`` as a register value of its dtype (widened)."""
        lowered = _lowered(op.dtype)
        t = lowered.memory
        value = self.b.load(self.b.gep(op.ptr, [offset], inbounds=True, source_etype=t), typ=t)
        return lowered.widen(self.b, value) if lowered.widen else value

    def store(self, op: Operand, offset: ir.Value, value: ir.Value) -> None:
        """Store a register value of the operand's dtype at ``offset`` (narrowed)."""
        lowered = _lowered(op.dtype)
        if lowered.narrow:
            value = lowered.narrow(self.b, value)
        at = self.b.gep(op.ptr, [offset], inbounds=True, source_etype=lowered.memory)
        self.b.store(value, at)

    def strided_loop(
        self,
        dims: list[Size],
        operands: list[Operand],
        body: Callable[[list[ir.Value]], None],
        name: str = "l",
        part: tuple[ir.Value, ir.Value] | None = None,
    ) -> None:
        """Loop over ``dims``; ``body`` gets each operand's element offset. With ``part =
        (chunk, chunks)``, only that chunk of the outermost (merged) axis."""
        dims, operands = collapse(dims, operands)
        bases = [self.value(op.base) for op in operands]
        first = None
        if part is not None and not dims:  # one element: the first chunk computes it
            with self.b.if_then(self.b.icmp_signed("==", part[0], i64(0))):
                body(bases)
            return
        if part is not None:
            first = chunk_range(self.b, self.value(dims[0]), *part)
        self.nest(dims, operands, bases, body, name, 0, first)

    def nest(self, dims, operands, bases, body, name, axis, first=None) -> None:
        if axis == len(dims):
            body(bases)
            return
        if first is not None:
            begin, count = first
            with for_range(self.b, count, f"{name}{axis}") as j:
                self._step(dims, operands, bases, body, name, axis, self.b.add(begin, j))
            return
        with for_range(self.b, self.value(dims[axis]), f"{name}{axis}") as i:
            self._step(dims, operands, bases, body, name, axis, i)

    def _step(self, dims, operands, bases, body, name, axis, i) -> None:
        offsets = []
        for op, base in zip(operands, bases):
            s = op.strides[axis]
            if s.is_zero:
                offsets.append(base)
            elif s.is_one:
                offsets.append(self.b.add(base, i, flags=["nsw"]))
            else:
                step = self.b.mul(i, self.value(s), flags=["nsw"])
                offsets.append(self.b.add(base, step, flags=["nsw"]))
        self.nest(dims, operands, offsets, body, name, axis + 1)

    def fill(self, op: Operand, count: Size, value: ir.Value) -> None:
        with for_range(self.b, self.value(count), "fill") as i:
            self.store(op, i, value)

    def memcpy(self, dst: ir.Value, src: ir.Value, nbytes: Size) -> None:
        memcpy(self.b, dst, src, self.value(nbytes))

    def finish(self) -> None:
        self.b.ret_void()
