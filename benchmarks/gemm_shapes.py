"""The runtime's ``kc_sgemm`` at the shapes the example models run, on 1 and 2 threads:
GFLOP/s and the share of the FMA peak (``kcompile.tools.machine``) of those threads.

    python benchmarks/gemm_shapes.py [--threads 1,2] [--rounds 10] [--against OLD_GEMM.py ...]
    python benchmarks/gemm_shapes.py --flag NAME [--threads 2]

``--against`` builds a second runtime from another copy of ``codegen/library/gemm.py`` (say the
committed one, ``git show HEAD:codegen/library/gemm.py > /tmp/gemm_old.py``) and times the two
interleaved in one process, which is how a change to the GEMM is judged on a shared
machine. ``--flag NAME`` builds the whole runtime library twice, with a boolean of
``codegen.library.gemm`` named ``NAME`` off and on, and times the two (the two built alike: a
copy through ``--against`` ran at about half the process's own runtime's rate at two
threads even when it was the same file, on a 2-core AMD EPYC). A flag's effect on a
model needs a process per setting, each with a compile cache of its own
(``KCOMPILE_CACHE_DIR``): the cache's key does not see flags. No epilogue runs here:
``kcompile profile`` shows the fused kernels.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# (name, M, K, N, A transposed, B transposed): C[M, N] = op(A) · op(B)
SHAPES = [
    ("encoder x·W 4096x128x128", 4096, 128, 128, False, False),
    ("encoder ffn x·W1 4096x128x512", 4096, 128, 512, False, False),
    ("encoder ffn dy·W2ᵀ 4096x128x512", 4096, 128, 512, False, True),
    ("encoder ffn h·W2 4096x512x128", 4096, 512, 128, False, False),
    ("encoder dW xᵀ·dy 128x4096x128", 128, 4096, 128, True, False),
    ("encoder dW2 hᵀ·dy 512x4096x128", 512, 4096, 128, True, False),
    ("encoder dW1 xᵀ·dh 128x4096x512", 128, 4096, 512, True, False),
    ("lstm dWh hᵀ·dz 128x1792x512", 128, 1792, 512, True, False),
    ("lstm dWx xᵀ·dz 28x1792x512", 28, 1792, 512, True, False),
    ("lstm step h·Wh 64x128x512", 64, 128, 512, False, False),
    ("mlp x·W1 32x784x128", 32, 784, 128, False, False),
    ("mlp h·W2 32x128x10", 32, 128, 10, False, False),
    ("mlp dh dy·W2ᵀ 32x10x128", 32, 10, 128, False, True),
    ("mlp dW1 xᵀ·dh 784x32x128", 784, 32, 128, True, False),
    ("square 512x512x512", 512, 512, 512, False, False),
]


class Gemm:
    """``kc_sgemm`` and the thread setting of one compiled runtime."""

    def __init__(self, addresses: dict[str, int], keep) -> None:
        from kcompile.ir import abi

        self.keep = keep
        self.call = abi.bind(abi.GEMM, addresses[abi.GEMM.symbol])
        self.set_threads = abi.bind(abi.SET_THREADS, addresses[abi.SET_THREADS.symbol])

    def bind(self, a, b, out):
        (m, depth), n = a.shape, b.shape[1]
        ra, ca = (s // 4 for s in a.strides)
        rb, cb = (s // 4 for s in b.strides)
        args = (m, n, depth, a.ctypes.data, ra, ca, b.ctypes.data, rb, cb, out.ctypes.data, n)
        return lambda: self.call(*args, 0, None, None)


def current() -> Gemm:
    from kcompile.codegen.library.runtime_library import runtime

    rt = runtime()
    return Gemm(rt.addresses, rt)


def from_file(path: str) -> Gemm:
    """A runtime holding only the pool and the GEMM of the module at ``path``."""
    from llvmlite import ir

    from kcompile.codegen.building.target import CompileTimes, LoadedCode, compile_module, host
    from kcompile.codegen.library.parallel import add_thread_pool
    from kcompile.codegen.library.runtime_library import keep_alive
    from kcompile.ir import abi

    spec = importlib.util.spec_from_file_location("gemm_under_test", path)
    gemm = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = gemm  # dataclasses look their module up there
    spec.loader.exec_module(gemm)
    module = ir.Module(name="gemm_under_test")
    add_thread_pool(module)
    gemm.add_gemm(module, gemm.Tile.for_host(host().has))
    code = LoadedCode(compile_module(str(module), CompileTimes()).object_code)
    keep_alive(code)
    names = (abi.GEMM.symbol, abi.SET_THREADS.symbol)
    return Gemm({name: code.address(name) for name in names}, code)


def with_flag(name: str, value: bool) -> Gemm:
    """The runtime library built with ``codegen.library.gemm``'s module flag ``name`` set to
    ``value`` (restored after)."""
    from kcompile.codegen.building.target import (
        RUNTIME_SPEED_LEVEL,
        CompileTimes,
        LoadedCode,
        compile_module,
    )
    from kcompile.codegen.library import gemm
    from kcompile.codegen.library.runtime_library import Runtime, keep_alive, runtime_ir

    before = getattr(gemm, name)
    setattr(gemm, name, value)
    try:
        text = runtime_ir()
    finally:
        setattr(gemm, name, before)
    code = LoadedCode(compile_module(text, CompileTimes(), speed=RUNTIME_SPEED_LEVEL).object_code)
    keep_alive(code)
    rt = Runtime(code, CompileTimes(), False)
    return Gemm(rt.addresses, rt)


def best_seconds(fn, repeats: int, budget: float = 0.004, clock=time.perf_counter) -> float:
    """The best time of one call, over ``repeats`` runs of about ``budget`` seconds each."""
    fn()
    start = clock()
    fn()
    once = max(clock() - start, 1e-7)
    inner = max(1, int(budget / once))
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        for _ in range(inner):
            fn()
        best = min(best, (clock() - start) / inner)
    return best


def operands(rng, m, depth, n, ta, tb):
    a = rng.standard_normal((depth, m) if ta else (m, depth)).astype(np.float32)
    b = rng.standard_normal((n, depth) if tb else (depth, n)).astype(np.float32)
    return (a.T if ta else a), (b.T if tb else b), np.empty((m, n), np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    parser.add_argument("--ghz", type=float, help="the clock for the peak (else measured)")
    parser.add_argument(
        "--against", action="append", default=[], help="another gemm.py to time interleaved"
    )
    parser.add_argument("--no-current", action="store_true", help="time only --against's")
    parser.add_argument("--only", default="", help="shapes whose name contains this")
    parser.add_argument("--flag", help="a flag of codegen/library/gemm.py to time off against on")
    args = parser.parse_args()
    from kcompile.tools.machine import machine

    peak_core = machine().peak_gflops / machine().cores
    if args.ghz:
        peak_core *= args.ghz / machine().ghz
    gemms = {Path(path).stem: from_file(path) for path in args.against}
    if args.flag:
        gemms |= {f"{args.flag[:10]}={v}": with_flag(args.flag, v) for v in (False, True)}
    elif not args.no_current:
        gemms["current"] = current()
    rng = np.random.default_rng(0)
    header = f"{'shape':<34} thr " + " ".join(f"{name:>15}" for name in gemms)
    print(f"peak {peak_core:.0f} GFLOP/s a core\n{header}")
    for name, m, depth, n, ta, tb in SHAPES:
        if args.only not in name:
            continue
        a, b, out = operands(rng, m, depth, n, ta, tb)
        for threads in (int(x) for x in args.threads.split(",")):
            # One thread: its CPU time, so that another process's turn on the core is
            # not counted (the machine is shared); rounds interleave the runtimes.
            clock = time.thread_time if threads == 1 else time.perf_counter
            best = dict.fromkeys(gemms, float("inf"))
            for _ in range(args.rounds):
                for key, gemm in gemms.items():
                    gemm.set_threads(threads)
                    seconds = best_seconds(gemm.bind(a, b, out), 2, clock=clock)
                    best[key] = min(best[key], seconds)
            cells = []
            for seconds in best.values():
                rate = 2 * m * n * depth / seconds / 1e9
                cells.append(f"{rate:7.1f} {rate / (peak_core * threads):5.0%}")
            print(f"{name:<34} {threads:>3} " + " ".join(f"{c:>15}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
