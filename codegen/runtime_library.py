"""The fixed native pieces every model calls: the thread pool and the matrix product.

They are compiled once per machine (cached on disk with the model code, keyed by
codegen's source and the host) and loaded once per process; their symbols are
registered with LLVM's dynamic linker, so each model's object code only declares
them and compiles only its own drivers and fused kernels.
"""

from __future__ import annotations

import functools
import os
import threading
import time

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir

from kcompile.codegen import forking
from kcompile.codegen.bf16_gemm import BGEMM, BGEMM_ISA, PATHS, add_bgemm
from kcompile.codegen.cache import cache_dir, cache_key, read_entry, write_entry
from kcompile.codegen.conv import add_conv
from kcompile.codegen.gemm import Tile, add_gemm
from kcompile.codegen.parallel import add_thread_pool
from kcompile.codegen.replicas import add_replica_hook
from kcompile.codegen.target import (
    RUNTIME_SPEED_LEVEL,
    CompileTimes,
    LoadedCode,
    compile_module,
    host,
)
from kcompile.ir import abi

# The ABI's exports, and the bf16 product's (``codegen.bf16_gemm``).
EXPORTS = tuple(signature.symbol for signature in (*abi.RUNTIME_EXPORTS, BGEMM, BGEMM_ISA))
_lock = threading.Lock()
# Code with a started thread pool must outlive its workers, which never exit.
_KEEP_ALIVE: list[LoadedCode] = []


def keep_alive(code: LoadedCode) -> None:
    """Never unload ``code``: its pool's workers keep running in it."""
    _KEEP_ALIVE.append(code)


def tile() -> Tile:
    return Tile.for_host(host().has)


def runtime_ir(shape: Tile | None = None, features=None) -> str:
    """The runtime's LLVM IR, for the host's tile unless ``shape`` is given, and the
    bf16 product's paths for the host's features unless ``features`` (a target's
    ``HostInfo.has``) is given."""
    module = ir.Module(name="kcompile_runtime")
    add_thread_pool(module)
    add_gemm(module, shape or tile())
    add_bgemm(module, features or host().has)
    add_conv(module, shape or tile())
    add_replica_hook(module)
    return str(module)


class Runtime:
    """Loaded runtime code: the thread setting, and the GEMM callable from numpy."""

    def __init__(self, code: LoadedCode, times: CompileTimes, cache_hit: bool) -> None:
        self.code = code
        keep_alive(code)
        self.times = times
        self.cache_hit = cache_hit
        self.addresses = {name: code.address(name) for name in EXPORTS}
        self._set = abi.bind(abi.SET_THREADS, self.addresses[abi.SET_THREADS.symbol])
        self._get = abi.bind(abi.GET_THREADS, self.addresses[abi.GET_THREADS.symbol])
        self._gemm = abi.bind(abi.GEMM, self.addresses[abi.GEMM.symbol])
        self.set_replica_hook = abi.bind(
            abi.SET_REPLICA_HOOK, self.addresses[abi.SET_REPLICA_HOOK.symbol]
        )

    def sgemm(self, a: np.ndarray, b: np.ndarray, out: np.ndarray, accumulate=False) -> None:
        """``out (+)= a @ b`` for float32 matrices of any strides (``a.T`` is a view, not a
        copy, so this is how the transposed products are reached); ``out`` row-major."""
        self.sgemm_call(a, b, out, accumulate)()

    def sgemm_call(self, a: np.ndarray, b: np.ndarray, out: np.ndarray, accumulate=False):
        """``sgemm`` with its arguments checked and converted once: a callable for timing
        (it holds raw pointers: the arrays must outlive it)."""
        (m, depth), (depth_b, n) = a.shape, b.shape
        if depth != depth_b or out.shape != (m, n):
            raise ValueError(f"sgemm: shapes {a.shape} @ {b.shape} -> {out.shape} do not fit")
        for name, x in (("a", a), ("b", b), ("out", out)):
            if x.dtype != np.float32:
                raise ValueError(f"sgemm: {name} must be float32, got {x.dtype}")
        if out.strides != (4 * n, 4):
            raise ValueError("sgemm: out must be C-contiguous")
        ra, ca = (s // 4 for s in a.strides)
        rb, cb = (s // 4 for s in b.strides)
        gemm_args = [a.ctypes.data, ra, ca, b.ctypes.data, rb, cb, out.ctypes.data, n]
        return functools.partial(self._gemm, m, n, depth, *gemm_args, int(accumulate), None, None)

    def bgemm_call(
        self, a: np.ndarray, b: np.ndarray, out: np.ndarray, accumulate=False, path: str = ""
    ):
        """``sgemm_call`` through ``kc_bgemm`` (products of bf16-rounded operands, f32 sums),
        or its ``path`` (``"amx"``, ``"dp"``, ``"round"``: ``codegen.bf16_gemm``)."""
        call = self.sgemm_call(a, b, out, accumulate)
        name = f"{BGEMM.symbol}_{path}" if path else BGEMM.symbol
        return functools.partial(abi.bind(BGEMM, self.code.address(name)), *call.args)

    def bgemm_path(self) -> str:
        """The path ``kc_bgemm`` takes in this process (asking for AMX's tiles first)."""
        code = abi.bind(BGEMM_ISA, self.addresses[BGEMM_ISA.symbol])()
        return {v: k for k, v in PATHS.items()}[code]

    def set_threads(self, count: int) -> None:
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"the number of threads must be a positive integer, got {count!r}")
        self._set(count)

    def threads(self) -> int:
        return self._get()


# The pid of a child process building the runtime library into the cache, if any.
_builder: int | None = None


def build_ahead() -> None:
    """When the runtime library is neither loaded nor cached, start building it in a
    forked child, which writes it to the cache: it then compiles on the other core while
    this process compiles a model (llvmlite serializes all of LLVM within a process, so
    a thread would not overlap). ``runtime()`` waits for the child and loads its result;
    should the child fail, ``runtime()`` builds the library itself."""
    global _builder
    with _lock:
        folder = cache_dir()
        if _load.cache_info().currsize or _builder is not None or folder is None:
            return
        if not forking.can_fork():
            return
        key = cache_key("runtime")
        if (folder / f"{key}.o").exists() or not _writable(folder):
            return
        text = runtime_ir()
        _builder = forking.spawn(lambda: _build(key, text, CompileTimes()))


def _build(key: str, text: str, times: CompileTimes) -> bytes:
    """The runtime library's object code from its IR, stored in the cache under ``key``."""
    payload = compile_module(text, times, speed=RUNTIME_SPEED_LEVEL).object_code
    write_entry(key, payload)
    return payload


def _writable(folder) -> bool:
    """Whether the child could store its result (else the cache warns in the build)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def building() -> bool:
    """Whether a child is still building the runtime library (it holds a core)."""
    global _builder
    with _lock:
        if _builder is not None and os.waitpid(_builder, os.WNOHANG)[0] != 0:
            _builder = None
            forking.reaped()
        return _builder is not None


@functools.cache
def _load() -> Runtime:
    global _builder
    times = CompileTimes()
    key = cache_key("runtime")
    if _builder is not None:
        t0 = time.perf_counter()
        os.waitpid(_builder, 0)
        _builder = None
        forking.reaped()
        times.add("wait for the runtime library's build", time.perf_counter() - t0)
    payload = read_entry(key)
    hit = payload is not None
    if payload is None:
        payload = _build(key, runtime_ir(), times)
    t0 = time.perf_counter()
    runtime = Runtime(LoadedCode(payload), times, hit)
    times.add("load object", time.perf_counter() - t0)
    for name, address in runtime.addresses.items():
        llvm.add_symbol(name, address)
    runtime.set_threads(abi.default_threads())
    return runtime


def runtime() -> Runtime:
    """The process's runtime, built or loaded from the cache on first use."""
    with _lock:
        return _load()
