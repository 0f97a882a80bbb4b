"""Kernel emitters by op family. Each gets the kernel, the node, and one ``Operand``
per result and per operand (contiguous buffers), and emits the loops."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from llvmlite import ir

from kcompile.codegen.library.replicas import declare_replica_sum
from kcompile.codegen.loops import F32, I32, I64, for_range, for_reduce, i64
from kcompile.codegen.lowering.chunks import in_parallel
from kcompile.codegen.lowering.kernel import (
    ZERO,
    Kernel,
    Operand,
    broadcast_strides,
    contiguous_strides,
    dims_of,
)
from kcompile.codegen.lowering.mathfn import MathLib
from kcompile.codegen.lowering.scalar import SCALAR_RULES, reduction_combine, reduction_start
from kcompile.ir import DType, Node
from kcompile.ir.memory import ELEMENT_BYTES, Size, numel, size_of
from kcompile.ir.ops.random import GOLDEN
from kcompile.ir.traits import Reduction

Emitter = Callable[[Kernel, MathLib, Node, list[Operand], list[Operand]], None]
EMITTERS: dict[str, Emitter] = {}


def emits(*ops: str):
    def register(fn: Emitter) -> Emitter:
        for op in ops:
            EMITTERS[op] = fn
        return fn

    return register


def _with_strides(op: Operand, strides: list[Size], base: Size | ir.Value = ZERO) -> Operand:
    return Operand(op.ptr, op.dtype, strides, base)


# Whether a standalone elementwise op runs on the runtime's threads when large (off only
# to measure against).
PARALLEL_ELEMENTWISE = True
# A copy or a standalone elementwise op gets a chunk function of its own (threads) only
# when a sample holds at least this many elements: every chunk function is more code for
# LLVM, and with one for every small batched copy the compiles of the parity and layer
# tests took 8-12% more CPU.
THREADS_MIN_SAMPLE = 4096


@emits(*SCALAR_RULES)
def elementwise(k: Kernel, m: MathLib, node: Node, outs, ins) -> None:
    shape = node.outputs[0].shape
    rule = SCALAR_RULES[node.op]
    out = _with_strides(outs[0], contiguous_strides(shape))
    sources = [
        _with_strides(op, broadcast_strides(v.shape, shape)) for op, v in zip(ins, node.inputs)
    ]
    dtypes = [v.dtype for v in node.inputs]

    def emit(kk: Kernel, outs, ins, part) -> None:
        (o,) = outs

        def body(offsets):
            values = [kk.load(op, off) for op, off in zip(ins, offsets[1:])]
            kk.store(o, offsets[0], rule(kk.b, m, values, dtypes, node.attrs))

        kk.strided_loop(dims_of(shape), [o, *ins], body, part=part)

    # On the runtime's threads when large: the encoder's standalone roundings of
    # activations under mixed_bfloat16 took 230 and 153 µs on one thread, 171 and 127 on
    # two (Zen 3; memory bound, so not half).
    if PARALLEL_ELEMENTWISE:
        weight = max(node.traits.cost, 1)
        in_parallel(k, numel(shape), emit, [out], sources, weight, min_sample=THREADS_MIN_SAMPLE)
    else:
        emit(k, [out], sources, None)


def _copy(k: Kernel, shape, dst: Operand, src: Operand) -> None:
    """``src`` into ``dst`` over ``shape``, on the runtime's threads when it is large (a
    pad, a slice or a concatenation of activations: one thread took 470 µs to pad the
    CNN's pooled gradient at batch 64)."""

    def emit(kk: Kernel, outs, ins, part) -> None:
        (d,), (s,) = outs, ins
        copy = lambda off: kk.store(d, off[0], kk.load(s, off[1]))  # noqa: E731
        kk.strided_loop(dims_of(shape), [d, s], copy, part=part)

    in_parallel(k, numel(shape), emit, [dst], [src], min_sample=THREADS_MIN_SAMPLE)


def _fill(k: Kernel, dst: Operand, count: Size, value: ir.Value) -> None:
    """``count`` elements of ``dst`` set to ``value``, on the runtime's threads when many."""

    def emit(kk: Kernel, outs, ins, part) -> None:
        (d,) = outs
        kk.strided_loop([count], [d], lambda off: kk.store(d, off[0], value), part=part)

    flat = Operand(dst.ptr, dst.dtype, [Size(1)])
    in_parallel(k, count, emit, [flat], [], min_sample=THREADS_MIN_SAMPLE)


@emits("reshape")
def reshape(k, m, node, outs, ins) -> None:
    x = node.inputs[0]
    k.memcpy(outs[0].ptr, ins[0].ptr, numel(x.shape) * Size(ELEMENT_BYTES[x.dtype]))


@emits("custom_vjp")
def custom_vjp(k, m, node, outs, ins) -> None:
    """Its results are its value operands (the rule is the gradient's, which autodiff has
    already copied out; the default pipeline drops the node before codegen)."""
    for out, op, v in zip(outs, ins, node.outputs):
        k.memcpy(out.ptr, op.ptr, numel(v.shape) * Size(ELEMENT_BYTES[v.dtype]))


@emits("broadcast_to")
def broadcast_to(k, m, node, outs, ins) -> None:
    shape = node.outputs[0].shape
    out = _with_strides(outs[0], contiguous_strides(shape))
    _copy(
        k,
        shape,
        out,
        _with_strides(ins[0], broadcast_strides(node.inputs[0].shape, shape)),
    )


@emits("transpose")
def transpose(k, m, node, outs, ins) -> None:
    shape = node.outputs[0].shape
    own = contiguous_strides(node.inputs[0].shape)
    src = _with_strides(ins[0], [own[p] for p in node.attrs["perm"]])
    _copy(k, shape, _with_strides(outs[0], contiguous_strides(shape)), src)


def _offset(begin, strides: list[Size]) -> Size:
    total = ZERO
    for b, s in zip(begin, strides):
        if b:
            if total.is_zero:
                total = Size(b) * s
            elif (Size(b) * s).power == total.power:
                total = Size(total.coef + (Size(b) * s).coef, total.power)
            else:
                raise NotImplementedError("codegen: mixed batch powers in an offset")
    return total


@emits("slice")
def slice_(k, m, node, outs, ins) -> None:
    shape = node.outputs[0].shape
    own = contiguous_strides(node.inputs[0].shape)
    src = _with_strides(ins[0], own, _offset(node.attrs["begin"], own))
    _copy(k, shape, _with_strides(outs[0], contiguous_strides(shape)), src)


@emits("reverse")
def reverse(k, m, node, outs, ins) -> None:
    shape = node.outputs[0].shape
    axis = node.attrs["axis"]
    strides = contiguous_strides(shape)
    last = _offset([shape[axis] - 1 if a == axis else 0 for a in range(len(shape))], strides)
    backwards = [Size(-s.coef, s.power) if a == axis else s for a, s in enumerate(strides)]
    _copy(k, shape, _with_strides(outs[0], strides), _with_strides(ins[0], backwards, last))


@emits("pad")
def pad(k, m, node, outs, ins) -> None:
    out_shape, in_shape = node.outputs[0].shape, node.inputs[0].shape
    value = _constant(node.outputs[0].dtype, node.attrs["value"])
    _fill(k, outs[0], numel(out_shape), value)
    strides = contiguous_strides(out_shape)
    dst = _with_strides(outs[0], strides, _offset(node.attrs["low"], strides))
    _copy(k, in_shape, dst, _with_strides(ins[0], contiguous_strides(in_shape)))


@emits("concat")
def concat(k, m, node, outs, ins) -> None:
    axis = node.attrs["axis"]
    strides = contiguous_strides(node.outputs[0].shape)
    offset = 0
    for op, v in zip(ins, node.inputs):
        begin = [0] * v.rank
        begin[axis] = offset
        dst = _with_strides(outs[0], strides, _offset(begin, strides))
        _copy(k, v.shape, dst, _with_strides(op, contiguous_strides(v.shape)))
        offset += v.shape[axis]


class _Bytes(ir.Constant):
    """An array of bytes written as LLVM's ``c"..."`` with every byte escaped (``\\hh``),
    made by numpy: llvmlite escapes a ``bytearray`` constant byte by byte in Python, a
    second for a table of a million floats."""

    def __init__(self, data: bytes) -> None:
        super().__init__(ir.ArrayType(ir.IntType(8), len(data)), None)
        digits = np.frombuffer(data.hex().encode(), np.uint8).reshape(-1, 2)
        escaped = np.empty((len(data), 3), np.uint8)
        escaped[:, 0] = ord("\\")
        escaped[:, 1:] = digits
        self._text = 'c"' + escaped.tobytes().decode() + '"'

    def _get_reference(self) -> str:
        return self._text


def _constant(dtype: DType, value) -> ir.Constant:
    if dtype is DType.f32:
        return ir.Constant(F32, float(value))
    if dtype is DType.i32:
        return ir.Constant(I32, int(value))
    return ir.Constant(ir.IntType(8), int(bool(value)))


@emits("constant")
def constant(k, m, node, outs, ins) -> None:
    t = node.outputs[0].type
    value = node.attrs["value"]
    if not isinstance(value, tuple):
        k.fill(outs[0], numel(t.shape), _constant(t.dtype, value))
        return
    # The data as one string of bytes (little-endian, as x86-64 stores them): an LLVM
    # constant per element took seconds to make and print for a million-entry table
    # (an STFT's DFT matrices), the bytes a fraction of one.
    kind = {DType.f32: np.float32, DType.i32: np.int32, DType.bool: np.int8}[t.dtype]
    raw = np.asarray(value, dtype=np.float64 if t.dtype is DType.f32 else np.int64)
    raw = (raw != 0) if t.dtype is DType.bool else raw
    initializer = _Bytes(raw.astype(kind).astype(np.dtype(kind).newbyteorder("<")).tobytes())
    data = ir.GlobalVariable(k.module, initializer.type, f"{k.fn.name}.data")
    data.global_constant = True
    data.linkage = "internal"
    data.align = 16
    data.initializer = initializer
    k.memcpy(outs[0].ptr, data, Size(len(value) * ELEMENT_BYTES[t.dtype]))


# --- reductions ---------------------------------------------------------------


def _reduction_operands(node, outs, ins) -> tuple[list[Size], Operand, Operand]:
    x = node.inputs[0]
    axes = node.attrs["axes"]
    kept = [d for a, d in enumerate(x.shape) if a not in axes]
    kept_strides = iter(contiguous_strides(kept))
    out_strides = [ZERO if a in axes else next(kept_strides) for a in range(x.rank)]
    return (
        dims_of(x.shape),
        _with_strides(outs[0], out_strides),
        _with_strides(ins[0], contiguous_strides(x.shape)),
    )


@emits("reduce_sum", "reduce_max", "reduce_prod")
def reduce(k, m, node, outs, ins) -> None:
    dtype = node.inputs[0].dtype
    init = reduction_start(node.traits.reduction, dtype)
    combine = reduction_combine(k.b, m, node.traits.reduction, dtype)
    dims, out, src = _reduction_operands(node, outs, ins)

    from kcompile.codegen.lowering.kernel import collapse

    cdims, (cout, csrc) = collapse(dims, [out, src])
    windows = _window_axes(cdims, cout, csrc) if dtype is DType.f32 else None
    if windows is not None:
        _reduce_windows(k, m, node.traits.reduction, cdims, cout, csrc, *windows)
        return
    k.fill(outs[0], numel(node.outputs[0].shape), init)
    if cdims and cout.strides[-1].is_zero and len(cdims) >= 1:
        # The innermost axis is reduced: accumulate in a register.
        outer = cdims[:-1]

        def outer_body(offsets):
            o, s = offsets
            with for_reduce(k.b, k.value(cdims[-1]), [init]) as (i, acc):
                step = i if csrc.strides[-1].is_one else k.b.mul(i, k.value(csrc.strides[-1]))
                acc[0] = combine(acc[0], k.load(csrc, k.b.add(s, step)))
            k.store(cout, o, combine(k.load(cout, o), acc[0]))

        k.nest(outer, [cout, csrc], [k.value(cout.base), k.value(csrc.base)], outer_body, "red", 0)
        return

    def body(offsets):
        o, s = offsets
        k.store(cout, o, combine(k.load(cout, o), k.load(csrc, s)))

    k.nest(cdims, [cout, csrc], [k.value(cout.base), k.value(csrc.base)], body, "red", 0)


# Floats a vector accumulator of a window reduction holds: 8 is one AVX register, two
# SSE ones, half an AVX-512 one (LLVM splits or widens it for the target); the reduction
# reads memory once either way.
REDUCE_LANES = 8


def _window_axes(cdims, cout, csrc) -> tuple[list[int], list[int]] | None:
    """(kept axes, reduced axes) before the last, when the last axis is kept and
    contiguous and at least one axis before it is reduced: a window reduction (pooling
    over [N, OH, KH, OW, KW, C], a mean over time). None otherwise."""
    if len(cdims) < 2 or not (cout.strides[-1].is_one and csrc.strides[-1].is_one):
        return None
    kept = [a for a in range(len(cdims) - 1) if not cout.strides[a].is_zero]
    reduced = [a for a in range(len(cdims) - 1) if cout.strides[a].is_zero]
    if not reduced or any(cdims[a].power == 0 and cdims[a].coef < 1 for a in reduced):
        return None
    if not kept:  # all rows into one (a bias gradient): streaming rows into it is faster
        return None
    return kept, reduced


def _reduce_windows(k, m, reduction, cdims, cout, csrc, kept, reduced) -> None:
    """Each output row is one pass over its window, ``REDUCE_LANES`` columns at a time in
    a vector register, the last columns one by one, with no fill (LLVM left to itself
    unrolls the short column loop and vectorizes an outer one with gathers)."""
    b = k.b
    vec = ir.VectorType(F32, REDUCE_LANES)
    start = reduction_start(reduction, DType.f32)
    joins = {
        vec: _vector_combine(b, m, reduction),
        F32: reduction_combine(b, m, reduction, DType.f32),
    }
    cols = k.value(cdims[-1])
    whole = b.mul(b.sdiv(cols, i64(REDUCE_LANES)), i64(REDUCE_LANES))

    def window(offset, typ, level=0, acc=None):
        """The window's combination at ``offset`` (its first element), axis by axis."""
        if acc is None:
            acc = ir.Constant(typ, [start] * REDUCE_LANES) if typ is vec else start
        if level == len(reduced):
            at = b.gep(csrc.ptr, [offset], inbounds=True, source_etype=F32)
            return joins[typ](acc, b.load(at, typ=typ, align=4))
        axis = reduced[level]
        with for_reduce(b, k.value(cdims[axis]), [acc], f"win{level}") as (r, accs):
            step = b.mul(r, k.value(csrc.strides[axis]))
            accs[0] = window(b.add(offset, step), typ, level + 1, accs[0])
        return accs[0]

    def row_body(offsets):
        o, s = offsets
        for count, first, typ, width in (
            (b.sdiv(cols, i64(REDUCE_LANES)), i64(0), vec, REDUCE_LANES),
            (b.sub(cols, whole), whole, F32, 1),
        ):
            with for_range(b, count, "col") as j:
                c = b.add(first, b.mul(j, i64(width)))
                at = b.gep(cout.ptr, [b.add(o, c)], inbounds=True, source_etype=F32)
                b.store(window(b.add(s, c), typ), at, align=4)

    outer = [cdims[a] for a in kept]
    ops = [_with_strides(op, [op.strides[a] for a in kept], op.base) for op in (cout, csrc)]
    k.nest(outer, ops, [k.value(cout.base), k.value(csrc.base)], row_body, "red", 0)


def _vector_combine(b, m, reduction, lanes: int = REDUCE_LANES):
    vec = ir.VectorType(F32, lanes)
    if reduction.combine == "add":
        return lambda acc, x: b.fadd(acc, x, flags=["reassoc", "contract"])
    if reduction.combine == "mul":
        return lambda acc, x: b.fmul(acc, x)
    name = {"max": "llvm.maximum", "min": "llvm.minimum"}[reduction.combine]
    fn = m.intrinsic(f"{name}.v{lanes}f32", 2, vec)
    return lambda acc, x: b.call(fn, [acc, x])


@emits("argmax")
def argmax(k, m, node, outs, ins) -> None:
    x = node.inputs[0]
    axis = node.attrs["axis"]
    outer = numel(x.shape[:axis])
    length = size_of(x.shape[axis])
    inner = numel(x.shape[axis + 1 :])
    b = k.b
    src = ins[0]
    with for_range(b, k.value(outer), "o") as o, for_range(b, k.value(inner), "j") as j:
        row = b.mul(o, k.value(length * inner))
        first = k.load(src, b.add(row, j))
        with for_reduce(b, k.value(length), [first, ir.Constant(I32, 0)], "t") as (t, acc):
            v = k.load(src, b.add(b.add(row, b.mul(t, k.value(inner))), j))
            better = (
                b.fcmp_ordered(">", v, acc[0])
                if x.dtype is DType.f32
                else b.icmp_signed(">", v, acc[0])
            )
            acc[1] = b.select(better, b.trunc(t, I32), acc[1])
            acc[0] = b.select(better, v, acc[0])
        k.store(outs[0], b.add(b.mul(o, k.value(inner)), j), acc[1])


@emits("layer_norm")
def layer_norm(k, m, node, outs, ins) -> None:
    """Row by row over the last axis: the mean, the variance of the centred row, then
    (x - mean) * r with r = 1 / sqrt(variance + epsilon); a row stays in L1."""
    x = node.inputs[0]
    cols = x.shape[-1]
    b = k.b
    add = reduction_combine(b, m, Reduction(0.0, "add"), DType.f32)
    zero, count = ir.Constant(F32, 0.0), ir.Constant(F32, float(cols))
    with for_range(b, k.value(numel(x.shape[:-1])), "row") as r:
        start = b.mul(r, i64(cols))

        def total(term, name):
            with for_reduce(b, i64(cols), [zero], name) as (c, acc):
                acc[0] = add(acc[0], term(k.load(ins[0], b.add(start, c))))
            return b.fdiv(acc[0], count)

        mean = total(lambda v: v, "mean")
        variance = total(lambda v: b.fmul(b.fsub(v, mean), b.fsub(v, mean)), "var")
        eps = ir.Constant(F32, node.attrs["epsilon"])
        root = b.call(m.intrinsic("llvm.sqrt.f32"), [b.fadd(variance, eps)])
        inverse = b.fdiv(ir.Constant(F32, 1.0), root)
        with for_range(b, i64(cols), "norm") as c:
            at = b.add(start, c)
            k.store(outs[0], at, b.fmul(b.fsub(k.load(ins[0], at), mean), inverse))


@emits("numel")
def numel_(k, m, node, outs, ins) -> None:
    x = node.inputs[0]
    count = numel([x.shape[a] for a in node.attrs["axes"]])
    k.store(outs[0], i64(0), k.b.sitofp(k.value(count), F32))


# --- indexing -------------------------------------------------------------------


def _clamp(b: ir.IRBuilder, idx: ir.Value, rows: int) -> ir.Value:
    idx = b.select(b.icmp_signed("<", idx, ir.Constant(I32, 0)), ir.Constant(I32, 0), idx)
    idx = b.select(
        b.icmp_signed(">", idx, ir.Constant(I32, rows - 1)), ir.Constant(I32, rows - 1), idx
    )
    return b.sext(idx, I64)


@emits("one_hot")
def one_hot(k, m, node, outs, ins) -> None:
    b = k.b
    depth = node.attrs["depth"]
    with for_range(b, k.value(numel(node.inputs[0].shape)), "r") as r:
        v = k.load(ins[0], r)
        with for_range(b, i64(depth), "c") as c:
            hit = b.icmp_signed("==", v, b.trunc(c, I32))
            k.store(outs[0], b.add(b.mul(r, i64(depth)), c), b.uitofp(hit, F32))


@emits("take")
def take(k, m, node, outs, ins) -> None:
    b = k.b
    table, idx = node.inputs
    width = numel(table.shape[1:])
    with for_range(b, k.value(numel(idx.shape)), "r") as r:
        row = _clamp(b, k.load(ins[1], r), table.shape[0])
        with for_range(b, k.value(width), "j") as j:
            v = k.load(ins[0], b.add(b.mul(row, k.value(width)), j))
            k.store(outs[0], b.add(b.mul(r, k.value(width)), j), v)


@emits("scatter_add")
def scatter_add(k, m, node, outs, ins) -> None:
    b = k.b
    idx, updates = node.inputs
    rows = node.attrs["rows"]
    width = numel(updates.shape[idx.rank :])
    k.fill(outs[0], Size(rows) * width, ir.Constant(F32, 0.0))
    with for_range(b, k.value(numel(idx.shape)), "r") as r:
        row = _clamp(b, k.load(ins[0], r), rows)
        with for_range(b, k.value(width), "j") as j:
            dst = b.add(b.mul(row, k.value(width)), j)
            v = k.load(ins[1], b.add(b.mul(r, k.value(width)), j))
            k.store(outs[0], dst, b.fadd(k.load(outs[0], dst), v))


# --- random ---------------------------------------------------------------------


def _mix32(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    x = b.xor(x, b.lshr(x, ir.Constant(I32, 16)))
    x = b.mul(x, ir.Constant(I32, 0x85EBCA6B))
    x = b.xor(x, b.lshr(x, ir.Constant(I32, 13)))
    x = b.mul(x, ir.Constant(I32, 0xC2B2AE35))
    return b.xor(x, b.lshr(x, ir.Constant(I32, 16)))


@emits("random_uniform")
def random_uniform(k, m, node, outs, ins) -> None:
    b = k.b
    counter = k.load(ins[0], i64(0))
    seed = node.attrs["seed"] & 0xFFFFFFFF
    key = _mix32(
        b, b.xor(ir.Constant(I32, seed), _mix32(b, b.add(counter, ir.Constant(I32, GOLDEN))))
    )
    with for_range(b, k.value(numel(node.outputs[0].shape)), "u") as i:
        h = _mix32(b, b.add(_mix32(b, b.xor(b.trunc(i, I32), key)), key))
        bits = b.lshr(h, ir.Constant(I32, 8))
        k.store(outs[0], i, b.fmul(b.uitofp(bits, F32), ir.Constant(F32, 1.0 / (1 << 24))))


# --- replicas -------------------------------------------------------------------------


@emits("replica_sum")
def replica_sum(k, m, node, outs, ins) -> None:
    """Copy, then the runtime library's replica hook sums the copy in place."""
    b = k.b
    count = k.value(numel(node.outputs[0].shape))
    with for_range(b, count, "r") as i:
        k.store(outs[0], i, k.load(ins[0], i))
    b.call(declare_replica_sum(k.module), [outs[0].ptr, count])
