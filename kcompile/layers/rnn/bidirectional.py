"""Keras's ``Bidirectional``: a recurrent layer run forwards and backwards."""

from __future__ import annotations

from typing import Any

from kcompile.backend.symbolic import TracedTensor
from kcompile.ir import build as B
from kcompile.layers.layer import Layer

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


class Bidirectional(Layer):
    """A recurrent layer (SimpleRNN, LSTM, GRU, RNN) run forwards and backwards;
    ``merge_mode`` joins the two (None: both are outputs). With ``return_state`` the
    outputs are followed by the forward layer's states, then the backward one's; an
    ``initial_state`` list gives the forward layer its first half, the backward one the
    rest, as in Keras."""

    propagates_mask = True

    def __init__(
        self,
        layer: Layer,
        merge_mode: str | None = "concat",
        weights: Any = None,
        backward_layer: Layer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if merge_mode not in MERGE_MODES:
            raise ValueError(
                f"Bidirectional '{self.name}': merge_mode must be concat, sum, mul, ave or "
                f"None, got {merge_mode!r}"
            )
        if weights is not None:
            raise NotImplementedError(
                f"Bidirectional '{self.name}': weights= is not supported; call set_weights "
                "once the layer is built"
            )
        self.forward_layer = layer
        if backward_layer is None:
            config = {
                **layer.get_config(),
                "go_backwards": not layer.go_backwards,
                "name": f"backward_{layer.name}",
            }
            config.pop("trainable", None)
            backward_layer = type(layer)(**config)
        elif backward_layer.go_backwards == layer.go_backwards:
            raise ValueError(
                f"Bidirectional '{self.name}': backward_layer.go_backwards must be the "
                "opposite of layer.go_backwards"
            )
        self.backward_layer = backward_layer
        self.merge_mode = merge_mode
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        for inner in (self.forward_layer, self.backward_layer):  # as Keras forces it
            inner.zero_output_for_mask = inner.return_sequences

    def build(self, input_shape):
        for layer in (self.forward_layer, self.backward_layer):
            if not layer.built:
                layer.build(input_shape)
                layer.built = True

    def _all_variables(self):
        return self.forward_layer.weights + self.backward_layer.weights

    def compute_mask(self, inputs, previous_mask):
        if isinstance(previous_mask, list | tuple):
            previous_mask = previous_mask[0] if previous_mask else None
        mask = previous_mask if self.return_sequences else None
        outputs = 2 if self.merge_mode is None else 1
        if not self.return_state:
            return mask if outputs == 1 else [mask, mask]
        states = 2 * len(self.forward_layer.state_sizes)
        return [*[mask] * outputs, *[None] * states]

    def call(self, sequences, initial_state=None, mask=None, training=None):
        forward_state = backward_state = None
        if initial_state is not None:
            given = list(initial_state) if isinstance(initial_state, list | tuple) else []
            half = len(given) // 2
            if not given or len(given) % 2:
                raise ValueError(
                    f"Bidirectional '{self.name}': initial_state must be a list of the forward "
                    f"layer's states then the backward layer's, got {initial_state!r}"
                )
            forward_state, backward_state = given[:half], given[half:]
        y = self.forward_layer.call(sequences, forward_state, mask, training)
        y_rev = self.backward_layer.call(sequences, backward_state, mask, training)
        states: list = []
        if self.return_state:
            states = [*y[1:], *y_rev[1:]]
            y, y_rev = y[0], y_rev[0]
        forward, backward = y.value, y_rev.value
        if self.return_sequences:
            backward = B.reverse(backward, 1)  # back in input order
        if self.merge_mode is None:
            outputs = [TracedTensor(forward), TracedTensor(backward)]
        elif self.merge_mode == "concat":
            outputs = [TracedTensor(B.concat([forward, backward], -1))]
        elif self.merge_mode == "sum":
            outputs = [TracedTensor(forward + backward)]
        elif self.merge_mode == "mul":
            outputs = [TracedTensor(forward * backward)]
        else:
            outputs = [TracedTensor((forward + backward) * 0.5)]
        found = [*outputs, *states]
        return found[0] if len(found) == 1 else found

    def reset_states(self, states: Any = None) -> None:
        """Keras's: the wrapped layers are not stateful, so there is nothing to reset."""

    reset_state = reset_states
