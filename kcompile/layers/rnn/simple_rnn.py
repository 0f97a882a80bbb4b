"""Keras's ``SimpleRNNCell`` and ``SimpleRNN``."""

from __future__ import annotations

from typing import Any

from kcompile.layers.layer import Layer
from kcompile.layers.rnn.base_rnn import BaseRNN, CellMath
from kcompile.layers.rnn.cell import BuiltinCell


class SimpleRNNMath(CellMath):
    def cell(self, xk, state, w):
        return [self.activation(xk + self.recurrent_product(state[0], w))]


class SimpleRNNCell(SimpleRNNMath, BuiltinCell, Layer):
    """Keras's ``SimpleRNNCell``: ``h = activation(x·kernel + h·recurrent_kernel + bias)``."""

    def __init__(self, units: int, **kwargs: Any) -> None:
        cell_args = BuiltinCell.pop_cell_args(kwargs)
        super().__init__(**kwargs)
        self.init_cell(units, **cell_args)


class SimpleRNN(SimpleRNNMath, BaseRNN):
    def get_config(self):
        config = super().get_config()
        del config["seed"]  # (Keras's SimpleRNN writes its cell's seed nowhere)
        return config
