"""Keras's ``ConvLSTM1D`` (see conv_lstm.py)."""

from __future__ import annotations

from kcompile.layers.rnn.conv_lstm import ConvLSTM


class ConvLSTM1D(ConvLSTM):
    rank = 1
