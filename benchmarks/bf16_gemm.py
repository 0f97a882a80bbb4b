"""GFLOP/s of the bf16 product's paths (``codegen.library.bf16_gemm``: AMX, AVX512_BF16, the
portable one) against the f32 ``kc_sgemm``, on one thread (or ``--threads``).

The machine is shared: the variants run interleaved, round after round, and each one's
best time is kept: CPU time on one thread (a call preempted midway by another process
counted its time in wall time), wall time on more.

    python benchmarks/bf16_gemm.py [--rounds 20] [--threads 1] [--mlp | --attention]
                                   [--baseline FILE]
                                   [--operands [PATH]]

``--baseline FILE`` (a copy of ``codegen/library/bf16_gemm.py`` from before a change) compiles
that file's AMX path too, under other names, and times it interleaved as ``amx0``: an
A/B of a change to the kernel in one process.

``--operands`` times ``kc_bgemm`` (or its ``PATH``: amx, dp, round) on operands stored as
bf16 (``A_BF16``, ``B_BF16``, both) against the same call on f32 operands holding the
same values, interleaved: the ratio is what bf16 storage gives the product.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import time

import ml_dtypes
import numpy as np

from kcompile.codegen.building.target import (
    RUNTIME_SPEED_LEVEL,
    CompileTimes,
    LoadedCode,
    compile_module,
    host,
)
from kcompile.codegen.library import runtime_library
from kcompile.codegen.library.bf16_gemm import A_BF16, B_BF16, BGEMM
from kcompile.codegen.library.runtime_library import runtime
from kcompile.ir import abi

SHAPES = [(512, 512, 512), (4096, 128, 128), (256, 784, 512)]  # M, K, N
# The MLP example's training products at batch 256 (--mlp): the forward, a weight
# gradient (A transposed) and an input gradient (B transposed).
MLP = [(256, 784, 128, "nn"), (784, 256, 128, "tn"), (256, 128, 784, "nt")]
# An attention head's products (--attention): scores Q·Kᵀ (128 x 32 x 128, K's rows
# transposed) and their weighted sum of V (128 x 128 x 32); per-call costs count here.
ATTENTION = [(128, 32, 128, "nt"), (128, 128, 32, "nn")]


def _best(call, rounds_left: list[float], clock=time.process_time) -> None:
    t0 = clock()
    call()
    rounds_left.append(clock() - t0)


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


def _operand_calls(rt, path: str, a, b, out) -> dict:
    """``kc_bgemm`` (``path``) on f32 ``a``, ``b`` and on their bf16 copies (same layout),
    by the bits set."""
    fn = abi.bind(BGEMM, rt.address(f"{BGEMM.symbol}_{path}" if path else BGEMM.symbol))
    narrow = [
        x.T.astype(ml_dtypes.bfloat16).T if x.flags.f_contiguous else x.astype(ml_dtypes.bfloat16)
        for x in (a, b)
    ]
    _KEEP.extend(narrow)
    (m, k), n = a.shape, b.shape[1]

    def call(pa, pb, bits):
        ra, ca = (s // pa.itemsize for s in pa.strides)
        rb, cb = (s // pb.itemsize for s in pb.strides)
        args = (m, n, k, pa.ctypes.data, ra, ca, pb.ctypes.data, rb, cb, out.ctypes.data, n)
        return functools.partial(fn, *args, bits, None, None)

    return {
        "f32": call(a, b, 0),
        "A16": call(narrow[0], b, A_BF16),
        "B16": call(a, narrow[1], B_BF16),
        "AB16": call(*narrow, A_BF16 | B_BF16),
    }


_KEEP: list = []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--mlp", action="store_true", help="the MLP's shapes and layouts")
    parser.add_argument("--attention", action="store_true", help="an attention head's")
    parser.add_argument("--baseline", help="an older bf16_gemm.py, timed as amx0")
    parser.add_argument(
        "--operands",
        nargs="?",
        const="",
        metavar="PATH",
        help="bf16 operands against f32 ones (kc_bgemm, or its PATH)",
    )
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
    clock = time.process_time if args.threads == 1 else time.perf_counter
    print(f"kc_bgemm takes {have!r} here; threads {args.threads}")
    shapes = MLP if args.mlp else ATTENTION if args.attention else [(*s, "nn") for s in SHAPES]
    for m, k, n, layout in shapes:
        a = rng.standard_normal((k, m) if layout[0] == "t" else (m, k))
        b = rng.standard_normal((n, k) if layout[1] == "t" else (k, n))
        a, b = (x.astype(ml_dtypes.bfloat16).astype(np.float32) for x in (a, b))
        a, b = (a.T if layout[0] == "t" else a), (b.T if layout[1] == "t" else b)
        out = np.empty((m, n), np.float32)
        calls = {"sgemm": rt.sgemm_call(a, b, out)}
        if args.operands is not None:
            calls = _operand_calls(rt, args.operands, a, b, out)
        else:
            calls.update({p: rt.bgemm_call(a, b, out, path=paths[p]) for p in available})
        if baseline is not None:
            calls["amx0"] = functools.partial(baseline[1], *calls["sgemm"].args)
        times: dict[str, list[float]] = {name: [] for name in calls}
        for call in calls.values():
            call()  # warm
        for _ in range(args.rounds):
            for name, call in calls.items():
                _best(call, times[name], clock)
        flops = 2 * m * n * k
        base = min(next(iter(times.values())))  # the first variant's: sgemm, or f32
        line = ", ".join(
            f"{name} {flops / min(t) / 1e9:6.1f} GFLOP/s ({base / min(t):.2f}x)"
            for name, t in times.items()
        )
        print(f"{m}x{k}x{n} {layout}: {line}")


if __name__ == "__main__":
    main()
