"""``Model.quantize``: a model's leaf layers quantized in place, as Keras's does it (the
layers' own ``quantize`` does the work: ``kcompile.quantizers``); with kcompile's
``convolutions=True``, Conv1D and Conv2D too (``kcompile.layers.convolutional.int8_conv``)."""

from __future__ import annotations

import re
import warnings
from typing import Any

from kcompile import quantizers
from kcompile.layers.convolutional import int8_conv
from kcompile.layers.convolutional.conv2d import Conv2D
from kcompile.models.layer_internals import flatten_layers, tracked_layers


def quantize_model(
    model: Any, mode: Any, config: Any = None, filters: Any = None, convolutions: bool = False
) -> None:
    """Keras's ``Model.quantize``: every leaf layer that passes ``filters`` quantized; a
    layer that does not quantize warns with Keras's message and stays in float.
    ``convolutions=True`` (kcompile's, off by default as Keras has no such thing):
    Conv1D and Conv2D layers quantized to int8 too, or nothing changed if one cannot be."""
    mode = quantizers.resolve_mode(mode, config)
    if not isinstance(convolutions, bool):
        raise TypeError(f"quantize: convolutions must be True or False, got {convolutions!r}")
    if filters is not None and not (isinstance(filters, str | list | tuple) or callable(filters)):
        raise ValueError(
            "The `filters` argument must be a regex string, a list of regex strings, or a "
            f"callable. Received: {type(filters)}"
        )

    def wanted(layer: Any) -> bool:
        if filters is None:
            return True
        if isinstance(filters, str):
            return bool(re.search(filters, layer.name))
        if isinstance(filters, list | tuple):
            return any(re.search(p, layer.name) for p in filters)
        return bool(filters(layer))

    layers = [x for x in leaf_layers(model) if wanted(x)]
    if convolutions:
        check_convolutions(model, mode, layers, filters, config)
    changed = False
    for layer in layers:
        try:
            if convolutions and isinstance(layer, Conv2D):
                layer.quantize(mode, config=config, convolutions=True)
            else:
                layer.quantize(mode, config=config)
            changed = True
        except quantizers.QuantizationNotSupported:
            raise
        except NotImplementedError as e:
            warnings.warn(str(e), stacklevel=3)
        except AttributeError:
            pass
    if changed:
        model.compiled_steps.forget_executables()


def check_convolutions(
    model: Any, mode: str, layers: list, filters: Any, config: Any = None
) -> None:
    """``convolutions=True``'s refusals, before any layer changes: a mode other than int8,
    no Conv1D or Conv2D among ``layers``, one that cannot be quantized (grouped, or too
    deep for exact int8 sums), a config with quantizers of its own."""
    where = f"{type(model).__name__} '{model.name}'"
    if mode != "int8":
        raise quantizers.QuantizationNotSupported(
            f"{where}: quantize(mode={mode!r}, convolutions=True): kcompile quantizes "
            "convolutions to int8 only"
        )
    convs = [x for x in layers if int8_conv.quantizable(x)]
    if not convs:
        picked = "" if filters is None else f" passing filters={filters!r}"
        raise ValueError(
            f"{where}: quantize(convolutions=True) found no Conv1D or Conv2D layer{picked} "
            "to quantize (kcompile quantizes those two; other convolutions stay float)"
        )
    for layer in convs:
        int8_conv.check_config(layer, config)
        if layer.built and not layer.quantization_mode:
            int8_conv.refuse(layer, tuple(layer.kernel.shape))


def leaf_layers(model: Any) -> list:
    """The layers ``quantize`` visits: those ``model`` holds at any depth that hold no
    layers themselves, in Keras's order (``_flatten_layers``)."""
    return [x for x in flatten_layers(model) if x is not model and not _has_sublayers(x)]


def _has_sublayers(layer: Any) -> bool:
    return bool(tracked_layers(layer)) or bool(getattr(layer, "layers", None))


# --- the graph --------------------------------------------------------------------------
