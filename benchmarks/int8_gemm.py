"""GOP/s of ``kc_igemm``'s engines on this CPU (``codegen.library.int8_gemm``: AMX-INT8,
VNNI's ``vpdpbusd``, ``pmaddwd``) against the f32 ``kc_sgemm`` on the same shapes.

Each engine the CPU has is built as its own copy of the int8 library, the features of
the engines above it masked (``pmaddwd`` without VNNI and AMX, VNNI without AMX), and
all are timed interleaved, round after round, each one's best time kept: CPU time on
one thread (a call preempted midway counted in wall time only), wall time on more.

    python benchmarks/int8_gemm.py [--rounds 20] [--threads 1] [--shapes 256x784x512 ...]

Prints the CPU, the engines built, then per shape (M x K x N) each variant's GOP/s and
its speed over ``kc_sgemm``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from kcompile.codegen.building.target import (
    RUNTIME_SPEED_LEVEL,
    CompileTimes,
    LoadedCode,
    compile_module,
    host,
)
from kcompile.codegen.library.gemm import Tile
from kcompile.codegen.library.int8_gemm import engines
from kcompile.codegen.library.runtime_library import (
    PIECES,
    Runtime,
    keep_alive,
    runtime,
    runtime_ir,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import cpu_name

# The MLP's products at batch 256 (784-512-512-10), a square one and the encoder's.
SHAPES = ["256x784x512", "256x512x512", "256x512x10", "512x512x512", "8192x128x512"]
VNNI = ("avx512vnni", "avxvnni")
AMX = ("amx-tile", "amx-int8", "amx-bf16")


def _variants() -> dict[str, Runtime]:
    """A runtime per engine this CPU has, each built with the engines above it masked."""
    has = host().has
    _, dot, tiles = engines(has)
    masks = {"pmaddwd": VNNI + AMX}
    if dot is not None:
        masks["vnni"] = AMX
    if tiles == "amx":
        masks["amx"] = ()
    int8 = [p for p in PIECES if p.name == "int8"]
    built = {}
    for name, masked in masks.items():
        features = lambda f, masked=masked: has(f) and f not in masked  # noqa: E731
        text = runtime_ir(Tile.for_host(has), features, int8)
        code = LoadedCode(
            compile_module(text, CompileTimes(), speed=RUNTIME_SPEED_LEVEL).object_code
        )
        keep_alive(code)  # its thread pool's workers outlive the benchmark
        built[name] = Runtime(code, CompileTimes(), False)
    return built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shapes", nargs="*", default=SHAPES, help="M x K x N")
    args = parser.parse_args()
    base = runtime()
    variants = _variants()
    for rt in (base, *variants.values()):
        rt.set_threads(args.threads)
    clock = time.process_time if args.threads == 1 else time.perf_counter
    print(f"{cpu_name()}; threads {args.threads}; engines: {', '.join(variants)}")
    print(f"kcompile's own kc_igemm takes {base.igemm_path()!r} here")
    rng = np.random.default_rng(0)
    for shape in args.shapes:
        m, k, n = (int(x) for x in shape.split("x"))
        a8 = rng.integers(-127, 128, (m, k)).astype(np.int8)
        b8 = rng.integers(-127, 128, (k, n)).astype(np.int8)
        a, b = a8.astype(np.float32), b8.astype(np.float32)
        out = np.empty((m, n), np.float32)
        calls = {"sgemm": base.sgemm_call(a, b, out)}
        calls.update({name: rt.igemm_call(a8, b8, out) for name, rt in variants.items()})
        best = dict.fromkeys(calls, float("inf"))
        for call in calls.values():
            call()  # warm
        repeats = max(1, int(5e7 / (2 * m * n * k)))
        for _ in range(args.rounds):
            for name, call in calls.items():
                start = clock()
                for _ in range(repeats):
                    call()
                best[name] = min(best[name], (clock() - start) / repeats)
        ops = 2 * m * n * k
        line = ", ".join(
            f"{name} {ops / t / 1e9:6.1f} G ({best['sgemm'] / t:.2f}x)" for name, t in best.items()
        )
        print(f"{shape}: {line}", flush=True)


if __name__ == "__main__":
    main()
