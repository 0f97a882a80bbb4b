"""Keras's ``SimpleRNN``."""

from __future__ import annotations

from kcompile.ir import build as B
from kcompile.layers.rnn.base_rnn import BaseRNN


class SimpleRNN(BaseRNN):
    def cell(self, xk, state, w):
        return [self.activation(xk + B.matmul(state[0], w["recurrent_kernel"]))]
