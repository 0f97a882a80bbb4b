"""Keras's ``UpSampling3D``: each voxel repeated ``size`` times along depth, height and
width (a broadcast over new axes beside them, then a reshape)."""

from __future__ import annotations

from typing import Any

from kcompile.ir import build as B
from kcompile.layers.convolutional.base_conv import as_tuple
from kcompile.layers.layer import Layer
from kcompile.layers.reshaping.volume_arguments import check_volume, data_format_of


class UpSampling3D(Layer):
    def __init__(self, size: Any = (2, 2, 2), data_format: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.data_format = data_format_of(self, data_format)
        self.size = as_tuple(size, 3, "size")
        if min(self.size) <= 0:
            raise ValueError(
                f"The `size` argument must be a tuple of 3 positive integers. Received: {size}"
            )

    def call(self, ctx, x):
        check_volume(self, x)
        first = self.data_format == "channels_first"
        lead = x.shape[:2] if first else x.shape[:1]
        spatial = x.shape[2:] if first else x.shape[1:4]
        tail = () if first else x.shape[4:]
        spread = [d for s in spatial for d in (s, 1)]
        grown = [d for s, k in zip(spatial, self.size) for d in (s, k)]
        y = B.broadcast_to(B.reshape(x, (*lead, *spread, *tail)), (*lead, *grown, *tail))
        return B.reshape(y, (*lead, *(s * k for s, k in zip(spatial, self.size)), *tail))

    def get_config(self):
        return {**super().get_config(), "size": self.size, "data_format": self.data_format}
