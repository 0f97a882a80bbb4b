"""What the windowed pooling layers share (Keras's ``BasePooling``), channels last: the
2-D window's arguments and its windows, and the 1-D layers as 2-D ones of height 1."""

from __future__ import annotations

import math
from typing import Any

from kcompile.backend.keras_tensor import keras_shape
from kcompile.ir import build as B
from kcompile.layers.convolutional.base_conv import as_tuple, window_padding
from kcompile.layers.layer import Layer


def channels_last_only(layer: Layer, data_format: str | None) -> str:
    """The pooling layers compute channels last: None (the default) is that."""
    if data_format not in (None, "channels_last"):
        raise NotImplementedError(
            f"{type(layer).__name__} '{layer.name}': data_format={data_format!r} is not "
            "supported by kcompile (only channels_last)"
        )
    return "channels_last"


class BasePooling2D(Layer):
    def __init__(
        self,
        pool_size: Any = (2, 2),
        strides: Any = None,
        padding: str = "valid",
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.data_format = channels_last_only(self, data_format)
        self.pool_size = as_tuple(pool_size, 2, "pool_size")
        self.strides = as_tuple(strides, 2, "strides") if strides is not None else self.pool_size
        self.padding = padding.lower()

    def _check_size(self, x, shown=None) -> None:
        """Keras's refusal of a window larger than its (unpadded) input, at the call."""
        if self.padding != "valid":
            return
        if any(size < k for size, k in zip(x.shape[1:3], self.pool_size)):
            name, kind, pool, strides, shape = shown or (
                self.name,
                type(self).__name__,
                list(self.pool_size),
                self.strides,
                keras_shape(x.shape),
            )
            raise ValueError(
                f"layer '{name}' ({kind}): Computed output size would be zero or "
                f"negative. Received: `inputs.shape={list(shape)}`, `pool_size={pool}`, "
                f"`strides={strides}`, `padding={self.padding}`."
            )

    def _windows(self, x, value: float):
        """The windows as [N, OH, OW, KH*KW, C], and the padding used."""
        self._check_size(x)
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
        self._check_size(x)
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
            "data_format": self.data_format,
        }


class BasePooling1D(Layer):
    def __init__(
        self,
        pool_size: int = 2,
        strides: int | None = None,
        padding: str = "valid",
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.data_format = channels_last_only(self, data_format)
        # Private: an implementation detail, not a layer Keras's MaxPooling1D holds
        # (model.quantize and the layer listings would see it, unbuilt).
        (pool,) = as_tuple(pool_size, 1, "pool_size")
        (stride,) = as_tuple(strides, 1, "strides") if strides is not None else (pool,)
        self._pool = self.pool_2d(
            pool_size=(1, pool),
            strides=(1, stride),
            padding=padding,
            name=f"{self.name}_2d",
        )

    def call(self, ctx, x):
        n, length, c = x.shape
        pool, strides = self._pool.pool_size[1], self._pool.strides[1]
        shown = (self.name, type(self).__name__, [pool], (strides,), keras_shape(x.shape))
        x = B.reshape(x, (n, 1, length, c))
        self._pool._check_size(x, shown)
        y = self._pool.call(ctx, x)
        return B.reshape(y, (n, y.shape[2], c))

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self._pool.pool_size[1:],
            "strides": self._pool.strides[1:],
            "padding": self._pool.padding,
            "data_format": self.data_format,
        }


class BasePooling3D(Layer):
    """Keras's 3-D pooling, channels last, as three 1-D poolings (width, height, depth),
    each a 2-D pooling of a window of height 1 over a view of the input: a box's maximum
    is the maximum of maxima, its mean (of the real elements, under "same" padding) the
    mean of means, since the counts of a box are the product of its axes' counts."""

    def __init__(
        self,
        pool_size: Any = (2, 2, 2),
        strides: Any = None,
        padding: str = "valid",
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.data_format = channels_last_only(self, data_format)
        self.pool_size = as_tuple(pool_size, 3, "pool_size")
        self.strides = as_tuple(strides, 3, "strides") if strides is not None else self.pool_size
        self.padding = padding.lower()
        self._pools = [  # (private, as BasePooling1D's)
            self.pool_2d(
                pool_size=(1, k), strides=(1, s), padding=padding, name=f"{self.name}_{axis}"
            )
            for axis, k, s in zip("dhw", self.pool_size, self.strides)
        ]

    def call(self, ctx, x):
        if x.rank != 5:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' expects inputs of rank 5 (batch, depth, "
                f"height, width, channels), got shape {keras_shape(x.shape)}"
            )
        if self.padding == "valid" and any(
            size < k for size, k in zip(x.shape[1:4], self.pool_size)
        ):
            raise ValueError(
                f"layer '{self.name}' ({type(self).__name__}): Computed output size would be "
                f"zero or negative. Received: `inputs.shape={list(keras_shape(x.shape))}`, "
                f"`pool_size={list(self.pool_size)}`, `strides={self.strides}`, "
                f"`padding={self.padding}`."
            )
        n, c = x.shape[0], x.shape[4]
        for axis in (3, 2, 1):  # width, height, depth: the pooled axis as a 2-D width
            dims = x.shape[1:4]
            before, after = math.prod(dims[: axis - 1]), math.prod(dims[axis:]) * c
            view = B.reshape(x, (n, before, dims[axis - 1], after))
            y = self._pools[axis - 1].call(ctx, view)
            new = list(dims)
            new[axis - 1] = y.shape[2]
            x = B.reshape(y, (n, *new, c))
        return x

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
        }
