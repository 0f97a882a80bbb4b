"""Whole-model files (``.kcmodel``): architecture, compile settings, weights and
optimizer state in one zip, written atomically.

The architecture is each layer's ``get_config`` plus, for functional models,
which tensors each layer call consumed; loading rebuilds the layers and calls
them again in the same order.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from typing import Any

import numpy as np

from kcompile import layers
from kcompile.layers import Input
from kcompile.layers.layer import topological_records
from kcompile.saving.object_registration import model_class
from kcompile.utils.traceback_utils import filter_traceback

FORMAT = "kcompile.model"
VERSION = 1


def _layer_classes() -> dict[str, type]:
    classes = {name: getattr(layers, name) for name in layers.__all__}
    classes["Sequential"] = model_class("Sequential")
    classes["Model"] = model_class("Model")
    return classes


def _layer_entry(layer) -> dict[str, Any]:
    if isinstance(layer, model_class("Model")):
        raise NotImplementedError(f"saving: nested model '{layer.name}' cannot be saved yet")
    if type(layer).__name__ not in _layer_classes():
        raise NotImplementedError(
            f"saving: layer '{layer.name}' of custom class {type(layer).__name__} cannot be saved"
        )
    return {"class": type(layer).__name__, "config": layer.get_config()}


def _tensor_ref(t, records: list) -> list:
    record, index = t._history
    if record is None:
        return ["input", t._input_layer.name, 0]
    return ["call", records.index(record), index]


def model_config(model) -> dict[str, Any]:
    if isinstance(model, model_class("Sequential")):
        shape = list(model.inputs[0].shape[1:]) if model.built else None
        return {
            "class": "Sequential",
            "name": model.name,
            "input_shape": shape,
            "input_dtype": model.inputs[0].dtype if model.built else None,
            "layers": [_layer_entry(layer) for layer in model.layers],
        }
    records = topological_records(model.outputs)
    return {
        "class": "Model",
        "name": model.name,
        "inputs": [
            {"name": t._input_layer.name, "shape": list(t.shape[1:]), "dtype": t.dtype}
            for t in model.inputs
        ],
        "layers": {r.layer.name: _layer_entry(r.layer) for r in records},
        "calls": [
            {"layer": r.layer.name, "inputs": [_tensor_ref(t, records) for t in r.inputs]}
            for r in records
        ],
        "outputs": [_tensor_ref(t, records) for t in model.outputs],
    }


def _make_layer(entry: dict[str, Any]):
    cls = _layer_classes().get(entry["class"])
    if cls is None:
        raise ValueError(f"unknown layer class {entry['class']!r}")
    return cls(**entry["config"])


def model_from_config(config: dict[str, Any]):
    if config["class"] == "Sequential":
        model = model_class("Sequential")(name=config["name"])
        if config["input_shape"] is not None:
            model.add(Input(shape=tuple(config["input_shape"]), dtype=config["input_dtype"]))
        for entry in config["layers"]:
            model.add(_make_layer(entry))
        return model
    inputs = {
        i["name"]: Input(shape=tuple(i["shape"]), dtype=i["dtype"], name=i["name"])
        for i in config["inputs"]
    }
    layers = {name: _make_layer(entry) for name, entry in config["layers"].items()}
    produced: list[list] = []

    def resolve(ref):
        kind, a, b = ref
        return inputs[a] if kind == "input" else produced[a][b]

    for call in config["calls"]:
        layer = layers[call["layer"]]
        args = [resolve(r) for r in call["inputs"]]
        out = layer(args if layer.multi_input else args[0])
        produced.append(out if isinstance(out, list) else [out])
    outputs = [resolve(r) for r in config["outputs"]]
    return model_class("Model")(list(inputs.values()), outputs, name=config["name"])


def _compile_config(model) -> dict[str, Any] | None:
    compiled = model.compiled_steps.config
    if compiled is None:
        return None
    specs = []
    for spec in compiled.specs:
        metrics = [m if isinstance(m, str) else type(m).__name__ for m in spec.metric_ids]
        loss = None
        if spec.loss is not None:
            loss = {"class": type(spec.loss).__name__, "config": spec.loss.get_config()}
        specs.append({"name": spec.name, "loss": loss, "weight": spec.weight, "metrics": metrics})
    opt = compiled.optimizer
    return {
        "optimizer": {"class": type(opt).__name__, "config": opt.get_config()},
        "outputs": specs,
        "backend": compiled.backend,
    }


def save_model(model, filepath: str) -> None:
    """Write ``model`` to ``filepath`` (``.kcmodel``) atomically."""
    from kcompile.utils.atomic import atomic_write

    filepath = os.fspath(filepath)
    if not filepath.endswith(".kcmodel"):
        raise ValueError(f"save: the file name must end in .kcmodel, got {filepath!r}")
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "model": model_config(model),
        "compile": _compile_config(model),
    }
    arrays = {f"w{i:04d}": v.value for i, v in enumerate(model.weights)}
    opt = model.optimizer
    if opt is not None and opt.built:
        arrays.update({f"opt/{k}": v for k, v in opt.slots.items()})
        manifest["optimizer_iterations"] = opt.step_count
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)

    def write(f):
        with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("manifest.json", json.dumps(manifest, indent=1))
            z.writestr("weights.npz", buffer.getvalue())

    atomic_write(filepath, write)


@filter_traceback
def load_model(filepath: str, custom_objects: dict | None = None, compile: bool = True, **kwargs):
    """Read a ``.kcmodel`` file, or Keras 3's ``.keras``; a corrupt or foreign file is
    refused with the reason. ``custom_objects`` maps names to a user's layer classes."""
    filepath = os.fspath(filepath)
    if filepath.endswith(".keras"):
        from kcompile.saving.saving_lib import load_keras

        return load_keras(filepath, compile=compile, custom_objects=custom_objects)
    try:
        with zipfile.ZipFile(filepath) as z:
            manifest = json.loads(z.read("manifest.json"))
            weights = np.load(io.BytesIO(z.read("weights.npz")), allow_pickle=False)
            arrays = {k: weights[k] for k in weights.files}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise ValueError(f"{filepath}: not a readable kcompile model file ({e})") from None
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{filepath}: not a kcompile model file")
    if manifest.get("version", 0) > VERSION:
        raise ValueError(
            f"{filepath}: format version {manifest['version']} is newer than this "
            f"kcompile reads ({VERSION})"
        )
    model = model_from_config(manifest["model"])
    model.set_weights([arrays[f"w{i:04d}"] for i in range(len(model.weights))])
    if compile and manifest.get("compile"):
        _recompile(model, manifest["compile"], arrays, manifest.get("optimizer_iterations", 0))
    return model


def _recompile(model, config: dict, arrays: dict, iterations: int) -> None:
    from kcompile import losses, optimizers

    opt_cls = getattr(optimizers, config["optimizer"]["class"])
    opt_config = dict(config["optimizer"]["config"])
    opt = opt_cls(**opt_config)
    loss = {}
    for spec in config["outputs"]:
        if spec["loss"] is not None:
            loss[spec["name"]] = getattr(losses, spec["loss"]["class"])(**spec["loss"]["config"])
    names = model.output_names
    model.compile(
        optimizer=opt,
        loss=loss if len(names) > 1 else next(iter(loss.values()), None),
        loss_weights={s["name"]: s["weight"] for s in config["outputs"]}
        if len(names) > 1
        else None,
        metrics={s["name"]: s["metrics"] for s in config["outputs"]}
        if len(names) > 1
        else config["outputs"][0]["metrics"],
        backend=config["backend"],
    )
    slots = {k[4:]: v for k, v in arrays.items() if k.startswith("opt/")}
    if slots:
        opt.build(model.trainable_weights)
        for k in opt.slots:
            if k in slots:
                np.copyto(opt.slots[k], slots[k])
        opt.step_count = iterations


def save_weights(model, filepath: str, overwrite: bool = True) -> None:
    """``model``'s weights to Keras 3's ``.weights.h5`` (HDF5, through h5py) or
    kcompile's ``.weights.npz`` (in ``weights`` order, by path), written atomically."""
    from kcompile.utils.atomic import atomic_write

    filepath = os.fspath(filepath)
    if not filepath.endswith((".weights.npz", ".weights.h5")):
        raise ValueError(
            "save_weights: the file name must end in .weights.h5 (Keras's format) or "
            f".weights.npz, got {filepath!r}"
        )
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(filepath)
    if filepath.endswith(".weights.h5"):
        from kcompile.saving.saving_lib import save_weights_h5

        save_weights_h5(model, filepath)
        return
    arrays = {f"{i:04d}:{v.path}": v.value for i, v in enumerate(model.weights)}
    atomic_write(filepath, lambda f: np.savez(f, **arrays))


def load_weights(model, filepath: str) -> None:
    """Weights from a ``.weights.h5`` or ``.weights.npz`` file into ``model``: by path
    when the file names every weight, else in ``weights`` order; a Keras 2 ``.h5`` file
    layer by layer, as Keras reads one."""
    filepath = os.fspath(filepath)
    if filepath.endswith(".weights.h5"):
        from kcompile.saving.saving_lib import load_weights_h5

        load_weights_h5(model, filepath)
        return
    if filepath.endswith((".h5", ".hdf5")):  # Keras 2's layout (pretrained applications)
        from kcompile.saving.legacy_h5_format import load_legacy_weights

        load_legacy_weights(model, filepath)
        return
    try:
        with np.load(filepath, allow_pickle=False) as data:
            stored = sorted(data.files)
            arrays = [data[k] for k in stored]
    except (OSError, ValueError) as e:
        raise ValueError(f"{filepath}: not a readable weights file ({e})") from None
    mine = model.weights
    by_path = {key.partition(":")[2]: a for key, a in zip(stored, arrays)}
    if len(by_path) == len(arrays) and set(by_path) == {v.path for v in mine}:
        arrays = [by_path[v.path] for v in mine]  # by name: any order of the layers
    if len(arrays) != len(mine):
        raise ValueError(
            f"{filepath}: holds {len(arrays)} weight arrays, model '{model.name}' has {len(mine)}"
        )
    model.set_weights(arrays)
