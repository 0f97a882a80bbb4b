"""Keras's ``LSTM``."""

from __future__ import annotations

from typing import Any

from kcompile import activations, initializers
from kcompile.ir import build as B
from kcompile.layers.rnn.base_rnn import BaseRNN, split_gates


class LSTM(BaseRNN):
    """Gates i, f, c, o; ``c = f*c + i*g``, ``h = o*act(c)``; the forget bias starts at 1."""

    gates = 4
    state_names = ("h", "c")

    def __init__(
        self,
        units: int,
        recurrent_activation: Any = "sigmoid",
        unit_forget_bias: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(units, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = unit_forget_bias

    def make_bias_initializer(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        base = initializers.get(self.bias_initializer)
        u = self.units

        def init(shape, dtype=None):
            value = base((4 * u,))
            value[u : 2 * u] = 1.0
            return value

        return init

    def cell(self, xk, state, w):
        h, c = state
        z = xk + B.matmul(h, w["recurrent_kernel"])
        zi, zf, zc, zo = split_gates(z, 4)
        sigma = self.recurrent_activation
        c = sigma(zf) * c + sigma(zi) * self.activation(zc)
        return [sigma(zo) * self.activation(c), c]

    def get_config(self):
        return {
            **super().get_config(),
            "unit_forget_bias": self.unit_forget_bias,
            "recurrent_activation": activations.serialize(self.recurrent_activation),
        }
