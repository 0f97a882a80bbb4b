"""Keras's ``SeparableConv1D``: a SeparableConv2D of height 1."""

from __future__ import annotations

from kcompile.ir import build as B
from kcompile.layers.convolutional.separable_conv2d import SeparableConv2D


class SeparableConv1D(SeparableConv2D):
    """A separable convolution over [N, L, C]: a SeparableConv2D of height 1."""

    rank = 1

    def call(self, ctx, x):
        n, length, c = x.shape
        image = B.reshape(x, (n, 1, length, c))
        y = self._separable(
            ctx, image, (1, *self.kernel_size), (1, *self.strides), (1, *self.dilation_rate)
        )
        return B.reshape(y, (n, y.shape[2], self.filters))


SeparableConvolution1D = SeparableConv1D  # Keras's other name for it
