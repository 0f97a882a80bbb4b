"""Scratch buffers kept across calls, for the runtime's bf16 kernels' packed operands: a
small product (attention's 128 x 32 x 128 heads) paid for a heap allocation and its
release per buffer per call.

A module holds ``SLOTS`` buffers, each claimed by one caller at a time (an atomic
compare-and-exchange of its flag, so no thread-local storage is needed), grown when too
small and kept for the next call. A request larger than ``MAX_BYTES`` (its call is long:
the heap's cost is lost in it) or finding every slot claimed gets a buffer from the heap.

    ptr take(i64 bytes)    a 64-byte-aligned buffer of at least ``bytes``
    void give_back(ptr)    the buffer ``take`` gave, returned (a heap one freed; null
                           ignored)
"""

from __future__ import annotations

from llvmlite import ir

from kcompile.codegen.loops import I32, I64, PTR, i64

SLOTS = 8
MAX_BYTES = 1 << 20
REUSE = True  # False: every buffer from the heap (an A/B of the slots)
_TAKE, _GIVE = "kc_scratch_take", "kc_scratch_give_back"


def _declare(module: ir.Module, name: str, ftype: ir.FunctionType) -> ir.Function:
    fn = module.globals.get(name)
    return fn if fn is not None else ir.Function(module, ftype, name)


def _table(module: ir.Module, name: str, etype: ir.Type) -> ir.GlobalVariable:
    table = ir.GlobalVariable(module, ir.ArrayType(etype, SLOTS), name)
    table.linkage = "internal"
    table.initializer = ir.Constant(ir.ArrayType(etype, SLOTS), None)
    return table


def _slot(b: ir.IRBuilder, table: ir.GlobalVariable, s: int) -> ir.Value:
    at = b.gep(table, [i64(0), i64(s)], inbounds=True, source_etype=table.value_type)
    # llvmlite's atomics want a typed pointer to the element (printed as LLVM's ptr).
    at.type = ir.PointerType(table.value_type.element)
    return at


def _heap(b: ir.IRBuilder, bytes_) -> ir.Value:
    aligned_alloc = _declare(b.module, "aligned_alloc", ir.FunctionType(PTR, [I64, I64]))
    # aligned_alloc wants a multiple of the alignment.
    rounded = b.and_(b.add(bytes_, i64(63)), i64(~63))
    return b.call(aligned_alloc, [i64(64), b.add(rounded, i64(64))])


def functions(module: ir.Module) -> tuple[ir.Function, ir.Function]:
    """``take`` and ``give_back`` in ``module`` (internal; defined on first use)."""
    if _TAKE in module.globals:
        return module.globals[_TAKE], module.globals[_GIVE]
    busy = _table(module, "kc_scratch_busy", I32)
    buffers = _table(module, "kc_scratch_buffers", I64)  # addresses
    sizes = _table(module, "kc_scratch_sizes", I64)
    free = _declare(module, "free", ir.FunctionType(ir.VoidType(), [PTR]))

    take = ir.Function(module, ir.FunctionType(PTR, [I64]), _TAKE)
    take.linkage = "internal"
    b = ir.IRBuilder(take.append_basic_block("entry"))
    want = b.select(b.icmp_unsigned("<", take.args[0], i64(64)), i64(64), take.args[0])
    heap = take.append_basic_block("heap")
    with b.if_then(b.icmp_unsigned(">", want, i64(MAX_BYTES if REUSE else 0))):
        b.branch(heap)
    for s in range(SLOTS):
        claimed = b.cmpxchg(
            _slot(b, busy, s), ir.Constant(I32, 0), ir.Constant(I32, 1), "acquire", "monotonic"
        )
        with b.if_then(b.extract_value(claimed, 1)):
            size_at, buffer_at = _slot(b, sizes, s), _slot(b, buffers, s)
            with b.if_then(b.icmp_unsigned("<", b.load(size_at, typ=I64), want)):
                # The new buffer's address in the slot before the old one is freed: an
                # address the heap hands out again never matches a slot in ``give_back``.
                old = b.load(buffer_at, typ=I64)
                b.store_atomic(b.ptrtoint(_heap(b, want), I64), buffer_at, "monotonic", 8)
                b.call(free, [b.inttoptr(old, PTR)])
                b.store(want, size_at)
            b.ret(b.inttoptr(b.load(buffer_at, typ=I64), PTR))
    b.branch(heap)
    b.position_at_end(heap)
    b.ret(_heap(b, want))

    give = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR]), _GIVE)
    give.linkage = "internal"
    (given,) = give.args
    b = ir.IRBuilder(give.append_basic_block("entry"))
    # Null (nothing taken) matches no slot: a slot just claimed holds no buffer yet.
    with b.if_then(b.icmp_unsigned("==", b.ptrtoint(given, I64), i64(0))):
        b.ret_void()
    for s in range(SLOTS):
        # Only the slot's owner sets its pointer, and every slot's buffer is live: the
        # pointer equals ``given`` only for the slot that gave it.
        address = b.load_atomic(_slot(b, buffers, s), "monotonic", 8, typ=I64)
        mine = b.icmp_unsigned("==", address, b.ptrtoint(given, I64))
        with b.if_then(mine):
            b.store_atomic(ir.Constant(I32, 0), _slot(b, busy, s), "release", 4)
            b.ret_void()
    b.call(free, [given])
    b.ret_void()
    return take, give
