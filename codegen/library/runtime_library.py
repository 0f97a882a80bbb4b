"""The fixed native pieces every model calls: the thread pool and the matrix product,
and, loaded when a model first calls them, the bf16 product and the convolutions.

They are compiled once per machine (cached on disk with the model code, keyed by
codegen's source and the host) and loaded once per process; their symbols are
registered with LLVM's dynamic linker, so each model's object code only declares
them and compiles only its own drivers and fused kernels.

The library is four modules (``PIECES``): the base (thread pool, ``kc_sgemm``, the
replica hook), ``bf16`` (``kc_bgemm``, ``codegen.library.bf16_gemm``), ``conv``
(``kc_sconv``, ``kc_sconv_filter``, ``codegen.library.conv``) and ``bf16_conv``
(``kc_sconv_bf16``, ``kc_sconv_bf16_filter``, ``codegen.library.bf16_conv``). The base
takes 1.2-1.4 s of CPU in LLVM (and 0.5 s of Python making its IR), the bf16 product 0.7 s
more, the convolutions 0.6 s (1.6-2.3 s with their Winograd paths), and most models call
neither: a piece is built (or read from the cache, under a key of its own) only when a
model's object code names one of its symbols. The base exports, beside its ABI, the pool's busy word and the GEMM's
micro-kernels and panel packing (``shared_kernels``), which the pieces and a model's
packed recurrent products (``codegen.lowering.packed_products``) call instead of compiling
copies. Artifacts (``codegen.aot``) link the whole library as one module.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir

from kcompile.codegen.building import forking
from kcompile.codegen.building.cache import cache_dir, cache_key, read_entry, write_entry
from kcompile.codegen.building.target import (
    RUNTIME_SPEED_LEVEL,
    CompileTimes,
    LoadedCode,
    compile_module,
    host,
)
from kcompile.codegen.library.bf16_conv import BCONV, BCONV_ISA, add_bconv
from kcompile.codegen.library.bf16_conv_filter import BFILTER, add_bconv_filter
from kcompile.codegen.library.bf16_gemm import BGEMM, BGEMM_ISA, PATHS, add_bgemm
from kcompile.codegen.library.conv import add_conv
from kcompile.codegen.library.gemm import B_I4, INT4_KERNEL, Tile, add_gemm, declare_gemm
from kcompile.codegen.library.int8_gemm import IGEMM, IGEMM_ISA, add_igemm
from kcompile.codegen.library.int8_gemm import PATHS as IGEMM_PATHS
from kcompile.codegen.library.parallel import BUSY, add_thread_pool, declare_parallel_for
from kcompile.codegen.library.replicas import add_replica_hook
from kcompile.codegen.loops import I32, I64, PTR, abi_function, unroll_freely
from kcompile.ir import abi

# The GEMM's micro-kernel, ``ukr(kc, a, lda, b, ldb, c, ldc, nr, beta)``, and its packing
# of B, ``pack_b(kc, n, src, rs, cs, dst)`` (``codegen.library.gemm``).
UKR_FN = ir.FunctionType(ir.VoidType(), [I64, PTR, I64, PTR, I64, PTR, I64, I64, I64])
PACK_B_FN = ir.FunctionType(ir.VoidType(), [I64, I64, PTR, I64, I64, PTR])
Features = Callable[[str], bool]


@dataclass(frozen=True)
class Piece:
    """A part of the library compiled and loaded only when a model calls it."""

    name: str
    prefix: str  # every symbol it exports starts with this; code naming it needs the piece
    symbols: tuple[str, ...]  # what it registers with LLVM's dynamic linker
    add: Callable[[ir.Module, Tile, Features], None]


PIECES = (
    Piece("bf16", "kc_bgemm", (BGEMM.symbol, BGEMM_ISA.symbol), lambda m, t, f: add_bgemm(m, f)),
    # Quantized layers' int8 products (``codegen.library.int8_gemm``).
    Piece("int8", "kc_igemm", (IGEMM.symbol, IGEMM_ISA.symbol), lambda m, t, f: add_igemm(m, f)),
    Piece(
        "conv",
        "kc_sconv",
        (abi.CONV.symbol, abi.CONV_FILTER.symbol),
        lambda m, t, f: add_conv(m, t),
    ),
    # The bf16 convolutions (``codegen.library.bf16_conv``; 1.9 s of LLVM more than the conv
    # piece, which float32 models need alone). They call the conv piece's functions
    # (their f32 path): a piece whose prefix extends another's is loaded after it.
    Piece(
        "bf16_conv",
        "kc_sconv_bf16",
        (BCONV.symbol, BCONV_ISA.symbol, BFILTER.symbol),
        lambda m, t, f: (add_bconv(m, f), add_bconv_filter(m, f)),
    ),
)
# The base's ABI exports (the pieces' are theirs).
_IN_PIECES = {s for p in PIECES for s in p.symbols}
EXPORTS = tuple(s.symbol for s in abi.RUNTIME_EXPORTS if s.symbol not in _IN_PIECES)
_lock = threading.RLock()
# Code with a started thread pool must outlive its workers, which never exit.
_KEEP_ALIVE: list[LoadedCode] = []


def keep_alive(code: LoadedCode) -> None:
    """Never unload ``code``: its pool's workers keep running in it."""
    _KEEP_ALIVE.append(code)


def tile() -> Tile:
    return Tile.for_host(host().has)


def shared_kernels(shape: Tile) -> dict[str, ir.FunctionType]:
    """The GEMM's functions the base exports beside its ABI, with their types: its
    packing of B and its micro-kernels (A packed, and A read in place by rows) for every
    height up to MR."""
    kernels = {"kc_pack_b": PACK_B_FN}
    for rows in range(1, shape.mr + 1):
        kernels[f"kc_ukr{rows}"] = kernels[f"kc_ukr_rows{rows}"] = UKR_FN
    return kernels


def pieces_called(code: str | bytes) -> tuple[Piece, ...]:
    """The pieces whose symbols ``code`` (LLVM IR, or object code) names."""
    text = code if isinstance(code, str) else None
    return tuple(
        p for p in PIECES if (p.prefix in text if text is not None else p.prefix.encode() in code)
    )


def _base_module(shape: Tile, split: bool) -> ir.Module:
    """The base; ``split``: with the pool's busy word exported too, for pieces compiled
    apart (kcompile's own ELF loader takes no GOT relocation, which an exported global
    of position-independent code needs: the whole library keeps it internal)."""
    module = ir.Module(name="kcompile_runtime")
    unroll_freely(module)
    add_thread_pool(module)
    add_gemm(module, shape)
    add_replica_hook(module)
    # Exported for the pieces and for models (internal, LLVM would be free to drop them
    # or change their calling convention).
    for name in (*((BUSY,) if split else ()), *shared_kernels(shape)):
        module.globals[name].linkage = ""
    return module


def _declare_base(module: ir.Module, shape: Tile) -> None:
    """The base's functions and busy word as externals of a piece's module."""
    declare_parallel_for(module)
    declare_gemm(module)
    abi_function(module, abi.GET_THREADS)
    for name, ftype in shared_kernels(shape).items():
        ir.Function(module, ftype, name)
    busy = ir.GlobalVariable(module, I32, BUSY)
    busy.align = 64
    busy.type = ir.PointerType(I32)  # typed, as in codegen.library.parallel (atomic loads)


def runtime_ir(
    shape: Tile | None = None, features: Features | None = None, pieces: Iterable[Piece] = PIECES
) -> str:
    """The whole library as one module (``pieces`` beside the base: all unless given), for
    the host's tile unless ``shape`` is given and with the bf16 product's paths for the
    host's features unless ``features`` (a target's ``HostInfo.has``) is given."""
    shape, features = shape or tile(), features or host().has
    module = _base_module(shape, split=False)
    for piece in pieces:
        piece.add(module, shape, features)
    return str(module)


def base_ir(shape: Tile | None = None) -> str:
    """The base alone: thread pool, GEMM, replica hook."""
    return str(_base_module(shape or tile(), split=True))


def piece_ir(piece: Piece, shape: Tile | None = None, features: Features | None = None) -> str:
    """``piece`` alone, calling the base's exports."""
    shape, features = shape or tile(), features or host().has
    module = ir.Module(name=f"kcompile_runtime_{piece.name}")
    unroll_freely(module)
    _declare_base(module, shape)
    piece.add(module, shape, features)
    return str(module)


def _piece_of(symbol: str) -> Piece | None:
    pieces = [p for p in PIECES if symbol.startswith(p.prefix)]
    return max(pieces, key=lambda p: len(p.prefix), default=None)


class _Addresses(dict):
    """Symbol -> address; a piece's symbol loads the piece on first use."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__()
        self.runtime = runtime

    def __missing__(self, name: str) -> int:
        self[name] = address = self.runtime.address(name)
        return address


class Runtime:
    """Loaded runtime code: the thread setting, and the GEMM callable from numpy.

    ``code`` holds the whole library, or (``split``, the process's runtime) the base,
    whose pieces load on first use."""

    def __init__(
        self, code: LoadedCode, times: CompileTimes, cache_hit: bool, split: bool = False
    ) -> None:
        self.code = code
        keep_alive(code)
        self.times = times
        self.cache_hit = cache_hit
        self.split = split
        self.pieces: dict[str, LoadedCode] = {}
        self.addresses = _Addresses(self)
        for name in EXPORTS:
            self.addresses[name] = code.address(name)
        self._set = abi.bind(abi.SET_THREADS, self.addresses[abi.SET_THREADS.symbol])
        self._get = abi.bind(abi.GET_THREADS, self.addresses[abi.GET_THREADS.symbol])
        self._gemm = abi.bind(abi.GEMM, self.addresses[abi.GEMM.symbol])
        self.set_replica_hook = abi.bind(
            abi.SET_REPLICA_HOOK, self.addresses[abi.SET_REPLICA_HOOK.symbol]
        )

    def address(self, name: str) -> int:
        """The address of ``name``, loading the piece that holds it if need be."""
        piece = _piece_of(name)
        if piece is None or not self.split:
            return self.code.address(name)
        return self.load(piece).address(name)

    def load(self, piece: Piece) -> LoadedCode:
        """``piece``'s code, built or read from the cache and registered on first use."""
        with _lock:
            if piece.name not in self.pieces:
                for called in PIECES:  # the pieces it calls
                    if called is not piece and piece.prefix.startswith(called.prefix):
                        self.load(called)
                self.pieces[piece.name] = _load_piece(piece, self.times)
            return self.pieces[piece.name]

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

    def sgemm_int4_call(
        self,
        a: np.ndarray,
        packed: np.ndarray,
        columns: int,
        out: np.ndarray,
        grouped: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
        accumulate: int = 0,
    ):
        """``out (+)= a @ dequantize_int4(packed[, scale, zero, g_idx])`` through
        ``kc_sgemm``'s ``B_I4`` (the kernel unpacked as it is packed; ``ir.ops.int4``): a
        callable for timing, as ``sgemm_call``'s (the record it reads is kept with it)."""
        m, depth = a.shape
        if packed.dtype != np.int8 or packed.shape != (depth, (columns + 1) // 2):
            raise ValueError(
                f"sgemm_int4: packed must be int8 [{depth}, {(columns + 1) // 2}], "
                f"got {packed.dtype} {packed.shape}"
            )
        if a.dtype != np.float32 or out.dtype != np.float32 or out.shape != (m, columns):
            raise ValueError(f"sgemm_int4: a and out must be float32 [M, K] and [M, {columns}]")
        if not (packed.flags.c_contiguous and out.flags.c_contiguous):
            raise ValueError("sgemm_int4: packed and out must be C-contiguous")
        scale, zero, g_idx = grouped or (None, None, None)
        record = {name: 0 for name in INT4_KERNEL}
        record.update(packed=packed.ctypes.data, row_bytes=packed.shape[1], columns=columns)
        record["groups"] = 1
        if grouped is not None:
            for name, x, dtype in (("scale", scale, np.float32), ("zero", zero, np.int8)):
                if x.dtype != dtype or x.shape != (x.shape[0], columns) or not x.flags.c_contiguous:
                    raise ValueError(f"sgemm_int4: {name} must be {np.dtype(dtype)} [G, {columns}]")
            if g_idx.dtype != np.float32 or g_idx.shape != (depth,):
                raise ValueError(f"sgemm_int4: g_idx must be float32 [{depth}]")
            record.update(scale=scale.ctypes.data, zero=zero.ctypes.data, g_idx=g_idx.ctypes.data)
            record["groups"] = scale.shape[0]
        fields = np.array([record[name] for name in INT4_KERNEL], np.int64)
        ra, ca = (s // 4 for s in a.strides)
        args = [a.ctypes.data, ra, ca, fields.ctypes.data, 0, 1, out.ctypes.data, columns]
        call = functools.partial(
            self._gemm, m, columns, depth, *args, B_I4 | accumulate, None, None
        )
        call.record = fields  # the record must outlive the callable
        return call

    def bgemm_call(
        self, a: np.ndarray, b: np.ndarray, out: np.ndarray, accumulate=False, path: str = ""
    ):
        """``sgemm_call`` through ``kc_bgemm`` (products of bf16-rounded operands, f32 sums),
        or its ``path`` (``"amx"``, ``"dp"``, ``"round"``: ``codegen.library.bf16_gemm``)."""
        call = self.sgemm_call(a, b, out, accumulate)
        name = f"{BGEMM.symbol}_{path}" if path else BGEMM.symbol
        return functools.partial(abi.bind(BGEMM, self.address(name)), *call.args)

    def igemm_call(self, a: np.ndarray, b: np.ndarray, out: np.ndarray, accumulate=False):
        """``out (+)= f32(a @ b)`` through ``kc_igemm`` for int8 matrices of any strides
        (their sums exact in int32): a callable for timing, as ``sgemm_call``'s."""
        (m, depth), (depth_b, n) = a.shape, b.shape
        if depth != depth_b or out.shape != (m, n):
            raise ValueError(f"igemm: shapes {a.shape} @ {b.shape} -> {out.shape} do not fit")
        for name, x, dtype in (("a", a, np.int8), ("b", b, np.int8), ("out", out, np.float32)):
            if x.dtype != dtype:
                raise ValueError(f"igemm: {name} must be {np.dtype(dtype)}, got {x.dtype}")
        if out.strides != (4 * n, 4):
            raise ValueError("igemm: out must be C-contiguous")
        args = [a.ctypes.data, *a.strides, b.ctypes.data, *b.strides, out.ctypes.data, n]
        call = abi.bind(IGEMM, self.address(IGEMM.symbol))
        return functools.partial(call, m, n, depth, *args, int(accumulate), None, None)

    def igemm_path(self) -> str:
        """The path ``kc_igemm`` takes (``codegen.library.int8_gemm.PATHS``)."""
        code = abi.bind(IGEMM_ISA, self.address(IGEMM_ISA.symbol))()
        return {v: k for k, v in IGEMM_PATHS.items()}[code]

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


# The pid of a child process building the base into the cache, if any; and of those
# building pieces, by piece name.
_builder: int | None = None
_piece_builders: dict[str, int] = {}


def build_ahead(llvm_ir: str | None = None) -> None:
    """When the base (without ``llvm_ir``), or a piece a model's ``llvm_ir`` calls, is
    neither loaded nor cached, start building it in a forked child, which writes it to
    the cache: it then compiles on the other core while this process compiles a model
    (llvmlite serializes all of LLVM within a process, so a thread would not overlap).
    The child makes the module's IR too (0.5 s of Python for the base). ``runtime()``
    and ``runtime_for`` wait for the child and load its result; should the child fail,
    they build the library themselves."""
    global _builder
    with _lock:
        folder = cache_dir()
        if folder is None or not forking.can_fork():
            return
        loaded = _load.cache_info().currsize > 0
        if llvm_ir is None:
            key = cache_key("runtime")
            if loaded or _builder is not None or not _missing(folder, key):
                return
            _builder = forking.spawn(lambda: _build(key, base_ir(), CompileTimes()))
            return
        for piece in pieces_called(llvm_ir):
            key = cache_key("runtime", piece.name)
            if piece.name in _piece_builders or (loaded and piece.name in _load().pieces):
                continue
            if _missing(folder, key):
                _piece_builders[piece.name] = forking.spawn(
                    functools.partial(_build_piece, key, piece)
                )


def _missing(folder, key: str) -> bool:
    """Whether the entry ``key`` is not in the cache and a child could store it (else
    the cache warns in the build)."""
    if (folder / f"{key}.o").exists():
        return False
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def _build(key: str, text: str, times: CompileTimes) -> bytes:
    """A part of the library's object code from its IR, stored in the cache under ``key``."""
    payload = compile_module(text, times, speed=RUNTIME_SPEED_LEVEL).object_code
    write_entry(key, payload)
    return payload


def _build_piece(key: str, piece: Piece, times: CompileTimes | None = None) -> bytes:
    return _build(key, piece_ir(piece), times or CompileTimes())


def _finished(pid: int) -> bool:
    if os.waitpid(pid, os.WNOHANG)[0] == 0:
        return False
    forking.reaped()
    return True


def building() -> int:
    """How many children are still building parts of the library (each holds a core)."""
    global _builder
    with _lock:
        if _builder is not None and _finished(_builder):
            _builder = None
        for name, pid in list(_piece_builders.items()):
            if _finished(pid):
                del _piece_builders[name]
        return (_builder is not None) + len(_piece_builders)


def _wait(pid: int, times: CompileTimes, what: str) -> None:
    t0 = time.perf_counter()
    os.waitpid(pid, 0)
    forking.reaped()
    times.add(f"wait for {what}'s build", time.perf_counter() - t0)


def _register(code: LoadedCode, names: Iterable[str]) -> None:
    for name in names:
        llvm.add_symbol(name, code.address(name))


@functools.cache
def _load() -> Runtime:
    global _builder
    times = CompileTimes()
    key = cache_key("runtime")
    if _builder is not None:
        _wait(_builder, times, "the runtime library")
        _builder = None
    payload = read_entry(key)
    hit = payload is not None
    if payload is None:
        payload = _build(key, base_ir(), times)
    t0 = time.perf_counter()
    runtime = Runtime(LoadedCode(payload), times, hit, split=True)
    times.add("load object", time.perf_counter() - t0)
    _register(runtime.code, (*EXPORTS, BUSY, *shared_kernels(tile())))
    runtime.set_threads(abi.default_threads())
    return runtime


def _load_piece(piece: Piece, times: CompileTimes) -> LoadedCode:
    """``piece``'s code from its builder child, the cache or a build here, its symbols
    registered (the base's must be: the piece calls them)."""
    key = cache_key("runtime", piece.name)
    pid = _piece_builders.pop(piece.name, None)
    if pid is not None:
        _wait(pid, times, f"the runtime library's {piece.name} piece")
    payload = read_entry(key)
    if payload is None:
        payload = _build_piece(key, piece, times)
    t0 = time.perf_counter()
    code = LoadedCode(payload)
    keep_alive(code)
    times.add(f"load object ({piece.name})", time.perf_counter() - t0)
    _register(code, piece.symbols)
    return code


def runtime() -> Runtime:
    """The process's runtime, built or loaded from the cache on first use."""
    with _lock:
        return _load()


def runtime_for(code: str | bytes) -> Runtime:
    """The process's runtime with every piece ``code`` (a model's object code, or its
    LLVM IR) calls loaded: what must precede loading that code."""
    with _lock:
        loaded = _load()
        for piece in pieces_called(code):
            loaded.load(piece)
        return loaded
