"""Preprocessing layers that live in the model, channels last: Rescaling, Normalization
(with ``adapt``), CenterCrop and Resizing (bilinear or nearest).

Resizing is Keras's JAX backend's ``jax.image.resize`` without antialiasing: each output
pixel samples the input at (i + 0.5)·in/out − 0.5 with triangle (bilinear) or box
(nearest) weights normalized over the pixels that exist. Along each axis that is a
constant matrix, so a resize is two products with constants, and its gradient their
transposes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.backend.keras_tensor import keras_shape
from kcompile.ir import DType
from kcompile.ir import build as B
from kcompile.layers.layer import Layer

EPSILON = 1e-7  # keras.config.epsilon()


class Rescaling(Layer):
    """``x * scale + offset`` (scale and offset numbers or per-channel lists)."""

    propagates_mask = True

    def __init__(self, scale: Any, offset: Any = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scale, self.offset = scale, offset

    def call(self, ctx, x):
        x = B.cast(x, DType.f32) if x.dtype is not DType.f32 else x
        return x * _constant(x, self.scale) + _constant(x, self.offset)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


def _constant(x, value: Any):
    array = np.asarray(value, np.float32)
    if array.ndim == 0:
        return float(array)
    return B.const_array(x.graph, array.ravel().tolist(), DType.f32, array.shape)


class Normalization(Layer):
    """Keras's ``Normalization``: ``(x - mean) / max(sqrt(variance), 1e-7)`` per feature of
    ``axis`` (``invert=True`` undoes it), from ``mean``/``variance`` or ``adapt(data)``
    (the data's mean and population variance)."""

    propagates_mask = True

    def __init__(
        self, axis: Any = -1, mean: Any = None, variance: Any = None, invert: bool = False, **kw
    ) -> None:
        super().__init__(**kw)
        self.axis = () if axis is None else (axis,) if isinstance(axis, int) else tuple(axis)
        if (mean is None) != (variance is None):
            raise ValueError(
                f"Normalization '{self.name}': give both mean and variance, or neither"
            )
        self.input_mean, self.input_variance, self.invert = mean, variance, invert

    def _kept(self, rank: int) -> tuple[int, ...]:
        kept = tuple(sorted(a % rank for a in self.axis))
        if 0 in kept:
            raise ValueError(f"Normalization '{self.name}': the batch axis cannot be kept")
        return kept

    def build(self, input_shape):
        rank = len(input_shape)
        kept = self._kept(rank)
        if any(input_shape[a] is None for a in kept):
            raise ValueError(
                f"Normalization '{self.name}': axis {self.axis} of input shape {input_shape} "
                "must have known sizes"
            )
        shape = tuple(input_shape[a] for a in kept)
        self._broadcast = tuple(input_shape[a] if a in kept else 1 for a in range(1, rank))
        if self.input_mean is None:
            self.mean = self.add_weight(shape, "zeros", trainable=False, name="mean")
            self.variance = self.add_weight(shape, "ones", trainable=False, name="variance")
            self.count = self.add_weight((), "zeros", trainable=False, name="count")
        else:
            self.mean = np.broadcast_to(np.asarray(self.input_mean, np.float32), shape)
            self.variance = np.broadcast_to(np.asarray(self.input_variance, np.float32), shape)

    def adapt(self, data: Any) -> None:
        """The mean and (population) variance of ``data`` (an array, or an iterable of
        batches) over every axis but ``axis``."""
        batches = [data] if hasattr(data, "shape") else list(data)
        arrays = [np.asarray(b[0] if isinstance(b, tuple) else b, np.float64) for b in batches]
        if not arrays or not arrays[0].size:
            raise ValueError(f"Normalization '{self.name}': adapt() got no data")
        if not self.built:
            self.build((None, *arrays[0].shape[1:]))
            self.built = True
        whole = np.concatenate(arrays)
        reduce = tuple(a for a in range(whole.ndim) if a not in self._kept(whole.ndim))
        self.mean.assign(whole.mean(axis=reduce).astype(np.float32))
        self.variance.assign(whole.var(axis=reduce).astype(np.float32))
        self.count.assign(np.float32(whole.size // max(1, self.mean.value.size)))

    def call(self, ctx, x):
        x = B.cast(x, DType.f32) if x.dtype is not DType.f32 else x

        def value(v):
            v = ctx.weight(v) if not isinstance(v, np.ndarray) else _constant(x, v)
            return B.reshape(v, (1, *self._broadcast)) if hasattr(v, "graph") else v

        mean, variance = value(self.mean), value(self.variance)
        std = B.maximum(B.sqrt(variance), EPSILON)
        return mean + x * std if self.invert else (x - mean) / std

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "invert": self.invert,
            "mean": None if self.input_mean is None else np.asarray(self.input_mean).tolist(),
            "variance": None
            if self.input_variance is None
            else np.asarray(self.input_variance).tolist(),
        }


class CenterCrop(Layer):
    """The central ``height`` x ``width`` of (batch, height, width, channels) images (the
    odd pixel left out at the top and left, as Keras's)."""

    def __init__(self, height: int, width: int, data_format: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise NotImplementedError(f"CenterCrop '{self.name}': only channels_last")
        self.height, self.width = int(height), int(width)

    def call(self, ctx, x):
        if x.rank != 4:
            raise ValueError(f"CenterCrop '{self.name}' expects images, got {keras_shape(x.shape)}")
        h, w = x.shape[1], x.shape[2]
        if h < self.height or w < self.width:
            raise NotImplementedError(
                f"CenterCrop '{self.name}': images of {h}x{w} are smaller than the crop "
                f"{self.height}x{self.width} (Keras resizes them first; not supported yet)"
            )
        top, left = (h - self.height) // 2, (w - self.width) // 2
        begin = [0, top, left, 0]
        end = [x.shape[0], top + self.height, left + self.width, x.shape[3]]
        return B.slice_(x, begin, end)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}


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


class Resizing(Layer):
    def __init__(
        self,
        height: int,
        width: int,
        interpolation: str = "bilinear",
        crop_to_aspect_ratio: bool = False,
        pad_to_aspect_ratio: bool = False,
        data_format: Any = None,
        antialias: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if interpolation not in ("bilinear", "nearest"):
            raise NotImplementedError(
                f"Resizing '{self.name}': interpolation {interpolation!r}; bilinear and nearest "
                "are supported"
            )
        if crop_to_aspect_ratio or pad_to_aspect_ratio or antialias:
            raise NotImplementedError(
                f"Resizing '{self.name}': crop_to_aspect_ratio, pad_to_aspect_ratio and "
                "antialias are not supported yet"
            )
        if data_format not in (None, "channels_last"):
            raise NotImplementedError(f"Resizing '{self.name}': only channels_last")
        self.height, self.width, self.interpolation = int(height), int(width), interpolation

    def call(self, ctx, x):
        if x.rank != 4:
            raise ValueError(f"Resizing '{self.name}' expects images, got {keras_shape(x.shape)}")
        x = B.cast(x, DType.f32) if x.dtype is not DType.f32 else x
        h, w = x.shape[1], x.shape[2]
        rows = resize_matrix(h, self.height, self.interpolation)  # [H', H]
        cols = resize_matrix(w, self.width, self.interpolation)  # [W', W]
        # columns: [N, H, W, C] -> [N, H, C, W] · colsᵀ -> [N, H, C, W']
        y = B.transpose(x, (0, 1, 3, 2))
        y = B.matmul(y, _constant(x, cols), transpose_b=True)
        # rows: [N, W', C, H] · rowsᵀ -> [N, W', C, H'] -> [N, H', W', C]
        y = B.transpose(y, (0, 3, 2, 1))
        y = B.matmul(y, _constant(x, rows), transpose_b=True)
        return B.transpose(y, (0, 3, 1, 2))

    def get_config(self):
        return {
            **super().get_config(),
            "height": self.height,
            "width": self.width,
            "interpolation": self.interpolation,
        }
