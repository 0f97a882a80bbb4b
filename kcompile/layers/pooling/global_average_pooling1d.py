"""Keras's ``GlobalAveragePooling1D`` (masked steps left out of the mean)."""

from __future__ import annotations

from kcompile.ir import build as B
from kcompile.layers.pooling.global_average_pooling2d import GlobalAveragePooling2D


class GlobalAveragePooling1D(GlobalAveragePooling2D):
    """With a mask, the mean over the unmasked steps (Keras's; NaN where all are
    masked, as in Keras)."""

    propagates_mask = True

    def call(self, ctx, x, mask=None):
        if mask is None:
            return super().call(ctx, x)
        first = self.data_format == "channels_last"
        weights = B.cast(mask, x.dtype)
        weights = B.reshape(
            weights, (*weights.shape, 1) if first else (weights.shape[0], 1, *weights.shape[1:])
        )
        axis = 1 if first else 2
        return B.reduce_sum(x * weights, axis, self.keepdims) / B.reduce_sum(
            weights, axis, self.keepdims
        )

    def compute_mask(self, inputs, previous_mask):
        return None


GlobalAvgPool1D = GlobalAveragePooling1D  # Keras's other name for it
