"""Resampling images (``keras.ops.image`` and the image layers' shared math), over IR
values: resize matrices, and sampling at transformed coordinates, as Keras's ``affine_transform`` does
(its JAX backend: ``jax.scipy.ndimage.map_coordinates`` with order 0 or 1), over IR values.

Output pixel (y, x) of image n samples the input at

    x' = a0·x + a1·y + a2,    y' = b0·x + b1·y + b2

(one row ``[a0, a1, a2, b0, b1, b2, c0, c1]`` of Keras's transform per image; the
projective ``c0, c1`` must be zero here). Along each axis a coordinate becomes taps: two
(floor and floor + 1, weights 1 − f and f) for bilinear, one (rounded half away from
zero) for nearest; each tap's index is folded into the image by the fill mode (JAX's
index fixers: ``nearest`` clamps, ``wrap`` is periodic, ``reflect`` is
d c b a | a b c d | d c b a, ``mirror`` is d c b | a b c d | c b a) and, in ``constant``
mode, a tap outside the image reads ``fill_value``.

The taps of one axis are a one-hot weight matrix ``[.., out, size]``, so resampling is
products with the image: no gather. When the transform keeps the axes (translation, zoom:
``a1 = b0 = 0``) the rows and columns are sampled separately, as ``Resizing`` does:
``Wy · image · Wxᵀ``, O(H·W·(H+W)·C) per image. A general transform (rotation) samples
the rows for every output pixel, then its two columns: O(H²·W²·C) work and
H·W·W·C floats per image if done at once (98 K for 32×32×3), fine for the small images
augmentation usually sees, slow for large ones (a batched gather primitive would make it O(H·W·C)).
In ``constant`` mode the fill's share is ``fill_value · (1 − vy·vx)``, vy and vx the
weight of the taps inside the image along each axis (the weights of a 2-D tap are the
product of its axes' weights, so the invalid share factors). The general path works in
blocks of output rows (``BLOCK_FLOATS``) so that its intermediate stays small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kcompile.ir import DType, Value
from kcompile.ir import build as B

FILL_MODES = ("constant", "nearest", "wrap", "mirror", "reflect")
INTERPOLATIONS = ("nearest", "bilinear")


@dataclass(frozen=True)
class Sampling:
    interpolation: str = "bilinear"
    fill_mode: str = "constant"
    fill_value: float = 0.0

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}"
            )
        if self.fill_mode not in FILL_MODES:
            raise ValueError(f"fill_mode must be one of {FILL_MODES}, got {self.fill_mode!r}")


def resize_matrix(size: int, target: int, method: str) -> np.ndarray:
    """[target, size]: output pixel i as weights of the input pixels (jax.image.resize,
    half-pixel centres, no antialiasing)."""
    scale = size / target
    centre = (np.arange(target) + 0.5) * scale - 0.5
    pixels = np.arange(size)
    if method == "bilinear":
        weights = np.maximum(0.0, 1.0 - np.abs(centre[:, None] - pixels[None, :]))
    else:  # nearest: the box [centre - 0.5, centre + 0.5)
        offset = centre[:, None] - pixels[None, :]
        weights = ((offset >= -0.5) & (offset < 0.5)).astype(np.float64)
    totals = weights.sum(axis=1, keepdims=True)
    return (weights / np.where(totals == 0, 1.0, totals)).astype(np.float32)


def _mirror(index: Value, size: int) -> Value:
    """JAX's ``_mirror_index_fixer``: |((i + s) mod 2s) − s| with s = size − 1."""
    s = size - 1
    if s == 0:
        return index * 0.0
    v = index + float(s)
    return B.abs(v - B.floor(v / float(2 * s)) * float(2 * s) - float(s))


def fix_index(index: Value, size: int, mode: str) -> Value:
    """An integral f32 tap index folded into [0, size) by the fill mode (``constant``
    leaves it, clipped to [-1, size] so that the one-hot row of an outside tap is 0)."""
    if mode == "constant":
        return B.minimum(B.maximum(index, -1.0), float(size))
    if mode == "nearest":
        return B.minimum(B.maximum(index, 0.0), float(size - 1))
    if mode == "wrap":
        return index - B.floor(index / float(size)) * float(size)
    if mode == "mirror":
        return _mirror(index, size)
    # reflect: floor((mirror(2i + 1, 2·size + 1) − 1) / 2)
    return B.floor((_mirror(index * 2.0 + 1.0, 2 * size + 1) - 1.0) * 0.5)


def _round_half_away(x: Value) -> Value:
    return B.sign(x) * B.floor(B.abs(x) + 0.5)


def axis_weights(coord: Value, size: int, how: Sampling) -> tuple[Value, Value | None]:
    """``coord`` [..., K] (f32 positions along an axis of ``size`` pixels) as weights
    [..., K, size], and in constant mode the weight inside the image [..., K]."""
    if how.interpolation == "nearest":
        taps = [(_round_half_away(coord), None)]
    else:
        low = B.floor(coord)
        upper = coord - low
        taps = [(low, 1.0 - upper), (low + 1.0, upper)]
    weights, inside = None, None
    for index, weight in taps:
        fixed = B.cast(fix_index(index, size, how.fill_mode), DType.i32)
        hot = B.one_hot(fixed, size)
        term = hot if weight is None else hot * B.reshape(weight, (*weight.shape, 1))
        weights = term if weights is None else weights + term
        if how.fill_mode == "constant":
            ok = B.logical_and(B.ge(index, 0.0), B.lt(index, float(size)))
            share = B.select(ok, index * 0.0 + 1.0 if weight is None else weight, 0.0)
            inside = share if inside is None else inside + share
    return weights, inside


def constant(x: Value, values: np.ndarray) -> Value:
    """An f32 array as a constant of ``x``'s graph."""
    array = np.asarray(values, np.float32)
    return B.const_array(x.graph, array.ravel().tolist(), DType.f32, array.shape)


def _column(t: Value, i: int) -> Value:
    """Column ``i`` of a transform [N, 8] as [N, 1]."""
    return B.slice_(t, [0, i], [t.shape[0], i + 1])


def sample_axis_aligned(
    x: Value,
    scale_x: Value | float,
    offset_x: Value | float,
    scale_y: Value | float,
    offset_y: Value | float,
    how: Sampling,
) -> Value:
    """Images [N, H, W, C] (f32) sampled at x' = scale_x·x + offset_x, y' = scale_y·y +
    offset_y; each parameter a float or [N, 1]."""
    n, h, w, c = x.shape
    sy = constant(x, np.arange(h)[None, :]) * scale_y + offset_y  # [N|1, H]
    sx = constant(x, np.arange(w)[None, :]) * scale_x + offset_x  # [N|1, W]
    sy = B.broadcast_to(sy, (n, h)) if sy.shape[0] != n else sy
    sx = B.broadcast_to(sx, (n, w)) if sx.shape[0] != n else sx
    wy, vy = axis_weights(sy, h, how)  # [N, H, H]
    wx, vx = axis_weights(sx, w, how)  # [N, W, W]
    rows = B.batch_matmul(wy, B.reshape(x, (n, h, w * c)))  # [N, H, W·C]
    by_column = B.transpose(B.reshape(rows, (n, h, w, c)), (0, 2, 1, 3))  # [N, W, H, C]
    cols = B.batch_matmul(wx, B.reshape(by_column, (n, w, h * c)))  # [N, W, H·C]
    out = B.transpose(B.reshape(cols, (n, w, h, c)), (0, 2, 1, 3))
    if vy is not None and how.fill_value != 0.0:
        inside = B.reshape(vy, (n, h, 1, 1)) * B.reshape(vx, (n, 1, w, 1))
        out = out + (1.0 - inside) * how.fill_value
    return out


def sample_affine(x: Value, transform: Value, how: Sampling) -> Value:
    """Images [N, H, W, C] (f32) resampled by ``transform`` [N, 8] (f32), a general
    affine map (see the module's docstring for its cost)."""
    return sample_affine_columns(x, [_column(transform, i) for i in range(6)], how)


# The floats per image a block of output rows may hold in the general path's intermediate
# (its rows interpolated at every column): blocks bound the memory, not the work.
BLOCK_FLOATS = 1 << 18  # 1 MiB per image: 72x72x3 images in 5 blocks


def sample_affine_columns(x: Value, columns: list, how: Sampling) -> Value:
    """``sample_affine`` with the transform's a0, a1, a2, b0, b1, b2 given apart (each
    [N, 1] or a float), in blocks of output rows."""
    n, h, w, c = x.shape
    rows_per_block = max(1, BLOCK_FLOATS // (w * w * c))
    blocks = [
        _sample_rows(x, columns, how, top, min(top + rows_per_block, h))
        for top in range(0, h, rows_per_block)
    ]
    out = blocks[0] if len(blocks) == 1 else B.concat(blocks, 1)
    return B.reshape(out, (n, h, w, c))


def _sample_rows(x: Value, columns: list, how: Sampling, top: int, bottom: int) -> Value:
    """Output rows [top, bottom) as [N, (bottom - top)·W, C]."""
    n, h, w, c = x.shape
    a0, a1, a2, b0, b1, b2 = columns
    ys = constant(x, np.repeat(np.arange(top, bottom), w)[None, :])  # [1, P], row-major
    xs = constant(x, np.tile(np.arange(w), bottom - top)[None, :])
    p = (bottom - top) * w
    sy = B.broadcast_to(xs * b0 + ys * b1 + b2, (n, p))
    sx = B.broadcast_to(xs * a0 + ys * a1 + a2, (n, p))
    wy, vy = axis_weights(sy, h, how)  # [N, P, H]
    wx, vx = axis_weights(sx, w, how)  # [N, P, W]
    rows = B.batch_matmul(wy, B.reshape(x, (n, h, w * c)))  # [N, P, W·C]
    picked = B.reshape(rows, (n, p, w, c)) * B.reshape(wx, (n, p, w, 1))
    out = B.reduce_sum(picked, (2,))  # [N, P, C]
    if vy is not None and how.fill_value != 0.0:
        out = out + B.reshape(1.0 - vy * vx, (n, p, 1)) * how.fill_value
    return out
