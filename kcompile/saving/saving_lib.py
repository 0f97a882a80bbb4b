"""Keras 3's own files: ``.keras`` (a zip of ``metadata.json``, ``config.json`` and
``model.weights.h5``) and ``.weights.h5``, read and written for Sequential and functional
models of kcompile's built-in layers. HDF5 goes through ``h5py`` (the ``keras-files``
extra: ``pip install kcompile[keras-files]``).

Layout, as Keras's saving library writes it: a model's layers (in ``model.layers``
order) under ``layers/<class name in snake case, numbered when repeated>``, each
layer's own variables under ``vars/0, 1, ...``, the variables of a layer's inner layers
under their attribute names (an LSTM's ``cell``, Bidirectional's ``forward_layer`` and
``backward_layer``, MultiHeadAttention's ``query_dense``, ...); the optimizer's
``iterations``, ``learning_rate`` and slots under ``optimizer/vars``. Each of these
groups, variables or not, has the attribute ``name``: its layer's (cell's, model's,
optimizer's) name.

Adapted lookup and text layers keep their vocabularies as Keras's assets: files under
``assets/<the layer's path>/`` (``save_assets``/``load_assets`` on the layer, given that
folder), read back before the weights. A ``keras.utils.FeatureSpace`` is saved and loaded
by the same functions (Keras serializes it by class name like a layer), its layers at the
paths of its own saving walk.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import io
import json
import os
import tempfile
import time
import warnings
import zipfile
from typing import Any, NamedTuple

import numpy as np

from kcompile import layers
from kcompile.backend import session as backend
from kcompile.backend.variables import narrow_float
from kcompile.ir.types import bfloat16
from kcompile.layers import lora
from kcompile.models import layer_internals as internals
from kcompile.saving.object_registration import (
    get_registered_name,
    get_registered_object,
    model_class,
    scope_objects,
)
from kcompile.utils.atomic import atomic_write
from kcompile.version import __version__

KERAS_VERSION = "3.15.1"  # the Keras format these files follow


def h5py_module():
    try:
        import h5py
    except ImportError:
        raise ImportError(
            "Keras's .keras and .weights.h5 files are HDF5: install h5py "
            "(pip install 'kcompile[keras-files]')"
        ) from None
    return h5py


# --- where each layer's variables live ----------------------------------------------------


class Group(NamedTuple):
    """One HDF5 group of a weights file: its path, the name of the object whose variables
    it holds (Keras writes it as the group's ``name`` attribute, variables or not), and
    those variables in Keras's order."""

    path: str
    name: str
    variables: list


def _is_subclassed(model) -> bool:
    """A ``keras.Model`` subclass with its own Keras-style ``call``."""
    return isinstance(model, model_class("Model")) and internals.keras_style_call(model)


def _is_custom(layer) -> bool:
    """A user's layer class (not kcompile's)."""
    return type(layer).__module__.split(".")[0] != "kcompile"


@functools.cache
def _base_attributes() -> frozenset[str]:
    """Attributes every kcompile layer and subclassed model has: Keras's walk skips its
    own likewise. (Named, so that making them takes no name from the session.)"""
    from kcompile.layers import Layer

    Model = model_class("Model")

    class Bare(Model):
        def call(self, x):
            return x

    return frozenset(dir(Model)) | set(vars(Layer(name="layer"))) | set(vars(Bare(name="bare")))


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def _custom_groups(layer, path: str, visited: set[int]) -> list[Group]:
    """Keras's ``_walk_saveable`` of a user's layer or subclassed model: its own variables
    (trainable first) under ``vars``, then each attribute that holds a layer or a list of
    layers (a model's ``layers`` too), names sorted with private ones last; a layer
    already saved is skipped, though it still counts in a list's numbering."""
    visited.add(id(layer))
    variables = internals.own_variables(layer)
    own = [v for v in variables if v.trainable] + [v for v in variables if not v.trainable]
    groups = [Group(_join(path, "vars"), layer.name, own)]
    skip = _base_attributes()
    attributes = {n: v for n, v in vars(layer).items() if not n.startswith("__") and n not in skip}
    if isinstance(layer, model_class("Model")):
        attributes["layers"] = internals.tracked_layers(layer)
    for name in sorted(attributes, key=lambda n: "~" + n if n.startswith("_") else n):
        value = attributes[name]
        if isinstance(value, list | tuple):
            used: dict[str, int] = {}
            for item in value:
                if not _is_layer(item):
                    continue
                base = _class_path_name(item)
                used[base] = used.get(base, -1) + 1
                label = base if used[base] == 0 else f"{base}_{used[base]}"
                if id(item) not in visited:
                    groups += layer_groups(item, _join(path, f"{name}/{label}"), visited)
        elif _is_layer(value) and id(value) not in visited:
            groups += layer_groups(value, _join(path, name), visited)
    return groups


def _class_path_name(layer) -> str:
    """A layer's class in snake case, as Keras's walk names its path: Keras's
    ``GroupQueryAttention`` is its class ``GroupedQueryAttention``."""
    if type(layer) is layers.GroupQueryAttention:
        return "grouped_query_attention"
    return backend.snake_case(type(layer).__name__)


def _is_layer(value: Any) -> bool:
    from kcompile.layers import Layer

    return isinstance(value, Layer)


def layer_groups(layer, path: str, visited: set[int] | None = None) -> list[Group]:
    """Every group of ``layer`` saved at ``path`` ("" for the file's top), as Keras's walk
    makes them; ``visited`` holds the layers already saved (a user's layers may share)."""
    if _is_custom(layer):
        return _custom_groups(layer, path, set() if visited is None else visited)
    if visited is not None:
        visited.add(id(layer))
    return [Group(_join(path, g.path), g.name, g.variables) for g in variable_groups(layer)]


def variable_groups(layer) -> list[Group]:
    """Each group of a kcompile layer (paths below the layer), its own ``vars`` first."""
    from kcompile.layers import (
        GRU,
        LSTM,
        RNN,
        Bidirectional,
        GroupQueryAttention,
        MultiHeadAttention,
        SimpleRNN,
        StackedRNNCells,
    )
    from kcompile.layers.rnn.conv_lstm import ConvLSTM

    own = Group("vars", layer.name, [])
    if isinstance(layer, layers.TextVectorization):  # Keras walks its inner lookup too
        return [own, Group("_lookup_layer/vars", layer._lookup.name, [])]
    # Keras keeps a recurrent layer's variables in its cell, named for the cell's class.
    cells = {
        LSTM: "lstm_cell",
        GRU: "gru_cell",
        SimpleRNN: "simple_rnn_cell",
        ConvLSTM: "conv_lstm_cell",
    }
    for kind, cell in cells.items():
        if isinstance(layer, kind):
            return [own, Group("cell/vars", cell, internals.own_variables(layer))]
    if isinstance(layer, RNN | StackedRNNCells):  # cells walked as Keras walks them
        return _custom_groups(layer, "", set())
    if isinstance(layer, Bidirectional):
        # Keras's copy of the wrapped layer is named for its direction.
        forward = "forward_" + layer.forward_layer.name.removeprefix("forward_")
        return [
            own,
            *_below("forward_layer", variable_groups(layer.forward_layer), forward),
            *_below("backward_layer", variable_groups(layer.backward_layer)),
        ]
    if isinstance(layer, MultiHeadAttention):
        projections = [
            Group(f"{part}_dense/vars", dense.name, _saved_variables(dense))
            for part, dense in (
                ("query", layer.query_dense),
                ("key", layer.key_dense),
                ("value", layer.value_dense),
                ("output", layer.output_dense),
            )
        ]
        # Keras's attention also holds these two sublayers, which have no variables.
        inner = [Group("_dropout_layer/vars", "dropout", []), Group("_softmax/vars", "softmax", [])]
        return [own, *projections, *inner]
    if isinstance(layer, GroupQueryAttention):
        # Keras's GQA has no public names for its sublayers: its walk finds them under
        # their private attributes (``_query_dense``, ..., ``_softmax``).
        inner_layers = [
            ("_query_dense", layer.query_dense),
            ("_key_dense", layer.key_dense),
            *([("_gate_dense", layer.gate_dense)] if layer.use_gate else []),
            ("_value_dense", layer.value_dense),
            ("_output_dense", layer.output_dense),
            ("_softmax", layer.softmax_layer),
            ("_dropout_layer", layer.dropout_layer),
        ]
        return [own, *(Group(f"{a}/vars", x.name, _saved_variables(x)) for a, x in inner_layers)]
    return [own._replace(variables=_saved_variables(layer))]


def _saved_variables(layer) -> list:
    """A layer's own variables as its file holds them: a quantized layer's in Keras's
    ``variable_serialization_spec`` order (kernel, bias, kernel_scale), not the order
    quantize made them in."""
    saved = layer._keras_saved_order()
    return saved if saved is not None else internals.own_variables(layer)


def _below(attribute: str, groups: list[Group], name: str | None = None) -> list[Group]:
    """An inner layer's groups under its attribute, its own group renamed to ``name``."""
    return [
        Group(f"{attribute}/{g.path}", name if name and g.path == "vars" else g.name, g.variables)
        for g in groups
    ]


def weight_groups(model) -> list[Group]:
    """Every group of a model's weights file but the optimizer's: a subclassed model
    walked from its root, as Keras walks it; a functional one (or a FeatureSpace) layer
    by layer."""
    visited: set[int] = set()
    if _is_subclassed(model):
        return _custom_groups(model, "", visited)
    groups = [Group("vars", model.name, [])]
    for path, layer in saved_layers(model):
        groups += layer_groups(layer, path, visited)
    return groups


# The one object other than a model a .keras file holds (Keras saves a FeatureSpace as a
# layer-like object): its class and the (path, layer) walk of its layers, registered by
# its module (``register_feature_space``), which imports this one and not the reverse.
_FEATURE_SPACE: dict[str, Any] = {}


def register_feature_space(cls: type, layers: Any) -> None:
    """``cls`` is ``keras.utils.FeatureSpace``; ``layers(space)`` its layers' (path, layer)."""
    _FEATURE_SPACE.update(cls=cls, layers=layers)


def is_feature_space(obj: Any) -> bool:
    """A ``keras.utils.FeatureSpace`` (saved as Keras saves it: a layer-like object)."""
    return "cls" in _FEATURE_SPACE and isinstance(obj, _FEATURE_SPACE["cls"])


def saved_layers(obj: Any) -> list[tuple[str, Any]]:
    """(path, layer) of each layer at the top of the file's walk: a model's layers, or a
    FeatureSpace's (``feature_space_saving.saved_layers``); none for a subclassed model,
    whose layers its own walk finds."""
    if is_feature_space(obj):
        return _FEATURE_SPACE["layers"](obj)
    if _is_subclassed(obj):
        return []
    return _layer_paths(obj)


def _all_layers(obj: Any) -> list:
    if is_feature_space(obj):
        return [layer for _, layer in saved_layers(obj)]
    return internals.flatten_layers(obj)


def _layer_paths(model) -> list[tuple[str, Any]]:
    """Keras's container naming: each layer by its class in snake case, numbered."""
    used: dict[str, int] = {}
    out = []
    for layer in model.layers:
        name = _class_path_name(layer)
        if name in used:
            used[name] += 1
            name = f"{name}_{used[name]}"
        else:
            used[name] = 0
        out.append((f"layers/{name}", layer))
    return out


def write_weights(model, target) -> None:
    """The model's weights file in Keras's layout, each group named for its object, to
    ``target`` (a path or a binary file); the optimizer's variables too, when it has one
    (Keras writes them in ``.keras`` and ``.weights.h5`` files alike)."""
    h5py = h5py_module()
    # A LoRA layer's kernel is written with its delta merged (Keras's save_own_variables).
    merged = {}
    for layer in _all_layers(model):
        merged.update(layer._keras_saved_values())
    with h5py.File(target, "w") as f:
        for group in weight_groups(model):
            arrays = [merged[v] if v in merged else v.numpy() for v in group.variables]
            _write_group(f, group.path, group.name, arrays)
        opt = getattr(model, "optimizer", None)
        groups = getattr(opt, "keras_groups", None)
        if groups is not None:  # a MultiOptimizer: its inner optimizers' groups, then its own
            for path, name, arrays in groups():
                _write_group(f, path, name, arrays)
        elif opt is not None:
            inner = getattr(opt, "inner_optimizer", None)
            if inner is not None:  # Keras writes a LossScaleOptimizer's inner one apart too
                arrays = _optimizer_arrays(model, inner)
                _write_group(f, "optimizer/inner_optimizer/vars", inner.name, arrays)
            _write_group(f, "optimizer/vars", opt.name, _optimizer_arrays(model, opt))


def _write_group(f, path: str, name: str, arrays: list[np.ndarray]) -> None:
    group = f.require_group(path)
    group.attrs["name"] = name
    for i, array in enumerate(arrays):
        write_array(group, str(i), array)


def write_array(group, key: str, array: np.ndarray) -> None:
    """One dataset; a bfloat16 one as Keras writes it (2-byte opaque values, marked)."""
    dataset = group.create_dataset(key, data=array)
    if array.dtype.name == "bfloat16":  # by name: no ml_dtypes import for float files
        dataset.attrs["dtype"] = "bfloat16"


def _read_array(dataset) -> np.ndarray:
    """A dataset's values as float32 (a bfloat16 one widened exactly)."""
    if dataset.attrs.get("dtype") == "bfloat16":
        return np.array(dataset, dtype=bfloat16()).astype(np.float32)
    return np.asarray(dataset)


# Keras's order of each optimizer's variables after iterations and learning_rate: the
# weights' moving average and gradient sums (one group each), then the update rule's
# slots in groups, a group's names interleaved per weight (as Keras 3.15 builds them).
_SLOT_GROUPS = {
    "SGD": [("momentum",)],
    "Adam": [("momentum", "velocity"), ("velocity_hat",)],
    "AdamW": [("momentum", "velocity"), ("velocity_hat",)],
    "RMSprop": [("velocity",), ("momentum",), ("average_gradient",)],
    "Adagrad": [("accumulator",)],
    "Adadelta": [("accumulated_grad", "accumulated_delta_var")],
    "Adamax": [("momentum", "norm")],
    "Nadam": [("momentum", "velocity")],
    "Ftrl": [("accumulator", "linear")],
    "Lion": [("momentum",)],
    "Lamb": [("momentum", "velocity")],
}


def _slot_layout(model, opt) -> list[list[str]]:
    """Each Keras optimizer variable after the first two as the slot paths it holds (one,
    or every weight's for Nadam's running product, which Keras keeps once, last)."""
    if not opt.built:
        return []
    groups = _SLOT_GROUPS.get(type(opt).__name__)
    if groups is None:
        # Written without its slots the file would lose the optimizer's state.
        raise NotImplementedError(
            f"saving a .keras file: the state of optimizer {type(opt).__name__} is not "
            "written in Keras's layout yet; save as .kcmodel, or the weights alone"
        )
    present = set(opt.all_slots())
    weights = model.trainable_weights
    layout = [
        [opt.slot_path(v, slot)]
        for slot in ("average", "gradient_accumulator")
        if slot in present
        for v in weights
    ]
    for group in groups:
        names = [n for n in group if n in present]
        layout += [[opt.slot_path(v, n)] for v in weights for n in names]
    if "u_product" in present:
        layout.append([opt.slot_path(v, "u_product") for v in weights])
    return layout


def _optimizer_arrays(model, opt) -> list[np.ndarray]:
    """iterations, learning_rate, then the optimizer's slots in Keras's order. A
    LossScaleOptimizer's: its own (never counted) iterations and learning rate, its
    step counter and scale, then its inner optimizer's."""
    inner = getattr(opt, "inner_optimizer", None)
    if inner is not None:
        own = [np.int32(0), np.float32(0.0), np.int32(opt.step_counter), opt.dynamic_scale]
        return [np.asarray(a) for a in own] + _optimizer_arrays(model, inner)
    arrays = [np.asarray(opt.step_count, np.int32), np.asarray(opt.learning_rate, np.float32)]
    # A weight's slots are in its dtype, as Keras makes them (held in float32 arrays here).
    dtypes = {
        opt.slot_path(v, s): v.dtype for v in model.trainable_weights for s in opt.all_slots()
    }
    return arrays + [
        _in_dtype(opt.slots[paths[0]], dtypes.get(paths[0], "float32"))
        for paths in _slot_layout(model, opt)
    ]


def _in_dtype(array: np.ndarray, dtype: str) -> np.ndarray:
    return array if dtype == "float32" else array.astype(narrow_float(dtype))


def _read_weights(model, source, with_optimizer: bool) -> None:
    h5py = h5py_module()
    with h5py.File(source, "r") as f:
        for name, _, variables in weight_groups(model):
            if not variables:
                continue
            if name not in f:
                raise ValueError(
                    f"the weights file has no {name} for model '{model.name}'; it holds "
                    f"{sorted(f)} at its top"
                )
            group = f[name]
            if len(group) != len(variables):
                raise ValueError(f"{name}: {len(group)} arrays for its {len(variables)} weights")
            for i, var in enumerate(variables):
                array = _read_array(group[str(i)])
                if array.shape != var.shape:
                    raise ValueError(
                        f"{name}/{i}: shape {array.shape}, weight {var.path} has {var.shape}"
                    )
                var.assign(array.astype(np.float32))
        for layer in _all_layers(model):
            lora.zero_after_load(layer)  # (the kernel read holds their delta)
        opt = getattr(model, "optimizer", None)
        if with_optimizer and opt is not None and "optimizer/vars" in f:
            _restore_optimizer(model, opt, f["optimizer/vars"])


def _restore_optimizer(model, opt, group) -> None:
    arrays = [_read_array(group[str(i)]) for i in range(len(group))]
    _restore_arrays(model, opt, arrays)


def _restore_arrays(model, opt, arrays: list[np.ndarray]) -> None:
    if not arrays:
        return
    restore = getattr(opt, "restore_keras_arrays", None)
    if restore is not None:  # a MultiOptimizer: its inner optimizers' slots, its own order
        restore(model, arrays)
        return
    inner = getattr(opt, "inner_optimizer", None)
    if inner is not None:
        if len(arrays) < 4:
            warnings.warn(
                f"Skipping variable loading for optimizer '{opt.name}': the saved optimizer "
                f"has {len(arrays)} variables, not a LossScaleOptimizer's",
                stacklevel=3,
            )
            return
        opt.step_counter[...] = arrays[2]
        opt.dynamic_scale[...] = arrays[3]
        _restore_arrays(model, inner, arrays[4:])
        return
    opt.build(model.trainable_weights)
    opt.step_count = int(arrays[0])
    layout = _slot_layout(model, opt)
    if len(arrays) != 2 + len(layout):  # as Keras does: warn, and start the slots afresh
        warnings.warn(
            f"Skipping variable loading for optimizer '{opt.name}', because it has "
            f"{2 + len(layout)} variables whereas the saved optimizer has {len(arrays)} "
            "variables.",
            stacklevel=2,
        )
        return
    for paths, array in zip(layout, arrays[2:]):
        for path in paths:
            np.copyto(opt.slots[path], np.asarray(array).reshape(opt.slots[path].shape))


# --- configs -----------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _tensor_ref(t) -> dict:
    record, index = t._history
    layer = record.layer if record is not None else t._input_layer
    node = internals.call_records(layer).index(record) if record is not None else 0
    return {
        "class_name": "__keras_tensor__",
        "config": {
            "shape": list(t.shape),
            "dtype": t.dtype,
            "keras_history": [layer.name, node, index],
        },
    }


def layer_entry(layer) -> dict:
    from kcompile.layers import InputLayer
    from kcompile.ops.operation import Operation

    kind = type(layer)
    if isinstance(layer, Operation):
        raise NotImplementedError(
            f"layer '{layer.name}': keras.ops calls on symbolic tensors are not written to "
            ".keras files yet; wrap them in a layer, or use model.save('m.kcmodel') or "
            "save_weights"
        )
    if _is_custom(layer):
        if isinstance(layer, model_class("Model")):
            raise NotImplementedError(
                f"model '{layer.name}': subclassed models are not written to .keras files yet"
            )
        return {
            "module": kind.__module__,
            "class_name": kind.__name__,
            "config": _jsonable(layer.get_config()),
            "registered_name": get_registered_name(kind),
            "name": layer.name,
            "inbound_nodes": [_node(layer, r) for r in internals.call_records(layer)],
        }
    if getattr(layer, "host", False) and not isinstance(layer, _FILE_HOST_LAYERS):
        raise NotImplementedError(
            f"layer '{layer.name}' ({kind.__name__}): this host layer is not written to "
            ".keras files; use model.save('m.kcmodel')"
        )
    if isinstance(layer, InputLayer):
        config = {
            "batch_shape": list(layer.output_tensor.shape),
            "dtype": layer.dtype,
            "sparse": False,
            "ragged": False,
            "name": layer.name,
        }
        nodes = []
    else:
        # A lookup's config as Keras writes it (its adapted vocabulary is an asset).
        get_config = getattr(layer, "keras_config", layer.get_config)
        config = {**get_config(), "dtype": _policy(layer)}
        config.pop("input_shape", None)
        if hasattr(layer, "forward_layer"):  # Bidirectional: Keras nests the wrapped layer
            config["layer"] = _nested(layer.forward_layer)
            config["backward_layer"] = _nested(layer.backward_layer)
            config["merge_mode"] = layer.merge_mode
        nodes = [_node(layer, r) for r in internals.call_records(layer)]
    return {
        "module": "keras.layers",
        "class_name": kind.__name__,
        "config": _jsonable(config),
        "registered_name": None,
        "name": layer.name,
        "inbound_nodes": nodes,
    }


_FILE_HOST_LAYERS = (
    layers.StringLookup,
    layers.IntegerLookup,
    layers.TextVectorization,
    layers.Hashing,
)


def _policy(layer) -> dict:
    """The layer's dtype policy as Keras writes it in a layer's config."""
    from kcompile import dtype_policies

    return dtype_policies.serialize(layer.dtype_policy)


def _node(layer, record) -> dict:
    """One call's arguments as Keras writes them: tensors as references to the layer call
    that made them, other arguments as they are."""
    spec = record.kwargs
    if internals.keras_style_call(layer) and spec is not None:
        args, kwargs = spec.arguments([_tensor_ref(t) for t in record.inputs])
        return {"args": _jsonable(list(args)), "kwargs": _jsonable(kwargs)}
    refs = [_tensor_ref(t) for t in record.inputs]
    return {"args": [refs] if layer.multi_input else refs, "kwargs": {}}


def _nested(layer) -> dict:
    return {
        "module": "keras.layers",
        "class_name": type(layer).__name__,
        "config": _jsonable({**layer.get_config(), "dtype": _policy(layer)}),
        "registered_name": None,
    }


def _sequential_config(model) -> dict:
    first = [model.inputs[0]._input_layer] if model.built else []
    entries = []
    for layer in first + model.layers:
        entry = layer_entry(layer)
        entry.pop("name")
        entry.pop("inbound_nodes")
        if layer.get_build_config() is not None:
            entry["build_config"] = _jsonable(layer.get_build_config())
        entries.append(entry)
    config = {"name": model.name, "trainable": model.trainable, "layers": entries}
    out = {
        "module": "keras",
        "class_name": "Sequential",
        "config": config,
        "registered_name": None,
    }
    if model.built:
        config["build_input_shape"] = list(model.inputs[0].shape)
        out["build_config"] = {"input_shape": list(model.inputs[0].shape)}
    return out


def model_config(model) -> dict:

    if _is_subclassed(model):
        kind = type(model)
        config = {
            "module": None if kind.__module__ == "__main__" else kind.__module__,
            "class_name": kind.__name__,
            "config": _jsonable(model.get_config()),
            "registered_name": get_registered_name(kind),
            "build_config": {"input_shape": _jsonable(model.input_shape)},
        }
        config.update(_compile_config(model))
        return config
    if isinstance(model, model_class("Sequential")):
        config = _sequential_config(model)
        config.update(_compile_config(model))
        return config
    endpoints = [
        [t._history[0].layer.name if t._history[0] else t._input_layer.name, 0, t._history[1]]
        for t in model.outputs
    ]
    config = {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "config": {
            "name": model.name,
            "trainable": True,
            "layers": [layer_entry(layer) for layer in model.operations],
            "input_layers": [[t._input_layer.name, 0, 0] for t in model.inputs],
            "output_layers": endpoints,
        },
        "registered_name": "Functional",
        "build_config": {"input_shape": None},
    }
    config.update(_compile_config(model))
    return config


def _compile_config(model) -> dict:
    """Keras's ``compile_config``: the model's ``get_compile_config`` (compile's
    arguments, serialized)."""
    config = model.get_compile_config() if model.compiled_steps.config is not None else {}
    return {"compile_config": _jsonable(config)} if config else {}


# Keras config keys kcompile's layers have no parameter for, and the values they may
# hold without changing what the layer computes.
_HARMLESS = {
    "dtype": None,
    "quantization_config": (None,),
    "lora_rank": (None,),
    "lora_alpha": (None,),
    "activity_regularizer": (None,),
    "kernel_constraint": (None,),
    "bias_constraint": (None,),
    "recurrent_constraint": (None,),
    "embeddings_constraint": (None,),
    "beta_constraint": (None,),
    "gamma_constraint": (None,),
    "depthwise_constraint": (None,),
    "pointwise_constraint": (None,),
    "kernel_regularizer": (None,),
    "bias_regularizer": (None,),
    "recurrent_regularizer": (None,),
    "embeddings_regularizer": (None,),
    "beta_regularizer": (None,),
    "gamma_regularizer": (None,),
    "depthwise_regularizer": (None,),
    "pointwise_regularizer": (None,),
    "groups": (1,),
    "data_format": ("channels_last",),
    "synchronized": (False,),
    "rms_scaling": (False,),
    "mask_zero": (False,),
    "stateful": (False,),
    "unroll": (False,),
    "dropout": (0, 0.0),
    "recurrent_dropout": (0, 0.0),
    "seed": None,
    "zero_output_for_mask": None,
    "use_gate": (False,),
    "sliding_window": (None,),
    "attention_axes": (None,),
    "use_cudnn": None,
    "sparse": (False,),
    "ragged": (False,),
    "optional": (False,),
    "interpolation": ("nearest",),
    "keepdims": (False,),
    "input_length": None,
    "renorm": (False,),
    "renorm_clipping": (None,),
    "renorm_momentum": None,
    "moving_mean_initializer": None,
    "moving_variance_initializer": None,
}


def _accepted(cls) -> set[str]:
    from kcompile.layers.layer import Layer

    names = set()
    for klass in cls.__mro__:
        if klass is object:
            continue
        init = klass.__dict__.get("__init__")
        if init is not None:
            names |= set(inspect.signature(init).parameters) - {"self", "kwargs"}
        if klass is Layer:
            break
    return names


def _initializer(value: Any) -> Any:
    """A Keras initializer with its settings (the file holds the weights, but the loaded
    layer's config, and a clone of it, must be the saved one's)."""
    if isinstance(value, dict) and "class_name" in value:
        from kcompile import initializers

        return initializers.deserialize(value)
    return value


def layer_from_keras(entry: dict, custom_objects: dict | None = None):

    name = entry["class_name"]
    custom = get_registered_object(entry.get("registered_name") or name, custom_objects)
    if custom is not None:  # a user's class: its own from_config
        return custom.from_config(dict(entry["config"]))
    cls = getattr(layers, name, None)
    module = str(entry.get("module") or "")
    if not module.startswith("keras") or not (
        isinstance(cls, type) and issubclass(cls, layers.Layer)
    ):
        raise ValueError(
            f"layer '{entry.get('name')}': class {name} (module {module or None}, registered "
            f"as {entry.get('registered_name')!r}) is not kcompile's; pass it in "
            "custom_objects={...} to load_model, or register it with "
            "@keras.saving.register_keras_serializable()"
        )
    config = dict(entry["config"])
    if name == "Bidirectional":
        inner = layer_from_keras(config.pop("layer"))
        config.pop("backward_layer", None)
        return cls(inner, **_filtered(cls, config, name))
    if name == "InputLayer":
        shape = config.get("batch_shape") or [None, *config.get("shape", [])]
        return layers.InputLayer(
            shape=tuple(shape[1:]),
            batch_size=shape[0],
            dtype=config.get("dtype"),
            name=config["name"],
        )
    if name == "Discretization":  # its from_config takes num_bins beside the boundaries
        return cls.from_config(_filtered(cls, config, name))
    return cls(**_filtered(cls, config, name))


def _filtered(cls, config: dict, name: str) -> dict:
    accepted = _accepted(cls)
    out = {}
    for key, value in config.items():
        if key in accepted:
            out[key] = _initializer(value) if key.endswith("_initializer") else value
            continue
        allowed = _HARMLESS.get(key, ())
        if key in _HARMLESS and (allowed is None or value in allowed):
            continue
        if key.endswith("_initializer"):  # the file holds the weights themselves
            continue
        raise NotImplementedError(
            f"layer '{config.get('name')}' ({name}): {key}={value!r} is not supported by kcompile"
        )
    return out


def model_from_config(config: dict, custom_objects: dict | None = None):
    """A functional model (or Sequential) from Keras's serialized config."""
    kind = config["class_name"]
    body = config["config"]
    if kind == "Sequential":
        stack = [layer_from_keras(e, custom_objects) for e in body["layers"]]
        first = stack[0] if stack and isinstance(stack[0], layers.InputLayer) else None
        rest = stack[1:] if first else stack
        model = model_class("Sequential")(
            ([first.output_tensor] if first else []) + rest, name=body.get("name")
        )
        shape = body.get("build_input_shape") or (config.get("build_config") or {}).get(
            "input_shape"
        )
        if not model.built and shape:
            model.build(tuple(shape))
        return model
    if kind not in ("Functional", "Model"):
        return _subclassed_from_config(config, custom_objects)
    outputs: dict[tuple[str, int, int], Any] = {}
    for entry in body["layers"]:
        layer = layer_from_keras(entry, custom_objects)
        # By the config's name, as Keras keys them: a user's get_config may leave the name
        # out, and the layer made from it then has another.
        name = entry["name"]
        if isinstance(layer, layers.InputLayer):
            outputs[(name, 0, 0)] = layer.output_tensor
            continue
        for node_index, node in enumerate(entry["inbound_nodes"]):
            args = _resolve(node["args"], outputs)
            kwargs = _resolve(node.get("kwargs", {}), outputs)
            kwargs = {k: v for k, v in kwargs.items() if not (k == "mask" and v is None)}
            result = layer(*args, **kwargs)
            results = result if isinstance(result, list | tuple) else [result]
            for i, t in enumerate(results):
                outputs[(name, node_index, i)] = t
    inputs = [outputs[tuple(ref)] for ref in _refs(body["input_layers"])]
    outs = [outputs[tuple(ref)] for ref in _refs(body["output_layers"])]
    return model_class("Model")(inputs, outs if len(outs) > 1 else outs[0], name=body.get("name"))


def _subclassed_from_config(config: dict, custom_objects: dict | None):
    """A subclassed model: its class (custom_objects or registered) from its config,
    built with the input shape it was saved with."""

    name = config.get("registered_name") or config["class_name"]
    cls = get_registered_object(name, custom_objects)
    if cls is None:
        raise ValueError(
            f"model class {config['class_name']} (module {config.get('module')}, "
            f"registered as {name!r}) is not kcompile's; pass it in custom_objects={{...}} "
            "to load_model, or register it with @keras.saving.register_keras_serializable()"
        )
    model = cls.from_config(dict(config["config"]))
    shape = (config.get("build_config") or {}).get("input_shape")
    if shape is None:
        raise ValueError(f"model {config['class_name']}: the file has no build_config")
    model.build(tuple(shape) if not isinstance(shape[0], list) else [tuple(s) for s in shape])
    return model


def _refs(refs: list) -> list:
    """Keras writes one endpoint as [name, node, index] and several as a list of them."""
    return [refs] if refs and isinstance(refs[0], str) else refs


def _resolve(value: Any, outputs: dict) -> Any:
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        layer, node, index = value["config"]["keras_history"]
        return outputs[(layer, node, index)]
    if isinstance(value, list):
        return [_resolve(v, outputs) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, outputs) for k, v in value.items()}
    return value


# --- the files ---------------------------------------------------------------------------


def save_keras(model, path: str) -> None:
    """``model.save("m.keras")`` (or a FeatureSpace's ``save``): Keras 3's zip, with the
    lookups' vocabularies as assets, written atomically."""
    config = _file_config(model)
    weights = io.BytesIO()
    write_weights(model, weights)
    assets = collect_assets(model)
    metadata = {
        "keras_version": KERAS_VERSION,
        "date_saved": time.strftime("%Y-%m-%d@%H:%M:%S"),
        "kcompile_version": __version__,
    }

    def write(f) -> None:
        with zipfile.ZipFile(f, "w") as z:
            z.writestr("metadata.json", json.dumps(metadata))
            z.writestr("config.json", json.dumps(config))
            z.writestr("model.weights.h5", weights.getvalue())
            for name, data in assets.items():
                z.writestr(name, data)

    atomic_write(os.fspath(path), write)


def _file_config(obj: Any) -> dict:
    if is_feature_space(obj):
        return {
            "module": "keras.utils",
            "class_name": "FeatureSpace",
            "config": _jsonable(obj.get_config()),
            "registered_name": None,
            "build_config": _jsonable(obj.get_build_config()),
        }
    return model_config(obj)


ASSETS = "assets"  # the archive's folder of assets, as Keras names it


def _asset_savers(obj: Any) -> list[tuple[str, Any]]:
    """(path, layer) of each layer with assets, and of each inner layer Keras's walk
    saves them for again (a TextVectorization's ``_lookup_layer``)."""
    out = []
    for path, layer in saved_layers(obj):
        if hasattr(layer, "save_assets"):
            out.append((path, layer))
            if isinstance(layer, layers.TextVectorization):
                out.append((f"{path}/_lookup_layer", layer._lookup))
    return out


def collect_assets(obj: Any) -> dict[str, bytes]:
    """Each asset file Keras's ``save_assets`` walk writes, by its name in the archive
    (``assets/<layer path>/<file>``)."""
    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for path, layer in _asset_savers(obj):
            folder = os.path.join(tmp, *path.split("/"))
            os.makedirs(folder, exist_ok=True)
            layer.save_assets(folder)
        for root, _, files in os.walk(tmp):
            for name in sorted(files):
                full = os.path.join(root, name)
                relative = os.path.relpath(full, tmp).replace(os.sep, "/")
                with open(full, "rb") as f:
                    out[f"{ASSETS}/{relative}"] = f.read()
    return out


def restore_assets(obj: Any, archive: zipfile.ZipFile, filepath: str) -> None:
    """Each layer's ``load_assets`` from the archive's ``assets/<layer path>/``; a file a
    layer needs and the archive lacks is named in the error."""
    savers = [(p, layer) for p, layer in saved_layers(obj) if hasattr(layer, "load_assets")]
    if not savers:
        return
    with tempfile.TemporaryDirectory() as tmp:
        _extract_assets(archive, tmp, filepath)
        for path, layer in savers:
            folder = os.path.join(tmp, ASSETS, *path.split("/"))
            try:
                layer.load_assets(folder)
            except FileNotFoundError as e:
                missing = os.path.relpath(e.filename or folder, tmp).replace(os.sep, "/")
                raise ValueError(
                    f"{filepath}: the archive has no {missing}, which layer '{layer.name}' "
                    f"({type(layer).__name__}) reads its vocabulary from"
                ) from None


def _extract_assets(archive: zipfile.ZipFile, tmp: str, filepath: str) -> None:
    """The archive's ``assets/`` files into ``tmp``, refusing names that leave it."""
    root = os.path.realpath(tmp)
    for name in archive.namelist():
        if not name.startswith(f"{ASSETS}/") or name.endswith("/"):
            continue
        target = os.path.realpath(os.path.join(root, name))
        if not target.startswith(root + os.sep):
            raise ValueError(f"{filepath}: asset path {name!r} escapes the asset folder")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(archive.read(name))


def load_keras(path: str, compile: bool = True, custom_objects: dict | None = None):
    """A model (or a FeatureSpace) from a ``.keras`` file (Keras 3's or kcompile's)."""
    path = os.fspath(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{path}: not a readable .keras file ({e})") from None
    with archive:
        try:
            config = json.loads(archive.read("config.json"))
            weights = io.BytesIO(archive.read("model.weights.h5"))
        except (KeyError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a readable .keras file ({e})") from None
        if config.get("class_name") == "FeatureSpace":
            model = _feature_space_from_config(config)
            restore_assets(model, archive, path)
            _read_weights(model, weights, with_optimizer=False)
            return model
        model = model_from_config(config, custom_objects)
        restore_assets(model, archive, path)
    compile_config = config.get("compile_config")
    if compile and compile_config:
        _compile_from(model, compile_config, custom_objects)
    _read_weights(model, weights, with_optimizer=bool(compile and compile_config))
    return model


def _feature_space_from_config(config: dict):
    # By the public module the file names ("keras.utils"), as a config's classes are found.
    cls = getattr(importlib.import_module("kcompile.utils"), config["class_name"])
    space = cls.from_config(config["config"])
    space.build_from_config(config.get("build_config") or {})
    return space


def _compile_from(model, compile_config: dict, custom_objects: dict | None = None) -> None:
    """``compile_from_config``, finding a user's losses and metrics in ``custom_objects``."""
    from kcompile.saving.object_registration import CustomObjectScope

    with CustomObjectScope({**scope_objects(), **(custom_objects or {})}):
        model.compile_from_config(compile_config)


def save_weights_h5(model, path: str) -> None:
    buffer = io.BytesIO()
    write_weights(model, buffer)
    atomic_write(os.fspath(path), lambda f: f.write(buffer.getvalue()))


def load_weights_h5(model, path: str) -> None:
    try:
        _read_weights(model, os.fspath(path), with_optimizer=False)
    except OSError as e:
        raise ValueError(f"{path}: not a readable .weights.h5 file ({e})") from None
