"""im2col (patches + matrix product) against a direct convolution loop, compiled, on the
convolutions of examples/fashion_cnn.py at batch 64: the measurement behind the
layers' choice of im2col.

python benchmarks/conv_lowering.py [--batch 64] [--repeats 30]
"""

from __future__ import annotations

import argparse

import numpy as np
from timing import median_time

from kcompile.ir import BATCH, DType, Graph, TensorType
from kcompile.ir import build as B
from kcompile.runtime import make_executable

SHAPES = {  # name: (H, W, C, F), a 3x3 kernel, valid padding
    "conv1 28x28x1 -> 32": (28, 28, 1, 32),
    "conv2 13x13x32 -> 64": (13, 13, 32, 64),
}


def conv_graph(shape, lowering: str) -> Graph:
    h, w, c, f = shape
    g = Graph(f"conv_{lowering}")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, h, w, c)))
    k = g.add_input("k", TensorType(DType.f32, (3, 3, c, f)), "param")
    if lowering == "im2col":
        patches = B.extract_patches(x, (3, 3))
        y = B.matmul(patches, B.reshape(k, (9 * c, f)))
    else:
        y = B.conv2d(x, k)
    g.set_outputs([("y", y)])
    return g


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'convolution':<24}{'im2col ms':>11}{'direct ms':>11}{'direct/im2col':>15}")
    for name, shape in SHAPES.items():
        h, w, c, f = shape
        x = rng.random((args.batch, h, w, c)).astype(np.float32)
        k = rng.normal(size=(3, 3, c, f)).astype(np.float32)
        times, outputs = {}, {}
        for lowering in ("im2col", "direct"):
            exe = make_executable(conv_graph(shape, lowering), "llvm")
            exe.bind("k", k)
            outputs[lowering] = exe({"x": x})["y"].copy()
            times[lowering] = median_time(lambda exe=exe, x=x: exe({"x": x}), args.repeats)
        np.testing.assert_allclose(outputs["direct"], outputs["im2col"], rtol=1e-4, atol=1e-4)
        ratio = times["direct"] / times["im2col"]
        print(
            f"{name:<24}{times['im2col'] * 1e3:>11.2f}{times['direct'] * 1e3:>11.2f}{ratio:>14.2f}x"
        )


if __name__ == "__main__":
    main()
