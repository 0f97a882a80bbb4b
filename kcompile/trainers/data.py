"""Turning user data into the arrays the step graphs take, with clear errors."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kcompile.backend.keras_tensor import ir_dtype
from kcompile.ir import DType


def as_array_list(data: Any, names: list[str], what: str) -> list[np.ndarray]:
    """One array per name from an array, a list/tuple of arrays, or a dict by name."""
    try:
        return _as_array_list(data, names, what)
    except ValueError as e:
        if "inhomogeneous" not in str(e) and "sequence" not in str(e):
            raise
        raise ValueError(
            f"{what}: the data is not one rectangular array (are its rows of different "
            "lengths? pad them to one length)"
        ) from None


def _as_array_list(data: Any, names: list[str], what: str) -> list[np.ndarray]:
    if isinstance(data, dict):
        missing = [n for n in names if n not in data]
        if missing:
            raise ValueError(f"{what}: no data for {missing}; got keys {sorted(data)}")
        return [np.asarray(data[n]) for n in names]
    if isinstance(data, list | tuple) and len(names) > 1:
        if len(data) != len(names):
            raise ValueError(
                f"{what}: the model has {len(names)} of them ({names}), got {len(data)} arrays"
            )
        return [np.asarray(d) for d in data]
    if (
        isinstance(data, list | tuple)
        and len(data) == 1
        and np.ndim(data[0]) > 0
        and not np.isscalar(data[0])
    ):
        first = np.asarray(data[0])
        if first.dtype != object and first.ndim >= 1 and len(data) == 1:
            return [first]
    return [np.asarray(data)]


def check_numeric(array: np.ndarray, what: str) -> None:
    # (ml_dtypes' bfloat16, the dtype JAX and Keras give bf16 arrays, is numpy kind "V")
    if array.dtype.kind not in "biuf" and array.dtype.name != "bfloat16":
        raise TypeError(
            f"{what}: expected numeric data (float, int or bool), got dtype {array.dtype}"
        )


def is_ready_input(model, x: Any) -> bool:
    """Whether ``x`` is already what ``prepare_inputs`` would make of it: one C-contiguous
    array of the single Input's dtype and shape (the fast path of predict_on_batch)."""
    if not isinstance(x, np.ndarray) or len(model.inputs) != 1 or has_host_stage(model):
        return False
    t = model.inputs[0]
    return (
        x.dtype == t.dtype
        and x.flags.c_contiguous
        and x.ndim == len(t.shape)
        and x.shape[1:] == t.shape[1:]
    )


def has_host_stage(model) -> bool:
    """Whether layers of ``model`` run on the host before its compiled steps (their
    outputs, not the Inputs, are what the steps take)."""
    return any(c is not t for c, t in zip(model.compiled_inputs, model.inputs))


def prepare_inputs(model, x: Any) -> list[np.ndarray]:
    """Model inputs as contiguous arrays of the Input's dtype, shapes checked."""
    if x is None:
        raise ValueError(f"model '{model.name}': no input data (x) given")
    arrays = as_array_list(x, model.input_names, f"inputs of model '{model.name}'")
    compiled = model.inputs
    if has_host_stage(model):  # TextVectorization, StringLookup, ... on the host
        compiled, arrays = model.compiled_inputs, model.host_inputs(arrays)
    out = []
    for t, name, a in zip(compiled, model.input_names, arrays):
        check_numeric(a, f"input '{name}'")
        a = adjust_rank(a, t.shape)
        want = ir_dtype(t.dtype)
        if a.ndim != len(t.shape) or any(
            d is not None and d != s for d, s in zip(t.shape[1:], a.shape[1:])
        ):
            raise ValueError(
                f"input '{name}' of model '{model.name}' expects arrays of shape "
                f"{t.shape}, got shape {a.shape}"
            )
        if want is DType.i32 and a.dtype.kind == "f" and not np.all(np.mod(a, 1) == 0):
            raise TypeError(f"input '{name}' is integer ({t.dtype}); got non-integral floats")
        out.append(np.ascontiguousarray(a, dtype=want.numpy))
    _check_same_length(out, [f"input '{n}'" for n in model.input_names])
    return out


def adjust_rank(a: np.ndarray, shape: tuple) -> np.ndarray:
    """Keras's ``_adjust_input_rank``: an array of one rank less than an Input whose last
    dimension is 1 gets that axis; one of one rank more whose last dimension is 1 loses
    it."""
    if a.ndim == len(shape) - 1 and shape[-1] == 1:
        return a[..., None]
    if a.ndim == len(shape) + 1 and a.shape[-1] == 1:
        return a[..., 0]
    return a


def needs_labels(model) -> bool:
    """Whether the compiled steps take labels: some output has a loss or metrics (a model
    whose loss is all ``add_loss`` trains on ``x`` alone, as in Keras)."""
    config = model.compiled_steps.config
    if config is None:
        return True
    return any(s.loss is not None or s.metric_ids or s.weighted_metric_ids for s in config.specs)


def prepare_labels(model, y: Any, n: int) -> list[np.ndarray]:
    """Labels: integers become int32, everything else float32."""
    if y is None:
        if not needs_labels(model):
            return []
        raise ValueError(f"model '{model.name}': no labels (y) given")
    names = model.output_names
    arrays = as_array_list(y, names, f"labels of model '{model.name}'")
    out = []
    for name, a in zip(names, arrays):
        check_numeric(a, f"labels for output '{name}'")
        if a.ndim == 0:
            raise ValueError(
                f"labels for output '{name}' must have a batch dimension, got a scalar"
            )
        dtype = np.int32 if a.dtype.kind in "iub" else np.float32
        out.append(np.ascontiguousarray(a, dtype=dtype))
    for name, a in zip(names, out):
        if len(a) != n:
            raise ValueError(
                f"labels for output '{name}' have {len(a)} samples, the inputs have {n}"
            )
    return out


def _check_same_length(arrays: list[np.ndarray], names: list[str]) -> None:
    lengths = {len(a) for a in arrays}
    if len(lengths) > 1:
        shown = ", ".join(f"{n}: {len(a)}" for n, a in zip(names, arrays))
        raise ValueError(f"inputs have different numbers of samples ({shown})")


def split_tail(arrays: list[np.ndarray], validation_split: float):
    """Keras's validation_split: the last fraction of the samples, before shuffling."""
    n = len(arrays[0])
    split_at = math.floor(n * (1.0 - validation_split))
    if split_at == 0 or split_at == n:
        raise ValueError(
            f"Training data contains {n} samples, which is not sufficient to "
            f"split it into a validation and training set as specified by "
            f"`validation_split={validation_split}`"
        )
    return [a[:split_at] for a in arrays], [a[split_at:] for a in arrays]


def unpack_validation(validation_data: Any) -> tuple[Any, Any, Any]:
    """(x, y, sample weights or None) of ``validation_data``."""
    if isinstance(validation_data, tuple | list) and len(validation_data) in (2, 3):
        x, y, *rest = validation_data
        return x, y, rest[0] if rest else None
    raise ValueError("validation_data must be a tuple (x_val, y_val) or (x_val, y_val, weights)")


SAMPLE_WEIGHT = "sample_weight"  # the steps' input of per-sample weights


def with_sample_weights(ys: list[np.ndarray], sample_weight: Any, class_weight: Any, what: str):
    """The labels, then one float32 weight per sample when ``sample_weight`` or
    ``class_weight`` is given (Keras's conversion: a label's class is its argmax, or its
    rounded value; classes not in the dict weigh 1)."""
    if sample_weight is None and class_weight is None:
        return ys
    n = len(ys[0])
    if sample_weight is not None and class_weight is not None:
        raise ValueError(f"{what}: give sample_weight or class_weight, not both")
    if class_weight is not None:
        if len(ys) != 1:
            raise ValueError(f"{what}: class_weight needs a model with one output")
        if not isinstance(class_weight, dict):
            raise ValueError(f"{what}: class_weight must be a dict of class -> weight")
        y = ys[0]
        if y.ndim > 1:
            y = np.argmax(y, axis=-1) if y.shape[-1] != 1 else np.squeeze(y, -1)
        classes = np.round(y).astype(np.int64).reshape(n, -1)[:, 0]
        weights = np.array([class_weight.get(int(c), 1.0) for c in classes], np.float32)
    else:
        weights = np.asarray(sample_weight)
        check_numeric(weights, f"{what}: sample_weight")
        weights = weights.astype(np.float32)
        if weights.ndim == 0 or len(weights) != n:
            raise ValueError(
                f"{what}: sample_weight has shape {weights.shape}; expected one weight per "
                f"sample ({n})"
            )
    return [*ys, np.ascontiguousarray(weights)]
