"""Keras's ``GRUCell`` and ``GRU`` (Keras 3's default, ``reset_after=True``)."""

from __future__ import annotations

from typing import Any

from kcompile import activations
from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.layer import Layer
from kcompile.layers.rnn.base_rnn import BaseRNN, CellMath, split_gates
from kcompile.layers.rnn.cell import BuiltinCell


class GRUMath(CellMath):
    """Keras 3's default GRU (reset_after=True): gates z, r, h; two bias rows."""

    gates = 3

    def init_gru(self, recurrent_activation: Any, reset_after: bool) -> None:
        if not reset_after:
            raise NotImplementedError(
                f"{type(self).__name__} '{self.name}': only reset_after=True (Keras 3's "
                "default) is supported"
            )
        self.recurrent_activation = activations.get(recurrent_activation)
        self.reset_after = reset_after

    def bias_shape(self):
        return (2, 3 * self.units)

    def _bias_row(self, ctx, row: int) -> Value:
        width = 3 * self.units
        return B.reshape(B.slice_(ctx.weight(self.bias), (row, 0), (row + 1, width)), (width,))

    def input_bias(self, ctx, projected):
        return projected + self._bias_row(ctx, 0) if self.bias is not None else projected

    def invariants(self, ctx, training, rows):
        found = super().invariants(ctx, training, rows)
        if self.bias is not None:
            found["recurrent_bias"] = self._bias_row(ctx, 1)
        return found

    def cell(self, xk, state, w):
        (h,) = state
        inner = self.recurrent_product(h, w)
        if "recurrent_bias" in w:
            inner = inner + w["recurrent_bias"]
        xz, xr, xh = split_gates(xk, 3)
        rz, rr, rh = split_gates(inner, 3)
        sigma = self.recurrent_activation
        z = sigma(xz + rz)
        r = sigma(xr + rr)
        hh = self.activation(xh + r * rh)
        return [z * h + (1.0 - z) * hh]

    def gru_config(self) -> dict[str, Any]:
        return {
            "reset_after": self.reset_after,
            "recurrent_activation": activations.serialize(self.recurrent_activation),
        }


class GRUCell(GRUMath, BuiltinCell, Layer):
    """Keras's ``GRUCell``: one step of a GRU, for ``layers.RNN``."""

    def __init__(
        self,
        units: int,
        recurrent_activation: Any = "sigmoid",
        reset_after: bool = True,
        **kwargs: Any,
    ) -> None:
        cell_args = BuiltinCell.pop_cell_args(kwargs)
        kwargs.pop("implementation", None)  # the same numbers either way
        super().__init__(**kwargs)
        self.init_cell(units, **cell_args)
        self.init_gru(recurrent_activation, reset_after)

    def get_config(self):
        return {**super().get_config(), **self.gru_config()}


class GRU(GRUMath, BaseRNN):
    def __init__(
        self,
        units: int,
        recurrent_activation: Any = "sigmoid",
        reset_after: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(units, **kwargs)
        self.init_gru(recurrent_activation, reset_after)

    def get_config(self):
        return {**super().get_config(), **self.gru_config()}
