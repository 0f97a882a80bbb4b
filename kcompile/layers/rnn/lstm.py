"""Keras's ``LSTMCell`` and ``LSTM``."""

from __future__ import annotations

from typing import Any

from kcompile import activations, initializers
from kcompile.layers.layer import Layer
from kcompile.layers.rnn.base_rnn import BaseRNN, CellMath, split_gates
from kcompile.layers.rnn.cell import BuiltinCell


class LSTMMath(CellMath):
    """Gates i, f, c, o; ``c = f*c + i*g``, ``h = o*act(c)``; the forget bias starts at 1."""

    gates = 4
    state_names = ("h", "c")

    def init_lstm(self, recurrent_activation: Any, unit_forget_bias: bool) -> None:
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
        z = xk + self.recurrent_product(h, w)
        zi, zf, zc, zo = split_gates(z, 4)
        sigma = self.recurrent_activation
        c = sigma(zf) * c + sigma(zi) * self.activation(zc)
        return [sigma(zo) * self.activation(c), c]

    def lstm_config(self) -> dict[str, Any]:
        return {
            "unit_forget_bias": self.unit_forget_bias,
            "recurrent_activation": activations.serialize(self.recurrent_activation),
        }


class LSTMCell(LSTMMath, BuiltinCell, Layer):
    """Keras's ``LSTMCell``: one step of an LSTM, for ``layers.RNN``."""

    def __init__(
        self,
        units: int,
        recurrent_activation: Any = "sigmoid",
        unit_forget_bias: bool = True,
        **kwargs: Any,
    ) -> None:
        cell_args = BuiltinCell.pop_cell_args(kwargs)
        kwargs.pop("implementation", None)  # the same numbers either way
        super().__init__(**kwargs)
        self.init_cell(units, **cell_args)
        self.init_lstm(recurrent_activation, unit_forget_bias)

    def get_config(self):
        return {**super().get_config(), **self.lstm_config()}


class LSTM(LSTMMath, BaseRNN):
    def __init__(
        self,
        units: int,
        recurrent_activation: Any = "sigmoid",
        unit_forget_bias: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(units, **kwargs)
        self.init_lstm(recurrent_activation, unit_forget_bias)

    def get_config(self):
        return {**super().get_config(), **self.lstm_config()}
