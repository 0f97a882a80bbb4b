"""Keras's ``ContrastLimitedAdaptiveHistogramEqualization``."""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.ir.ops.row_gather import gather_rows, scatter_rows
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
)
from kcompile.layers.preprocessing.image_preprocessing.equalization import cumulative
from kcompile.layers.preprocessing.image_preprocessing.value_range import value_range_of
from kcompile.ops.image_sampling import constant

LEVELS = 256


class ContrastLimitedAdaptiveHistogramEqualization(BaseImagePreprocessingLayer):
    """Keras's CLAHE, in training and inference alike (as Keras's): each image is padded
    (symmetrically, at the bottom and right) to a grid of ``tile_grid_size`` tiles; each
    tile and channel gets a 256-bin histogram of its integer values, clipped at
    ``clip_limit`` × (tile pixels)/256 with the excess spread over all bins, and its
    normalized cdf as a mapping; each pixel takes the bilinear blend of the mappings of
    the four tiles around it (the grid's edge tiles repeated outside). The result returns
    to ``value_range`` in the images' dtype. Not random: ``seed`` is not taken."""

    def __init__(
        self,
        value_range: Any = (0, 255),
        clip_limit: float = 4.0,
        tile_grid_size: Any = (8, 8),
        data_format: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(data_format=data_format, **kwargs)
        what = f"ContrastLimitedAdaptiveHistogramEqualization '{self.name}'"
        self.value_range = value_range_of(what, value_range)
        self.clip_limit = float(clip_limit)
        self.tile_grid_size = tuple(int(g) for g in tile_grid_size)

    def call(self, ctx, x):
        source = x
        if x.rank != 4:
            self.images(x)  # its error names the layer and the shape
        images = self.images(x)
        low, high = (float(v) for v in self.value_range)
        identity = (low, high) == (0.0, 255.0)
        if not identity:
            images = (images - low) / (high - low) * 255.0
        out = self.equalize(images)
        if not identity:
            out = out / 255.0 * (high - low) + low
        return out if source.dtype is DType.f32 else B.cast(out, source.dtype)

    def equalize(self, x: Value) -> Value:
        """CLAHE of images [N, H, W, C] in [0, 255]."""
        n, h, w, c = x.shape
        grid_h, grid_w = self.tile_grid_size
        tile_h, tile_w = -(-h // grid_h), -(-w // grid_w)
        padded = _symmetric_pad(x, tile_h * grid_h - h, tile_w * grid_w - w)
        hp, wp = tile_h * grid_h, tile_w * grid_w
        pixels = B.minimum(B.maximum(B.floor(padded), 0.0), LEVELS - 1.0)  # [N, Hp, Wp, C]
        tiles = (np.arange(hp) // tile_h)[:, None] * grid_w + (np.arange(wp) // tile_w)[None, :]
        bins = constant(x, ((tiles[:, :, None] * c + np.arange(c)) * LEVELS)[None])
        index = B.cast(B.reshape(pixels + bins, (n, hp * wp * c)), DType.i32)
        ones = B.broadcast_to(B.const(x.graph, 1.0, DType.f32, (1, 1, 1)), (n, hp * wp * c, 1))
        count = grid_h * grid_w * c
        hist = B.reshape(scatter_rows(index, ones, count * LEVELS), (n, count, LEVELS))
        area = float(tile_h * tile_w)
        if self.clip_limit > 0:
            limit = self.clip_limit * area / LEVELS
            clipped = B.minimum(hist, limit)
            excess = B.reduce_sum(hist - clipped, (2,), keepdims=True)
            hist = clipped + excess / float(LEVELS)
        cdf = cumulative(hist)
        cdf_min = B.slice_(cdf, [0, 0, 0], [n, count, 1])
        spread = area - cdf_min
        spread = B.select(B.eq(spread, 0.0), spread * 0.0 + 1.0, spread)
        mapping = B.minimum(B.maximum((cdf - cdf_min) * 255.0 / spread, 0.0), 255.0)
        table = _edge_padded(B.reshape(mapping, (n, grid_h, grid_w, c * LEVELS)))
        table = B.reshape(table, (n, (grid_h + 2) * (grid_w + 2) * c * LEVELS, 1))
        return self._blend(table, pixels, (tile_h, tile_w), (h, w))

    def _blend(self, table: Value, pixels: Value, tile: tuple, size: tuple) -> Value:
        """Each pixel's mapped value, bilinear between the four tiles around it."""
        n, hp, wp, c = pixels.shape
        grid_h, grid_w = self.tile_grid_size

        def axis(length: int, tile_size: int, grid: int):
            place = (np.arange(length, dtype=np.float32) - tile_size / 2.0) / tile_size + 1.0
            first = np.floor(place)
            weight = place - first
            near = np.clip(first, 0, grid + 1).astype(np.int64)
            far = np.clip(first + 1.0, 0, grid + 1).astype(np.int64)
            return near, far, weight.astype(np.float32)

        y0, y1, wy = axis(hp, tile[0], grid_h)
        x0, x1, wx = axis(wp, tile[1], grid_w)
        stride_x = LEVELS * c
        stride_y = stride_x * (grid_w + 2)
        channel = np.arange(c) * LEVELS

        def corner(ys: np.ndarray, xs: np.ndarray) -> Value:
            base = ys[:, None, None] * stride_y + xs[None, :, None] * stride_x + channel
            offsets = constant(pixels, base[None].astype(np.float32))
            index = B.cast(B.reshape(pixels + offsets, (n, hp * wp * c)), DType.i32)
            return B.reshape(gather_rows(table, index), (n, hp, wp, c))

        wx_, wy_ = (
            constant(pixels, wx.reshape(1, 1, wp, 1)),
            constant(pixels, wy.reshape(1, hp, 1, 1)),
        )
        top = corner(y0, x0) * (1.0 - wx_) + corner(y0, x1) * wx_
        bottom = corner(y1, x0) * (1.0 - wx_) + corner(y1, x1) * wx_
        out = top * (1.0 - wy_) + bottom * wy_
        return B.slice_(out, [0, 0, 0, 0], [n, size[0], size[1], c])

    def get_config(self):
        config = super().get_config()
        config.pop("seed", None)
        return {
            **config,
            "value_range": list(self.value_range),
            "clip_limit": self.clip_limit,
            "tile_grid_size": self.tile_grid_size,
        }


def _symmetric_pad(x: Value, rows: int, cols: int) -> Value:
    """numpy's ``symmetric`` padding at the bottom and right (edge repeated: … c b a | a b
    c …); at most the image's size."""
    n, h, w, c = x.shape
    if rows > h or cols > w:
        raise NotImplementedError(
            "ContrastLimitedAdaptiveHistogramEqualization: a tile grid finer than the image "
            f"({h}x{w}) needs more symmetric padding than the image holds"
        )
    if rows:
        x = B.concat([x, B.reverse(B.slice_(x, [0, h - rows, 0, 0], [n, h, w, c]), 1)], 1)
    if cols:
        hh = x.shape[1]
        x = B.concat([x, B.reverse(B.slice_(x, [0, 0, w - cols, 0], [n, hh, w, c]), 2)], 2)
    return x


def _edge_padded(t: Value) -> Value:
    """[N, GH, GW, K] with its first and last tile rows and columns repeated outside."""
    n, gh, gw, k = t.shape
    t = B.concat([B.slice_(t, [0, 0, 0, 0], [n, 1, gw, k]), t,
                  B.slice_(t, [0, gh - 1, 0, 0], [n, gh, gw, k])], 1)  # fmt: skip
    return B.concat([B.slice_(t, [0, 0, 0, 0], [n, gh + 2, 1, k]), t,
                     B.slice_(t, [0, 0, gw - 1, 0], [n, gh + 2, gw, k])], 2)  # fmt: skip
