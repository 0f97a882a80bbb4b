"""Keras's ``Bidirectional``: a recurrent layer run forwards and backwards."""

from __future__ import annotations

from typing import Any

from kcompile.ir import build as B
from kcompile.layers.layer import Layer
from kcompile.layers.rnn.base_rnn import BaseRNN


class Bidirectional(Layer):
    """A recurrent layer run forwards and backwards; ``merge_mode`` joins the two."""

    propagates_mask = True

    def __init__(self, layer: BaseRNN, merge_mode: str = "concat", **kwargs: Any) -> None:
        super().__init__(name=kwargs.pop("name", None) or f"bidirectional_{layer.name}", **kwargs)
        if layer.return_state:
            raise NotImplementedError("Bidirectional: return_state is not supported yet")
        if merge_mode not in ("concat", "sum", "mul", "ave"):
            raise ValueError(
                f"Bidirectional: merge_mode must be concat, sum, mul or ave, got {merge_mode!r}"
            )
        self.forward_layer = layer
        config = {
            **layer.get_config(),
            "go_backwards": not layer.go_backwards,
            "name": f"backward_{layer.name}",
        }
        config.pop("trainable", None)
        self.backward_layer = type(layer)(**config)
        self.merge_mode = merge_mode
        for inner in (self.forward_layer, self.backward_layer):  # as Keras forces it
            inner.zero_output_for_mask = inner.return_sequences

    def build(self, input_shape):
        for layer in (self.forward_layer, self.backward_layer):
            layer.build(input_shape)
            layer.built = True

    def _all_variables(self):
        return self.forward_layer.weights + self.backward_layer.weights

    def compute_mask(self, inputs, previous_mask):
        return previous_mask if self.forward_layer.return_sequences else None

    def call(self, ctx, x):
        forward = self.forward_layer.trace(ctx, [x])[0]
        backward = self.backward_layer.trace(ctx, [x])[0]
        if self.forward_layer.return_sequences:
            backward = B.reverse(backward, 1)  # back in input order
        if self.merge_mode == "concat":
            return B.concat([forward, backward], -1)
        if self.merge_mode == "sum":
            return forward + backward
        if self.merge_mode == "mul":
            return forward * backward
        return (forward + backward) * 0.5
