"""The fixed native pieces every model calls: the thread pool and the matrix product.

They are compiled once per machine (cached on disk with the model code, keyed by
codegen's source and the host) and loaded once per process; their symbols are
registered with LLVM's dynamic linker, so each model's object code only declares
them and compiles only its own drivers and fused kernels.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
import time

import llvmlite.binding as llvm
from llvmlite import ir

from codegen.cache import cache_key, read_entry, write_entry
from codegen.gemm import GEMM, Tile, add_gemm
from codegen.parallel import add_thread_pool
from codegen.target import CompileTimes, LoadedCode, compile_module, host

EXPORTS = ("kc_parallel_for", "kc_set_threads", "kc_get_threads", GEMM)
_lock = threading.Lock()


def tile() -> Tile:
    return Tile.for_host(host().has)


def runtime_ir() -> str:
    module = ir.Module(name="kcompile_runtime")
    add_thread_pool(module)
    add_gemm(module, tile())
    return str(module)


def default_threads() -> int:
    """``$KCOMPILE_NUM_THREADS``, else the cores this process may run on."""
    setting = os.environ.get("KCOMPILE_NUM_THREADS")
    if setting:
        try:
            count = int(setting)
        except ValueError:
            raise ValueError(
                f"KCOMPILE_NUM_THREADS must be a positive integer, got {setting!r}"
            ) from None
        if count < 1:
            raise ValueError(f"KCOMPILE_NUM_THREADS must be a positive integer, got {count}")
        return count
    return len(os.sched_getaffinity(0))


class Runtime:
    def __init__(self, code: LoadedCode, times: CompileTimes, cache_hit: bool) -> None:
        self.code = code
        self.times = times
        self.cache_hit = cache_hit
        self.addresses = {name: code.address(name) for name in EXPORTS}
        self._set = ctypes.CFUNCTYPE(None, ctypes.c_int32)(self.addresses["kc_set_threads"])
        self._get = ctypes.CFUNCTYPE(ctypes.c_int32)(self.addresses["kc_get_threads"])

    def set_threads(self, count: int) -> None:
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"the number of threads must be a positive integer, got {count!r}")
        self._set(count)

    def threads(self) -> int:
        return self._get()


@functools.cache
def _load() -> Runtime:
    times = CompileTimes()
    key = cache_key("runtime")
    payload = read_entry(key)
    hit = payload is not None
    if payload is None:
        payload = compile_module(runtime_ir(), times).object_code
        write_entry(key, payload)
    t0 = time.perf_counter()
    runtime = Runtime(LoadedCode(payload), times, hit)
    times.add("load object", time.perf_counter() - t0)
    for name, address in runtime.addresses.items():
        llvm.add_symbol(name, address)
    runtime.set_threads(default_threads())
    return runtime


def runtime() -> Runtime:
    """The process's runtime, built or loaded from the cache on first use."""
    with _lock:
        return _load()
