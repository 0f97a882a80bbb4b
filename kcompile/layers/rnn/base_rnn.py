"""What SimpleRNN, LSTM, GRU and ``RNN(cell)`` share: the recurrence as one scan.

A step is described by a *cell spec* (duck-typed): ``state_sizes`` (one feature size per
state), ``project(ctx, x, training)`` (the sequence the body reads a step of),
``invariants(ctx, training)`` (values every step reads) and ``step(body, xk, states,
inner)`` (the step's output and new states, emitted into the body graph). The built-in
cells (``CellMath``) project the inputs of every step with one matrix product over the
whole sequence (with the input bias in its epilogue), so the body holds the recurrent
product and the gates alone; a user's cell is traced into the body as it is written.

The recurrence is one ``scan`` node whose body is a single step, so a sequence of 200
steps compiles like one of 20. A built-in cell's scan is time-major: the inputs are
transposed to [T, N, F] before their projection (the narrow end), so that each step's
slice of the projection is contiguous and the native loop reads it in place. Its carries are the states (zeros, or ``initial_state``);
Keras's masked steps keep the states and output the first state (or zeros).

Dropout (``dropout``, ``recurrent_dropout``, training only) is Keras's: one mask per
sequence for the inputs and one for the recurrent state, the same at every step, drawn
from the step's counter-based generator keyed by the layer's seed. Where Keras's cell uses
one mask per gate (LSTM and GRU with ``recurrent_dropout``: its ``implementation=1``),
each gate gets its own.
"""

from __future__ import annotations

from typing import Any

from kcompile import activations
from kcompile.backend import session as backend
from kcompile.backend.keras_tensor import keras_shape
from kcompile.backend.symbolic import TracedTensor, current_context
from kcompile.ir import DType, Graph, TensorType, Value
from kcompile.ir import build as B
from kcompile.ir.ops.scan import step_type
from kcompile.layers.layer import Layer, TraceContext
from kcompile.layers.weight_arguments import (
    activity_config,
    set_weight_arguments,
    weight_config,
)

_RECURRENT_SEED_OFFSET = 7919  # the recurrent masks' seeds, apart from the inputs'


def split_gates(z: Value, parts: int) -> list[Value]:
    width = z.shape[1]
    u = width // parts
    return [B.slice_(z, (0, k * u), (z.shape[0], (k + 1) * u)) for k in range(parts)]


def dropout_mask(
    ctx: TraceContext, shape: tuple, rate: float, seed: int, dtype: DType = DType.f32
) -> Value:
    """Keras's ``dropout(ones, rate)``: 0 with probability ``rate``, else 1/(1-rate)."""
    u = B.random_uniform(ctx.step_counter(), shape, seed)
    return B.cast(B.ge(u, rate), dtype) * (1.0 / (1.0 - rate))


class BodyContext(TraceContext):
    """The trace context of a scan's body: a weight (or any value of the step outside
    the loop, the step counter included) read inside it becomes an invariant input of the
    body, remembered with the outer value the scan passes in."""

    def __init__(self, body: Graph, outer: TraceContext) -> None:
        super().__init__(body, outer.training)
        self.outer = outer
        self.brought: dict[int, tuple[Value, Value]] = {}

    def bring(self, value: Value, name: str) -> Value:
        """``value`` of the outer graph as an invariant of the body."""
        found = self.brought.get(id(value))
        if found is None:
            inner = self.graph.add_input(name, value.type, "invariant")
            found = self.brought[id(value)] = (value, inner)
        return found[1]

    def weight(self, var):
        return self.bring(self.outer.weight(var), var.path.replace("/", "_"))

    def step_counter(self) -> Value:
        return self.bring(self.outer.step_counter(), "iterations")


class CellMath:
    """The weights and math of Keras's built-in cells (SimpleRNNCell, LSTMCell, GRUCell),
    shared by the cells and the layers that hold the weights themselves."""

    gates = 1
    state_names: tuple[str, ...] = ("h",)
    name: str

    def init_cell(
        self,
        units: int,
        activation: Any = "tanh",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        *,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
    ) -> None:
        if int(units) <= 0:
            raise ValueError(f"'{self.name}': units must be a positive integer, got {units}")
        self.units = int(units)
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        set_weight_arguments(
            self,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
        )
        # Keras clips the rates to [0, 1] and drops only for rates strictly inside
        self.dropout = min(1.0, max(0.0, float(dropout)))
        self.recurrent_dropout = min(1.0, max(0.0, float(recurrent_dropout)))
        # The masks' seed (drawn when none is given); the config keeps the one given, as
        # Keras's does (a layer made from it draws its own).
        self.seed = backend.draw_seed() if seed is None else int(seed)
        self._given_seed = None if seed is None else int(seed)

    @property
    def state_sizes(self) -> list[int]:
        return [self.units] * len(self.state_names)

    @property
    def state_size(self) -> int | list[int]:
        sizes = self.state_sizes
        return sizes[0] if len(sizes) == 1 else sizes

    @property
    def output_size(self) -> int:
        return self.units

    def build_weights(self, input_dim: int) -> None:
        width = self.gates * self.units
        self.add_cell_weights((input_dim, width), (self.units, width), self.bias_shape())

    def add_cell_weights(self, kernel: tuple, recurrent: tuple, bias: tuple) -> None:
        """``kernel``, ``recurrent_kernel`` and ``bias`` (when used) of these shapes, each
        with its initializer, regularizer and constraint."""
        self.kernel = self.add_weight(
            kernel,
            self.kernel_initializer,
            name="kernel",
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            recurrent,
            self.recurrent_initializer,
            name="recurrent_kernel",
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        self.bias = (
            self.add_weight(
                bias,
                self.make_bias_initializer(),
                name="bias",
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
            if self.use_bias
            else None
        )

    def bias_shape(self) -> tuple[int, ...]:
        return (self.gates * self.units,)

    def make_bias_initializer(self):
        return self.bias_initializer

    def input_bias(self, ctx, projected: Value) -> Value:
        return projected + ctx.weight(self.bias) if self.bias is not None else projected

    def mask_count(self) -> int:
        """Keras's: one mask per gate where the cell runs its ``implementation=1``."""
        return self.gates if self.recurrent_dropout else 1

    def project(self, ctx, x: Value, training: bool, time_major: bool = False) -> Value:
        """The inputs' share of every step, ``x·kernel + bias``, with the inputs' dropout;
        ``x`` is [N, T, F], or [T, N, F] when ``time_major``."""
        kernel = ctx.weight(self.kernel)
        if not (training and 0.0 < self.dropout < 1.0):
            return self.input_bias(ctx, B.matmul(x, kernel))
        n, features = (x.shape[1] if time_major else x.shape[0]), x.shape[2]
        count, u = self.mask_count(), self.units
        parts = []
        for g in range(count):
            mask = dropout_mask(ctx, (n, features), self.dropout, self.seed + g, x.dtype)
            dropped = x * B.reshape(mask, (1, n, features) if time_major else (n, 1, features))
            if count == 1:
                parts.append(B.matmul(dropped, kernel))
            else:
                gate = B.slice_(kernel, (0, g * u), (features, (g + 1) * u))
                parts.append(B.matmul(dropped, gate))
        projected = parts[0] if count == 1 else B.concat(parts, -1)
        return self.input_bias(ctx, projected)

    def invariants(self, ctx, training: bool, rows: Any) -> dict[str, Value]:
        """What every step reads: the recurrent weights, the recurrent dropout's masks
        (of ``rows`` batch rows)."""
        found = {"recurrent_kernel": ctx.weight(self.recurrent_kernel)}
        if training and 0.0 < self.recurrent_dropout < 1.0:
            for g in range(self.gates):
                seed = self.seed + _RECURRENT_SEED_OFFSET + g
                found[f"recurrent_mask{g}"] = dropout_mask(
                    ctx,
                    (rows, self.units),
                    self.recurrent_dropout,
                    seed,
                    found["recurrent_kernel"].dtype,
                )
        return found

    def recurrent_product(self, h: Value, w: dict[str, Value]) -> Value:
        """``h·recurrent_kernel``, each gate's with its own dropped ``h`` under
        recurrent dropout."""
        kernel = w["recurrent_kernel"]
        if "recurrent_mask0" not in w:
            return B.matmul(h, kernel)
        u = self.units
        parts = [
            B.matmul(h * w[f"recurrent_mask{g}"], B.slice_(kernel, (0, g * u), (u, (g + 1) * u)))
            for g in range(self.gates)
        ]
        return parts[0] if len(parts) == 1 else B.concat(parts, -1)

    def step(self, body, xk: Value, states: list[Value], inner: dict[str, Value]):
        new = self.cell(xk, states, inner)
        return new[0], new

    def cell(self, xk: Value, state: list[Value], w: dict[str, Value]) -> list[Value]:
        raise NotImplementedError

    def cell_config(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            **weight_config(self, "kernel", "recurrent", "bias"),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self._given_seed,
        }


def run_recurrence(
    layer: Layer,
    ctx: TraceContext,
    spec: Any,
    x: Value,
    initial: list[Value] | None,
    mask: Value | None,
    training: bool,
) -> tuple[Value, Value, list[Value]]:
    """The scan of ``spec`` over ``x`` [N, T, F]: (the last output, the outputs of every
    step in the input's order of time as Keras returns them, the final states)."""
    if x.rank != 3:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}' expects inputs of rank 3 "
            f"(batch, timesteps, features), got shape {keras_shape(x.shape)}"
        )
    n, steps, _ = x.shape
    graph = x.graph
    sizes = list(spec.state_sizes)
    # The states are in the layer's compute dtype, as its inputs are (bf16 under a mixed
    # policy, as Keras's cells compute).
    dtype = x.dtype if x.dtype.is_float else DType.f32
    init = _initial_states(layer, graph, n, sizes, initial, dtype)
    # A built-in cell's loop runs time-major: the inputs (narrow) are transposed before
    # their projection, and then each step's slice of the projection is one block that
    # the native loop reads in place.
    major = isinstance(spec, CellMath) and type(spec).project is CellMath.project
    if major:
        projected = spec.project(ctx, B.transpose(x, (1, 0, 2)), training, time_major=True)
    else:
        projected = spec.project(ctx, x, training)
    sequences = [projected]
    if mask is not None:  # [N, T] -> one [N, 1] flag a step
        flags = B.ne(mask, False)
        flags = B.transpose(flags, (1, 0)) if major else flags
        sequences.append(B.reshape(flags, (*flags.shape, 1)))
    outer_inner = spec.invariants(ctx, training, n)
    body = Graph(f"{layer.name}_step")
    inner_ctx = BodyContext(body, ctx)
    with body.layer_scope(layer.name):
        states = [
            body.add_input(f"state{i}", TensorType(dtype, (n, size)), "carry")
            for i, size in enumerate(sizes)
        ]
        xk = body.add_input("x", step_type(projected.type, major), "step")
        keep = (
            body.add_input("mask", step_type(sequences[1].type, major), "step")
            if mask is not None
            else None
        )
        inner = {name: inner_ctx.bring(v, name) for name, v in outer_inner.items()}
        output, new = spec.step(inner_ctx, xk, states, inner)
        _check_step(layer, inner_ctx, output, new, states)
        if keep is not None:  # Keras's masked step: states kept, output the first state
            if getattr(layer, "zero_output_for_mask", False):
                output = B.select(keep, output, 0.0)
            elif output.shape == states[0].shape:
                output = B.select(keep, output, states[0])
            new = [B.select(keep, a, b) for a, b in zip(new, states)]
    body.set_outputs([*((f"state{i}", v) for i, v in enumerate(new)), ("output", output)])
    invariants = [outer for outer, _ in inner_ctx.brought.values()]
    attrs = {
        "body": body,
        "carries": len(init),
        "sequences": len(sequences),
        "length": steps,
        "reverse": bool(getattr(layer, "go_backwards", False)),
        "saved": True,
        "workspace": (0, 0),
        **({"time_major": True} if major else {}),
    }
    results = graph.emit("scan", [*init, *sequences, *invariants], attrs)
    final, stacked = list(results[: len(init)]), results[len(init)]
    backwards = attrs["reverse"]
    if isinstance(spec, CellMath) and not getattr(layer, "zero_output_for_mask", False):
        last = final[0]  # a built-in cell's output is its first state: no slice of the stack
    else:
        last_t = 0 if backwards else steps - 1
        width = stacked.shape[2]
        if major:
            one = B.slice_(stacked, (last_t, 0, 0), (last_t + 1, n, width))
        else:
            one = B.slice_(stacked, (0, last_t, 0), (n, last_t + 1, width))
        last = B.reshape(one, (n, width))
    if major:
        stacked = B.transpose(stacked, (1, 0, 2))
    # Keras returns the steps in the order it ran them
    sequence = B.reverse(stacked, 1) if backwards else stacked
    return last, sequence, final


def _initial_states(
    layer, graph, n, sizes: list[int], initial: list[Value] | None, dtype: DType
) -> list:
    if initial is None:
        return [B.const(graph, 0.0, dtype, (n, size)) for size in sizes]
    if len(initial) != len(sizes):
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}': initial_state has {len(initial)} "
            f"tensors, but the layer has {len(sizes)} states (of sizes {sizes})"
        )
    out = []
    for i, (value, size) in enumerate(zip(initial, sizes)):
        if value.rank != 2 or value.shape[1] != size:
            raise ValueError(
                f"{type(layer).__name__} '{layer.name}': initial_state[{i}] must have shape "
                f"(batch, {size}), got {keras_shape(value.shape)}"
            )
        out.append(B.cast(value, dtype))
    return out


def _check_step(layer, body: BodyContext, output: Value, new: list, states: list) -> None:
    if body.losses or body.state_updates:
        raise NotImplementedError(
            f"{type(layer).__name__} '{layer.name}': a cell that adds losses or assigns "
            "variables inside its step is not supported (the step is a loop body)"
        )
    if len(new) != len(states) or any(a.shape != b.shape for a, b in zip(new, states)):
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}': the cell returned states of shapes "
            f"{[keras_shape(v.shape) for v in new]}, expected "
            f"{[keras_shape(v.shape) for v in states]} (its state_size)"
        )
    if output.rank != 2:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}': the cell's output must be of rank 2 "
            f"(batch, features), got {keras_shape(output.shape)}"
        )


class BaseRNN(CellMath, Layer):
    """SimpleRNN, LSTM and GRU: the cell's weights on the layer itself (``lstm/kernel``),
    Keras's call ``(sequences, initial_state=None, mask=None, training=None)``."""

    propagates_mask = True

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        zero_output_for_mask: bool = False,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("use_cudnn", None)  # Keras's choice of a GPU kernel: nothing to choose
        kwargs.pop("implementation", None)  # the same numbers either way
        super().__init__(**kwargs)
        self.init_cell(
            units,
            activation,
            use_bias,
            kernel_initializer,
            recurrent_initializer,
            bias_initializer,
            kernel_regularizer,
            recurrent_regularizer,
            bias_regularizer,
            dropout,
            recurrent_dropout,
            seed,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
        )
        init_sequence_options(self, return_sequences, return_state, go_backwards, stateful, unroll)
        # Masked steps keep the states; their output is the previous one, or zeros.
        self.zero_output_for_mask = bool(zero_output_for_mask)

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' expects inputs of rank 3 "
                f"(batch, timesteps, features), got shape {tuple(input_shape)}"
            )
        self.build_weights(input_shape[-1])

    def call(self, sequences, initial_state=None, mask=None, training=None):
        return call_recurrence(self, self, sequences, initial_state, mask, training)

    def compute_mask(self, inputs, previous_mask):
        return sequence_mask(self, previous_mask)

    def reset_states(self, states: Any = None) -> None:
        reset_states(self)

    reset_state = reset_states

    def get_config(self):
        return {
            **super().get_config(),
            **self.cell_config(),
            **activity_config(self),
            **sequence_config(self),
            "zero_output_for_mask": self.zero_output_for_mask,
        }


def init_sequence_options(
    layer: Layer,
    return_sequences: bool,
    return_state: bool,
    go_backwards: bool,
    stateful: bool,
    unroll: bool,
) -> None:
    if stateful:
        raise NotImplementedError(
            f"{type(layer).__name__} '{layer.name}': stateful=True is not supported: a "
            "stateful layer carries its states from one batch to the next, but kcompile's "
            "compiled predict and evaluate steps write no state back (only the train step "
            "writes its state updates) and their batch size is not fixed, which a stateful "
            "layer's states need. Pass the states yourself: return_state=True, and "
            "initial_state= on the next call"
        )
    layer.return_sequences, layer.return_state = bool(return_sequences), bool(return_state)
    layer.go_backwards, layer.stateful, layer.unroll = bool(go_backwards), False, bool(unroll)


def sequence_config(layer: Layer) -> dict[str, Any]:
    return {
        "return_sequences": layer.return_sequences,
        "return_state": layer.return_state,
        "go_backwards": layer.go_backwards,
        "stateful": layer.stateful,
        "unroll": layer.unroll,
    }


def sequence_mask(layer: Layer, previous_mask: Any) -> Any:
    """Keras's: the steps' mask goes on with the sequence; states carry none."""
    if isinstance(previous_mask, list | tuple):
        previous_mask = previous_mask[0] if previous_mask else None
    mask = previous_mask if layer.return_sequences else None
    states = len(getattr(layer, "state_sizes", None) or layer.cell_spec().state_sizes)
    return [mask, *[None] * states] if layer.return_state else mask


def reset_states(layer: Layer) -> None:
    """Keras's ``reset_states``: a layer that is not stateful keeps no states to reset."""


def call_recurrence(layer, spec, sequences, initial_state, mask, training) -> Any:
    """Keras's ``RNN.call`` on traced tensors: the outputs as Keras returns them."""
    ctx = current_context()
    x = sequences.value
    initial = None
    if initial_state is not None:
        given = initial_state if isinstance(initial_state, list | tuple) else [initial_state]
        initial = [v.value if isinstance(v, TracedTensor) else ctx_value(ctx, v) for v in given]
    mask_value = None if mask is None else mask.value
    last, sequence, final = run_recurrence(layer, ctx, spec, x, initial, mask_value, bool(training))
    out = sequence if layer.return_sequences else last
    if not layer.return_state:
        return TracedTensor(out)
    return [TracedTensor(v) for v in (out, *final)]


def ctx_value(ctx: TraceContext, x: Any) -> Value:
    from kcompile.ops.core import Builder

    return Builder(ctx.graph, ctx).value(x)
