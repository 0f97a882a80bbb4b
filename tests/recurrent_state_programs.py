"""Recurrent models written once for Keras and kcompile (``K`` is either module): what
``make_recurrent_fixtures.py`` runs on Keras 3 and ``test_recurrent_state.py`` checks
kcompile against. Each program returns (model, inputs)."""

from __future__ import annotations

import numpy as np


def _rng():
    return np.random.RandomState(0)


def seq2seq(K, kind: str):
    """An encoder's states into a decoder (``initial_state=``), with ``return_state``."""
    rng = _rng()
    x = rng.randn(3, 5, 4).astype("float32")
    x2 = rng.randn(3, 6, 2).astype("float32")
    enc_in, dec_in = K.Input((5, 4)), K.Input((6, 2))
    layer = getattr(K.layers, kind)
    states = layer(7, return_state=True)(enc_in)[1:]
    seq, *final = layer(7, return_sequences=True, return_state=True)(dec_in, initial_state=states)
    y = K.layers.Dense(3)(seq)
    return K.Model([enc_in, dec_in], [y, *final]), [x, x2]


def cells(K):
    """``layers.RNN`` of a built-in cell, and of a stack of them, going backwards."""
    x = _rng().randn(3, 5, 4).astype("float32")
    i = K.Input((5, 4))
    a = K.layers.RNN(K.layers.LSTMCell(5), return_sequences=True)(i)
    b = K.layers.RNN(K.layers.SimpleRNNCell(6), go_backwards=True, return_sequences=True)(a)
    c = K.layers.RNN([K.layers.GRUCell(4), K.layers.LSTMCell(3)])(b)
    return K.Model(i, [a, b, c]), [x]


def minimal_cell_class(K):
    """Keras's ``RNN`` docstring's ``MinimalRNNCell`` (with a tanh), written with ops."""

    class MinimalRNNCell(K.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.state_size = units

        def build(self, input_shape):
            self.kernel = self.add_weight(
                shape=(input_shape[-1], self.units), initializer="random_uniform", name="kernel"
            )
            self.recurrent_kernel = self.add_weight(
                shape=(self.units, self.units),
                initializer="random_uniform",
                name="recurrent_kernel",
            )

        def call(self, inputs, states):
            prev_output = states[0]
            h = K.ops.matmul(inputs, self.kernel)
            output = h + K.ops.tanh(K.ops.matmul(prev_output, self.recurrent_kernel))
            return output, [output]

    return MinimalRNNCell


def user_cell(K):
    """A user's cell with an initial state, and in a stack beside an LSTMCell."""
    rng = _rng()
    x = rng.randn(3, 5, 4).astype("float32")
    h0 = rng.randn(3, 3).astype("float32")
    cell = minimal_cell_class(K)
    i, m0 = K.Input((5, 4)), K.Input((3,))
    o = K.layers.RNN(cell(3), return_sequences=True, go_backwards=True)(i, initial_state=[m0])
    o2 = K.layers.RNN([cell(3), K.layers.LSTMCell(2)])(o)
    return K.Model([i, m0], [o, o2]), [x, h0]


def masked_initial_state(K):
    """Masked steps (an Embedding's mask_zero) keep the states given by initial_state."""
    rng = _rng()
    ids = np.array([[1, 2, 0, 0, 3], [0, 4, 5, 6, 0], [1, 1, 1, 1, 1]], "int32")
    h0 = rng.randn(3, 6).astype("float32")
    i, m0 = K.Input((5,), dtype="int32"), K.Input((6,))
    e = K.layers.Embedding(10, 4, mask_zero=True)(i)
    o = K.layers.GRU(6, return_sequences=True)(e, initial_state=[m0])
    return K.Model([i, m0], o), [ids, h0]


def bidirectional_states(K, mode):
    """A Bidirectional encoder's states (forward's, then backward's) joined into a
    decoder's initial state; a Bidirectional decoder given an initial_state of four."""
    rng = _rng()
    x = rng.randn(3, 5, 4).astype("float32")
    x2 = rng.randn(3, 6, 2).astype("float32")
    enc_in, dec_in = K.Input((5, 4)), K.Input((6, 2))
    encoder = K.layers.LSTM(3, return_state=True, return_sequences=True)
    out = K.layers.Bidirectional(encoder, merge_mode=mode)(enc_in)
    outputs = 2 if mode is None else 1
    states = out[outputs:]
    h = K.layers.Concatenate()([states[0], states[2]])
    c = K.layers.Concatenate()([states[1], states[3]])
    seq = K.layers.LSTM(6, return_sequences=True)(dec_in, initial_state=[h, c])
    starts = [K.layers.Dense(2)(h), K.layers.Dense(2)(c)]
    decoder = K.layers.Bidirectional(K.layers.GRU(2, return_sequences=True), merge_mode="ave")
    return K.Model([enc_in, dec_in], [*out[:outputs], decoder(seq, initial_state=starts)]), [x, x2]


PROGRAMS = {
    "bidirectional_concat": lambda K: bidirectional_states(K, "concat"),
    "bidirectional_no_merge": lambda K: bidirectional_states(K, None),
    "seq2seq_simple_rnn": lambda K: seq2seq(K, "SimpleRNN"),
    "seq2seq_lstm": lambda K: seq2seq(K, "LSTM"),
    "seq2seq_gru": lambda K: seq2seq(K, "GRU"),
    "cells": cells,
    "user_cell": user_cell,
    "masked_initial_state": masked_initial_state,
}
