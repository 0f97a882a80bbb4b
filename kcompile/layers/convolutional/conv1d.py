"""Keras's ``Conv1D`` (``padding="causal"`` too): a Conv2D of height 1."""

from __future__ import annotations

from typing import Any

from kcompile.ir import build as B
from kcompile.layers.convolutional.base_conv import as_tuple, bias_weight
from kcompile.layers.convolutional.conv2d import Conv2D


class Conv1D(Conv2D):
    """A 1-D convolution over [N, L, C]: a Conv2D of height 1."""

    QUANTIZES_TO_INT8 = True  # (int8_conv.quantizable: this class, not its subclasses)

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        dilation_rate: Any = 1,
        **kwargs: Any,
    ) -> None:
        self.causal = str(padding).lower() == "causal"
        super().__init__(
            filters,
            (1, as_tuple(kernel_size, 1, "kernel_size")[0]),
            (1, as_tuple(strides, 1, "strides")[0]),
            "valid" if self.causal else padding,
            dilation_rate=(1, as_tuple(dilation_rate, 1, "dilation_rate")[0]),
            **kwargs,
        )

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"Conv1D '{self.name}' expects inputs of rank 3 (batch, steps, "
                f"channels), got shape {input_shape}"
            )
        self.make_kernel((self.kernel_size[1], self.group_channels(input_shape), self.filters))
        self.bias = bias_weight(self, self.filters, self.bias_initializer)

    def call(self, ctx, x):
        n, length, c = x.shape
        k = self.kernel_size[1]
        image = B.reshape(x, (n, 1, length, c))
        pads = (0, 0, self.dilation_rate[1] * (k - 1), 0) if self.causal else self.pads(image)
        if self.int8_quantized:
            y = self.int8_convolve(ctx, image, pads)
            return self.finish(ctx, B.reshape(y, (n, y.shape[2], self.filters)))
        kernel = ctx.weight(self.kernel)
        if self.groups == 1:
            y = self.convolve(image, B.reshape(kernel, (1, *kernel.shape)), pads)
        else:
            patches = B.extract_patches(
                image, self.kernel_size, self.strides, self.dilation_rate, pads
            )
            y = self.product(patches, kernel)
        return self.finish(ctx, B.reshape(y, (n, y.shape[2], self.filters)))

    def get_config(self):
        config = super().get_config()
        config.update(
            kernel_size=self.kernel_size[1:],
            strides=self.strides[1:],
            dilation_rate=self.dilation_rate[1:],
            padding="causal" if self.causal else self.padding,
        )
        return config


Convolution1D = Conv1D  # Keras's other name for it
