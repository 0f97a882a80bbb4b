"""What SimpleRNN, LSTM and GRU share: weights, masks, and the recurrence as one scan.

The input projection of every step is one matrix product over the whole
sequence (with the input bias in its epilogue); the recurrence is one ``scan``
node whose body is a single step, so a sequence of 200 steps compiles like one
of 20. The body's inputs are the states (carries), the step's slice of the
projection, and the recurrent weights (invariants).
"""

from __future__ import annotations

from typing import Any

from kcompile import activations
from kcompile.ir import BATCH, DType, Graph, TensorType, Value
from kcompile.ir import build as B
from kcompile.ir.ops.scan import step_type
from kcompile.layers.layer import Layer, TraceContext


def split_gates(z: Value, parts: int) -> list[Value]:
    width = z.shape[1]
    u = width // parts
    return [B.slice_(z, (0, k * u), (BATCH, (k + 1) * u)) for k in range(parts)]


class BaseRNN(Layer):
    propagates_mask = True
    gates = 1

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        zero_output_for_mask: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if stateful:
            raise NotImplementedError(
                f"{type(self).__name__} '{self.name}': stateful=True is not supported"
            )
        if dropout or recurrent_dropout:
            raise NotImplementedError(
                f"{type(self).__name__} '{self.name}': dropout inside the cell is not supported yet"
            )
        self.units = int(units)
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer
        self.return_sequences, self.return_state = return_sequences, return_state
        self.go_backwards = go_backwards
        # Masked steps keep the states; their output is the previous one, or zeros.
        self.zero_output_for_mask = bool(zero_output_for_mask)

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' expects inputs of rank 3 "
                f"(batch, timesteps, features), got shape {input_shape}"
            )
        width = self.gates * self.units
        self.kernel = self.add_weight(
            (input_shape[-1], width), self.kernel_initializer, name="kernel"
        )
        self.recurrent_kernel = self.add_weight(
            (self.units, width), self.recurrent_initializer, name="recurrent_kernel"
        )
        self.bias = (
            self.add_weight(self.bias_shape(), self.make_bias_initializer(), name="bias")
            if self.use_bias
            else None
        )

    def bias_shape(self) -> tuple[int, ...]:
        return (self.gates * self.units,)

    def make_bias_initializer(self):
        return self.bias_initializer

    def call(self, ctx: TraceContext, x: Value, mask: Value | None = None):
        n, steps, _ = x.shape
        graph = x.graph
        projected = self.input_bias(ctx, B.matmul(x, ctx.weight(self.kernel)))
        sequences = [projected]
        if mask is not None:  # [N, T] -> one [N, 1] flag a step
            sequences.append(B.reshape(B.ne(mask, False), (*mask.shape, 1)))
        invariants = self.invariants(ctx)
        body = Graph(f"{self.name}_step")
        carry = TensorType(DType.f32, (BATCH, self.units))
        with body.layer_scope(self.name):
            state = [body.add_input(name, carry, "carry") for name in self.state_names]
            xk = body.add_input("x", step_type(projected.type), "step")
            keep = None
            if mask is not None:
                keep = body.add_input("mask", step_type(sequences[1].type), "step")
            inner = {
                name: body.add_input(name, v.type, "invariant") for name, v in invariants.items()
            }
            new = self.cell(xk, state, inner)
            output = new[0]
            if keep is not None:  # Keras's masked step: states kept, output per the flag
                if self.zero_output_for_mask:
                    output = B.select(keep, output, 0.0)
                new = [B.select(keep, a, b) for a, b in zip(new, state)]
                output = output if self.zero_output_for_mask else new[0]
        body.set_outputs([*zip(self.state_names, new), ("output", output)])
        init = [B.const(graph, 0.0, DType.f32, (n, self.units)) for _ in self.state_names]
        attrs = {
            "body": body,
            "carries": len(init),
            "sequences": len(sequences),
            "length": steps,
            "reverse": self.go_backwards,
            "saved": True,
            "workspace": (0, 0),
        }
        results = graph.emit("scan", [*init, *sequences, *invariants.values()], attrs)
        state, sequence = list(results[: len(init)]), results[len(init)]
        if not self.return_sequences:
            out = state[0]
        elif self.go_backwards:
            out = B.reverse(sequence, 1)  # Keras returns the steps in the order it ran them
        else:
            out = sequence
        return [out, *state] if self.return_state else out

    def compute_mask(self, inputs, previous_mask):
        """Keras's: the steps' mask goes on with the sequence; states carry none."""
        mask = previous_mask if self.return_sequences else None
        return [mask, *[None] * len(self.state_names)] if self.return_state else mask

    state_names = ("h",)

    def input_bias(self, ctx, projected: Value) -> Value:
        return projected + ctx.weight(self.bias) if self.bias is not None else projected

    def invariants(self, ctx) -> dict[str, Value]:
        return {"recurrent_kernel": ctx.weight(self.recurrent_kernel)}

    def cell(self, xk: Value, state: list[Value], w: dict[str, Value]) -> list[Value]:
        raise NotImplementedError

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "zero_output_for_mask": self.zero_output_for_mask,
        }
