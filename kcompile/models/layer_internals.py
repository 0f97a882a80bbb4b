"""What models and their savers read of a ``Layer`` that the layer keeps private.

Keras keeps these private too (``layer._trainable_variables``, ``layer._inbound_nodes``,
``layer._tracker``, ``layer._input_shape_arg``) and its own ``Sequential`` and savers
read them. Each is read here and nowhere else outside ``kcompile.layers``, so the reaches
into a layer's internals are few, named and counted (``benchmarks/code_health.py``
``private_reaches``); a public accessor on ``Layer`` would retire each one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

# The calls of the model whose config is being written (None: every call). Keras writes
# a layer's calls in that model only, numbered among them (its ``node_reindexing_map``),
# so a layer shared with another model (one made on an intermediate tensor of this one,
# say) writes no call on tensors the model does not have.
_MODEL_CALLS: ContextVar[frozenset | None] = ContextVar("model_calls", default=None)


def own_variables(layer: Any) -> list:
    """The weights ``layer`` made itself, in the order it made them, without those of the
    layers it holds (Keras writes a layer's own under ``vars``)."""
    return list(layer._variables)  # Layer has only weights, which include nested layers'


def tracked_layers(layer: Any) -> list:
    """The layers ``layer`` holds as attributes (Keras's automatic tracking)."""
    return layer._tracked_layers()  # Layer tracks them for weights; no public list


def call_records(layer: Any) -> list:
    """Every call of ``layer`` on symbolic tensors, in order (Keras's inbound nodes:
    a tensor names the call that made it by its index here); inside ``model_calls(m)``,
    those of model ``m`` only."""
    calls = _calls(layer)
    scope = _MODEL_CALLS.get()
    return calls if scope is None else [c for c in calls if id(c) in scope]


def add_call_record(layer: Any, record: Any) -> None:
    """``record`` one more call of ``layer`` (a functional graph cloned on new inputs:
    Keras's new inbound node)."""
    _calls(layer).append(record)


def _calls(layer: Any) -> list:
    return layer._calls  # Layer exposes only the first call (input/output)


def _functional_calls(model: Any, out: set[int], seen: set[int] | None = None) -> None:
    # (A subclassed model built on an Input records its own call: each model once.)
    seen = set() if seen is None else seen
    if id(model) in seen:
        return
    seen.add(id(model))
    for record in getattr(model, "_records", None) or []:
        out.add(id(record))
        _functional_calls(record.layer, out, seen)  # a nested functional model's own calls


@contextmanager
def model_calls(model: Any) -> Iterator[None]:
    """Within it, ``call_records`` answers with the calls of ``model`` (and of the
    functional models nested in it), as Keras's configs and summary see a model."""
    calls: set[int] = set()
    _functional_calls(model, calls)
    token = _MODEL_CALLS.set(frozenset(calls) if calls else None)
    try:
        yield
    finally:
        _MODEL_CALLS.reset(token)


def traced_shapes(layer: Any) -> list | None:
    """The output shapes of ``layer``'s last call inside another layer's call (it has
    no call records of its own then), or None: what ``summary`` shows for it."""
    return getattr(layer, "_traced_shapes", None)  # set by Layer only once so called


def keras_style_call(layer: Any) -> bool:
    """Whether ``layer.call`` has Keras's contract (``call(self, inputs, ...)`` written
    with keras.ops) rather than kcompile's own (``call(self, ctx, x)``); a model with one
    is a subclassed model."""
    return layer._keras_call  # Layer decides it from call's signature, privately


def input_shape_arg(layer: Any) -> tuple | None:
    """The ``input_shape`` (or ``input_dim``) a layer was made with, which lets a
    ``Sequential`` start with it (as Keras's ``Sequential.add`` reads it)."""
    return layer._input_shape_arg  # Keras's Sequential reads the same private name


def flatten_layers(model: Any) -> list:
    """Keras's ``_flatten_layers``: the model's layers, then those they hold, depth first,
    each once (a functional model's InputLayers included, as Keras lists them)."""
    out: list = []

    def visit(layer: Any) -> None:
        if any(layer is x for x in out):
            return
        out.append(layer)
        subs = list(getattr(layer, "layers", []) or [])
        # A Sequential keeps its InputLayer apart from ``layers``; Keras lists it.
        first = getattr(getattr(layer, "_input", None), "_input_layer", None)
        if first is not None and not any(first is s for s in subs):
            subs.insert(0, first)
        subs += [x for x in tracked_layers(layer) if not any(x is s for s in subs)]
        for sub in subs:
            visit(sub)

    visit(model)
    return out
