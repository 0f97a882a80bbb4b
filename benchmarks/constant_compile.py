"""Compile time of models holding large constant tables: ``keras.ops.stft`` (its DFT
matrices and frame indices are constants of fft_length x (fft_length // 2 + 1) and
frames x fft_length numbers) at several fft lengths; the first ``predict`` traces,
optimizes and compiles, the second only runs.

    python benchmarks/constant_compile.py [--lengths 256 512 1024 2048] [--samples 16000]

Prints the CPU, then per fft length the constants' size, the first call's and a second
call's seconds. The compile cache is off (a temporary folder), so each length compiles.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import cpu_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lengths", type=int, nargs="*", default=[256, 512, 1024, 2048])
    parser.add_argument("--samples", type=int, default=16000)
    args = parser.parse_args()
    os.environ["KCOMPILE_CACHE_DIR"] = tempfile.mkdtemp(prefix="kcompile-constants-")
    import kcompile as keras
    from kcompile.codegen.library.runtime_library import runtime

    runtime()  # the runtime library built (the cache is empty) before any timing
    print(f"{cpu_name()}; {args.samples} samples a signal")
    x = np.random.default_rng(0).standard_normal((2, args.samples)).astype(np.float32)
    for n in args.lengths:
        inp = keras.Input((args.samples,))
        out = keras.layers.Lambda(lambda t, n=n: keras.ops.stft(t, n, n // 4, n)[0])(inp)
        model = keras.Model(inp, out)
        start = time.perf_counter()
        model.predict(x, verbose=0)
        first = time.perf_counter() - start
        start = time.perf_counter()
        model.predict(x, verbose=0)
        second = time.perf_counter() - start
        frames = (args.samples + 2 * (n // 2) - n) // (n // 4) + 1
        numbers = 2 * n * (n // 2 + 1) + frames * n
        print(
            f"fft_length {n}: {numbers / 1e6:.2f} M constants, first predict {first:.2f} s, "
            f"second {second * 1e3:.1f} ms",
            flush=True,
        )


if __name__ == "__main__":
    main()
