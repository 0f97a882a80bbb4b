"""The thread pool's poster sleeping on a late chunk (codegen/library/parallel.py): a pool of its
own in a module built here, with a chunk that the poster must wait for."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from llvmlite import ir

from kcompile.codegen.building.target import CompileTimes, LoadedCode, compile_module
from kcompile.codegen.library.parallel import (
    CHUNK_FN,
    PARK_TIMEOUTS,
    PARKS,
    SYS_SCHED_YIELD,
    add_thread_pool,
)
from kcompile.codegen.loops import I32, I64, i64
from kcompile.ir import abi

# A started pool's workers never exit: its code must stay loaded.
_KEEP: list[LoadedCode] = []
GIVE_UP_TICKS = 4_000_000_000  # about 2 s: a broken protocol fails the test, never hangs


def _late_chunk(module: ir.Module) -> None:
    """``chunk(ctx, i)``: ``ctx[2 + i] = i + 1``. Chunk 1 raises ``ctx[0]`` as it starts,
    then runs until the poster sleeps (the pool's word ``kc_pool_parked``); chunk 0 waits
    for ``ctx[0]``, so chunk 1 runs on the worker and the poster, done with every other
    chunk, waits for it and sleeps. Both wait with ``sched_yield``: the two threads may
    share one core."""
    fn = ir.Function(module, CHUNK_FN, "test_chunk")
    ctx, i = fn.args
    clock = module.globals["llvm.readcyclecounter"]  # the pool's declarations
    syscall = module.globals["syscall"]
    parked = module.globals["kc_pool_parked"]
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    flag = b.gep(ctx, [i64(0)], source_etype=I64)
    first, late, wait, spin, store = (
        fn.append_basic_block(n) for n in ("first", "late", "wait", "spin", "store")
    )
    switch = b.switch(i, store)
    switch.add_case(i64(0), first)
    switch.add_case(i64(1), late)
    b.position_at_end(first)
    b.branch(wait)
    b.position_at_end(wait)
    b.call(syscall, [i64(SYS_SCHED_YIELD)])
    started = b.load_atomic(flag, "acquire", 8, typ=I64)
    b.cbranch(b.icmp_signed("==", started, i64(0)), wait, store)
    b.position_at_end(late)
    b.atomic_rmw("xchg", flag, i64(1), "release")
    start = b.call(clock, [])
    b.branch(spin)
    b.position_at_end(spin)
    b.call(syscall, [i64(SYS_SCHED_YIELD)])
    asleep = b.icmp_unsigned(
        "!=", b.load_atomic(parked, "acquire", 4, typ=I32), ir.Constant(I32, 0)
    )
    patient = b.icmp_unsigned("<", b.sub(b.call(clock, []), start), i64(GIVE_UP_TICKS))
    b.cbranch(b.and_(b.not_(asleep), patient), spin, store)
    b.position_at_end(store)
    b.store(b.add(i, i64(1)), b.gep(ctx, [b.add(i, i64(2))], source_etype=I64))
    b.ret_void()


def _counter(module: ir.Module, name: str) -> None:
    fn = ir.Function(module, ir.FunctionType(I64, []), f"test_{name}")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.ret(b.load_atomic(module.globals[name], "monotonic", 8, typ=I64))


@pytest.fixture(scope="module")
def pool():
    module = ir.Module(name="pool_test")
    add_thread_pool(module)
    _late_chunk(module)
    for name in (PARKS, PARK_TIMEOUTS):
        _counter(module, name)
    code = LoadedCode(compile_module(str(module), CompileTimes()).object_code)
    _KEEP.append(code)

    def bind(name: str, restype, *argtypes):
        return ctypes.CFUNCTYPE(restype, *argtypes)(code.address(name))

    set_threads = bind(abi.SET_THREADS.symbol, None, ctypes.c_int32)
    set_threads(2)
    return {
        "run": bind(
            abi.PARALLEL_FOR.symbol, None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64
        ),
        "chunk": code.address("test_chunk"),
        "parks": bind(f"test_{PARKS}", ctypes.c_int64),
        "timeouts": bind(f"test_{PARK_TIMEOUTS}", ctypes.c_int64),
    }


@pytest.mark.parametrize("count", [2, 3, 8])
def test_a_poster_sleeps_on_a_late_chunk_and_is_woken_by_it(pool, count):
    """Every chunk runs once; the poster slept in each call (chunk 1 ends only then) and
    each sleep ended by the last chunk's wake-up, none by the backstop timeout (a lost
    wake-up)."""
    parks = pool["parks"]()
    repeats = 20
    for _ in range(repeats):
        ctx = np.zeros(2 + count, np.int64)
        pool["run"](pool["chunk"], ctx.ctypes.data, count)
        np.testing.assert_array_equal(ctx[2:], np.arange(1, count + 1))
    assert pool["parks"]() - parks >= repeats
    assert pool["timeouts"]() == 0
