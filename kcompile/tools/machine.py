"""What this machine can do, measured: the core clock, the FMA peak it implies, and the
memory copy bandwidth; ``kcompile profile`` reads each kernel against them.

The clock is timed on a chain of dependent 64-bit register-to-register adds (one cycle
each on every x86-64 core of the last fifteen years; add-immediate chains are folded at
rename by some), written as inline assembly so LLVM cannot fold it. The FMA peak is
cores x vector floats x 2 (multiply and add) x the FMA units per core: two, as on the
server and desktop cores these machines have (Zen 3/4/5, Xeon Scalable), but one for
512-bit vectors on a Zen 4, which runs each on both of its 256-bit pipes (a single-core
``kc_sgemm`` reached 30 flops a cycle there, of 32); it is an upper bound a product can
approach, not a promise.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import time
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

FMA_UNITS = 2  # vector FMA pipes per core (an assumption the profile states)
ZEN4_FAMILY = 25  # AMD's family of Zen 3 and Zen 4 (Zen 4's 512-bit FMAs take both pipes)
# AMX-BF16's rate: one 16 x 16 x 32 tile product (16,384 flops) every 16 cycles a core.
AMX_BF16_FLOPS_PER_CYCLE = 1024
# AMX-INT8's: one 16 x 16 x 64 tile product (32,768 ops) every 16 cycles a core.
AMX_INT8_OPS_PER_CYCLE = 2048
CHAIN = 4_000_000  # dependent adds per timing


@dataclass(frozen=True)
class Machine:
    ghz: float
    cores: int
    lanes: int  # f32 per vector register
    copy_gbs: float  # copy bandwidth on every core, bytes read + written per second / 1e9
    amx: bool = False  # AMX-BF16 tiles (the bf16 products' engine where present)
    dp_bf16: bool = False  # AVX512_BF16's vdpbf16ps (the bf16 products' engine without AMX)
    # int8 products a 32-bit lane of kc_igemm's instruction does: 2 (pmaddwd), 4 (VNNI's
    # vpdpbusd, codegen.library.int8_quads)
    int8_per_lane: int = 2
    amx_int8: bool = False  # AMX-INT8 tiles (kc_igemm's engine where present)
    fma_units: int = FMA_UNITS  # vector FMAs a cycle a core at ``lanes`` floats

    @property
    def peak_gflops(self) -> float:
        return self.cores * self.lanes * 2 * self.fma_units * self.ghz

    def engine_peak(self, engine: str) -> float:
        """GFLOP/s (or integer GOP/s) peak of the unit a product ran on: ``"fma"`` (f32
        vector FMAs; int8 products held in f32 run there too, ``"fma_i8"``, exact:
        ``passes.int8_products``), ``"madd_i8"`` (``kc_igemm``'s integer multiply-adds:
        ``pmaddwd`` does two products and their sum per 32-bit lane, VNNI's ``vpdpbusd``
        four, on as many units as the FMAs, so two or four times their rate; AMX-INT8's
        tiles 2,048 ops a cycle a core), ``"amx_bf16"`` (AMX tiles, 1,024 flops a cycle a
        core) or ``"dp_bf16"`` (``vdpbf16ps``: two products and their sum a 32-bit lane, at
        the FMAs' rate, so twice their flops)."""
        if engine == "amx_bf16":
            return self.cores * AMX_BF16_FLOPS_PER_CYCLE * self.ghz
        if engine == "dp_bf16":
            return 2 * self.peak_gflops
        if engine == "madd_i8" and self.amx_int8:
            return self.cores * AMX_INT8_OPS_PER_CYCLE * self.ghz
        if engine == "madd_i8":
            return self.int8_per_lane * self.peak_gflops
        return self.peak_gflops

    def describe(self) -> str:
        engines = ""
        for engine, name, has in (
            ("amx_bf16", "AMX-BF16", self.amx),
            ("dp_bf16", "AVX512_BF16", self.dp_bf16 and not self.amx),
        ):
            if has:
                engines = f"; {name} peak {self.engine_peak(engine):.0f} GFLOP/s (bf16 products)"
        units = f"{self.fma_units} FMA unit{'s' if self.fma_units > 1 else ''}"
        return (
            f"{self.cores} cores at {self.ghz:.2f} GHz (measured), {self.lanes}-float "
            f"vectors, {units} a core: peak {self.peak_gflops:.0f} GFLOP/s"
            f"{engines}; memory copy {self.copy_gbs:.1f} GB/s (measured)"
        )


def _chain_function():
    """A native ``i64 chain(i64 n)`` running n dependent adds, and the engine holding it."""
    from kcompile.codegen.building.target import _init, target_machine

    _init()
    import llvmlite.binding as llvm

    module = ir.Module("clock")
    i64 = ir.IntType(64)
    fn = ir.Function(module, ir.FunctionType(i64, [i64]), "kc_chain")
    entry, loop, done = (fn.append_basic_block(n) for n in ("entry", "loop", "done"))
    b = ir.IRBuilder(entry)
    b.branch(loop)
    b.position_at_end(loop)
    i = b.phi(i64)
    x = b.phi(i64)
    i.add_incoming(ir.Constant(i64, 0), entry)
    x.add_incoming(fn.args[0], entry)
    # register operands: some cores fold chains of add-immediate at rename
    add4 = ir.InlineAsm(
        ir.FunctionType(i64, [i64, i64]),
        "addq $2, $0\n\taddq $2, $0\n\taddq $2, $0\n\taddq $2, $0",
        "=r,0,r",
        side_effect=True,
    )
    y = b.call(add4, [x, i])
    nxt = b.add(i, ir.Constant(i64, 4))
    i.add_incoming(nxt, loop)
    x.add_incoming(y, loop)
    b.cbranch(b.icmp_signed("<", nxt, fn.args[0]), loop, done)
    b.position_at_end(done)
    b.ret(y)
    parsed = llvm.parse_assembly(str(module))
    engine = llvm.create_mcjit_compiler(parsed, target_machine())
    engine.finalize_object()
    chain = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(
        engine.get_function_address("kc_chain")
    )
    return chain, engine


def measure_clock() -> float:
    """GHz of one core, from the best of several timings of a dependent add chain (x86-64;
    elsewhere the clock the kernel reports)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return _reported_clock()
    chain, engine = _chain_function()
    chain(CHAIN // 10)  # warm up (frequency ramps)
    best = min(_timed(chain) for _ in range(7))
    del engine
    return CHAIN / best / 1e9


def _reported_clock() -> float:
    try:
        with open("/proc/cpuinfo") as f:
            mhz = [float(line.split(":")[1]) for line in f if line.lower().startswith("cpu mhz")]
    except OSError:
        mhz = []
    if not mhz:
        raise NotImplementedError("the clock of this CPU is measured on x86-64 only")
    return max(mhz) / 1e3


def _timed(chain) -> float:
    start = time.perf_counter()
    chain(CHAIN)
    return time.perf_counter() - start


def measure_copy_bandwidth(cores: int, megabytes: int = 256) -> float:
    """GB/s of a large array copy on every core at once (bytes read plus bytes written),
    best of five: numpy's copy releases the GIL, so each thread copies its own part."""
    from concurrent.futures import ThreadPoolExecutor

    src = np.ones(megabytes * 2**20 // 4, np.float32)
    dst = np.empty_like(src)
    parts = list(zip(np.array_split(dst, cores), np.array_split(src, cores)))
    best = float("inf")
    with ThreadPoolExecutor(cores) as pool:
        for _ in range(5):
            start = time.perf_counter()
            list(pool.map(lambda p: np.copyto(*p), parts))
            best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / best / 1e9


@functools.cache
def machine() -> Machine:
    from kcompile.codegen.building.target import host
    from kcompile.codegen.library.gemm import Tile

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    lanes = Tile.for_host(host().has).vw
    cores = int(cores or 1)
    from kcompile.codegen.library import int8_amx
    from kcompile.codegen.library.bf16_gemm import has_amx, has_dp
    from kcompile.codegen.library.int8_gemm import IntTile
    from kcompile.codegen.library.int8_quads import dot_kind

    has = host().has
    quads = dot_kind(has, IntTile.for_features(has).vw) is not None
    tiles = int8_amx.kind(has) == "amx"
    copy = measure_copy_bandwidth(cores)
    return Machine(
        measure_clock(), cores, lanes, copy, has_amx(has), has_dp(has), 4 if quads else 2,
        tiles, fma_units(lanes, _cpuinfo()),
    )  # fmt: skip


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read().split("\n\n")[0]
    except OSError:
        return {}
    fields = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in fields}


def fma_units(lanes: int, cpu: dict[str, str]) -> int:
    """Vector FMAs a cycle a core at ``lanes`` floats: one for 512-bit vectors on an AMD
    of Zen 4's family (each takes both 256-bit pipes), else ``FMA_UNITS``."""
    amd = cpu.get("vendor_id") == "AuthenticAMD"
    if lanes == 16 and amd and cpu.get("cpu family") == str(ZEN4_FAMILY):
        return 1
    return FMA_UNITS
