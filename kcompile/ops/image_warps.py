"""``keras.ops.image`` warps: ``map_coordinates``, ``perspective_transform``,
``elastic_transform`` and ``scale_and_translate``, as Keras's JAX backend computes them
(``jax.scipy.ndimage.map_coordinates`` of order 0 or 1, ``jax.image.scale_and_translate``).

Sampling at computed points gathers each point's taps (``image_sampling.sample_points``);
``scale_and_translate`` is separable, one constant weight matrix per spatial axis
(jax's ``compute_weight_mat`` in numpy) contracted with the images.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.backend.symbolic import TracedTensor
from kcompile.ir import BATCH, DType, Value
from kcompile.ir import build as B
from kcompile.ops.core import fval, op, unsupported, val
from kcompile.ops.image_filters import band, gaussian_kernel
from kcompile.ops.image_sampling import (
    FILL_MODES,
    Sampling,
    gather_points,
    output_grid,
    point_taps,
    sample_points,
    separable,
)

__all__ = [
    "elastic_transform",
    "homography",
    "map_coordinates",
    "perspective_transform",
    "scale_and_translate",
]

_ORDERS = {"nearest": 0, "bilinear": 1}


def _interpolation(name: str, interpolation: str) -> str:
    if interpolation not in _ORDERS:
        raise ValueError(
            f"keras.ops.image.{name}: invalid value for argument `interpolation`. Expected "
            f"one of {set(_ORDERS)}. Received: interpolation={interpolation}"
        )
    return interpolation


def _data_format(name: str, data_format: Any) -> None:
    if data_format not in (None, "channels_last"):
        raise unsupported(f"image.{name}", f"data_format={data_format!r}; only channels_last")


def _images(name: str, images: Any) -> tuple[Value, Value, bool]:
    """(the images as given, as f32 rank 4, whether one image was given)."""
    source = val(images)
    if source.rank not in (3, 4):
        raise ValueError(
            f"keras.ops.image.{name}: invalid images rank: expected rank 3 (single image) or "
            f"rank 4 (batch of images). Received input with shape: images.shape={source.shape}"
        )
    x = source if source.dtype is DType.f32 else B.cast(source, DType.f32)
    return source, (B.reshape(x, (1, *x.shape)) if x.rank == 3 else x), source.rank == 3


def _as_source(out: Value, source: Value, single: bool) -> Value:
    """Back to one image if one was given, and to the images' dtype (integers rounded
    half away from zero, as jax's map_coordinates)."""
    if source.dtype is not DType.f32:
        out = B.cast(B.sign(out) * B.floor(B.abs(out) + 0.5), source.dtype)
    return B.reshape(out, out.shape[1:]) if single else out


# --- map_coordinates ----------------------------------------------------------------


@op
def map_coordinates(inputs, coordinates, order, fill_mode="constant", fill_value=0):
    """``inputs`` (any rank, static shape) sampled at ``coordinates`` (one array of
    positions per axis of ``inputs``, stacked on the first axis), as
    ``jax.scipy.ndimage.map_coordinates``: order 0 (nearest) or 1 (linear)."""
    x = val(inputs)
    coords = fval(coordinates)
    if coords.rank < 2:
        raise ValueError(
            "keras.ops.image.map_coordinates: invalid coordinates rank: expected at least "
            f"rank 2. Received input with shape: {coords.shape}"
        )
    if coords.shape[0] != x.rank:
        raise ValueError(
            "keras.ops.image.map_coordinates: first dim of `coordinates` must be the same "
            f"as the rank of `inputs`. Received inputs with shape: {x.shape} and coordinate "
            f"leading dim of {coords.shape[0]}"
        )
    if fill_mode not in FILL_MODES:
        raise ValueError(
            "keras.ops.image.map_coordinates: invalid value for argument `fill_mode`. "
            f"Expected one of {set(FILL_MODES)}. Received: fill_mode={fill_mode}"
        )
    if order not in (0, 1):
        raise ValueError(
            "keras.ops.image.map_coordinates: invalid value for argument `order`. Expected "
            f"one of [0, 1]. Received: order={order}"
        )
    if BATCH in x.shape:
        raise unsupported(
            "image.map_coordinates",
            "inputs with a batch dimension (a point may read any batch row); give each "
            "image's coordinates to affine_transform or perspective_transform instead",
        )
    how = Sampling(("nearest", "bilinear")[order], fill_mode, float(fill_value))
    out_shape = coords.shape[1:]
    rows = out_shape[0] if out_shape[0] == BATCH else 1  # a batch of points, one table
    per_axis = []
    for axis in range(x.rank):
        c = B.slice_(coords, [axis] + [0] * len(out_shape), [axis + 1, *out_shape])
        per_axis.append(B.reshape(c, (rows, _count(out_shape))))
    table = B.reshape(x if x.dtype is DType.f32 else B.cast(x, DType.f32), (1, _count(x.shape), 1))
    if rows == BATCH:
        table = B.broadcast_to(table, (BATCH, table.shape[1], 1))
    out = gather_points(table, point_taps(per_axis, x.shape, how), how)
    out = B.reshape(out, out_shape)
    if x.dtype is not DType.f32:
        out = B.cast(B.sign(out) * B.floor(B.abs(out) + 0.5), x.dtype)
    return out


def _count(shape: tuple) -> int:
    return int(np.prod([d for d in shape if d != BATCH]))


# --- perspective_transform ---------------------------------------------------------


def homography(start: Value, end: Value) -> Value:
    """Keras's ``compute_homography_matrix``: the [N, 8] projective maps taking ``end``
    points to ``start`` points ([N, 4, 2] each: the corners (0, 0), (1, 0), (0, 1),
    (1, 1) of a quadrilateral). Keras solves an 8×8 system; the same map is
    S(start)·adj(S(end)), S(q) the unit square's map onto q in Heckbert's closed form and
    adj the adjugate (the inverse up to scale): a few dozen elementwise ops per image
    instead of an unrolled elimination."""
    n = start.shape[0]

    def coordinate(points: Value, corner: int, axis: int) -> Value:  # [N, 1]
        return B.reshape(B.slice_(points, [0, corner, axis], [n, corner + 1, axis + 1]), (n, 1))

    source, target = _square_to_quad(start, coordinate), _square_to_quad(end, coordinate)
    m = _product(source, _adjugate(target))
    return B.concat([m[i] / m[8] for i in range(8)], 1)


Matrix = list  # a 3×3 matrix as nine [N, 1] values, row by row


def _square_to_quad(points: Value, coordinate) -> Matrix:
    """Heckbert's map of the unit square onto the quadrilateral whose corners (0, 0),
    (1, 0), (1, 1), (0, 1) go to Keras's points 0, 1, 3, 2."""
    x0, x1, x2, x3 = (coordinate(points, i, 0) for i in (0, 1, 3, 2))
    y0, y1, y2, y3 = (coordinate(points, i, 1) for i in (0, 1, 3, 2))
    sx, sy = x0 - x1 + x2 - x3, y0 - y1 + y2 - y3
    dx1, dx2, dy1, dy2 = x1 - x2, x3 - x2, y1 - y2, y3 - y2
    den = dx1 * dy2 - dx2 * dy1
    g = (sx * dy2 - dx2 * sy) / den
    h = (dx1 * sy - sx * dy1) / den
    one = g * 0.0 + 1.0
    return [x1 - x0 + g * x1, x3 - x0 + h * x3, x0, y1 - y0 + g * y1, y3 - y0 + h * y3, y0,
            g, h, one]  # fmt: skip


def _adjugate(m: Matrix) -> Matrix:
    a, b, c, d, e, f, g, h, i = m
    return [e * i - f * h, c * h - b * i, b * f - c * e,
            f * g - d * i, a * i - c * g, c * d - a * f,
            d * h - e * g, b * g - a * h, a * e - b * d]  # fmt: skip


def _product(p: Matrix, q: Matrix) -> Matrix:
    return [
        p[3 * r] * q[c] + p[3 * r + 1] * q[3 + c] + p[3 * r + 2] * q[6 + c]
        for r in range(3)
        for c in range(3)
    ]


def projective_points(x: Value, transform: Value) -> tuple[Value, Value]:
    """The input rows and columns ([N, H·W] each) that output pixels of images ``x``
    read under ``transform`` [N, 8]: x' = (t0·x + t1·y + t2)/k, y' = (t3·x + t4·y + t5)/k,
    k = t6·x + t7·y + 1."""
    n = transform.shape[0]
    t = [B.slice_(transform, [0, i], [n, i + 1]) for i in range(8)]
    xs, ys = output_grid(x)
    denominator = t[6] * xs + t[7] * ys + 1.0
    x_in = (t[0] * xs + t[1] * ys + t[2]) / denominator
    y_in = (t[3] * xs + t[4] * ys + t[5]) / denominator
    p = x.shape[1] * x.shape[2]
    return B.broadcast_to(y_in, (x.shape[0], p)), B.broadcast_to(x_in, (x.shape[0], p))


def _points(name: str, points: Any) -> Value:
    v = fval(points)
    if v.rank not in (2, 3) or tuple(v.shape[-2:]) != (4, 2):
        raise ValueError(
            f"keras.ops.image.perspective_transform: invalid {name} shape: expected (4,2) "
            f"for a single image or (N,4,2) for a batch. Received shape: {v.shape}"
        )
    return B.reshape(v, (1, 4, 2)) if v.rank == 2 else v


@op
def perspective_transform(
    images, start_points, end_points, interpolation="bilinear", fill_value=0, data_format=None
):
    """Images warped so that ``start_points`` go to ``end_points`` (four (x, y) corners
    each), sampling outside the image as ``fill_value``, as Keras's."""
    _data_format("perspective_transform", data_format)
    how = Sampling(_interpolation("perspective_transform", interpolation), "constant",
                   float(fill_value))  # fmt: skip
    source, x, single = _images("perspective_transform", images)
    start, end = _points("start_points", start_points), _points("end_points", end_points)
    if start.shape != end.shape:
        raise ValueError(
            "keras.ops.image.perspective_transform: start_points and end_points must have "
            f"the same shape. Received start_points.shape={start.shape}, "
            f"end_points.shape={end.shape}"
        )
    transform = homography(start, end)
    if transform.shape[0] != x.shape[0]:
        transform = B.broadcast_to(transform, (x.shape[0], 8))
    out = warp(x, transform, how)
    return _as_source(out, source, single)


def warp(x: Value, transform: Value, how: Sampling) -> Value:
    """Images [N, H, W, C] resampled by projective maps [N, 8]."""
    n, h, w, c = x.shape
    ys, xs = projective_points(x, transform)
    return B.reshape(sample_points(x, ys, xs, how), (n, h, w, c))


# --- elastic_transform -------------------------------------------------------------


def standard_normal_field(x: Value, seed: Any) -> Value:
    """Normal draws [N, H, W] for images ``x``: kcompile's counter-based stream in a
    traced step, numpy's eagerly (the numbers are not JAX's)."""
    from kcompile import random

    shape = (None if x.shape[0] == BATCH else x.shape[0], x.shape[1], x.shape[2])
    draws = random.normal(shape, seed=seed)
    return draws.value if isinstance(draws, TracedTensor) else val(draws)


def displace(x: Value, field: Value, alpha: Value | float, sigma: float, how: Sampling) -> Value:
    """Keras's elastic warp of images [N, H, W, C] by a normal ``field`` [N, H, W]: the
    field is blurred by a Gaussian of ``sigma`` (kernel int(6σ)|1, zero padded), scaled
    by ``alpha`` and added to both coordinates (Keras draws dx and dy from one seed, so
    they are equal)."""
    n, h, w, c = x.shape
    size = int(6 * sigma) | 1
    kernel = gaussian_kernel(size, sigma)
    blurred = separable(B.reshape(field * sigma, (n, h, w, 1)), band(kernel, h, "same"),
                        band(kernel, w, "same"))  # fmt: skip
    shift = B.reshape(blurred, (n, h * w)) * alpha
    xs, ys = output_grid(x)
    out = sample_points(x, ys + shift, xs + shift, how)
    return B.reshape(out, (n, h, w, c))


@op
def elastic_transform(
    images,
    alpha=20.0,
    sigma=5.0,
    interpolation="bilinear",
    fill_mode="reflect",
    fill_value=0.0,
    seed=None,
    data_format=None,
):
    """Keras's elastic deformation. The random field is drawn from kcompile's streams,
    not JAX's: the same distribution, other numbers."""
    _data_format("elastic_transform", data_format)
    interpolation = _interpolation("elastic_transform", interpolation)
    if fill_mode not in FILL_MODES:
        raise ValueError(
            "keras.ops.image.elastic_transform: invalid value for argument `fill_mode`. "
            f"Expected of one {FILL_MODES}. Received: fill_mode={fill_mode}"
        )
    how = Sampling(interpolation, fill_mode, float(fill_value))
    source, x, single = _images("elastic_transform", images)
    field = standard_normal_field(x, seed)
    out = displace(x, field, float(alpha), float(sigma), how)
    return _as_source(out, source, single)


# --- scale_and_translate ------------------------------------------------------------


def _lanczos(radius: float):
    def kernel(x: np.ndarray) -> np.ndarray:
        y = radius * np.sin(np.pi * x) * np.sin(np.pi * x / radius)
        safe = np.where(x != 0, np.pi**2 * x**2, 1)
        out = np.where(x > 1e-3, y / safe, 1)
        return np.where(x > radius, 0.0, out)

    return kernel


def _keys_cubic(x: np.ndarray) -> np.ndarray:
    out = ((1.5 * x - 2.5) * x) * x + 1.0
    out = np.where(x >= 1.0, ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0, out)
    return np.where(x >= 2.0, 0.0, out)


def _triangle(x: np.ndarray) -> np.ndarray:
    return np.maximum(0, 1 - np.abs(x))


_KERNELS = {
    **dict.fromkeys(("linear", "bilinear", "trilinear"), _triangle),
    **dict.fromkeys(("cubic", "bicubic", "tricubic"), _keys_cubic),
    "lanczos3": _lanczos(3.0),
    "lanczos5": _lanczos(5.0),
}


def weight_matrix(
    size: int, target: int, scale: float, translation: float, kernel, antialias: bool
) -> np.ndarray:
    """jax's ``compute_weight_mat`` (no edge padding) in numpy, float32: [size, target]."""
    f32 = np.float32
    scale, translation = f32(scale), f32(translation)
    inv_scale = f32(1.0) / scale
    kernel_scale = max(inv_scale, f32(1.0)) if antialias else f32(1.0)
    sample = (np.arange(target, dtype=f32) + f32(0.5)) * inv_scale - translation * inv_scale
    sample = (sample - f32(0.5)).astype(f32)
    x = np.abs(sample[None, :] - np.arange(size, dtype=f32)[:, None]) / kernel_scale
    weights = kernel(x.astype(f32)).astype(f32)
    total = weights.sum(axis=0, keepdims=True, dtype=f32)
    ok = np.abs(total) > 1000.0 * float(np.finfo(np.float32).eps)
    weights = np.where(ok, weights / np.where(total != 0, total, 1), 0)
    inside = (sample >= -0.5) & (sample <= size - 0.5)
    return np.where(inside[None, :], weights, 0).astype(f32)


def _constant_floats(name: str, values: Any, count: int) -> list[float]:
    if isinstance(values, TracedTensor | Value) or hasattr(values, "_history"):
        raise unsupported(
            "image.scale_and_translate", f"a traced {name}; give it as numbers or an array"
        )
    array = np.asarray(values, np.float32).ravel()
    if array.size != count:
        raise ValueError(
            f"keras.ops.image.scale_and_translate: {name} needs one value per spatial "
            f"dimension ({count}), got {array.size}"
        )
    return array.tolist()


def scale_and_translate(
    images, output_shape, scale, translation, spatial_dims, method, antialias=True
):
    """``jax.image.scale_and_translate``: each spatial axis resampled at
    (i + 0.5 − translation)/scale − 0.5 by ``method``'s kernel (widened by 1/scale when
    ``antialias`` and shrinking); scale and translation must be known when tracing."""
    if method not in _KERNELS:
        raise ValueError(
            "keras.ops.image.scale_and_translate: invalid value for argument `method`. "
            f"Expected of one {set(_KERNELS)}. Received: method={method}"
        )
    dims = [int(d) for d in spatial_dims]
    scales = _constant_floats("scale", scale, len(dims))
    translations = _constant_floats("translation", translation, len(dims))
    return _scale_and_translate(
        images, tuple(output_shape), dims, scales, translations, method, bool(antialias)
    )


@op
def _scale_and_translate(images, output_shape, dims, scales, translations, method, antialias):
    x = val(images)
    x = x if x.dtype is DType.f32 else B.cast(x, DType.f32)
    if len(output_shape) != x.rank:
        raise ValueError(
            "keras.ops.image.scale_and_translate: output_shape must have one entry per "
            f"dimension of the images; {output_shape} vs {x.shape}"
        )
    for i, axis in enumerate(dims):
        axis = axis % x.rank
        if x.shape[axis] == BATCH:
            raise unsupported("image.scale_and_translate", "resampling the batch dimension")
        matrix = weight_matrix(
            x.shape[axis], int(output_shape[axis]), scales[i], translations[i],
            _KERNELS[method], antialias,
        )  # fmt: skip
        order = [d for d in range(x.rank) if d != axis] + [axis]
        moved = B.matmul(B.transpose(x, order), _matrix(x, matrix))
        back = [int(i) for i in np.argsort(order)]
        x = B.transpose(moved, back)
    return x


def _matrix(x: Value, array: np.ndarray) -> Value:
    return B.const_array(x.graph, array.ravel().tolist(), DType.f32, array.shape)
