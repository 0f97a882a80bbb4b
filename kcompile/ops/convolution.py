"""``keras.ops.nn``'s windowed functions, channels last, in 1-D (as 2-D of height 1)
and 2-D: ``conv``, ``depthwise_conv``, ``separable_conv``, ``conv_transpose``,
``max_pool``, ``average_pool``, the adaptive pools, ``depth_to_space`` and
``space_to_depth``. They use the IR's window primitives (``extract_patches``,
``fold_patches``) as the layers do; 3-D windows and ``channels_first`` are refused.
"""

from __future__ import annotations

import math

import numpy as np

from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.ops.core import fval, op, unsupported, val


def _tuple(value, n: int, what: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * n
    value = tuple(int(v) for v in value)
    if len(value) == 1 and n > 1:
        return value * n
    if len(value) != n:
        raise ValueError(f"{what} must be an int or {n} ints, got {value}")
    return value


def _same(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's and jax's "same": out = ceil(size / stride), the extra pixel last."""
    span = dilation * (k - 1) + 1
    total = max((math.ceil(size / stride) - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def _pads(padding: str, spatial, kernel, strides, dilation, name: str) -> tuple[int, ...]:
    padding = padding.lower()
    if padding == "valid":
        return (0,) * (2 * len(spatial))
    if padding == "same":
        return tuple(
            p for s, k, st, d in zip(spatial, kernel, strides, dilation) for p in _same(s, k, st, d)
        )
    raise ValueError(f"{name}: padding must be 'valid' or 'same', got {padding!r}")


def _as_2d(v: Value, name: str, data_format) -> tuple[Value, bool]:
    """[N, W, C] as [N, 1, W, C] (True: it was 1-D); [N, H, W, C] as it is."""
    if data_format not in (None, "channels_last"):
        raise unsupported(name, "channels_first (kcompile's windows are channels last)")
    if v.rank == 3:
        return B.reshape(v, (v.shape[0], 1, v.shape[1], v.shape[2])), True
    if v.rank != 4:
        raise unsupported(name, f"inputs of rank {v.rank} (1-D and 2-D windows are)")
    return v, False


def _back(y: Value, one_d: bool) -> Value:
    return B.reshape(y, (y.shape[0], y.shape[2], y.shape[3])) if one_d else y


def _window(v: Value, one_d: bool, size, strides, dilation, padding, name):
    kernel = _tuple(size, 1 if one_d else 2, f"{name}: kernel size")
    strides = _tuple(strides, len(kernel), f"{name}: strides")
    dilation = _tuple(dilation, len(kernel), f"{name}: dilation_rate")
    if one_d:
        kernel, strides, dilation = (1, *kernel), (1, *strides), (1, *dilation)
    pads = _pads(padding, v.shape[1:3], kernel, strides, dilation, name)
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    if any(s + pads[2 * i] + pads[2 * i + 1] < span for i, (s, span) in enumerate(
        zip(v.shape[1:3], spans))):  # fmt: skip
        raise ValueError(
            f"{name}: Computed output size would be zero or negative: inputs of spatial "
            f"shape {tuple(v.shape[1:3])}, window {kernel}, padding {padding!r}"
        )
    return kernel, strides, dilation, pads


@op
def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    x, one_d = _as_2d(fval(inputs), "nn.conv", data_format)
    w = fval(kernel)
    if one_d:
        w = B.reshape(w, (1, *w.shape))
    if w.shape[2] != x.shape[3]:
        raise unsupported(
            "nn.conv", f"grouped convolution (kernel takes {w.shape[2]} channels, inputs "
            f"have {x.shape[3]})"
        )  # fmt: skip
    _, s, d, pads = _window(x, one_d, w.shape[:2] if not one_d else w.shape[1], strides,
                            dilation_rate, padding, "nn.conv")  # fmt: skip
    return _back(B.conv2d(x, w, s, d, pads), one_d)


def _depthwise(x: Value, w: Value, one_d: bool, strides, padding, dilation, name) -> Value:
    if one_d:
        w = B.reshape(w, (1, *w.shape))
    c, m = w.shape[2], w.shape[3]
    if c != x.shape[3]:
        raise ValueError(f"{name}: kernel has {c} input channels, inputs have {x.shape[3]}")
    k, s, d, pads = _window(x, one_d, w.shape[:2] if not one_d else w.shape[1], strides,
                            dilation, padding, name)  # fmt: skip
    p = B.extract_patches(x, k, s, d, pads, 0.0)
    n, oh, ow, _ = p.shape
    taps = math.prod(k)
    p = B.reshape(p, (n, oh, ow, taps, c, 1))
    y = B.reduce_sum(p * B.reshape(w, (taps, c, m)), 3)
    return B.reshape(y, (n, oh, ow, c * m))


@op
def depthwise_conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    x, one_d = _as_2d(fval(inputs), "nn.depthwise_conv", data_format)
    y = _depthwise(x, fval(kernel), one_d, strides, padding, dilation_rate, "nn.depthwise_conv")
    return _back(y, one_d)


@op
def separable_conv(
    inputs,
    depthwise_kernel,
    pointwise_kernel,
    strides=1,
    padding="valid",
    data_format=None,
    dilation_rate=1,
):
    x, one_d = _as_2d(fval(inputs), "nn.separable_conv", data_format)
    y = _depthwise(
        x,
        fval(depthwise_kernel),
        one_d,
        strides,
        padding,
        dilation_rate,
        "nn.separable_conv",
    )
    pw = fval(pointwise_kernel)
    pw = B.reshape(pw, (pw.shape[-2], pw.shape[-1]))
    return _back(B.matmul(y, pw), one_d)


def transpose_geometry(
    size: int, k: int, stride: int, dilation: int, padding: str, output_padding: int | None
) -> tuple[int, int]:
    """(output size, offset of the output in the full fold) along one axis, by Keras's
    jax padding rule (the same rule as ``layers/convolutional/conv2d_transpose.py``):
    output = (size - 1)·stride - span + 2 + left + right."""
    span = (k - 1) * dilation + 1
    if padding == "valid":
        extra = max(span, stride) - span if output_padding is None else output_padding
        left, right = span - 1, span - 1 + extra
    else:
        if output_padding is None:
            total = stride + span - 2
        else:
            total = span + span % 2 - 2 + output_padding
        left = min(total // 2 + total % 2, span - 1)
        right = total - left
    return (size - 1) * stride - span + 2 + left + right, span - 1 - left


@op
def conv_transpose(
    inputs,
    kernel,
    strides=1,
    padding="valid",
    output_padding=None,
    data_format=None,
    dilation_rate=1,
):
    """The adjoint of ``conv``: each input pixel's product with the kernel
    ([KH, KW, out, in]) added into the full output (``fold_patches``), then the window
    Keras's padding rule keeps."""
    x, one_d = _as_2d(fval(inputs), "nn.conv_transpose", data_format)
    w = fval(kernel)
    if one_d:
        w = B.reshape(w, (1, *w.shape))
    kh, kw, f, c = w.shape
    if c != x.shape[3]:
        raise ValueError(f"nn.conv_transpose: kernel takes {c} channels, inputs have {x.shape[3]}")
    padding = padding.lower()
    if padding not in ("valid", "same"):
        raise ValueError(f"nn.conv_transpose: padding must be 'valid' or 'same', got {padding!r}")
    rank = 1 if one_d else 2
    strides = _tuple(strides, rank, "nn.conv_transpose: strides")
    dilation = _tuple(dilation_rate, rank, "nn.conv_transpose: dilation_rate")
    extra = (
        (None,) * rank if output_padding is None else _tuple(output_padding, rank, "output_padding")
    )
    if one_d:
        strides, dilation, extra = (1, *strides), (1, *dilation), (None, *extra)
    geometry = [
        transpose_geometry(size, k, s, d, padding, p)
        for size, k, s, d, p in zip(x.shape[1:3], (kh, kw), strides, dilation, extra)
    ]
    full = [
        (n - 1) * s + (k - 1) * d + 1
        for n, k, s, d in zip(x.shape[1:3], (kh, kw), strides, dilation)
    ]
    patches = B.matmul(x, B.reshape(w, (kh * kw * f, c)), transpose_b=True)
    y = B.fold_patches(patches, tuple(full), (kh, kw), strides, dilation)
    (oh, ah), (ow, aw) = geometry
    begin = [0, ah, aw, 0]
    end = [y.shape[0], min(ah + oh, full[0]), min(aw + ow, full[1]), y.shape[3]]
    if (begin, end) != ([0, 0, 0, 0], list(y.shape)):
        y = B.slice_(y, begin, end)
    short = (oh - (end[1] - begin[1]), ow - (end[2] - begin[2]))
    if any(short):
        y = B.pad(y, (0, 0, 0, 0), (0, short[0], short[1], 0))
    return _back(y, one_d)


# --- pooling ---------------------------------------------------------------------------------


def _pool(inputs, pool_size, strides, padding, data_format, name, value, reduce):
    x, one_d = _as_2d(fval(inputs), name, data_format)
    strides = pool_size if strides is None else strides
    k, s, d, pads = _window(x, one_d, pool_size, strides, 1, padding, name)
    p = B.extract_patches(x, k, s, d, pads, value)
    n, oh, ow, _ = p.shape
    windows = B.reshape(p, (n, oh, ow, math.prod(k), x.shape[3]))
    return _back(reduce(x, windows, k, s, d, pads), one_d)


@op
def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    return _pool(
        inputs, pool_size, strides, padding, data_format, "nn.max_pool", -math.inf,
        lambda x, w, *_: B.reduce_max(w, 3),
    )  # fmt: skip


@op
def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """The mean of each window; with "same" padding, of its real (unpadded) pixels, as
    Keras's."""

    def mean(x, windows, k, s, d, pads):
        total = B.reduce_sum(windows, 3)
        if not any(pads):
            return total * (1.0 / math.prod(k))
        ones = B.const(x.graph, 1.0, DType.f32, (1, *x.shape[1:3], 1))
        counts = B.reduce_sum(B.extract_patches(ones, k, s, d, pads, 0.0), (3,), keepdims=True)
        return total / counts

    return _pool(inputs, pool_size, strides, padding, data_format, "nn.average_pool", 0.0, mean)


def _bins(size: int, out: int) -> np.ndarray:
    """[out, size]: which inputs each adaptive bin covers (torch's and Keras's bins:
    floor(i·size/out) to ceil((i+1)·size/out))."""
    m = np.zeros((out, size), bool)
    for i in range(out):
        m[i, (i * size) // out : -(-((i + 1) * size) // out)] = True
    return m


def _adaptive(inputs, output_size, data_format, name: str, mode: str) -> Value:
    x, one_d = _as_2d(fval(inputs), name, data_format)
    out = _tuple(output_size, 1 if one_d else 2, f"{name}: output_size")
    out = (1, *out) if one_d else out
    for axis, (size, o) in enumerate(zip(x.shape[1:3], out)):
        bins = _bins(size, o)  # reduce axis 1 + axis of x: [N, ..., size, ...] -> [.., o, ..]
        moved = B.transpose(x, (0, 2, 3, 1)) if axis == 0 else B.transpose(x, (0, 1, 3, 2))
        mask = B.const_array(x.graph, bins.ravel().tolist(), DType.bool, bins.shape)
        rows = B.reshape(moved, (*moved.shape[:-1], 1, size))
        if mode == "average":
            inverse = (1.0 / bins.sum(1)).astype(np.float32)
            counts = B.const_array(x.graph, inverse.tolist(), DType.f32, (o,))
            pooled = B.reduce_sum(B.select(mask, rows, 0.0), (moved.rank,)) * counts
        else:
            pooled = B.reduce_max(B.select(mask, rows, -math.inf), (moved.rank,))
        x = B.transpose(pooled, (0, 3, 1, 2)) if axis == 0 else B.transpose(pooled, (0, 1, 3, 2))
    return _back(x, one_d)


@op
def adaptive_average_pool(inputs, output_size, data_format=None):
    return _adaptive(inputs, output_size, data_format, "nn.adaptive_average_pool", "average")


@op
def adaptive_max_pool(inputs, output_size, data_format=None):
    return _adaptive(inputs, output_size, data_format, "nn.adaptive_max_pool", "max")


# --- torch-style patches (channels first) -------------------------------------------------


def _pairs(kernel_size, dilation, padding, stride) -> tuple[tuple[int, int], ...]:
    return tuple(
        _tuple(v, 2, what)
        for v, what in ((kernel_size, "kernel_size"), (dilation, "dilation"),
                        (padding, "padding"), (stride, "stride"))
    )  # fmt: skip


@op
def unfold(x, kernel_size, dilation=1, padding=0, stride=1):
    """Keras's (and torch's) unfold: the sliding blocks of an [N, C, H, W] image as
    [N, C·KH·KW, L] (channel slowest, then kernel row and column)."""
    v = fval(x)
    if v.rank != 4:
        raise ValueError(f"nn.unfold: input must be [N, C, H, W], got shape {v.shape}")
    k, d, p, s = _pairs(kernel_size, dilation, padding, stride)
    n, c = v.shape[:2]
    patches = B.extract_patches(B.transpose(v, (0, 2, 3, 1)), k, s, d, (p[0], p[0], p[1], p[1]))
    _, oh, ow, _ = patches.shape
    blocks = B.reshape(patches, (n, oh * ow, k[0] * k[1], c))
    return B.reshape(B.transpose(blocks, (0, 3, 2, 1)), (n, c * k[0] * k[1], oh * ow))


@op
def fold(x, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """The adjoint of ``unfold``: blocks [N, C·KH·KW, L] added back into an
    [N, C, H, W] image of ``output_size`` (H, W)."""
    v = fval(x)
    k, d, p, s = _pairs(kernel_size, dilation, padding, stride)
    h, w = _tuple(output_size, 2, "output_size")
    n, ckk, count = v.shape
    c = ckk // (k[0] * k[1])
    pads = (p[0], p[0], p[1], p[1])
    oh = (h + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (w + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    if oh * ow != count:
        raise ValueError(f"nn.fold: {count} blocks do not tile an output of {(h, w)}")
    blocks = B.transpose(B.reshape(v, (n, c, k[0] * k[1], count)), (0, 3, 2, 1))
    patches = B.reshape(blocks, (n, oh, ow, k[0] * k[1] * c))
    image = B.fold_patches(patches, (h, w), k, s, d, pads)  # [N, H, W, C]
    return B.transpose(image, (0, 3, 1, 2))


# --- rearranging ---------------------------------------------------------------------------


@op
def depth_to_space(x, block_size, data_format="channels_last"):
    v = val(x)
    if data_format != "channels_last":
        raise unsupported("nn.depth_to_space", "channels_first")
    n, h, w, c = v.shape
    b = int(block_size)
    out_c = c // (b * b)
    y = B.reshape(v, (n, h, w, b, b, out_c))
    y = B.transpose(y, (0, 1, 3, 2, 4, 5))
    return B.reshape(y, (n, h * b, w * b, out_c))


@op
def space_to_depth(x, block_size, data_format="channels_last"):
    v = val(x)
    if data_format != "channels_last":
        raise unsupported("nn.space_to_depth", "channels_first")
    n, h, w, c = v.shape
    b = int(block_size)
    y = B.reshape(v, (n, h // b, b, w // b, b, c))
    y = B.transpose(y, (0, 1, 3, 2, 4, 5))
    return B.reshape(y, (n, h // b, w // b, b * b * c))


__all__ = [
    "adaptive_average_pool",
    "adaptive_max_pool",
    "average_pool",
    "conv",
    "conv_transpose",
    "depth_to_space",
    "depthwise_conv",
    "fold",
    "max_pool",
    "separable_conv",
    "space_to_depth",
    "unfold",
]
