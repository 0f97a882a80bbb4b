"""``keras.models.clone_model``: the same architecture with new layers (new weights,
as Keras's: the weights are not copied), for Sequential and functional models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kcompile.backend.keras_tensor import KerasTensor
from kcompile.layers.core.input_layer import Input, InputLayer
from kcompile.layers.layer import Layer
from kcompile.models import layer_internals as internals
from kcompile.models.model import Model
from kcompile.models.sequential import Sequential
from kcompile.tree import map_structure
from kcompile.utils.traceback_utils import filter_traceback


def _clone_layer(layer: Layer) -> Layer:
    """Keras's default ``clone_function``: the layer made again from its config."""
    return layer.__class__.from_config(layer.get_config())


def _wrap(clone_function: Callable | None, call_function, recursive: bool, cache: dict):
    clone_function = clone_function or _clone_layer

    def wrapped(layer: Layer) -> Layer:
        if id(layer) in cache:
            return cache[id(layer)]
        if recursive and isinstance(layer, Model) and not internals.keras_style_call(layer):
            clone = clone_model(
                layer,
                clone_function=clone_function,
                call_function=call_function if not isinstance(layer, Sequential) else None,
                recursive=True,
                cache=cache,
            )
        else:
            clone = clone_function(layer)
        cache[id(layer)] = clone
        return clone

    return wrapped


@filter_traceback
def clone_model(
    model: Model,
    input_tensors: Any = None,
    clone_function: Callable | None = None,
    call_function: Callable | None = None,
    recursive: bool = False,
    **kwargs: Any,
) -> Model:
    """Keras's: a model of the same architecture whose layers are ``clone_function(layer)``
    (by default made again from their configs, with new weights); a compiled model's
    clone is compiled alike. ``call_function(layer, *args, **kwargs)`` calls each clone
    in a functional model (Keras's hook for wrapping calls)."""
    cache = kwargs.pop("cache", None)
    if kwargs:
        raise ValueError(f"Unexpected keyword argument(s): {tuple(kwargs.keys())}")
    wrapped = _wrap(clone_function, call_function, recursive, {} if cache is None else cache)
    if isinstance(model, Sequential):
        if call_function is not None:
            raise ValueError(
                "`call_function` argument is not supported with Sequential models. In a "
                "Sequential model, layers aren't called at model-construction time (they're "
                "merely listed). Use `call_function` with Functional models only."
            )
        clone = _clone_sequential(model, wrapped, input_tensors)
    elif not internals.keras_style_call(model):
        clone = _clone_functional(model, wrapped, input_tensors, call_function)
    else:
        if clone_function or input_tensors is not None:
            raise ValueError(
                "Arguments `clone_function` and `input_tensors` are only supported for "
                "Sequential models or Functional models. Received model of type "
                f"'{type(model).__name__}'"
            )
        if call_function is not None:
            raise ValueError("Argument `call_function` is only supported for Functional models.")
        from kcompile.saving.serialization_lib import (
            deserialize_keras_object,
            serialize_keras_object,
        )

        config = serialize_keras_object(model)
        return deserialize_keras_object(config, custom_objects={type(model).__name__: type(model)})
    if model.compiled:
        clone.compile_from_config(model.get_compile_config())
    return clone


def _clone_sequential(model: Sequential, clone: Callable, input_tensors: Any) -> Sequential:
    layers = [clone(layer) for layer in model.layers]
    if input_tensors is not None:
        if isinstance(input_tensors, list | tuple):
            if len(input_tensors) != 1:
                raise ValueError("Argument `input_tensors` must contain a single tensor.")
            input_tensors = input_tensors[0]
        if not isinstance(input_tensors, KerasTensor):
            raise ValueError(
                "Argument `input_tensors` must be a KerasTensor. "
                f"Received invalid value: input_tensors={input_tensors}"
            )
        start = [_fresh_input(input_tensors)]
    elif model.built:
        given = model.inputs[0]
        start = [Input(shape=given.shape[1:], dtype=given.dtype, name=given.name)]
    else:
        start = []
    return Sequential(start + layers, name=model.name, trainable=model.trainable)


def _fresh_input(tensor: KerasTensor) -> KerasTensor:
    """An Input of ``tensor``'s shape: ``tensor`` itself when it is one."""
    if getattr(tensor, "_input_layer", None) is not None:
        return tensor
    return Input(shape=tensor.shape[1:], dtype=tensor.dtype)


def _clone_functional(
    model: Model, clone: Callable, input_tensors: Any, call_function: Callable | None
) -> Model:
    originals = model.inputs
    if input_tensors is None:
        news = [Input(shape=t.shape[1:], dtype=t.dtype, name=t.name) for t in originals]
    else:
        given = input_tensors if isinstance(input_tensors, list | tuple) else [input_tensors]
        if len(given) != len(originals) or not all(isinstance(t, KerasTensor) for t in given):
            raise ValueError(
                "`input_tensors` must have the same structure as model.input: "
                f"{len(originals)} KerasTensor(s), got {input_tensors!r}"
            )
        news = [_fresh_input(t) for t in given]
    env = {id(t): n for t, n in zip(originals, news)}
    for layer in model.operations:
        if isinstance(layer, InputLayer):
            continue
        new_layer = clone(layer)
        for record in internals.call_records(layer):
            if not all(id(t) in env for t in record.inputs):
                continue  # a call outside this model
            args = [env[id(t)] for t in record.inputs]
            spec = record.kwargs
            if spec is not None and internals.keras_style_call(layer):
                call_args, call_kwargs = spec.arguments(args)
            else:
                call_args, call_kwargs = ((args if layer.multi_input else args[0]),), {}
            if call_function is not None:
                out = call_function(new_layer, *call_args, **call_kwargs)
            else:
                out = new_layer(*call_args, **call_kwargs)
            outs = out if isinstance(out, list | tuple) else [out]
            for t, n in zip(record.outputs, outs):
                env[id(t)] = n
    missing = [t for t in model.outputs if id(t) not in env]
    if missing:
        raise ValueError(f"clone_model: model '{model.name}' outputs {missing} were not rebuilt")
    outputs = map_structure(lambda t: env[id(t)], model.output)
    inputs = news[0] if len(news) == 1 else news
    return Model(inputs, outputs, name=model.name)
