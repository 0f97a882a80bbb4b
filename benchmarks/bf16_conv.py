"""GFLOP/s of the bf16 convolution (``codegen.library.bf16_conv``: ``kc_sconv_bf16`` on AMX)
against ``kc_sconv`` (f32, Winograd where it applies), and of its kernel gradient
(``kc_sconv_bf16_filter`` against ``kc_sconv_filter``), on the CNNs' shapes,
interleaved, best of the rounds, CPU time of the process (the machine is shared).

    python benchmarks/bf16_conv.py [--rounds 15] [--threads 1] [--baseline DIR] [--operands]

``--baseline DIR`` (older copies of ``codegen/library/bf16_gemm.py``, ``bf16_conv.py`` and
``bf16_conv_filter.py`` in DIR) times the bf16 kernels those files define, compiled here
under other names, interleaved against the current ones (``bf16`` against ``old``): an A/B
of a change in one process.

``--operands`` times the bf16 kernels on operands stored as bf16 (``X_BF16`` and
``W_BF16``; ``X_BF16`` and ``DY_BF16``) against the same calls on f32 operands holding
the same values (``f32`` against ``bf16``), interleaved; with ``--baseline``, both the
old and the current kernels on bf16 operands (the old files must know the bits).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time

import ml_dtypes
import numpy as np

import kcompile.codegen
from kcompile.codegen.building.target import (
    RUNTIME_SPEED_LEVEL,
    CompileTimes,
    LoadedCode,
    compile_module,
    host,
)
from kcompile.codegen.library import runtime_library
from kcompile.codegen.library.bf16_conv import BCONV, W_BF16, X_BF16
from kcompile.codegen.library.bf16_conv_filter import BFILTER, DY_BF16
from kcompile.codegen.library.conv import GEOMETRY
from kcompile.codegen.library.runtime_library import runtime
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


def _baseline(folder: str) -> dict[str, int]:
    """The addresses of ``kc_sconv_bf16`` and ``kc_sconv_bf16_filter`` as the files in
    ``folder`` define them, each importing the others from there, compiled here under the
    prefix ``kc_osconv_bf16`` (their internal ``kc_bgemm`` functions ``kc_obgemm``)."""
    runtime().address(BCONV.symbol)  # the conv piece (their f32 path) loaded
    saved = {}
    old = {}
    for name in ("bf16_gemm", "bf16_conv", "bf16_conv_filter"):
        spec = importlib.util.spec_from_file_location(f"old_{name}", f"{folder}/{name}.py")
        module = importlib.util.module_from_spec(spec)
        full = f"kcompile.codegen.{name}"
        saved[name] = sys.modules[full]
        sys.modules[full] = module  # what the next files import
        setattr(kcompile.codegen, name, module)
        spec.loader.exec_module(module)
        old[name] = module
    for name, module in saved.items():
        sys.modules[f"kcompile.codegen.{name}"] = module
        setattr(kcompile.codegen, name, module)
    module = runtime_library.ir.Module(name="bconv_baseline")
    runtime_library._declare_base(module, runtime_library.tile())
    old["bf16_conv"].add_bconv(module, host().has)
    old["bf16_conv_filter"].add_bconv_filter(module, host().has)
    text = str(module).replace("kc_sconv_bf16", "kc_osconv_bf16")
    text = text.replace("kc_bgemm", "kc_obgemm")
    code = LoadedCode(compile_module(text, CompileTimes(), speed=RUNTIME_SPEED_LEVEL).object_code)
    _KEEP.append(code)
    names = (BCONV.symbol, BFILTER.symbol)
    return {s: code.address(s.replace("kc_sconv_bf16", "kc_osconv_bf16")) for s in names}


_KEEP: list = []


def _operands(shape, second: str):
    """bf16-valued f32 operands of a convolution ``shape``: (x, the kernel — or dY for
    ``second="dy"`` —, the geometry, the flops, the result's shape)."""
    n, h, w, c, kh, kw, f, s, p = shape
    oh, ow = output_size(h, kh, s, 1, p, p), output_size(w, kw, s, 1, p, p)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, h, w, c)).astype(ml_dtypes.bfloat16).astype(np.float32)
    other = (n, oh, ow, f) if second == "dy" else (kh, kw, c, f)
    y = rng.standard_normal(other).astype(ml_dtypes.bfloat16).astype(np.float32)
    sizes = dict(N=n, H=h, W=w, C=c, OH=oh, OW=ow, F=f, KH=kh, KW=kw, SH=s, SW=s, DH=1, DW=1)
    sizes.update(PT=p, PL=p, PH=1, PW=1)
    geometry = np.array([sizes[name] for name in GEOMETRY], np.int64)
    result = (kh, kw, c, f) if second == "dy" else (n, oh, ow, f)
    return x, y, geometry, 2.0 * n * oh * ow * f * kh * kw * c, result


def _narrowed(x, y, bits: int, first: int, second: int):
    """``x`` and ``y`` as bf16 arrays where ``bits`` has ``first`` (``second``)."""
    x = x.astype(ml_dtypes.bfloat16) if bits & first else x
    return x, (y.astype(ml_dtypes.bfloat16) if bits & second else y)


def _filter_call(signature, shape, address=None, bits=0):
    x, dy, geometry, flops, result = _operands(shape, "dy")
    x, dy = _narrowed(x, dy, bits, X_BF16, DY_BF16)
    out = np.empty(result, np.float32)
    fn = abi.bind(abi.CONV_FILTER, address or runtime().addresses[signature.symbol])
    keep = (x, dy, out, geometry)
    return (lambda: fn(geometry.ctypes.data, x.ctypes.data, dy.ctypes.data, out.ctypes.data,
                       bits)), flops, keep  # fmt: skip


def _call(symbol, shape, address=None, bits=0):
    x, k, geometry, flops, result = _operands(shape, "kernel")
    x, k = _narrowed(x, k, bits, X_BF16, W_BF16)
    out = np.empty(result, np.float32)
    fn = abi.bind(abi.CONV, address or runtime().addresses[symbol])
    keep = (x, k, out, geometry)
    return (lambda: fn(geometry.ctypes.data, x.ctypes.data, k.ctypes.data, out.ctypes.data,
                       bits, None, None)), flops, keep  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--baseline", help="a folder of older bf16 kernel files")
    parser.add_argument("--operands", action="store_true", help="bf16 against f32 operands")
    args = parser.parse_args()
    runtime().set_threads(args.threads)
    old = _baseline(args.baseline) if args.baseline else None
    jobs = [(name, shape, False) for name, shape in SHAPES.items()]
    jobs += [(f"dW {name}", shape, True) for name, shape in SHAPES.items()]
    for name, shape, gradient in jobs:
        both = (X_BF16 | DY_BF16) if gradient else (X_BF16 | W_BF16)
        bits = both if args.operands else 0
        if args.operands and old is None and gradient:
            calls = {"f32": _filter_call(BFILTER, shape)}
            calls["bf16"] = _filter_call(BFILTER, shape, bits=X_BF16 | DY_BF16)
        elif args.operands and old is None:
            calls = {"f32": _call(BCONV.symbol, shape)}
            calls["bf16"] = _call(BCONV.symbol, shape, bits=X_BF16 | W_BF16)
        elif old is not None and gradient:
            calls = {"old": _filter_call(BFILTER, shape, old[BFILTER.symbol], bits)}
            calls["bf16"] = _filter_call(BFILTER, shape, bits=bits)
        elif old is not None:
            calls = {"old": _call(BCONV.symbol, shape, old[BCONV.symbol], bits)}
            calls["bf16"] = _call(BCONV.symbol, shape, bits=bits)
        elif gradient:
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
            f"{name:31s} {'old' if old else 'f32'} {f32:7.1f}  bf16 {bf16:7.1f} GFLOP/s  "
            f"({bf16 / f32:.2f}x; {best[f32_name] * 1e6:.0f} -> {best[bf16_name] * 1e6:.0f} us)"
        )


if __name__ == "__main__":
    main()
