"""Resampling images (``keras.ops.image`` and the image layers' shared math), over IR
values: resize matrices, separable filters, and sampling at computed coordinates as
``jax.scipy.ndimage.map_coordinates`` does with order 0 or 1 (what Keras's JAX backend
calls for ``affine_transform``, ``perspective_transform``, ``elastic_transform`` and
``map_coordinates``).

Along each axis a coordinate becomes taps: two (floor and floor + 1, weights 1 − f and
f) for bilinear, one (rounded half away from zero) for nearest; each tap's index is
folded into the image by the fill mode (JAX's index fixers: ``nearest`` clamps, ``wrap``
is periodic, ``reflect`` is d c b a | a b c d | d c b a, ``mirror`` is
d c b | a b c d | c b a) and, in ``constant`` mode, a tap outside the image reads
``fill_value``. A point's value is the sum over the product of its axes' taps.

Two ways to sample, by what the coordinates are:

- Axis-aligned maps (translation, zoom: ``x' = sx·x + ox``, ``y' = sy·y + oy``) sample
  rows and columns separately with one-hot weight matrices, as ``Resizing`` does:
  ``Wy · image · Wxᵀ``, products without a gather.
- Any other map (rotation, shear, perspective, displacement fields) gathers each output
  pixel's taps from its own image (``gather_rows``, a gather within each batch row):
  O(H·W·C) per image, 4 taps for bilinear.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.ir.ops.row_gather import gather_rows

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


def column(t: Value, i: int) -> Value:
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


@dataclass(frozen=True)
class Tap:
    """One tap of a point: its row in the flattened image, its weight (None: 1) and, in
    constant mode, whether it lies inside the image (None: always)."""

    index: Value  # i32
    weight: Value | None
    inside: Value | None


def _axis_taps(coord: Value, size: int, how: Sampling) -> list[tuple[Value, Value | None, Value]]:
    """(index folded into [0, size) as f32, weight, inside) per tap of one axis."""
    if how.interpolation == "nearest":
        taps = [(_round_half_away(coord), None)]
    else:
        low = B.floor(coord)
        upper = coord - low
        taps = [(low, 1.0 - upper), (low + 1.0, upper)]
    out = []
    for index, weight in taps:
        ok = B.logical_and(B.ge(index, 0.0), B.lt(index, float(size)))
        fixed = fix_index(index, size, how.fill_mode)
        if how.fill_mode == "constant":  # read a pixel inside; the mask puts the fill
            fixed = B.minimum(B.maximum(fixed, 0.0), float(size - 1))
        out.append((fixed, weight, ok))
    return out


def point_taps(coords: list[Value], sizes: tuple[int, ...], how: Sampling) -> list[Tap]:
    """The taps of points at ``coords`` (one f32 array per axis, all of one shape) in an
    array of ``sizes``, indexed in its row-major flattening."""
    taps: list[tuple[Value | None, Value | None, Value | None]] = [(None, None, None)]
    stride = int(np.prod(sizes))
    for coord, size in zip(coords, sizes, strict=True):
        stride //= size
        grown = []
        for index, weight, inside in taps:
            for fixed, w, ok in _axis_taps(coord, size, how):
                term = fixed * float(stride) if stride != 1 else fixed
                both_w = w if weight is None else (weight if w is None else weight * w)
                both_ok = None
                if how.fill_mode == "constant":
                    both_ok = ok if inside is None else B.logical_and(inside, ok)
                grown.append((term if index is None else index + term, both_w, both_ok))
        taps = grown
    return [Tap(B.cast(i, DType.i32), w, ok) for i, w, ok in taps]


def gather_points(table: Value, taps: list[Tap], how: Sampling) -> Value:
    """Sum over ``taps`` of weight · table row (or the fill outside): ``table`` [B, R, K]
    (f32), each tap's arrays [B, P], the result [B, P, K]."""
    out = None
    for tap in taps:
        value = gather_rows(table, tap.index)  # [B, P, K]
        if tap.inside is not None:
            inside = B.reshape(tap.inside, (*tap.inside.shape, 1))
            value = B.select(B.broadcast_to(inside, value.shape), value, how.fill_value)
        if tap.weight is not None:
            value = value * B.reshape(tap.weight, (*tap.weight.shape, 1))
        out = value if out is None else out + value
    return out


def sample_points(x: Value, ys: Value, xs: Value, how: Sampling) -> Value:
    """Images [N, H, W, C] (f32) sampled at rows ``ys`` and columns ``xs`` ([N, P] f32):
    [N, P, C], each point from its own image."""
    n, h, w, c = x.shape
    taps = point_taps([ys, xs], (h, w), how)
    return gather_points(B.reshape(x, (n, h * w, c)), taps, how)


def sample_affine(x: Value, transform: Value, how: Sampling) -> Value:
    """Images [N, H, W, C] (f32) resampled by ``transform`` [N, 8] (f32), an affine map
    (the projective c0, c1 are not read)."""
    return sample_affine_columns(x, [column(transform, i) for i in range(6)], how)


def output_grid(x: Value) -> tuple[Value, Value]:
    """The output pixels' columns and rows of images [N, H, W, C], each [1, H·W]."""
    h, w = x.shape[1], x.shape[2]
    xs = constant(x, np.tile(np.arange(w), h)[None, :])
    ys = constant(x, np.repeat(np.arange(h), w)[None, :])
    return xs, ys


def sample_affine_columns(x: Value, columns: list, how: Sampling) -> Value:
    """``sample_affine`` with the transform's a0, a1, a2, b0, b1, b2 given apart (each
    [N, 1] or a float): output pixel (y, x) reads x' = a0·x + a1·y + a2,
    y' = b0·x + b1·y + b2 of its image."""
    n, h, w, c = x.shape
    a0, a1, a2, b0, b1, b2 = columns
    xs, ys = output_grid(x)
    sx = B.broadcast_to(xs * a0 + ys * a1 + a2, (n, h * w))
    sy = B.broadcast_to(xs * b0 + ys * b1 + b2, (n, h * w))
    return B.reshape(sample_points(x, sy, sx, how), (n, h, w, c))


def separable(x: Value, rows: np.ndarray, cols: np.ndarray) -> Value:
    """Images [N, H, W, C] filtered by two constant matrices: ``rows`` [H', H] along the
    height, ``cols`` [W', W] along the width, as [N, H', W', C] (resizing, separable
    convolutions: products, no gather)."""
    y = B.matmul(B.transpose(x, (0, 1, 3, 2)), constant(x, cols), transpose_b=True)
    y = B.matmul(B.transpose(y, (0, 3, 2, 1)), constant(x, rows), transpose_b=True)
    return B.transpose(y, (0, 3, 1, 2))
