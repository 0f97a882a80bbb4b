"""GFLOP/s of the bf16 product's paths (``codegen.bf16_gemm``: AMX, AVX512_BF16, the
portable one) against the f32 ``kc_sgemm``, on one thread (or ``--threads``).

The machine is shared: the variants run interleaved, round after round, and each one's
best time is kept.

    python benchmarks/bf16_gemm.py [--rounds 20] [--threads 1] [--mlp] [--baseline FILE]

``--baseline FILE`` (a copy of ``codegen/bf16_gemm.py`` from before a change) compiles
that file's AMX path too, under other names, and times it interleaved as ``amx0``: an
A/B of a change to the kernel in one process.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import time

import ml_dtypes
import numpy as np

from kcompile.codegen import runtime_library
from kcompile.codegen.bf16_gemm import BGEMM
from kcompile.codegen.runtime_library import runtime
from kcompile.codegen.target import (
    RUNTIME_SPEED_LEVEL,
    CompileTimes,
    LoadedCode,
    compile_module,
    host,
)
from kcompile.ir import abi

SHAPES = [(512, 512, 512), (4096, 128, 128), (256, 784, 512)]  # M, K, N
# The MLP example's training products at batch 256 (--mlp): the forward, a weight
# gradient (A transposed) and an input gradient (B transposed).
MLP = [(256, 784, 128, "nn"), (784, 256, 128, "tn"), (256, 128, 784, "nt")]


def _best(call, rounds_left: list[float]) -> None:
    t0 = time.perf_counter()
    call()
    rounds_left.append(time.perf_counter() - t0)


def _baseline(path: str):
    """``kc_bgemm_amx`` as the file at ``path`` defines it, compiled here under the prefix
    ``kc_obgemm`` (the base library's symbols, which it calls, are registered already)."""
    spec = importlib.util.spec_from_file_location("bf16_gemm_baseline", path)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    module = runtime_library.ir.Module(name="bgemm_baseline")
    runtime_library._declare_base(module, runtime_library.tile())
    old.add_bgemm(module, host().has)
    text = str(module).replace("kc_bgemm", "kc_obgemm")
    code = LoadedCode(compile_module(text, CompileTimes(), speed=RUNTIME_SPEED_LEVEL).object_code)
    return code, abi.bind(BGEMM, code.address("kc_obgemm_amx"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--mlp", action="store_true", help="the MLP's shapes and layouts")
    parser.add_argument("--baseline", help="an older bf16_gemm.py, timed as amx0")
    args = parser.parse_args()
    rt = runtime()
    rt.bgemm_path()  # loads the piece (and the base's symbols the baseline calls)
    baseline = _baseline(args.baseline) if args.baseline else None
    rt.set_threads(args.threads)
    paths = {"amx": "amx", "dp": "dp", "round": "round"}
    have = rt.bgemm_path()
    available = ["amx", "dp", "round"][["amx", "dp", "round"].index(have) :]
    if baseline is not None:
        available = available[:1]
    rng = np.random.default_rng(0)
    print(f"kc_bgemm takes {have!r} here; threads {args.threads}")
    for m, k, n, layout in MLP if args.mlp else [(*s, "nn") for s in SHAPES]:
        a = rng.standard_normal((k, m) if layout[0] == "t" else (m, k))
        b = rng.standard_normal((n, k) if layout[1] == "t" else (k, n))
        a, b = (x.astype(ml_dtypes.bfloat16).astype(np.float32) for x in (a, b))
        a, b = (a.T if layout[0] == "t" else a), (b.T if layout[1] == "t" else b)
        out = np.empty((m, n), np.float32)
        calls = {"sgemm": rt.sgemm_call(a, b, out)}
        calls.update({p: rt.bgemm_call(a, b, out, path=paths[p]) for p in available})
        if baseline is not None:
            calls["amx0"] = functools.partial(baseline[1], *calls["sgemm"].args)
        times: dict[str, list[float]] = {name: [] for name in calls}
        for call in calls.values():
            call()  # warm
        for _ in range(args.rounds):
            for name, call in calls.items():
                _best(call, times[name])
        flops = 2 * m * n * k
        base = min(times["sgemm"])
        line = ", ".join(
            f"{name} {flops / min(t) / 1e9:6.1f} GFLOP/s ({base / min(t):.2f}x)"
            for name, t in times.items()
        )
        print(f"{m}x{k}x{n} {layout}: {line}")


if __name__ == "__main__":
    main()
