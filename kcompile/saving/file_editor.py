"""``keras.saving.KerasFileEditor``: look into a ``.keras`` or ``.weights.h5`` file, edit
its weights as a tree of names, and write them out as a ``.weights.h5`` file, as Keras
3.15 does.

The file's HDF5 groups become nested dicts (``{"layers": {"dense": {"0": kernel, "1":
bias}}}``): a group's ``vars`` are lifted into it, empty groups are dropped. Where Keras's
editor differs from its own documentation, this one follows the documentation, and says
so: a group holding both ``vars`` and inner objects keeps both (Keras's keeps only the
``vars``), ``compare`` counts each mismatch and each matching weight once (Keras's
recursion adds its running totals back into them), a name is looked up once per place it
occurs. Needs ``h5py`` (the ``keras-files`` extra), as every Keras file here does.
"""

from __future__ import annotations

import io
import json
import math
import os
import pprint
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np

from kcompile.ir.types import bfloat16
from kcompile.saving import saving_lib
from kcompile.saving.object_registration import model_class
from kcompile.utils.atomic import atomic_write

_MAX_BYTES = 1 << 32  # one dataset: Keras's limit against a file that claims a huge array
_MAX_RANK = 64


class KerasFileEditor:
    """Inspect, edit and resave the weights of a Keras file.

    Useful to adapt a saved file to a model whose architecture changed::

        editor = KerasFileEditor("my_model.keras")
        editor.summary()
        editor.delete_object("layers/dense_2")
        editor.add_object("layers/einsum_dense", weights={"0": kernel, "1": bias})
        editor.save("edited_model.weights.h5")

    Args:
        filepath: a local ``.keras`` or ``.weights.h5`` file.
    """

    def __init__(self, filepath: str | os.PathLike) -> None:
        filepath = os.fspath(filepath)
        self.filepath = filepath
        self.metadata: dict | None = None
        self.config: dict | None = None
        self.model = None
        if filepath.endswith(".keras"):
            source = self._open_archive(filepath)
        elif filepath.endswith(".weights.h5"):
            source = filepath
        else:
            raise ValueError(
                "Invalid filename: expected a `.keras` `.weights.h5` extension. "
                f"Received: filepath={filepath}"
            )
        self.weights_dict, self.object_metadata = read_weights_tree(source)
        print(self._generate_filepath_info())
        if self.metadata is not None:
            print(self._generate_metadata_info())

    def _open_archive(self, filepath: str) -> io.BytesIO:
        """Config and metadata of a ``.keras`` zip; its weights file, in memory."""
        try:
            with zipfile.ZipFile(filepath) as z:
                self.config = json.loads(z.read("config.json"))
                self.metadata = json.loads(z.read("metadata.json"))
                return io.BytesIO(z.read("model.weights.h5"))
        except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as e:
            raise ValueError(f"{filepath}: not a readable .keras file ({e})") from None

    # --- looking -------------------------------------------------------------------------

    def summary(self) -> None:
        """Print the weight structure of the opened file."""
        print("Weights structure")
        for line in tree_lines(self.weights_dict, self.object_metadata):
            print("  " + line)

    def weights_summary(self) -> None:
        """The same as ``summary()``: the name Keras's error messages point to."""
        self.summary()

    def compare(self, reference_model) -> dict:
        """List every mismatch between the opened file and ``reference_model``'s weights.

        Returns:
            ``{"status": "success" or "error", "error_count": mismatches found,
            "match_count": weights whose path and shape agree}``.
        """
        print("Running comparison")
        reference = model_weight_spec(reference_model)
        errors, matches = _compare(self.weights_dict, reference, "", _FILE_VS_MODEL, first=True)
        # The other way round adds only what the file holds and the model lacks.
        errors += _compare(reference, self.weights_dict, "", _MODEL_VS_FILE, first=False)[0]
        print("─────────────────────")
        if errors == 0:
            print("Comparison successful: saved file is compatible with the reference model")
            print(f"    Found {matches} matching weight{'' if matches == 1 else 's'}")
        else:
            print(
                f"Found {errors} error{'' if errors == 1 else 's'}: "
                "saved file is not compatible with the reference model"
            )
        status = "success" if errors == 0 else "error"
        return {"status": status, "error_count": errors, "match_count": matches}

    # --- editing -------------------------------------------------------------------------

    def rename_object(self, object_name: str, new_name: str) -> None:
        """Rename an object (e.g. a layer), given by name (``"dense_2"``) or path
        (``"layers/dense_2"``); ``new_name`` is a leaf name."""

        def rename(parent: dict, source_name: str, target_name: str | None) -> None:
            parent[target_name] = parent.pop(source_name)

        self._edit_object(rename, object_name, new_name)

    def delete_object(self, object_name: str) -> None:
        """Remove an object (e.g. a layer), given by name or path."""

        def delete(parent: dict, source_name: str, target_name: str | None) -> None:
            parent.pop(source_name)

        self._edit_object(delete, object_name)

    def add_object(self, object_path: str, weights: dict) -> None:
        """Add an object at ``object_path`` (e.g. ``"layers/dense_2"``) holding ``weights``
        (weight name to array, e.g. ``{"0": kernel, "1": bias}``)."""
        _check_weights(weights)
        elements = object_path.split("/")
        parent = self.weights_dict
        for element in elements[:-1]:
            if element not in parent:
                raise ValueError(f"Path '{'/'.join(elements[:-1])}' not found in model.")
            parent = parent[element]
        parent[elements[-1]] = _as_arrays(weights)

    def delete_weight(self, object_name: str, weight_name: str) -> None:
        """Remove the weight ``weight_name`` (e.g. ``"0"``) of an object."""

        def delete(parent: dict, source_name: str, target_name: str | None) -> None:
            _check_object(parent, source_name, object_name)
            if weight_name not in parent[source_name]:
                raise ValueError(
                    f"Weight {weight_name} not found in object {object_name}. "
                    f"Weights found: {list(parent[source_name].keys())}"
                )
            parent[source_name].pop(weight_name)

        self._edit_object(delete, object_name)

    def add_weights(self, object_name: str, weights: dict) -> None:
        """Add weights (name to array) to an existing object."""
        _check_weights(weights)

        def add(parent: dict, source_name: str, target_name: str | None) -> None:
            _check_object(parent, source_name, object_name)
            parent[source_name].update(_as_arrays(weights))

        self._edit_object(add, object_name)

    def _edit_object(
        self, edit: Callable[[dict, str, str | None], None], source_name: str, target_name=None
    ) -> None:
        """``edit(parent, name, target_name)`` on the object at a path, or on the one
        object of that name wherever it is."""
        if target_name is not None and "/" in target_name:
            raise ValueError(
                "Argument `target_name` should be a leaf name, not a full path name. "
                f"Received: target_name='{target_name}'"
            )
        if "/" in source_name:
            *parents, leaf = source_name.split("/")
            parent = self.weights_dict
            for element in parents:
                if not isinstance(parent.get(element), dict):
                    raise ValueError(f"Path '{source_name}' not found in model.")
                parent = parent[element]
            if leaf not in parent:
                raise ValueError(f"Path '{source_name}' not found in model.")
            edit(parent, leaf, target_name)
            return
        holders = list(_holders_of(self.weights_dict, source_name))
        if len(holders) > 1:
            raise ValueError(
                f"Name '{source_name}' occurs more than once in the model; "
                "try passing a complete path"
            )
        if not holders:
            raise ValueError(
                f"Source name '{source_name}' does not appear in the model. "
                "Use `editor.weights_summary()` to list all objects."
            )
        edit(holders[0], source_name, target_name)

    # --- writing -------------------------------------------------------------------------

    def save(self, filepath: str | os.PathLike) -> None:
        """Write the edited weights to ``filepath``, a ``.weights.h5`` file (atomically)."""
        filepath = os.fspath(filepath)
        if not filepath.endswith(".weights.h5"):
            raise ValueError(
                "Invalid `filepath` argument: expected a `.weights.h5` extension. "
                f"Received: filepath={filepath}"
            )
        buffer = io.BytesIO()
        with saving_lib.h5py_module().File(buffer, "w") as f:
            write_weights_tree(f, self.weights_dict)
        atomic_write(filepath, lambda out: out.write(buffer.getvalue()))

    def resave_weights(self, filepath: str | os.PathLike) -> None:
        """The same as ``save(filepath)``."""
        self.save(filepath)

    # --- text ----------------------------------------------------------------------------

    def _generate_filepath_info(self, rich_style: bool = False) -> str:
        return f"Keras model file '{self.filepath}'"

    def _generate_config_info(self, rich_style: bool = False) -> str:
        return pprint.pformat(self.config)

    def _generate_metadata_info(self, rich_style: bool = False) -> str:
        version, date = self.metadata["keras_version"], self.metadata["date_saved"]
        return f"Saved with Keras {version} - date: {date}"


def _check_weights(weights: Any) -> None:
    if not isinstance(weights, dict):
        raise ValueError(
            "Argument `weights` should be a dict where keys are weight names (usually "
            "'0', '1', etc.) and values are NumPy arrays. "
            f"Received: type(weights)={type(weights)}"
        )


def _check_object(parent: dict, name: str, object_name: str) -> None:
    if not isinstance(parent[name], dict):
        raise ValueError(
            f"'{object_name}' is a weight, not an object holding weights: give the path of "
            "the object (e.g. 'layers/dense_2')"
        )


def _as_arrays(weights: dict) -> dict:
    """A copy of ``weights`` with every leaf a numpy array (so it has a shape to compare)."""
    return {
        str(k): _as_arrays(v) if isinstance(v, dict) else np.asarray(v) for k, v in weights.items()
    }


def _holders_of(tree: dict, name: str):
    """Every dict in ``tree`` (itself included) that has the key ``name``."""
    for value in tree.values():
        if isinstance(value, dict):
            yield from _holders_of(value, name)
    if name in tree:
        yield tree


# --- the HDF5 side -------------------------------------------------------------------------


def read_weights_tree(source: str | io.BytesIO) -> tuple[dict, dict]:
    """A weights file as ``(tree, object_metadata)``: nested dicts of arrays, and each
    object's HDF5 attributes by path (``"/layers/dense": {"name": "mydense"}``)."""
    h5py = saving_lib.h5py_module()
    try:
        f = h5py.File(source, "r")
    except FileNotFoundError:
        raise
    except OSError as e:
        raise ValueError(f"{_describe(source)}: not a readable HDF5 weights file ({e})") from None
    with f:
        metadata: dict[str, dict] = {}
        return _read_group(h5py, f, "", metadata), metadata


def _describe(source: str | io.BytesIO) -> str:
    return source if isinstance(source, str) else "model.weights.h5"


def _read_group(h5py, group, path: str, metadata: dict) -> dict:
    """A group's own ``vars`` and its other members, recursively; links to elsewhere (in
    this file or another) are refused, as Keras refuses them."""
    attributes = dict(group.attrs)
    members = [(group, key) for key in group if key != "vars"]
    if "vars" in group:
        own = _child(h5py, group, "vars")
        if isinstance(own, h5py.Group):
            attributes.update(own.attrs)
            members = [(own, key) for key in own] + members
        else:
            members.append((group, "vars"))
    if attributes:
        metadata[path] = attributes
    tree: dict[str, Any] = {}
    for parent, key in members:
        child = _child(h5py, parent, key)
        inner = f"{path}/{key}"
        if isinstance(child, h5py.Group):
            sub = _read_group(h5py, child, inner, metadata)
            if sub:
                tree[key] = sub
        elif isinstance(child, h5py.Dataset):
            tree[key] = _read_dataset(child, inner)
    return tree


def _child(h5py, group, key: str):
    link = group.get(key, default=None, getclass=True, getlink=True)
    if link in (h5py.ExternalLink, h5py.SoftLink):
        raise ValueError(f"Not allowed: H5 file with {link.__name__}")
    return group[key]


def _read_dataset(dataset, path: str) -> np.ndarray:
    """One dataset's values, after Keras's checks on what it claims to hold."""
    if dataset.external:
        raise ValueError(f"Not allowed: H5 file Dataset with external links: {dataset.external}")
    if dataset.is_virtual:
        raise ValueError(f"Not allowed: H5 file with virtual Dataset at {path}")
    shape = dataset.shape
    if any(dim < 0 for dim in shape):
        raise ValueError(
            "Malformed HDF5 dataset shape encountered in .keras file; negative dimension detected."
        )
    if len(shape) > _MAX_RANK:
        raise ValueError(
            "Malformed HDF5 dataset shape encountered in .keras file; "
            "tensor rank exceeds safety limit."
        )
    size = math.prod(shape) * dataset.dtype.itemsize
    if size > _MAX_BYTES:
        raise ValueError(
            f"HDF5 dataset too large to load safely ({size} bytes; limit is {_MAX_BYTES})."
        )
    if dataset.attrs.get("dtype") == "bfloat16":  # 2-byte opaque values, as Keras writes them
        return np.array(dataset, dtype=bfloat16())
    return np.asarray(dataset[()])


def write_weights_tree(f, tree: dict, path: str = "") -> None:
    """``tree`` into an open HDF5 file: each object's arrays under ``<path>/vars``, as
    Keras's weights files hold them; empty objects are not written."""
    leaves = {k: v for k, v in tree.items() if not isinstance(v, dict)}
    for name, value in tree.items():
        if isinstance(value, dict) and value:
            write_weights_tree(f, value, f"{path}/{name}" if path else name)
    if leaves:
        group = f.require_group(f"{path}/vars" if path else "vars")
        for name, value in leaves.items():
            saving_lib.write_array(group, name, np.asarray(value))


# --- printing ------------------------------------------------------------------------------


def tree_lines(tree: dict, object_metadata: dict, path: str = "", prefix: str = "") -> list[str]:
    """``summary``'s lines: the tree drawn as Keras draws it (``>`` on the first line),
    each object with the layer name its file recorded, each weight with shape and dtype."""
    lines = []
    for i, (key, value) in enumerate(tree.items()):
        last = i == len(tree) - 1
        connector = "> " if not lines and not path else ("└─ " if last else "├─ ")
        inner = f"{path}/{key}"
        if isinstance(value, dict):
            name = object_metadata.get(inner, {}).get("name")
            lines.append(f"{prefix}{connector}{key}" + (f" ('{name}')" if name else ""))
            below = prefix + ("    " if last else "│   ")
            lines += tree_lines(value, object_metadata, inner, below)
        else:
            lines.append(f"{prefix}{connector}{key}: shape={value.shape}, dtype={value.dtype}")
    return lines


# --- comparing -----------------------------------------------------------------------------


def model_weight_spec(model) -> dict:
    """The tree of a model's weights as its own weights file would hold them (kcompile
    writes them where Keras does), its optimizer's state included once compiled; of a
    layer, its variables as Keras's walk of that layer finds them. Unbuilt: no weights."""
    from kcompile.layers import Layer

    if not isinstance(model, Layer):
        raise ValueError(
            "Expected object to be an instance of `KerasSaveable`, but "
            f"got {model} of type {type(model)}"
        )
    if not model.built:
        return {}
    if isinstance(model, model_class("Model")):
        buffer = io.BytesIO()
        saving_lib.write_weights(model, buffer)
        return read_weights_tree(buffer)[0]
    tree: dict = {}
    for path, _, variables in saving_lib.layer_groups(model, ""):
        node = tree
        for part in [p for p in path.split("/") if p][:-1]:  # the last one is "vars"
            node = node.setdefault(part, {})
        # shape and dtype without the values: a zero-strided view of one zero
        node.update(
            {
                str(i): np.broadcast_to(np.zeros((), v.dtype), v.shape)
                for i, v in enumerate(variables)
            }
        )
    return _without_empty(tree)


def _without_empty(tree: dict) -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            value = _without_empty(value)
            if not value:
                continue
        out[key] = value
    return out


_FILE_VS_MODEL = ("saved file", "reference model")  # (target, reference) in messages
_MODEL_VS_FILE = ("reference model", "saved file")


def _compare(target: dict, reference: dict, path: str, names: tuple, first: bool):
    """(mismatches, matching weights) of ``target`` against ``reference``, each mismatch
    printed: a path of ``reference`` missing from ``target``, and in the ``first`` pass
    only (the second would meet them again) a weight of another shape or an object where
    the other has a weight."""
    target_name, ref_name = names
    errors = matches = 0
    for key, ref_value in reference.items():
        inner = f"{path}/{key}"
        if key not in target:
            errors += 1
            kind = "Object" if isinstance(ref_value, dict) else "Weight"
            print(f"...{kind} {inner} present in {ref_name}, missing from {target_name}")
            if isinstance(ref_value, dict):
                print(
                    f"    In {ref_name}, {inner} contains the following keys: "
                    f"{list(ref_value.keys())}"
                )
        elif isinstance(ref_value, dict) and isinstance(target[key], dict):
            sub_errors, sub_matches = _compare(target[key], ref_value, inner, names, first)
            errors, matches = errors + sub_errors, matches + sub_matches
        elif isinstance(ref_value, dict) or isinstance(target[key], dict):
            if first:
                errors += 1
                print(f"...{inner} is an object in one and a weight in the other")
        elif np.shape(target[key]) != np.shape(ref_value):
            if first:
                errors += 1
                print(
                    f"...Weight shape mismatch for {inner}\n"
                    f"    In {ref_name}: shape={np.shape(ref_value)}\n"
                    f"    In {target_name}: shape={np.shape(target[key])}"
                )
        else:
            matches += 1
    return errors, matches
