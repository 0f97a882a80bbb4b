"""Keras 2's HDF5 weight files (``.h5``, ``.hdf5``: a group per layer that has weights,
loaded by position, not by name), read as Keras's ``legacy_h5_format`` reads them: the
applications' pretrained files, and ``model.load_weights`` of such a file. Reading them
needs h5py (the ``keras-files`` extra)."""

from __future__ import annotations

from typing import Any

import numpy as np

EXTRA = "kcompile[keras-files]"


def is_legacy_h5(path: str) -> bool:
    return path.endswith((".h5", ".hdf5")) and not path.endswith(".weights.h5")


def require_h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise ImportError(
            "Keras's pretrained weight files are HDF5 (.h5): reading them needs h5py; "
            f"install the extra: pip install '{EXTRA}'"
        ) from None
    return h5py


def load_legacy_weights(model: Any, path: str) -> None:
    """A Keras 2 HDF5 file's weights into ``model``, layer by layer in order."""
    h5py = require_h5py()
    with h5py.File(path, "r") as f:
        group = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
        load_weights_from_hdf5_group(group, model, path)


def _attribute(group: Any, name: str) -> list[str]:
    """A list attribute of an HDF5 group, split into ``name0``, ``name1``, ... when it was
    too large for one HDF5 object header (as Keras writes it)."""
    if name in group.attrs:
        chunks = [group.attrs[name]]
    else:
        chunks, i = [], 0
        while f"{name}{i}" in group.attrs:
            chunks.append(group.attrs[f"{name}{i}"])
            i += 1
    return [n.decode("utf8") if hasattr(n, "decode") else str(n) for c in chunks for n in c]


def _legacy_weights(layer: Any) -> list:
    # Keras 2 wrote each layer's trainable weights first, then the others.
    return list(layer.trainable_weights) + list(layer.non_trainable_weights)


def load_weights_from_hdf5_group(group: Any, model: Any, path: str = "") -> None:
    """Keras's topological loading: the file's layers that hold weights, in order, into
    the model's layers that hold weights, in order (the names need not match)."""
    layers = [layer for layer in model.layers if _legacy_weights(layer)]
    names = [n for n in _attribute(group, "layer_names") if _attribute(group[n], "weight_names")]
    if len(names) != len(layers):
        raise ValueError(
            f"Layer count mismatch when loading weights from file {path}. Model expected "
            f"{len(layers)} layers, found {len(names)} saved layers."
        )
    for k, (name, layer) in enumerate(zip(names, layers)):
        values = [np.asarray(group[name][w]) for w in _attribute(group[name], "weight_names")]
        variables = _legacy_weights(layer)
        if len(values) != len(variables):
            raise ValueError(
                f"Weight count mismatch in {path} for layer #{k} (named {layer.name} in the "
                f"current model, {name} in the save file). Layer expects {len(variables)} "
                f"weight(s). Received {len(values)} saved weight(s)"
            )
        for variable, value in zip(variables, values):
            if tuple(variable.shape) != value.shape:
                raise ValueError(
                    f"Shape mismatch in {path} in layer #{k} (named {layer.name}) for weight "
                    f"{variable.path}: weight expects shape {tuple(variable.shape)}, received "
                    f"saved weight with shape {value.shape}"
                )
            variable.assign(value)
