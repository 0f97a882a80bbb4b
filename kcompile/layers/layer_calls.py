"""Keras's ways of calling a layer besides ``layer(x)``: ``stateless_call`` (the weights
given as values, Keras's JAX API), ``symbolic_call`` (on symbolic tensors) and the names
``call`` takes (``call_signature_parameters``). ``Layer`` inherits them."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from kcompile.backend.keras_tensor import KerasTensor
from kcompile.backend.symbolic import TracedTensor, current_context
from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.tree import flatten


def _step_value(ctx, value: Any) -> Value:
    """A given weight value as a float32 value of the step traced now."""
    from kcompile.ops.core import Builder

    if isinstance(value, TracedTensor):
        return B.cast(value.value, DType.f32)
    return B.cast(Builder(ctx.graph, ctx).value(value), DType.f32)


class LayerCalls:
    def stateless_call(
        self,
        trainable_variables: list,
        non_trainable_variables: list,
        *args: Any,
        return_losses: bool = False,
        **kwargs: Any,
    ) -> tuple:
        """Keras's: ``self(*args, **kwargs)`` with the weights taking the given values;
        returns ``(outputs, new non_trainable values)`` (and the losses it added with
        ``return_losses``). The model's own variables are left as they are."""
        trainable = list(self.trainable_variables)
        non_trainable = list(self.non_trainable_variables)
        if len(trainable_variables) != len(trainable) or len(non_trainable_variables) != len(
            non_trainable
        ):
            raise ValueError(
                f"layer '{self.name}'.stateless_call: expected {len(trainable)} trainable and "
                f"{len(non_trainable)} non-trainable values, got {len(trainable_variables)} "
                f"and {len(non_trainable_variables)}"
            )
        ctx = current_context()
        if ctx is None or not hasattr(ctx, "state_updates"):
            return self._stateless_call_on_arrays(
                trainable_variables, non_trainable_variables, args, kwargs, return_losses
            )
        saved, losses_before = dict(ctx.state_updates), len(ctx.losses)
        for var, value in zip(
            trainable + non_trainable, [*trainable_variables, *non_trainable_variables]
        ):
            ctx.state_updates[var] = _step_value(ctx, value)
        try:
            outputs = self(*args, **kwargs)
            new = [TracedTensor(ctx.state_updates[v]) for v in non_trainable]
            losses = [TracedTensor(v) for v in ctx.losses[losses_before:]]
        finally:
            ctx.state_updates.clear()
            ctx.state_updates.update(saved)
        return (outputs, new, losses) if return_losses else (outputs, new)

    def _stateless_call_on_arrays(
        self, trainable_values, non_trainable_values, args, kwargs, return_losses
    ):
        if return_losses:
            raise NotImplementedError(
                f"layer '{self.name}'.stateless_call(return_losses=True) on arrays: call it "
                "inside a traced step"
            )
        variables = list(self.trainable_variables) + list(self.non_trainable_variables)
        saved = [v.numpy() for v in variables]
        try:
            for var, value in zip(variables, [*trainable_values, *non_trainable_values]):
                var.assign(np.asarray(value))
            outputs = self(*args, **kwargs)
            new = [v.numpy() for v in self.non_trainable_variables]
        finally:
            for var, value in zip(variables, saved):
                var.assign(value)
        return outputs, new

    def symbolic_call(self, *args: Any, **kwargs: Any) -> Any:
        """Keras's: the call on symbolic tensors (``keras.Input`` and what layers make of
        them), recorded as a node of the functional graph."""
        if not any(isinstance(t, KerasTensor) for t in flatten((args, kwargs))):
            raise TypeError(
                f"layer '{self.name}'.symbolic_call takes symbolic tensors (keras.Input and "
                "layers' outputs on them)"
            )
        return self(*args, **kwargs)

    @property
    def call_signature_parameters(self) -> list[str]:
        """Keras's: the names of ``call``'s parameters. A built-in layer's call is
        kcompile's (it takes the trace context and IR values): its names are given as
        Keras's layers name them, ``inputs`` then ``mask`` and ``training`` where taken."""
        names = list(inspect.signature(self.call).parameters)
        if getattr(self, "_keras_call", True):
            return names
        keras_names = ["inputs"]
        keras_names += [n for n in ("mask", "training") if n in names]
        return keras_names
