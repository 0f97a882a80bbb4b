"""Building loops in LLVM IR, numba-style: ``with for_range(b, n) as i: ...``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from llvmlite import ir

from kcompile.ir.abi import Signature

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I16 = ir.IntType(16)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F32 = ir.FloatType()
PTR = ir.PointerType()
_ABI_TYPES = {"ptr": PTR, "i32": I32, "i64": I64}


def function_type(signature: Signature) -> ir.FunctionType:
    """The LLVM type of a function of the native ABI (``ir.abi``)."""
    result = ir.VoidType() if signature.result is None else _ABI_TYPES[signature.result]
    return ir.FunctionType(result, [_ABI_TYPES[p] for p in signature.params])


def abi_function(module: ir.Module, signature: Signature, name: str | None = None) -> ir.Function:
    """A function of ``signature`` in ``module``, named by its symbol unless ``name``."""
    return ir.Function(module, function_type(signature), name or signature.symbol)


def i64(value: int) -> ir.Constant:
    return ir.Constant(I64, value)


def f32(value: float) -> ir.Constant:
    return ir.Constant(F32, value)


def memcpy(b: ir.IRBuilder, dst: ir.Value, src: ir.Value, nbytes: ir.Value) -> None:
    """A call of LLVM's memcpy intrinsic (declared in the module on first use)."""
    module = b.module
    fn = module.globals.get("llvm.memcpy.p0.p0.i64")
    if fn is None:
        fn = ir.Function(
            module, ir.FunctionType(ir.VoidType(), [PTR, PTR, I64, I1]), "llvm.memcpy.p0.p0.i64"
        )
    b.call(fn, [dst, src, nbytes, ir.Constant(I1, 0)])


# Loops whose trip count is only known at run time, or is larger than this, and loops
# around such a loop are kept rolled (``llvm.loop.unroll.disable``, which also keeps the
# vectorizer from interleaving them): LLVM's runtime and partial unrolling of them in
# model code was a third of its optimizing and code-emitting time (the fuzz, parity and
# example tests: 187 -> 142 s of LLVM) for no speed the benchmarks could measure (every
# model, mixed and int8 step of ``benchmarks/run.py``, each compiled both ways and timed
# interleaved: geometric means 1.005, 1.010, 1.032 rolled over unrolled, each within
# its noise). Smaller constant counts (a pooling window, a row of 128) are LLVM's to
# unroll whole, and code run per micro-tile (a product's epilogue) and the runtime
# library's kernels unroll as they always did: there it pays (the CNN's pooled
# epilogues ran 8% slower rolled).
UNROLL_COUNTS_UP_TO = 1024


def unroll_freely(scope: ir.Module | ir.Function, freely: bool = True) -> None:
    """Leave every loop built in ``scope`` to LLVM's unrolling and interleaving; with
    ``freely`` False, a function's loops of run-time length are kept rolled even in a
    module that unrolls freely (a micro-kernel whose accumulators fill the registers:
    unrolled, its loads were hoisted and its accumulators spilled)."""
    scope.unroll_freely = freely


def _may_unroll(b: ir.IRBuilder, count: ir.Value, holds_rolled: bool) -> bool:
    """Whether LLVM may unroll a loop of ``count`` built with ``b``; ``holds_rolled``:
    whether its body holds a loop kept rolled (unrolled around one, a loop only copies
    it: a bool transpose [7, N] -> [N, 7] became seven vectorized copies, 1,800 lines)."""
    own = getattr(b.function, "unroll_freely", None)
    if (own is None and getattr(b.module, "unroll_freely", False)) or own:
        return True
    small = isinstance(count, ir.Constant) and count.constant <= UNROLL_COUNTS_UP_TO
    return small and not holds_rolled


def _rolled_count(module: ir.Module) -> int:
    return getattr(module, "rolled_loops", 0)


def _rolled(module: ir.Module) -> ir.MDValue:
    """A loop's own ID (its first operand itself, as LLVM requires) saying: no unrolling.
    Made directly: ``Module.add_metadata`` would hand every loop one node (it shares equal
    ones) and hashes operands, which a node naming itself cannot have hashed."""
    hint = module.add_metadata([ir.MetaDataString(module, "llvm.loop.unroll.disable")])
    loop = ir.values.MDValue(module, [hint], name=str(len(module.metadata)))
    loop.operands = (loop, hint)
    module.rolled_loops = _rolled_count(module) + 1
    return loop


def chunk_range(
    b: ir.IRBuilder, total: ir.Value, chunk: ir.Value, chunks: ir.Value
) -> tuple[ir.Value, ir.Value]:
    """(first index, count) of part ``chunk`` of ``chunks`` near-equal parts of
    ``total``; the count is 0 for parts past the end."""
    per = b.udiv(b.add(total, b.sub(chunks, i64(1))), chunks)
    begin = b.mul(chunk, per)
    end = b.add(begin, per)
    end = b.select(b.icmp_signed("<", end, total), end, total)
    count = b.sub(end, begin)
    return begin, b.select(b.icmp_signed("<", count, i64(0)), i64(0), count)


@contextlib.contextmanager
def for_range(b: ir.IRBuilder, count: ir.Value, name: str = "i") -> Iterator[ir.Value]:
    """A counted loop from 0 to ``count`` (i64); yields the index."""
    with for_reduce(b, count, [], name) as (index, _):
        yield index


@contextlib.contextmanager
def for_reduce(
    b: ir.IRBuilder, count: ir.Value, inits: list[ir.Value], name: str = "r"
) -> Iterator[tuple[ir.Value, list]]:
    """A counted loop carrying accumulators. Yields (index, accs): inside the body, replace
    ``accs[k]`` with the k-th accumulator's next value; after the loop ``accs`` holds the
    results."""
    pre = b.block
    rolled_before = _rolled_count(b.module)
    header = b.append_basic_block(f"{name}.header")
    body = b.append_basic_block(f"{name}.body")
    done = b.append_basic_block(f"{name}.done")
    b.branch(header)
    b.position_at_end(header)
    index = b.phi(I64, name=name)
    index.add_incoming(i64(0), pre)
    phis = []
    for k, init in enumerate(inits):
        phi = b.phi(init.type, name=f"{name}.acc{k}")
        phi.add_incoming(init, pre)
        phis.append(phi)
    b.cbranch(b.icmp_signed("<", index, count), body, done)
    b.position_at_end(body)
    accs = list(phis)
    yield index, accs
    nxt = b.add(index, i64(1), flags=["nsw", "nuw"])
    index.add_incoming(nxt, b.block)
    for phi, value in zip(phis, accs):
        phi.add_incoming(value, b.block)
    latch = b.branch(header)
    if not _may_unroll(b, count, _rolled_count(b.module) > rolled_before):
        latch.set_metadata("llvm.loop", _rolled(b.module))
    b.position_at_end(done)
    accs[:] = phis


def widen_bf16(b: ir.IRBuilder, bits: ir.Value) -> ir.Value:
    """bf16 bits (i16, scalar or vector) as the f32 of the same value: its top half (exact)."""
    if isinstance(bits.type, ir.VectorType):
        count = bits.type.count
        wide = b.zext(bits, ir.VectorType(I32, count))
        shifted = b.shl(wide, ir.Constant(ir.VectorType(I32, count), [16] * count))
        return b.bitcast(shifted, ir.VectorType(F32, count))
    return b.bitcast(b.shl(b.zext(bits, I32), ir.Constant(I32, 16)), F32)


def round_bf16(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """f32 (scalar or vector) rounded to the nearest bf16, held in f32: to nearest, ties to
    even, by integer rounding of the bits (``ml_dtypes``' bits); NaN stays a quiet NaN,
    overflow goes to infinity."""
    ints = ir.VectorType(I32, x.type.count) if isinstance(x.type, ir.VectorType) else I32

    def const(value: int) -> ir.Constant:
        if isinstance(ints, ir.VectorType):
            return ir.Constant(ints, [ir.Constant(I32, value)] * ints.count)
        return ir.Constant(I32, value)

    bits = b.bitcast(x, ints)
    odd = b.and_(b.lshr(bits, const(16)), const(1))
    rounded = b.and_(b.add(b.add(bits, const(0x7FFF)), odd), const(-0x10000))
    quiet = b.and_(b.or_(bits, const(0x400000)), const(-0x10000))
    nan = b.fcmp_unordered("uno", x, x)
    return b.bitcast(b.select(nan, quiet, rounded), x.type)
