"""Pooling and resizing, channels last: Max/AveragePooling (1-D, 2-D), global pooling,
ZeroPadding2D, UpSampling2D."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kcompile.ir import DType
from kcompile.ir import build as B
from kcompile.ir.ops.patches import _ref_extract
from kcompile.ir.registry import RefContext
from kcompile.layers.convolutional.conv import as_tuple, window_padding
from kcompile.layers.layer import Layer


class _Pooling2D(Layer):
    def __init__(
        self,
        pool_size: Any = (2, 2),
        strides: Any = None,
        padding: str = "valid",
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise NotImplementedError(f"{type(self).__name__}: only channels_last")
        self.pool_size = as_tuple(pool_size, 2, "pool_size")
        self.strides = as_tuple(strides, 2, "strides") if strides is not None else self.pool_size
        self.padding = padding.lower()

    def _windows(self, x, value: float):
        """The windows as [N, OH, OW, KH*KW, C], and the padding used."""
        pads = window_padding(
            self.padding, x.shape[1:3], self.pool_size, self.strides, (1, 1), self.name
        )
        p = B.extract_patches(x, self.pool_size, self.strides, (1, 1), pads, value)
        n, oh, ow, _ = p.shape
        return B.reshape(p, (n, oh, ow, math.prod(self.pool_size), x.shape[3])), pads

    def _tiles(self, x):
        """Windows that tile the image exactly (strides = pool size, no padding, sizes
        divisible) as a view [N, OH, KH, OW, KW, C] of it: reduced over KH and KW with no
        copy of patches. None for other windows."""
        (kh, kw), (sh, sw) = self.pool_size, self.strides
        if (kh, kw) != (sh, sw) or any(
            window_padding(
                self.padding, x.shape[1:3], self.pool_size, self.strides, (1, 1), self.name
            )
        ):
            return None
        n, h, w, c = x.shape
        if h % kh or w % kw:
            # A ragged edge no window reads: cut off, so that the ops before compute
            # only what the windows read (passes/narrow.py).
            h, w = h // kh * kh, w // kw * kw
            x = B.slice_(x, (0, 0, 0, 0), (n, h, w, c))
        return B.reshape(x, (n, h // kh, kh, w // kw, kw, c))

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
        }


class MaxPooling2D(_Pooling2D):
    def call(self, ctx, x):
        tiles = self._tiles(x)
        if tiles is not None:
            return B.reduce_max(tiles, (2, 4))
        windows, _ = self._windows(x, -math.inf)
        return B.reduce_max(windows, 3)


class AveragePooling2D(_Pooling2D):
    def call(self, ctx, x):
        tiles = self._tiles(x)
        if tiles is not None:
            return B.reduce_sum(tiles, (2, 4)) * (1.0 / math.prod(self.pool_size))
        windows, pads = self._windows(x, 0.0)
        total = B.reduce_sum(windows, 3)
        if not any(pads):
            return total * (1.0 / math.prod(self.pool_size))
        # "same": TensorFlow divides by the number of real (unpadded) elements.
        h, w = x.shape[1:3]
        ones = np.ones((1, h, w, 1), np.float32)
        attrs = {
            "kernel": self.pool_size,
            "strides": self.strides,
            "dilation": (1, 1),
            "padding": pads,
            "value": 0.0,
        }
        counts = _ref_extract(RefContext(None), [ones], attrs)[0].sum(-1)[0]
        inverse = B.const_array(
            x.graph, (1.0 / counts).reshape(-1).tolist(), DType.f32, (*counts.shape, 1)
        )
        return total * inverse


class _Pooling1D(Layer):
    def __init__(
        self, pool_size: int = 2, strides: int | None = None, padding: str = "valid", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.pool = self.pool_2d(
            pool_size=(1, int(pool_size)),
            strides=(1, int(strides if strides is not None else pool_size)),
            padding=padding,
            name=f"{self.name}_2d",
        )

    def call(self, ctx, x):
        n, length, c = x.shape
        y = self.pool.call(ctx, B.reshape(x, (n, 1, length, c)))
        return B.reshape(y, (n, y.shape[2], c))


class MaxPooling1D(_Pooling1D):
    pool_2d = MaxPooling2D


class AveragePooling1D(_Pooling1D):
    pool_2d = AveragePooling2D


class _Global(Layer):
    """Global pooling over the spatial axes: those between the batch and the channels
    (``channels_last``), or after the channels (``channels_first``)."""

    def __init__(
        self, data_format: str | None = None, keepdims: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last", "channels_first"):
            raise ValueError(
                f"{type(self).__name__} '{self.name}': data_format must be 'channels_last' or "
                f"'channels_first', got {data_format!r}"
            )
        self.keepdims = keepdims
        self.data_format = data_format or "channels_last"

    def axes(self, x) -> tuple[int, ...]:
        if self.data_format == "channels_first":
            return tuple(range(2, x.rank))
        return tuple(range(1, x.rank - 1))

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalAveragePooling2D(_Global):
    def call(self, ctx, x):
        axes = self.axes(x)
        return B.reduce_sum(x, axes, self.keepdims) * (1.0 / math.prod(x.shape[a] for a in axes))


class GlobalMaxPooling2D(_Global):
    def call(self, ctx, x):
        return B.reduce_max(x, self.axes(x), self.keepdims)


class GlobalAveragePooling1D(GlobalAveragePooling2D):
    """With a mask, the mean over the unmasked steps (Keras's; NaN where all are
    masked, as in Keras)."""

    propagates_mask = True

    def call(self, ctx, x, mask=None):
        if mask is None:
            return super().call(ctx, x)
        first = self.data_format == "channels_last"
        weights = B.cast(mask, DType.f32)
        weights = B.reshape(
            weights, (*weights.shape, 1) if first else (weights.shape[0], 1, *weights.shape[1:])
        )
        axis = 1 if first else 2
        return B.reduce_sum(x * weights, axis, self.keepdims) / B.reduce_sum(
            weights, axis, self.keepdims
        )

    def compute_mask(self, inputs, previous_mask):
        return None


class GlobalMaxPooling1D(GlobalMaxPooling2D):
    pass


class ZeroPadding2D(Layer):
    def __init__(
        self, padding: Any = (1, 1), data_format: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(padding, int):
            padding = ((padding, padding), (padding, padding))
        elif all(isinstance(p, int) for p in padding):
            padding = ((padding[0], padding[0]), (padding[1], padding[1]))
        self.padding = tuple(tuple(int(v) for v in p) for p in padding)

    def call(self, ctx, x):
        (t, b), (left, right) = self.padding
        return B.pad(x, (0, t, left, 0), (0, b, right, 0))

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


class UpSampling2D(Layer):
    def __init__(
        self,
        size: Any = (2, 2),
        data_format: str | None = None,
        interpolation: str = "nearest",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if interpolation != "nearest":
            raise NotImplementedError("UpSampling2D: only interpolation='nearest'")
        self.size = as_tuple(size, 2, "size")

    def call(self, ctx, x):
        n, h, w, c = x.shape
        sh, sw = self.size
        y = B.broadcast_to(B.reshape(x, (n, h, 1, w, 1, c)), (n, h, sh, w, sw, c))
        return B.reshape(y, (n, h * sh, w * sw, c))

    def get_config(self):
        return {**super().get_config(), "size": self.size}
