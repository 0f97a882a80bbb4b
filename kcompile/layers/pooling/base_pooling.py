"""What the windowed pooling layers share (Keras's ``BasePooling``), channels last: the
2-D window's arguments and its windows, and the 1-D layers as 2-D ones of height 1."""

from __future__ import annotations

import math
from typing import Any

from kcompile.ir import build as B
from kcompile.layers.convolutional.base_conv import as_tuple, window_padding
from kcompile.layers.layer import Layer


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


class BasePooling1D(Layer):
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
