"""Keras's ``RNN``: a recurrence of any cell, ``StackedRNNCells`` for a list of cells.

A built-in cell (SimpleRNNCell, LSTMCell, GRUCell) alone runs as its layer does, its
input products hoisted out of the loop. A user's cell (any object with ``call(inputs,
states)`` and ``state_size``, written with keras.ops) and a stack of cells are traced
into the loop body once: every step runs that trace."""

from __future__ import annotations

from typing import Any

from kcompile.backend.symbolic import TracedTensor, tracing
from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.layers.layer import Layer
from kcompile.layers.rnn.base_rnn import (
    call_recurrence,
    ctx_value,
    init_sequence_options,
    reset_states,
    sequence_config,
    sequence_mask,
)
from kcompile.layers.rnn.cell import BuiltinCell
from kcompile.layers.rnn.gru import GRUCell
from kcompile.layers.rnn.lstm import LSTMCell
from kcompile.layers.rnn.simple_rnn import SimpleRNNCell
from kcompile.saving import object_registration as registration
from kcompile.tree import flatten


def state_sizes_of(cell: Any, who: str) -> list[int]:
    """A cell's ``state_size`` (an int, or a list of them, nested for stacks) as a flat
    list of ints."""
    size = getattr(cell, "state_size", None)
    if size is None:
        raise ValueError(
            f"{who}: the RNN cell should have a `state_size` attribute (single integer or "
            f"list of integers, one integer per RNN state). Received: cell={cell}"
        )
    sizes = flatten(size)
    if not sizes or not all(isinstance(s, int) for s in sizes):
        raise NotImplementedError(
            f"{who}: state_size {size!r}: only states of shape (batch, size) are supported "
            "(an integer size each)"
        )
    return list(sizes)


def cell_step(body, cell: Any, x: Value, states: list[Value], training: bool):
    """One cell's step inside a loop body: (output, new states as a flat list)."""
    if isinstance(cell, BuiltinCell):
        return cell.step_inline(body, x, states, training)
    if isinstance(cell, StackedRNNCells):
        return cell.step_inline(body, x, states, training)
    traced = [TracedTensor(s) for s in states]
    with tracing(body):
        if isinstance(cell, Layer):
            out = cell(TracedTensor(x), traced, training=training)
        else:
            out = cell.call(TracedTensor(x), traced)
    dtype = states[0].dtype if states else DType.f32
    leaves = [_value(body, v, dtype) for v in flatten(out)]
    return leaves[0], leaves[1:]


def _value(body, x: Any, dtype: DType) -> Value:
    """A cell's result in the states' dtype."""
    v = x.value if isinstance(x, TracedTensor) else ctx_value(body, x)
    return B.cast(v, dtype)


class _TracedCellSpec:
    """A cell whose step is traced inside the loop body (the inputs go in unprojected)."""

    def __init__(self, cell: Any, who: str) -> None:
        self.cell = cell
        self.state_sizes = state_sizes_of(cell, who)

    def project(self, ctx, x: Value, training: bool) -> Value:
        return x if x.dtype.is_float else B.cast(x, DType.f32)

    def invariants(self, ctx, training: bool, rows: Any) -> dict:
        return {}

    def step(self, body, xk: Value, states: list[Value], inner: dict):
        return cell_step(body, self.cell, xk, states, body.training)


class StackedRNNCells(Layer):
    """Keras's ``StackedRNNCells``: cells run one after another within each step."""

    def __init__(self, cells: list, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        cells = [_deserialize(c) for c in cells]  # a config's cells are dicts
        for cell in cells:
            if not hasattr(cell, "call") or not hasattr(cell, "state_size"):
                raise ValueError(
                    f"StackedRNNCells '{self.name}': every cell needs a `call` method and a "
                    f"`state_size`; received {cell!r}"
                )
        self.cells = list(cells)

    @property
    def state_size(self) -> list:
        return [c.state_size for c in self.cells]

    @property
    def output_size(self) -> int:
        last = self.cells[-1]
        if getattr(last, "output_size", None) is not None:
            return last.output_size
        return flatten(last.state_size)[0]

    def build(self, input_shape):
        for cell in self.cells:
            if isinstance(cell, BuiltinCell) and not cell.built:
                cell.build(input_shape)
                cell.built = True
            size = getattr(cell, "output_size", None) or flatten(cell.state_size)[0]
            input_shape = (*input_shape[:-1], size)

    def step_inline(self, body, x: Value, states: list[Value], training: bool):
        new_states: list[Value] = []
        k = 0
        for cell in self.cells:
            count = len(state_sizes_of(cell, f"StackedRNNCells '{self.name}'"))
            x, new = cell_step(body, cell, x, states[k : k + count], training)
            new_states.extend(new)
            k += count
        return x, new_states

    def get_config(self):
        return {**super().get_config(), "cells": [_serialize(c) for c in self.cells]}


class RNN(Layer):
    """Keras's ``RNN(cell)``: the recurrence of ``cell`` (a list of cells is stacked)."""

    propagates_mask = True

    def __init__(
        self,
        cell: Any,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        zero_output_for_mask: bool = False,
        **kwargs: Any,
    ) -> None:
        if isinstance(cell, dict):  # a config's cell, as the model loaders give it
            cell = _deserialize(cell)
        if isinstance(cell, list | tuple):
            cell = StackedRNNCells([_deserialize(c) for c in cell])
        super().__init__(**kwargs)
        if not hasattr(cell, "call"):
            raise ValueError(
                f"RNN '{self.name}': argument `cell` should have a `call` method. "
                f"Received: cell={cell}"
            )
        self.cell = cell
        self.state_sizes = state_sizes_of(cell, f"RNN '{self.name}'")
        init_sequence_options(self, return_sequences, return_state, go_backwards, stateful, unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)

    def cell_spec(self) -> Any:
        if isinstance(self.cell, BuiltinCell):  # its input products out of the loop
            return self.cell
        return _TracedCellSpec(self.cell, f"RNN '{self.name}'")

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"RNN '{self.name}' expects inputs of rank 3 (batch, timesteps, features), "
                f"got shape {tuple(input_shape)}"
            )
        step_shape = (input_shape[0], input_shape[-1])
        if isinstance(self.cell, BuiltinCell | StackedRNNCells) and not self.cell.built:
            self.cell.build(step_shape)
            self.cell.built = True

    def call(self, sequences, initial_state=None, mask=None, training=None):
        return call_recurrence(self, self.cell_spec(), sequences, initial_state, mask, training)

    def compute_mask(self, inputs, previous_mask):
        return sequence_mask(self, previous_mask)

    def reset_states(self, states: Any = None) -> None:
        reset_states(self)

    reset_state = reset_states

    def get_config(self):
        return {
            **super().get_config(),
            "cell": _serialize(self.cell),
            **sequence_config(self),
            "zero_output_for_mask": self.zero_output_for_mask,
        }


def _serialize(cell: Any) -> dict:
    """Keras's form of a cell in a config: its class's (registered) name and config. A
    built-in cell is named as Keras names it (``keras.layers``), so Keras reads the file."""
    cls = type(cell)
    builtin = cls.__module__.startswith("kcompile.")
    return {
        "module": "keras.layers" if builtin else cls.__module__,
        "class_name": cls.__name__,
        "config": cell.get_config(),
        "registered_name": None if builtin else registration.get_registered_name(cls),
    }


def _deserialize(config: Any) -> Any:
    """A cell from its config: the built-in cells by name, a user's from Keras's registry
    of custom objects (``register_keras_serializable``, ``custom_object_scope``)."""
    if not isinstance(config, dict):
        return config
    builtin = {c.__name__: c for c in (SimpleRNNCell, LSTMCell, GRUCell, StackedRNNCells)}
    name = config.get("class_name")
    cls = builtin.get(name) or registration.get_registered_object(
        config.get("registered_name") or name
    )
    if cls is None:
        raise ValueError(
            f"RNN: cannot find the cell class {name!r}: register it with "
            "keras.saving.register_keras_serializable, or load within "
            "custom_object_scope({...})"
        )
    return cls.from_config(config["config"])
