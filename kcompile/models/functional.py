"""A functional model's graph from the tensors it is given (Keras's ``Functional.__init__``).

Keras lets a model start from any symbolic tensor, not only ``keras.Input``s: the
intermediate tensor of another graph (FeatureSpace's encoded features, a layer's output
to extract features from, the middle of an autoencoder). Keras then clones the graph
between the given inputs and the outputs (``clone_graph_nodes``): each intermediate
input becomes a fresh Input named ``<tensor name>CLONE`` of its shape and dtype, and each
layer call between it and the outputs is recorded again on the new tensors. The layers
are the same objects, so the new model shares their weights; the layers before the
intermediates are not part of it.
"""

from __future__ import annotations

import copy
from typing import Any

from kcompile.backend.keras_tensor import KerasTensor
from kcompile.layers.core.input_layer import Input
from kcompile.layers.layer import CallRecord, topological_records
from kcompile.models.layer_internals import add_call_record


def is_input_tensor(t: KerasTensor) -> bool:
    """Whether ``t`` is a ``keras.Input`` (an InputLayer's tensor), not a layer's output."""
    return getattr(t, "_input_layer", None) is not None and (
        t._history is None or t._history[0] is None
    )


def flat_paths(structure: Any) -> list[str]:
    """Keras's path of each leaf of a model's inputs or outputs, in flattening order:
    ``""`` for one tensor, the index in a list, the key in a dict (sorted)."""
    if isinstance(structure, dict):
        return [str(k) for k in sorted(structure)]
    if isinstance(structure, list | tuple):
        return [str(i) for i in range(len(structure))]
    return [""]


def check_tensors(kind: str, given: Any, flat: list) -> None:
    """Keras's refusal of a model input or output that is not a symbolic tensor."""
    for x in flat:
        if not isinstance(x, KerasTensor):
            raise ValueError(
                f"All `{kind}` values must be KerasTensors. Received: {kind}={given} "
                f"including invalid value {x} of type {type(x)}"
            )


def _producer(t: KerasTensor) -> CallRecord | None:
    """The layer call that made ``t``; None for an Input (or a tensor of no call)."""
    return t._history[0] if t._history is not None else None


def check_connected(inputs: list[KerasTensor], outputs: list[KerasTensor], paths: list[str]):
    """Keras's check that every output is computed from ``inputs`` alone: an output that
    needs an Input the model is not given, or a tensor no layer made, is refused."""
    given = {id(t) for t in inputs}
    known: dict[int, bool] = {}

    def computable(root: KerasTensor) -> bool:
        # Without recursion: an EfficientNet's graph is deeper than Python's stack.
        stack = [root]
        while stack:
            t = stack[-1]
            if id(t) in given or id(t) in known:
                stack.pop()
                continue
            record = _producer(t)
            pending = [] if record is None else [x for x in record.inputs if _open(x)]
            if pending:
                stack += pending
                continue
            known[id(t)] = record is not None and all(_known(x) for x in record.inputs)
            stack.pop()
        return _known(root)

    def _open(t: KerasTensor) -> bool:
        return id(t) not in given and id(t) not in known

    def _known(t: KerasTensor) -> bool:
        return id(t) in given or known[id(t)]

    for t, path in zip(outputs, paths):
        if not computable(t):
            raise ValueError(f"Output with path `{path}` is not connected to `inputs`")


def _input_name(t: KerasTensor, taken: set[str]) -> str:
    """Keras's name of the Input standing for intermediate ``t``: its name and ``CLONE``.
    kcompile names a tensor after its layer, so the outputs of one layer (a shared layer,
    a layer of several outputs) share a name: a second one is numbered."""
    base = f"{t.name}CLONE"
    name, k = base, 0
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name


def _clone_tensor(t: KerasTensor) -> KerasTensor:
    """A copy of a layer's output for the cloned graph (Keras names it ``<name>_clone``)."""
    out = KerasTensor(t.shape, t.dtype, name=f"{t.name}_clone")
    out._keras_mask = getattr(t, "_keras_mask", None)
    return out


def _clone_record(record: CallRecord, inputs: list[KerasTensor]) -> CallRecord:
    """``record`` called again on ``inputs``: the same layer and arguments, new outputs,
    registered as one more call of the layer (Keras's new ``Node``)."""
    spec = record.kwargs
    if spec is not None and hasattr(spec, "tensors"):
        spec = copy.copy(spec)  # its slots are filled by position; its tensors are the new
        spec.tensors = list(inputs)
    outputs = [_clone_tensor(t) for t in record.outputs]
    clone = CallRecord(record.layer, list(inputs), outputs, spec)
    for i, t in enumerate(outputs):
        t._history = (clone, i)
    add_call_record(record.layer, clone)  # a layer lists its calls, as Keras's inbound nodes
    return clone


def clone_graph_nodes(
    inputs: list[KerasTensor], outputs: list[KerasTensor]
) -> tuple[list[KerasTensor], list[KerasTensor]]:
    """Keras's ``clone_graph_nodes``: new inputs and outputs of the graph between
    ``inputs`` and ``outputs``, each intermediate input replaced by a fresh Input and
    every call between them recorded again on the new tensors (the same layers)."""
    env: dict[int, KerasTensor] = {}
    taken = {t._input_layer.name for t in inputs if is_input_tensor(t)}
    new_inputs = []
    for t in inputs:
        if id(t) not in env:
            if is_input_tensor(t):
                env[id(t)] = t
            else:
                name = _input_name(t, taken)
                env[id(t)] = Input(batch_shape=t.shape, dtype=t.dtype, name=name)
        new_inputs.append(env[id(t)])
    for record in topological_records(outputs, inputs):
        args = [env.get(id(x), x) for x in record.inputs]
        clone = _clone_record(record, args)
        for old, new in zip(record.outputs, clone.outputs):
            env[id(old)] = new
    return new_inputs, [env.get(id(t), t) for t in outputs]


def functional_graph(
    inputs: Any, outputs: Any, flat_inputs: list, flat_outputs: list
) -> tuple[list[KerasTensor], list[KerasTensor]]:
    """The model's input and output tensors from those ``Model(inputs, outputs)`` was
    given (flattened in ``flat_*``): checked as Keras checks them, and the graph cloned
    when an input is an intermediate tensor."""
    check_tensors("inputs", inputs, flat_inputs)
    check_tensors("outputs", outputs, flat_outputs)
    check_connected(flat_inputs, flat_outputs, flat_paths(outputs))
    if all(is_input_tensor(t) for t in flat_inputs):
        return flat_inputs, flat_outputs
    return clone_graph_nodes(flat_inputs, flat_outputs)
