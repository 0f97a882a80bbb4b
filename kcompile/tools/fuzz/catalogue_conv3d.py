"""The fuzzer's entries for the convolution-family layers issue 26 added: Conv3D,
Conv3DTranspose, Cropping3D, ZeroPadding3D, UpSampling3D, SpatialDropout3D and the 3-D
adaptive poolings on volumes (rank 4 without the batch axis: the generator's "volume"
input), DepthwiseConv1D and the 1-D adaptive poolings on sequences, the 2-D adaptive
poolings on images, ConvLSTM1D on sequences of sequences (rank 3) and ConvLSTM2D on
sequences of images (rank 4); and the 3-D poolings kcompile had before, which volumes
reach now.

Left out, and why: ConvLSTM3D takes rank 5 (sequences of volumes), which the generator
does not draw; the Convolution3D and Convolution3DTranspose aliases are the same classes.
"""

from __future__ import annotations

import math
import random

from kcompile.tools.fuzz.kind import Invalid, LayerKind, Shape, pick, same, window_out

_ACTIVATIONS = (None, "relu", "tanh", "sigmoid")
_LIMIT = 512  # elements of a drawn layer's output, so that the cases stay quick


def _small(out: Shape) -> Shape:
    if math.prod(out) > _LIMIT:
        raise Invalid(f"output {out} too large")
    return out


def _window(rng: random.Random, spatial: Shape) -> dict:
    """kernel_size, padding and (at most one of) strides or dilation_rate."""
    args: dict = {
        "kernel_size": [rng.randint(1, min(3, n)) for n in spatial],
        "padding": pick(rng, ("valid", "same")),
    }
    roll = rng.random()
    if roll < 0.3:
        args["strides"] = [rng.randint(1, 2) for _ in spatial]
    elif roll < 0.45 and min(spatial) >= 5:
        args["dilation_rate"] = 2
    return args


def _window_out(args: dict, spatial: Shape) -> list[int]:
    rank = len(spatial)
    strides = args.get("strides", [1] * rank)
    dilation = args.get("dilation_rate", 1)
    return [
        window_out(n, k, s, args["padding"], dilation)
        for n, k, s in zip(spatial, args["kernel_size"], strides)
    ]


def _conv3d(rng: random.Random, shape: Shape) -> dict:
    args = {"filters": rng.randint(1, 4), **_window(rng, shape[:-1])}
    args["activation"] = pick(rng, _ACTIVATIONS)
    if rng.random() < 0.15:
        args["use_bias"] = False
    return args


def _conv3d_shape(args: dict, s: Shape) -> Shape:
    return _small((*_window_out(args, s[:-1]), args["filters"]))


def _conv3d_transpose(rng: random.Random, shape: Shape) -> dict:
    strides = [rng.randint(1, 2) for _ in range(3)]
    args: dict = {
        "filters": rng.randint(1, 3),
        "kernel_size": [rng.randint(1, 3) for _ in range(3)],
        "strides": strides,
        "padding": pick(rng, ("valid", "same")),
    }
    if max(strides) > 1 and rng.random() < 0.3:
        args["output_padding"] = [rng.randint(0, s - 1) for s in strides]
    if rng.random() < 0.3:
        args["activation"] = pick(rng, _ACTIVATIONS[1:])
    return args


def _conv3d_transpose_shape(args: dict, s: Shape) -> Shape:
    from kcompile.layers.convolutional.conv2d_transpose import transpose_geometry

    paddings = args.get("output_padding") or [None] * 3
    sizes = [
        transpose_geometry(n, k, st, 1, args["padding"], p)[0]
        for n, k, st, p in zip(s[:-1], args["kernel_size"], args["strides"], paddings)
    ]
    return _small((*sizes, args["filters"]))


def _depthwise_conv1d(rng: random.Random, shape: Shape) -> dict:
    args = {"depth_multiplier": rng.randint(1, 2), **_window(rng, shape[:-1])}
    args["kernel_size"] = args["kernel_size"][0]
    if rng.random() < 0.3:
        args["activation"] = pick(rng, _ACTIVATIONS[1:])
    return args


def _depthwise_conv1d_shape(args: dict, s: Shape) -> Shape:
    window = {**args, "kernel_size": [args["kernel_size"]]}
    return _small((*_window_out(window, s[:-1]), s[-1] * args["depth_multiplier"]))


def _pairs(rng: random.Random, spatial: Shape, most: int) -> list:
    return [[rng.randint(0, most), rng.randint(0, most)] for _ in spatial]


def _cropping3d(rng: random.Random, shape: Shape) -> dict:
    return {"cropping": [[rng.randint(0, (n - 1) // 2)] * 2 for n in shape[:-1]]}


def _cropping3d_shape(args: dict, s: Shape) -> Shape:
    out = [n - a - b for n, (a, b) in zip(s[:-1], args["cropping"])]
    if min(out) < 1:
        raise Invalid("cropped away")
    return (*out, s[-1])


def _zero_padding3d(rng: random.Random, shape: Shape) -> dict:
    return {"padding": _pairs(rng, shape[:-1], 2)}


def _zero_padding3d_shape(args: dict, s: Shape) -> Shape:
    return _small((*(n + a + b for n, (a, b) in zip(s[:-1], args["padding"])), s[-1]))


def _up_sampling3d(rng: random.Random, shape: Shape) -> dict:
    return {"size": [rng.randint(1, 2) for _ in range(3)]}


def _up_sampling3d_shape(args: dict, s: Shape) -> Shape:
    return _small((*(n * k for n, k in zip(s[:-1], args["size"])), s[-1]))


def _adaptive(rank: int):
    def draw(rng: random.Random, shape: Shape) -> dict:
        sizes = [rng.randint(1, n + 1) for n in shape[:-1]]  # n + 1: overlapping bins too
        return {"output_size": sizes[0] if rank == 1 else sizes}

    def out(args: dict, s: Shape) -> Shape:
        size = args["output_size"]
        return _small((*([size] if isinstance(size, int) else size), s[-1]))

    return draw, out


def _conv_lstm(rank: int):
    def draw(rng: random.Random, shape: Shape) -> dict:
        args = {"filters": rng.randint(1, 3), **_window(rng, shape[1:-1])}
        args["return_sequences"] = rng.random() < 0.4
        if rng.random() < 0.3:
            args["go_backwards"] = True
        if rng.random() < 0.2:
            args["dropout"], args["recurrent_dropout"] = pick(rng, ((0.2, 0.0), (0.0, 0.2)))
            args["seed"] = rng.randint(0, 99)
        return args

    def out(args: dict, s: Shape) -> Shape:
        state = (*_window_out(args, s[1:-1]), args["filters"])
        return _small((s[0], *state) if args["return_sequences"] else state)

    return draw, out


def _pool3d(rng: random.Random, shape: Shape) -> dict:
    args: dict = {
        "pool_size": [rng.randint(1, min(2, n)) for n in shape[:-1]],
        "padding": pick(rng, ("valid", "same")),
    }
    if rng.random() < 0.3:
        args["strides"] = 1
    return args


def _pool3d_shape(args: dict, s: Shape) -> Shape:
    strides = [args.get("strides") or k for k in args["pool_size"]]
    sizes = [
        window_out(n, k, st, args["padding"])
        for n, k, st in zip(s[:-1], args["pool_size"], strides)
    ]
    return (*sizes, s[-1])


def _spatial_dropout3d(rng: random.Random, shape: Shape) -> dict:
    return {"rate": pick(rng, (0.1, 0.3)), "seed": rng.randint(0, 99)}


KINDS: tuple[LayerKind, ...] = (
    LayerKind("Conv3D", (4,), _conv3d, _conv3d_shape, 1.5),
    LayerKind("Conv3DTranspose", (4,), _conv3d_transpose, _conv3d_transpose_shape, 0.5),
    LayerKind("Cropping3D", (4,), _cropping3d, _cropping3d_shape, 0.4),
    LayerKind("ZeroPadding3D", (4,), _zero_padding3d, _zero_padding3d_shape, 0.4),
    LayerKind("UpSampling3D", (4,), _up_sampling3d, _up_sampling3d_shape, 0.4),
    LayerKind("SpatialDropout3D", (4,), _spatial_dropout3d, same, 0.3),
    # Keras's 3-D poolings (kcompile had them before issue 26): volumes reach them now too
    LayerKind("MaxPooling3D", (4,), _pool3d, _pool3d_shape, 0.5),
    LayerKind("AveragePooling3D", (4,), _pool3d, _pool3d_shape, 0.4),
    LayerKind("GlobalAveragePooling3D", (4,), lambda r, s: {}, lambda a, s: (s[-1],), 0.3),
    LayerKind("GlobalMaxPooling3D", (4,), lambda r, s: {}, lambda a, s: (s[-1],), 0.3),
    LayerKind("AdaptiveAveragePooling3D", (4,), *_adaptive(3), 0.4),
    LayerKind("AdaptiveMaxPooling3D", (4,), *_adaptive(3), 0.4),
    LayerKind("AdaptiveAveragePooling2D", (3,), *_adaptive(2), 0.3),
    LayerKind("AdaptiveMaxPooling2D", (3,), *_adaptive(2), 0.3),
    LayerKind("AdaptiveAveragePooling1D", (2,), *_adaptive(1), 0.3),
    LayerKind("AdaptiveMaxPooling1D", (2,), *_adaptive(1), 0.3),
    LayerKind("DepthwiseConv1D", (2,), _depthwise_conv1d, _depthwise_conv1d_shape, 0.5),
    LayerKind("ConvLSTM1D", (3,), *_conv_lstm(1), 0.3),
    LayerKind("ConvLSTM2D", (4,), *_conv_lstm(2), 0.5),
)
