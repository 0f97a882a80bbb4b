"""``keras.ops.image`` (channels last): resize, affine_transform, extract_patches,
extract_patches_3d, crop_images, pad_images, rgb_to_grayscale, rgb_to_hsv, hsv_to_rgb,
and from their own modules the filters (``image_filters``: gaussian_blur, sobel_edges,
ssim) and the warps (``image_warps``: map_coordinates, perspective_transform,
elastic_transform, scale_and_translate). Images are (batch, height, width, channels) or
one image (height, width, channels). A name of Keras's module not offered here is
refused with the reason (the module's ``__getattr__``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.ops.core import fval, op, unsupported, val
from kcompile.ops.image_filters import gaussian_blur, sobel_edges, ssim
from kcompile.ops.image_sampling import (
    Sampling,
    column,
    resize_matrix,
    sample_affine,
    sample_axis_aligned,
    separable,
)
from kcompile.ops.image_warps import (
    elastic_transform,
    map_coordinates,
    perspective_transform,
    scale_and_translate,
)

__all__ = [
    "affine_transform",
    "crop_images",
    "elastic_transform",
    "extract_patches",
    "extract_patches_3d",
    "gaussian_blur",
    "hsv_to_rgb",
    "map_coordinates",
    "pad_images",
    "perspective_transform",
    "resize",
    "rgb_to_grayscale",
    "rgb_to_hsv",
    "scale_and_translate",
    "sobel_edges",
    "ssim",
]

_REFUSED: dict[str, str] = {}


def __getattr__(name: str):
    why = _REFUSED.get(name)
    if why is None:
        raise AttributeError(f"module 'kcompile.ops.image' has no attribute {name!r}")
    raise unsupported(f"image.{name}", why)


def _data_format(name: str, data_format: Any) -> None:
    if data_format not in (None, "channels_last"):
        raise unsupported(f"image.{name}", f"data_format={data_format!r}; only channels_last")


def _batched(name: str, images: Value) -> tuple[Value, bool]:
    """Images as rank 4, and whether one image was given."""
    if images.rank == 3:
        return B.reshape(images, (1, *images.shape)), True
    if images.rank != 4:
        raise ValueError(
            f"keras.ops.image.{name}: expected rank 3 (single image) or rank 4 (batch of "
            f"images), got images of shape {images.shape}"
        )
    return images, False


def _unbatched(out: Value, single: bool) -> Value:
    return B.reshape(out, out.shape[1:]) if single else out


def _float(x: Value) -> Value:
    return x if x.dtype is DType.f32 else B.cast(x, DType.f32)


@op
def resize(
    images,
    size,
    interpolation="bilinear",
    antialias=False,
    crop_to_aspect_ratio=False,
    pad_to_aspect_ratio=False,
    fill_mode="constant",
    fill_value=0.0,
    data_format=None,
):
    """``jax.image.resize`` without antialiasing, as Keras's ``Resizing``."""
    _data_format("resize", data_format)
    if interpolation not in ("bilinear", "nearest"):
        raise unsupported("image.resize", f"interpolation {interpolation!r}; bilinear and nearest")
    if antialias or crop_to_aspect_ratio or pad_to_aspect_ratio:
        raise unsupported("image.resize", "antialias, crop_to_aspect_ratio and pad_to_aspect_ratio")
    if len(size) != 2:
        raise ValueError(f"keras.ops.image.resize: size must be (height, width), got {size}")
    x, single = _batched("resize", _float(val(images)))
    h, w = x.shape[1], x.shape[2]
    rows = resize_matrix(h, int(size[0]), interpolation)
    cols = resize_matrix(w, int(size[1]), interpolation)
    return _unbatched(separable(x, rows, cols), single)


def _constant_transform(transform: Any) -> np.ndarray | None:
    if isinstance(transform, np.ndarray | list | tuple):
        array = np.asarray(transform, np.float32)
        return array.reshape(-1, 8) if array.shape[-1:] == (8,) else None
    return None


@op
def affine_transform(
    images,
    transform,
    interpolation="bilinear",
    fill_mode="constant",
    fill_value=0,
    data_format=None,
):
    """Keras's ``affine_transform`` (its JAX backend's sampling: see
    ``image_preprocessing/sampling.py``). The projective entries c0, c1 must be 0."""
    _data_format("affine_transform", data_format)
    how = Sampling(interpolation, fill_mode, float(fill_value))
    known = _constant_transform(transform)
    if known is not None and np.any(known[:, 6:] != 0):
        raise unsupported("image.affine_transform", "a projective transform (c0, c1 not 0)")
    source = val(images)
    x, single = _batched("affine_transform", _float(source))
    t = fval(transform)
    if t.rank == 1:
        t = B.reshape(t, (1, *t.shape))
    if t.rank != 2 or t.shape[1] != 8:
        raise ValueError(
            f"keras.ops.image.affine_transform: transform must be [8] or [batch, 8], got {t.shape}"
        )
    if known is not None and not np.any(known[:, [1, 3]]):  # no rotation or shear
        a0, a2, b1, b2 = (column(t, i) for i in (0, 2, 4, 5))
        out = sample_axis_aligned(x, a0, a2, b1, b2, how)
    else:
        out = sample_affine(x, t, how)
    if source.dtype is not DType.f32:  # integer images: rounded half away, as JAX
        out = B.cast(B.sign(out) * B.floor(B.abs(out) + 0.5), source.dtype)
    return _unbatched(out, single)


def _pair(value: Any, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    if len(value) != 2:
        raise ValueError(f"keras.ops.image.extract_patches: {name} must be an int or a pair")
    return int(value[0]), int(value[1])


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


@op
def extract_patches(images, size, strides=None, dilation_rate=1, padding="valid", data_format=None):
    """Patches of (batch, height, width, channels) images as (batch, rows, cols,
    size_h·size_w·channels), each patch in (row, column, channel) order, as Keras's."""
    _data_format("extract_patches", data_format)
    if not isinstance(size, int) and len(size) == 3:
        raise unsupported("image.extract_patches", "3-D patches (volumes)")
    kernel = _pair(size, "size")
    stride = _pair(strides or size, "strides")
    dilation = _pair(dilation_rate, "dilation_rate")
    x, single = _batched("extract_patches", val(images))
    if padding == "same":
        top, bottom = _same_padding(x.shape[1], kernel[0], stride[0], dilation[0])
        left, right = _same_padding(x.shape[2], kernel[1], stride[1], dilation[1])
        pads = (top, bottom, left, right)
    elif padding == "valid":
        pads = (0, 0, 0, 0)
    else:
        raise ValueError(f"keras.ops.image.extract_patches: padding {padding!r}")
    out = B.extract_patches(_float(x), kernel, stride, dilation, pads)
    return _unbatched(out, single)


def _triple(value: Any, name: str) -> tuple[int, int, int]:
    if isinstance(value, int):
        return value, value, value
    if len(value) != 3:
        raise ValueError(
            f"keras.ops.image.extract_patches_3d: invalid `{name}` argument. Expected an int "
            f"or a tuple of length 3. Received: {name}={value}"
        )
    return int(value[0]), int(value[1]), int(value[2])


@op
def extract_patches_3d(
    volumes, size, strides=None, dilation_rate=1, padding="valid", data_format=None
):
    """Patches of (batch, depth, height, width, channels) volumes as (batch, depths, rows,
    cols, size_d·size_h·size_w·channels), each patch in (depth, row, column, channel)
    order, as Keras's (its convolution with an identity kernel): per output depth, the
    2-D patches of each of its slices, side by side."""
    _data_format("extract_patches_3d", data_format)
    kernel = _triple(size, "size")
    stride = _triple(strides or kernel, "strides")
    dilation = _triple(dilation_rate, "dilation_rate")
    v = val(volumes)
    if v.rank not in (4, 5):
        raise ValueError(
            "keras.ops.image.extract_patches_3d: expected rank 4 (single volume) or rank 5 "
            f"(batch of volumes), got volumes of shape {v.shape}"
        )
    single = v.rank == 4
    v = _float(B.reshape(v, (1, *v.shape)) if single else v)
    n, depth, h, w, c = v.shape
    if padding == "same":
        front, back = _same_padding(depth, kernel[0], stride[0], dilation[0])
        top, bottom = _same_padding(h, kernel[1], stride[1], dilation[1])
        left, right = _same_padding(w, kernel[2], stride[2], dilation[2])
        v = B.pad(v, [0, front, 0, 0, 0], [0, back, 0, 0, 0]) if front or back else v
        pads = (top, bottom, left, right)
    elif padding == "valid":
        pads = (0, 0, 0, 0)
    else:
        raise ValueError(f"keras.ops.image.extract_patches_3d: padding {padding!r}")
    depths = (v.shape[1] - (kernel[0] - 1) * dilation[0] - 1) // stride[0] + 1
    if depths < 1:
        raise ValueError(
            "keras.ops.image.extract_patches_3d: the patches do not fit volumes of shape "
            f"{v.shape[1:]}"
        )

    def plane(z: int) -> Value:  # the 2-D patches of depth slice z, [N, 1, OH, OW, K2]
        cut = B.reshape(B.slice_(v, [0, z, 0, 0, 0], [n, z + 1, h, w, c]), (n, h, w, c))
        p = B.extract_patches(cut, kernel[1:], stride[1:], dilation[1:], pads)
        return B.reshape(p, (n, 1, *p.shape[1:]))

    rows = []
    for od in range(depths):
        first = od * stride[0]
        rows.append(B.concat([plane(first + i * dilation[0]) for i in range(kernel[0])], 4))
    out = rows[0] if depths == 1 else B.concat(rows, 1)
    return B.reshape(out, out.shape[1:]) if single else out


def _check_two_of(name: str, a: Any, b: Any, target: Any, what: tuple) -> None:
    """Keras's rule: exactly two of the two margins and the target size are given."""
    if [a, b, target].count(None) != 1:
        raise ValueError(
            f"keras.ops.image.{name}: must specify exactly two of {', '.join(what)}. "
            f"Received: {what[0]}={a}, {what[1]}={b}, {what[2]}={target}"
        )


@op
def pad_images(
    images,
    top_padding=None,
    left_padding=None,
    bottom_padding=None,
    right_padding=None,
    target_height=None,
    target_width=None,
    data_format=None,
):
    """Zero padding of images to a size, as Keras's."""
    _data_format("pad_images", data_format)
    x, single = _batched("pad_images", val(images))
    h, w = x.shape[1], x.shape[2]
    _check_two_of(
        "pad_images",
        top_padding,
        bottom_padding,
        target_height,
        ("top_padding", "bottom_padding", "target_height"),
    )
    _check_two_of(
        "pad_images",
        left_padding,
        right_padding,
        target_width,
        ("left_padding", "right_padding", "target_width"),
    )
    top = target_height - bottom_padding - h if top_padding is None else top_padding
    bottom = target_height - top - h if bottom_padding is None else bottom_padding
    left = target_width - right_padding - w if left_padding is None else left_padding
    right = target_width - left - w if right_padding is None else right_padding
    for name, v in (
        ("top_padding", top),
        ("left_padding", left),
        ("right_padding", right),
        ("bottom_padding", bottom),
    ):
        if v < 0:
            raise ValueError(f"keras.ops.image.pad_images: {name} must be >= 0. Received: {v}")
    out = B.pad(x, [0, top, left, 0], [0, bottom, right, 0])
    return _unbatched(out, single)


@op
def crop_images(
    images,
    top_cropping=None,
    left_cropping=None,
    bottom_cropping=None,
    right_cropping=None,
    target_height=None,
    target_width=None,
    data_format=None,
):
    """A window of the images, as Keras's."""
    _data_format("crop_images", data_format)
    x, single = _batched("crop_images", val(images))
    h, w = x.shape[1], x.shape[2]
    _check_two_of(
        "crop_images",
        top_cropping,
        bottom_cropping,
        target_height,
        ("top_cropping", "bottom_cropping", "target_height"),
    )
    _check_two_of(
        "crop_images",
        left_cropping,
        right_cropping,
        target_width,
        ("left_cropping", "right_cropping", "target_width"),
    )
    top = h - target_height - bottom_cropping if top_cropping is None else top_cropping
    height = h - bottom_cropping - top if target_height is None else target_height
    left = w - target_width - right_cropping if left_cropping is None else left_cropping
    width = w - right_cropping - left if target_width is None else target_width
    for name, v in (
        ("top_cropping", top),
        ("target_height", height),
        ("left_cropping", left),
        ("target_width", width),
    ):
        if v < 0:
            raise ValueError(f"keras.ops.image.crop_images: {name} must be >= 0. Received: {v}")
    if top + height > h or left + width > w:
        raise ValueError(
            f"keras.ops.image.crop_images: the window ({top}+{height}, {left}+{width}) "
            f"does not fit images of {h}x{w}"
        )
    out = B.slice_(x, [0, top, left, 0], [x.shape[0], top + height, left + width, x.shape[3]])
    return _unbatched(out, single)


@op
def rgb_to_grayscale(images, data_format=None):
    """0.2989·R + 0.5870·G + 0.1140·B, one channel kept; in the images' dtype."""
    _data_format("rgb_to_grayscale", data_format)
    source = val(images)
    if source.rank not in (3, 4):
        raise ValueError(
            "keras.ops.image.rgb_to_grayscale: expected rank 3 (single image) or rank 4 "
            f"(batch of images), got {source.shape}"
        )
    channels = source.shape[-1]
    if channels not in (1, 3):
        raise ValueError(
            "keras.ops.image.rgb_to_grayscale: expected 3 (RGB) or 1 (grayscale) channels, "
            f"got {channels}"
        )
    if channels == 1:
        return source
    weights = B.const_array(source.graph, [0.2989, 0.5870, 0.1140], DType.f32, (3, 1))
    gray = B.matmul(_float(source), weights)
    return gray if source.dtype is DType.f32 else B.cast(gray, source.dtype)


def _planes(name: str, images: Any) -> list[Value]:
    """The three channels of float images, each [..., 1]."""
    x = val(images)
    if x.rank not in (3, 4):
        raise ValueError(
            f"keras.ops.image.{name}: expected rank 3 (single image) or rank 4 (batch of "
            f"images), got {x.shape}"
        )
    if x.dtype is not DType.f32:
        raise TypeError(
            f"keras.ops.image.{name}: expected float images, got {x.dtype.name} (as Keras)"
        )
    if x.shape[-1] != 3:
        raise ValueError(f"keras.ops.image.{name}: expected 3 channels, got {x.shape[-1]}")
    end = list(x.shape)
    return [B.slice_(x, [0] * (x.rank - 1) + [i], [*end[:-1], i + 1]) for i in range(3)]


@op
def rgb_to_hsv(images, data_format=None):
    """Keras's (dm_pix's) RGB to HSV, hue in [0, 1)."""
    _data_format("rgb_to_hsv", data_format)
    eps = float(np.finfo(np.float32).eps)
    r, g, b = (B.select(B.lt(B.abs(p), eps), 0.0, p) for p in _planes("rgb_to_hsv", images))
    value = B.maximum(B.maximum(r, g), b)
    spread = value - B.minimum(B.minimum(r, g), b)
    positive, spreads = B.gt(value, 0.0), B.gt(spread, 0.0)
    saturation = B.select(positive, spread / B.select(positive, value, 1.0), 0.0)
    norm = 1.0 / (B.select(spreads, spread, 1.0) * 6.0)
    hue = B.select(B.eq(value, g), norm * (b - r) + 2.0 / 6.0, norm * (r - g) + 4.0 / 6.0)
    hue = B.select(B.eq(value, r), norm * (g - b), hue)
    hue = B.select(spreads, hue, 0.0) + B.cast(B.lt(hue, 0.0), DType.f32)
    return B.concat([hue, saturation, value], hue.rank - 1)


@op
def hsv_to_rgb(images, data_format=None):
    """Keras's (dm_pix's) HSV to RGB."""
    _data_format("hsv_to_rgb", data_format)
    hue, saturation, value = _planes("hsv_to_rgb", images)
    dh = (hue - B.floor(hue)) * 6.0

    def clip01(v: Value) -> Value:
        return B.minimum(B.maximum(v, 0.0), 1.0)

    channels = [
        clip01(B.abs(dh - 3.0) - 1.0),
        clip01(2.0 - B.abs(dh - 2.0)),
        clip01(2.0 - B.abs(dh - 4.0)),
    ]
    gray = 1.0 - saturation
    out = [value * (gray + saturation * d) for d in channels]
    return B.concat(out, hue.rank - 1)
