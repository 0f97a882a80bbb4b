"""Keras's ``Conv1DTranspose``: a Conv2DTranspose of height 1."""

from __future__ import annotations

from typing import Any

from kcompile.ir import build as B
from kcompile.layers.convolutional.conv2d_transpose import Conv2DTranspose


class Conv1DTranspose(Conv2DTranspose):
    """A transposed convolution over [N, L, C]: a Conv2DTranspose of height 1."""

    rank = 1

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        output_padding: Any = None,
        data_format: str | None = None,
        dilation_rate: Any = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            filters,
            kernel_size,
            strides,
            padding,
            output_padding,
            data_format,
            dilation_rate,
            **kwargs,
        )

    def call(self, ctx, x):
        n, length, c = x.shape
        image = B.reshape(x, (n, 1, length, c))
        y = self._transpose(
            ctx, image, (1, *self.kernel_size), (1, *self.strides), (1, *self.dilation_rate)
        )
        return B.reshape(y, (n, y.shape[2], self.filters))


Convolution1DTranspose = Conv1DTranspose  # Keras's other name for it
