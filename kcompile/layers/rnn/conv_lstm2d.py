"""Keras's ``ConvLSTM2D`` (see conv_lstm.py)."""

from __future__ import annotations

from kcompile.layers.rnn.conv_lstm import ConvLSTM


class ConvLSTM2D(ConvLSTM):
    rank = 2
