"""Keras's ``Flatten``: (batch, ...) to (batch, features); channels first, the channels
moved last first, as Keras does."""

from __future__ import annotations

import math
from typing import Any

from kcompile.ir import build as B
from kcompile.layers.convolutional.conv_nd import channels_last, standard_data_format
from kcompile.layers.layer import Layer


class Flatten(Layer):
    def __init__(self, data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_format = standard_data_format(data_format)

    def call(self, ctx, x):
        if x.rank > 2:
            x = channels_last(x, self.data_format)
        rest = math.prod(d for d in x.shape[1:])
        return B.reshape(x, (x.shape[0], rest))

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}
