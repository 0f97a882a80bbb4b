"""What Keras's built-in cells (SimpleRNNCell, LSTMCell, GRUCell) add to their math as
layers of their own: their constructor's arguments, ``build``, a step called by itself
(``cell(inputs, states)``) and a step inside another recurrence's loop body."""

from __future__ import annotations

from kcompile.backend.symbolic import TracedTensor, current_context
from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.rnn.base_rnn import dropout_mask

_CELL_ARGS = (
    "activation",
    "use_bias",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
    "dropout",
    "recurrent_dropout",
    "seed",
)


class BuiltinCell:
    """Mixed into a cell class after its math (``CellMath``) and before ``Layer``."""

    @staticmethod
    def pop_cell_args(kwargs: dict) -> dict:
        return {name: kwargs.pop(name) for name in _CELL_ARGS if name in kwargs}

    def build(self, input_shape):
        self.build_weights(input_shape[-1])

    def call(self, inputs, states, training=None):
        """One step: ``(output, new_states)`` as Keras's cell returns them."""
        ctx = current_context()
        given = states if isinstance(states, list | tuple) else [states]
        new = self.step_inline(ctx, inputs.value, [s.value for s in given], bool(training))[1]
        wrapped = [TracedTensor(v) for v in new]
        return wrapped[0], wrapped

    def step_inline(self, ctx, x: Value, states: list[Value], training: bool):
        """The step on a [N, F] input with every product in it (inside a loop body, or by
        itself); the dropout masks come from outside the loop."""
        outer = getattr(ctx, "outer", None)
        noise = outer if outer is not None else ctx

        def bring(value: Value, name: str) -> Value:
            return ctx.bring(value, f"{self.name}_{name}") if outer is not None else value

        n, features = x.shape
        kernel = ctx.weight(self.kernel)
        if training and 0.0 < self.dropout < 1.0:
            count, u = self.mask_count(), self.units
            parts = []
            for g in range(count):
                mask = bring(_input_mask(self, noise, x, g), f"input_mask{g}")
                gate = (
                    kernel if count == 1 else B.slice_(kernel, (0, g * u), (features, (g + 1) * u))
                )
                parts.append(B.matmul(x * mask, gate))
            projected = parts[0] if count == 1 else B.concat(parts, -1)
        else:
            projected = B.matmul(x, kernel)
        projected = self.input_bias(ctx, projected)
        inner = {k: bring(v, k) for k, v in self.invariants(noise, training, n).items()}
        new = self.cell(projected, states, inner)
        return new[0], new

    def get_config(self):
        return {**super().get_config(), **self.cell_config()}


def _input_mask(cell, ctx, x: Value, gate: int) -> Value:
    return dropout_mask(ctx, x.shape, cell.dropout, cell.seed + gate, x.dtype)
