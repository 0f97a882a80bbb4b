"""Keras's ``ConvLSTM`` (the base of ConvLSTM1D/2D/3D): an LSTM whose input and recurrent
transformations are convolutions, on the recurrent layers' one-scan machinery
(``base_rnn.run_recurrence``: ``initial_state``, ``return_sequences``/``return_state``,
``go_backwards``, masks, ``dropout``/``recurrent_dropout``).

The scan's carries are (batch, features) matrices, so a step's states h and c, each
[N, *O, F] (O the output's spatial shape), travel flattened as [N, O*F], and the inputs
as [N, T, S*C]. The inputs' convolution of every step is hoisted out of the loop: the
patches of all the steps' images at once (``conv_nd.patches_nd``, time as a leading axis)
times the kernel, one product. The body holds the recurrent convolution ("same",
stride 1, as Keras's ``recurrent_conv``) and the gates. Both products come out gate-major
([N, 4*O*F]: the i, f, c, o blocks each [N, O*F]) so that LSTM's gate math applies as it
is (``LSTMMath.cell``).

Dropout is Keras's ConvLSTMCell's: four masks (one per gate) of the step input's shape
and four of the state's, the same at every step of a sequence.
"""

from __future__ import annotations

import math
from typing import Any

from kcompile import activations
from kcompile.backend.keras_tensor import keras_shape
from kcompile.backend.symbolic import TracedTensor, current_context
from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.convolutional.base_conv import set_window, window_padding
from kcompile.layers.convolutional.conv_nd import (
    channels_back,
    channels_last,
    patches_nd,
    standard_data_format,
)
from kcompile.layers.rnn.base_rnn import BaseRNN, ctx_value, dropout_mask, run_recurrence
from kcompile.layers.rnn.lstm import LSTMMath

_RECURRENT_SEED_OFFSET = 7919  # as base_rnn's: the recurrent masks' seeds


def conv_output_size(size: int, k: int, stride: int, dilation: int, padding: str) -> int:
    if padding == "same":
        return -(-size // stride)
    return (size - (k - 1) * dilation - 1) // stride + 1


class ConvLSTM(LSTMMath, BaseRNN):
    """ConvLSTM1D/2D/3D: ``rank`` spatial axes; Keras's weights ``kernel`` (*K, C, 4F),
    ``recurrent_kernel`` (*K, F, 4F) and ``bias`` (4F), gates in the order i, f, c, o."""

    rank = 2

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: Any = 1,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        unit_forget_bias: bool = True,
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            filters,
            activation,
            use_bias,
            kernel_initializer,
            recurrent_initializer,
            bias_initializer,
            kernel_regularizer,
            recurrent_regularizer,
            bias_regularizer,
            return_sequences,
            return_state,
            go_backwards,
            stateful,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            **kwargs,
        )
        self.init_lstm(recurrent_activation, unit_forget_bias)
        self.filters = self.units
        self.data_format = standard_data_format(data_format)
        set_window(self, self.rank, kernel_size, strides, dilation_rate, padding, None)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                "Specifying `strides > 1` is not compatible with `dilation_rate > 1`. Please "
                "provide `strides=1` or `dilation_rate=1`. Received: "
                f"strides={self.strides} and dilation_rate={self.dilation_rate}"
            )
        self.spatial: tuple[int, ...] | None = None  # the input's, known once built
        self.out_spatial: tuple[int, ...] | None = None

    # --- shapes and weights ---------------------------------------------------------

    @property
    def state_sizes(self) -> list[int]:
        per_position = math.prod(self.out_spatial) if self.out_spatial else 1
        return [per_position * self.filters] * 2

    def build(self, input_shape):
        rank = self.rank + 3
        if len(input_shape) != rank:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' expects inputs of rank {rank} (batch, "
                f"time, *spatial, channels), got shape {tuple(input_shape)}"
            )
        first = self.data_format == "channels_first"
        spatial = tuple(input_shape[3:] if first else input_shape[2:-1])
        channels = input_shape[2 if first else -1]
        if None in spatial:
            raise ValueError(
                "ConvLSTM layers only support static input shapes for the spatial "
                f"dimension. Received invalid input shape: input_shape={tuple(input_shape)}"
            )
        if channels is None:
            raise ValueError(
                "The channel dimension of the inputs (last axis) should be defined. Found "
                f"None. Full input shape received: input_shape={tuple(input_shape)}"
            )
        self.spatial = spatial
        self.out_spatial = tuple(
            conv_output_size(size, k, s, d, self.padding)
            for size, k, s, d in zip(spatial, self.kernel_size, self.strides, self.dilation_rate)
        )
        if min(self.out_spatial) <= 0:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': Computed output size would be zero or "
                f"negative. Received `inputs shape={tuple(input_shape)}`, `kernel_size="
                f"{self.kernel_size}`, `dilation_rate={self.dilation_rate}`, `strides="
                f"{self.strides}`, `padding={self.padding}`."
            )
        width = 4 * self.filters
        self.add_cell_weights(
            (*self.kernel_size, channels, width), (*self.kernel_size, self.filters, width), (width,)
        )

    # --- the call ---------------------------------------------------------------------

    def call(self, sequences, initial_state=None, mask=None, training=None):
        ctx = current_context()
        x = channels_last(sequences.value, self.data_format, lead=2)
        if x.rank != self.rank + 3 or tuple(x.shape[2:-1]) != self.spatial:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': expected inputs of shape (batch, time, "
                f"{', '.join(map(str, self.spatial or ()))}, channels), got "
                f"{keras_shape(x.shape)}"
            )
        n, steps = x.shape[:2]
        state_shape = (*self.out_spatial, self.filters)
        initial = None
        if initial_state is not None:
            given = initial_state if isinstance(initial_state, list | tuple) else [initial_state]
            initial = []
            for i, v in enumerate(given):
                value = v.value if isinstance(v, TracedTensor) else ctx_value(ctx, v)
                value = channels_last(value, self.data_format)
                if tuple(value.shape[1:]) != state_shape:
                    raise ValueError(
                        f"{type(self).__name__} '{self.name}': initial_state[{i}] must have "
                        f"shape (batch, {', '.join(map(str, state_shape))}), got "
                        f"{keras_shape(value.shape)}"
                    )
                initial.append(B.reshape(value, (value.shape[0], math.prod(state_shape))))
        flat = B.reshape(x, (n, steps, math.prod(x.shape[2:])))
        mask_value = None if mask is None else mask.value
        if mask_value is not None and mask_value.rank != 2:
            raise ValueError(  # Keras fails on these too: its steps' mask is (batch, time)
                f"{type(self).__name__} '{self.name}': a mask must be of shape (batch, time), "
                f"got {keras_shape(mask_value.shape)} (a Masking layer before a ConvLSTM "
                "masks every pixel; Keras refuses it too)"
            )
        last, sequence, final = run_recurrence(
            self, ctx, self, flat, initial, mask_value, bool(training)
        )
        df = self.data_format
        sequence = channels_back(B.reshape(sequence, (n, steps, *state_shape)), df, lead=2)
        states = [channels_back(B.reshape(v, (n, *state_shape)), df) for v in (last, *final)]
        out = sequence if self.return_sequences else states[0]
        if not self.return_state:
            return TracedTensor(out)
        return [TracedTensor(v) for v in (out, *states[1:])]

    def compute_output_shape(self, sequences_shape: Any, initial_state_shape: Any = None) -> Any:
        """Keras's: the output's shape, and the two states' when ``return_state``."""
        batch, steps, *spatial = sequences_shape
        first = self.data_format == "channels_first"
        spatial = spatial[1:] if first else spatial[:-1]
        out = tuple(
            conv_output_size(size, k, s, d, self.padding)
            for size, k, s, d in zip(spatial, self.kernel_size, self.strides, self.dilation_rate)
        )
        per_step = (self.filters, *out) if first else (*out, self.filters)
        state = (batch, *per_step)
        output = (batch, steps, *per_step) if self.return_sequences else state
        return (output, state, state) if self.return_state else output

    # --- the cell spec (base_rnn.run_recurrence) ---------------------------------------

    def project(self, ctx, flat: Value, training: bool) -> Value:
        """Every step's input convolution plus bias, gate-major: [N, T, 4*O*F]."""
        n, steps, _ = flat.shape
        x = B.reshape(flat, (n, steps, *self.spatial, self._channels(flat)))
        kernel = ctx.weight(self.kernel)
        kernel = B.reshape(kernel, (math.prod(kernel.shape[:-1]), 4 * self.filters))
        bias = ctx.weight(self.bias) if self.bias is not None else None
        pads = window_padding(
            self.padding,
            self.spatial,
            self.kernel_size,
            self.strides,
            self.dilation_rate,
            self.name,
        )
        window = (self.kernel_size, self.strides, self.dilation_rate, pads)
        if not (training and 0.0 < self.dropout < 1.0):
            return self._gate_major(B.matmul(patches_nd(x, *window), kernel), bias, 2)
        step_shape = (n, *x.shape[2:])
        parts = []
        for g in range(4):
            mask = dropout_mask(ctx, step_shape, self.dropout, self.seed + g, x.dtype)
            dropped = x * B.reshape(mask, (n, 1, *x.shape[2:]))
            parts.append(self._gate(patches_nd(dropped, *window), kernel, bias, g, 2))
        return B.concat(parts, -1)

    def invariants(self, ctx, training: bool, rows: Any) -> dict[str, Value]:
        kernel = ctx.weight(self.recurrent_kernel)
        found = {
            "recurrent_kernel": B.reshape(kernel, (math.prod(kernel.shape[:-1]), 4 * self.filters))
        }
        if training and 0.0 < self.recurrent_dropout < 1.0:
            size = self.state_sizes[0]
            for g in range(4):
                seed = self.seed + _RECURRENT_SEED_OFFSET + g
                found[f"recurrent_mask{g}"] = dropout_mask(
                    ctx, (rows, size), self.recurrent_dropout, seed, kernel.dtype
                )
        return found

    def recurrent_product(self, h: Value, w: dict[str, Value]) -> Value:
        """The recurrent convolution of the flat state h [N, O*F], gate-major."""
        n = h.shape[0]
        ones = (1,) * self.rank
        pads = window_padding("same", self.out_spatial, self.kernel_size, ones, ones, self.name)
        window = (self.kernel_size, ones, ones, pads)
        kernel = w["recurrent_kernel"]
        image = (n, *self.out_spatial, self.filters)
        if "recurrent_mask0" not in w:
            return self._gate_major(
                B.matmul(patches_nd(B.reshape(h, image), *window), kernel), None, 1
            )
        parts = [
            self._gate(
                patches_nd(B.reshape(h * w[f"recurrent_mask{g}"], image), *window),
                kernel,
                None,
                g,
                1,
            )
            for g in range(4)
        ]
        return B.concat(parts, -1)

    def _channels(self, flat: Value) -> int:
        return flat.shape[2] // math.prod(self.spatial)

    def _gate_major(self, y: Value, bias: Value | None, lead: int) -> Value:
        """y [*L, *O, 4F] (+ bias) -> [*L, 4*O*F]: the gate blocks one after another."""
        if bias is not None:
            y = y + bias
        front, f = y.shape[:lead], self.filters
        positions = math.prod(self.out_spatial)
        y = B.reshape(y, (*front, positions, 4, f))
        y = B.transpose(y, (*range(lead), lead + 1, lead, lead + 2))
        return B.reshape(y, (*front, 4 * positions * f))

    def _gate(self, p: Value, kernel: Value, bias: Value | None, g: int, lead: int) -> Value:
        """Gate g's convolution of the patches p [*L, *O, taps*C]: [*L, O*F]."""
        f = self.filters
        y = B.matmul(p, B.slice_(kernel, (0, g * f), (kernel.shape[0], (g + 1) * f)))
        if bias is not None:
            y = y + B.slice_(bias, (g * f,), ((g + 1) * f,))
        return B.reshape(y, (*y.shape[:lead], math.prod(self.out_spatial) * f))

    # --- config -----------------------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        for key in ("units", "implementation"):
            config.pop(key, None)
        return {
            **config,
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "activation": activations.serialize(self.activation),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "unit_forget_bias": self.unit_forget_bias,
        }
