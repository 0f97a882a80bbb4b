"""im2col (patches + matrix product) against the implicit GEMM (``conv2d``, which packs
nothing from patches: ``codegen/library/conv.py``), compiled, interleaved in one process: the
forward product and the kernel's gradient (patchesᵀ·dY against ``conv2d_filter``) of the
convolutions of examples/fashion_cnn.py and examples/small_resnet.py.

python benchmarks/conv_lowering.py [--batch 128] [--repeats 10] [--threads N]
"""

from __future__ import annotations

import argparse

import numpy as np
from timing import median_time

from kcompile.codegen.library.runtime_library import runtime
from kcompile.ir import BATCH, DType, Graph, TensorType
from kcompile.ir import build as B
from kcompile.runtime import make_executable

SHAPES = {  # name: (H, W, C, F, stride, padding), a 3x3 kernel
    "fashion conv1 28x28x1->32": (28, 28, 1, 32, 1, (0, 0, 0, 0)),
    "fashion conv2 13x13x32->64": (13, 13, 32, 64, 1, (0, 0, 0, 0)),
    "resnet stem 32x32x3->32": (32, 32, 3, 32, 1, (1, 1, 1, 1)),
    "resnet 32x32x32->32": (32, 32, 32, 32, 1, (1, 1, 1, 1)),
    "resnet 32x32x32->64 /2": (32, 32, 32, 64, 2, (0, 1, 0, 1)),
    "resnet 16x16x64->64": (16, 16, 64, 64, 1, (1, 1, 1, 1)),
    "resnet 8x8x128->128": (8, 8, 128, 128, 1, (1, 1, 1, 1)),
}
LOWERINGS = ("im2col", "implicit")


def conv_graph(shape, lowering: str, gradient: bool) -> Graph:
    """The forward product, or (``gradient``) the kernel's gradient from x and dY."""
    h, w, c, f, s, pads = shape
    g = Graph(f"conv_{lowering}")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, h, w, c)))
    strides = (s, s)
    if gradient:
        oh, ow = (h + pads[0] + pads[1] - 3) // s + 1, (w + pads[2] + pads[3] - 3) // s + 1
        dy = g.add_input("dy", TensorType(DType.f32, (BATCH, oh, ow, f)))
        if lowering == "im2col":
            patches = B.extract_patches(x, (3, 3), strides, (1, 1), pads)
            y = B.reshape(B.matmul(patches, dy, transpose_a=True), (3, 3, c, f))
        else:
            window = dict(kernel=(3, 3), strides=strides, dilation=(1, 1), padding=pads)
            y = g.emit1("conv2d_filter", [x, dy], **window)
    else:
        k = g.add_input("k", TensorType(DType.f32, (3, 3, c, f)), "param")
        if lowering == "im2col":
            patches = B.extract_patches(x, (3, 3), strides, (1, 1), pads)
            y = B.matmul(patches, B.reshape(k, (9 * c, f)))
        else:
            y = B.conv2d(x, k, strides, (1, 1), pads)
    g.set_outputs([("y", y)])
    return g


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="0: the runtime's default")
    args = parser.parse_args()
    if args.threads:
        runtime().set_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"{'convolution':<30}{'im2col ms':>11}{'implicit ms':>13}{'implicit/im2col':>17}")
    for gradient in (False, True):
        print("kernel gradient (dW)" if gradient else "forward")
        for name, shape in SHAPES.items():
            h, w, c, f = shape[:4]
            x = rng.random((args.batch, h, w, c)).astype(np.float32)
            kernel = rng.normal(size=(3, 3, c, f)).astype(np.float32)
            exes, outputs = {}, {}
            for lowering in LOWERINGS:
                graph = conv_graph(shape, lowering, gradient)
                exe = make_executable(graph, "llvm")
                feeds = {"x": x}
                if gradient:
                    dy_shape = graph.inputs[1].type.concrete_shape(args.batch)
                    feeds["dy"] = rng.random(dy_shape).astype(np.float32)
                else:
                    exe.bind("k", kernel)
                exes[lowering] = (exe, feeds)
            feeds = exes["im2col"][1]
            for lowering, (exe, _) in exes.items():
                outputs[lowering] = exe(feeds)["y"].copy()
            run = {
                lowering: (lambda exe=exe, feeds=feeds: exe(feeds))
                for lowering, (exe, _) in exes.items()
            }
            np.testing.assert_allclose(outputs["implicit"], outputs["im2col"], rtol=1e-3, atol=1e-2)
            times = {lowering: [] for lowering in LOWERINGS}
            for _ in range(3):  # interleaved rounds: the load of a shared machine hits both
                for lowering in LOWERINGS:
                    times[lowering].append(median_time(run[lowering], max(1, args.repeats // 3)))
            best = {lowering: min(t) for lowering, t in times.items()}
            ratio = best["implicit"] / best["im2col"]
            print(
                f"{name:<30}{best['im2col'] * 1e3:>11.2f}{best['implicit'] * 1e3:>13.2f}"
                f"{ratio:>16.2f}x"
            )


if __name__ == "__main__":
    main()
