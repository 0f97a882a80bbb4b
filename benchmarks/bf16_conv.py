"""GFLOP/s of the bf16 convolution (``codegen.bf16_conv``: ``kc_sconv_bf16`` on AMX)
against ``kc_sconv`` (f32, Winograd where it applies), and of its kernel gradient
(``kc_sconv_bf16_filter`` against ``kc_sconv_filter``), on the CNNs' shapes,
interleaved, best of the rounds, CPU time of the process (the machine is shared).

    python benchmarks/bf16_conv.py [--rounds 15] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import ml_dtypes
import numpy as np

from kcompile.codegen.bf16_conv import BCONV
from kcompile.codegen.bf16_conv_filter import BFILTER
from kcompile.codegen.conv import GEOMETRY
from kcompile.codegen.runtime_library import runtime
from kcompile.ir import abi
from kcompile.ir.ops.patches import output_size

# name: (N, H, W, C, KH, KW, F, stride, padding)
SHAPES = {
    "cnn conv2 predict 256": (256, 12, 12, 32, 3, 3, 64, 1, 0),
    "cnn conv2 train 64": (64, 13, 13, 32, 3, 3, 64, 1, 0),
    "cnn conv2 dX train 64": (64, 11, 11, 64, 3, 3, 32, 1, 2),
    "resnet 3x3 64->64 32x32": (32, 32, 32, 64, 3, 3, 64, 1, 1),
    "1x1 128->256": (32, 16, 16, 128, 1, 1, 256, 1, 0),
}


def _filter_call(signature, shape):
    n, h, w, c, kh, kw, f, s, p = shape
    oh, ow = output_size(h, kh, s, 1, p, p), output_size(w, kw, s, 1, p, p)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, h, w, c)).astype(ml_dtypes.bfloat16).astype(np.float32)
    dy = rng.standard_normal((n, oh, ow, f)).astype(ml_dtypes.bfloat16).astype(np.float32)
    out = np.empty((kh, kw, c, f), np.float32)
    sizes = dict(N=n, H=h, W=w, C=c, OH=oh, OW=ow, F=f, KH=kh, KW=kw, SH=s, SW=s, DH=1, DW=1)
    sizes.update(PT=p, PL=p, PH=1, PW=1)
    geometry = np.array([sizes[name] for name in GEOMETRY], np.int64)
    fn = abi.bind(abi.CONV_FILTER, runtime().addresses[signature.symbol])
    keep = (x, dy, out, geometry)
    flops = 2.0 * n * oh * ow * f * kh * kw * c
    return (lambda: fn(geometry.ctypes.data, x.ctypes.data, dy.ctypes.data, out.ctypes.data,
                       0)), flops, keep  # fmt: skip


def _call(symbol, shape):
    n, h, w, c, kh, kw, f, s, p = shape
    oh, ow = output_size(h, kh, s, 1, p, p), output_size(w, kw, s, 1, p, p)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, h, w, c)).astype(ml_dtypes.bfloat16).astype(np.float32)
    k = rng.standard_normal((kh, kw, c, f)).astype(ml_dtypes.bfloat16).astype(np.float32)
    out = np.empty((n, oh, ow, f), np.float32)
    sizes = dict(N=n, H=h, W=w, C=c, OH=oh, OW=ow, F=f, KH=kh, KW=kw, SH=s, SW=s, DH=1, DW=1)
    sizes.update(PT=p, PL=p, PH=1, PW=1)
    geometry = np.array([sizes[name] for name in GEOMETRY], np.int64)
    fn = abi.bind(abi.CONV, runtime().addresses[symbol])
    keep = (x, k, out, geometry)
    flops = 2.0 * n * oh * ow * f * kh * kw * c
    return (lambda: fn(geometry.ctypes.data, x.ctypes.data, k.ctypes.data, out.ctypes.data,
                       0, None, None)), flops, keep  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    runtime().set_threads(args.threads)
    jobs = [(name, shape, False) for name, shape in SHAPES.items()]
    jobs += [(f"dW {name}", shape, True) for name, shape in SHAPES.items()]
    for name, shape, gradient in jobs:
        if gradient:
            calls = {s.symbol: _filter_call(s, shape) for s in (abi.CONV_FILTER, BFILTER)}
        else:
            calls = {s: _call(s, shape) for s in (abi.CONV.symbol, BCONV.symbol)}
        best = {s: float("inf") for s in calls}
        for _ in range(args.rounds):
            for s, (fn, _, _) in calls.items():
                fn()
                t0 = time.process_time()
                fn()
                best[s] = min(best[s], time.process_time() - t0)
        f32_name, bf16_name = calls
        flops = calls[bf16_name][1]
        rates = {s: flops / t / 1e9 for s, t in best.items()}
        f32, bf16 = rates[f32_name], rates[bf16_name]
        print(
            f"{name:31s} f32 {f32:7.1f}  bf16 {bf16:7.1f} GFLOP/s  "
            f"({bf16 / f32:.2f}x; {best[f32_name] * 1e6:.0f} -> {best[bf16_name] * 1e6:.0f} us)"
        )


if __name__ == "__main__":
    main()
