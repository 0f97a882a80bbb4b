"""Keras's ``ConvLSTM3D`` (see conv_lstm.py)."""

from __future__ import annotations

from kcompile.layers.rnn.conv_lstm import ConvLSTM


class ConvLSTM3D(ConvLSTM):
    rank = 3
