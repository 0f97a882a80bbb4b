"""Keras's ``TimeDistributed``: one layer applied to every step."""

from __future__ import annotations

from typing import Any

from kcompile.layers.layer import Layer


class TimeDistributed(Layer):
    """Applies ``layer`` to every step of axis 1 (one weight set for all steps): the
    steps are sliced, passed through the layer one by one and stacked again."""

    propagates_mask = True

    def __init__(self, layer: Layer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(layer, Layer):
            raise TypeError(f"TimeDistributed '{self.name}' needs a layer, got {layer!r}")
        self.layer = layer

    def call(self, inputs, training=None):
        from kcompile import ops

        steps = inputs.shape[1]
        if steps is None:
            raise ValueError(
                f"TimeDistributed '{self.name}': the steps axis must have a known size"
            )
        outs = [self.layer(inputs[:, t], training=training) for t in range(steps)]
        return ops.stack(outs, axis=1)

    def get_config(self):
        return {**super().get_config(), "layer": self.layer.get_config()}
