"""``Model.quantize``: a model's leaf layers quantized in place, as Keras's does it (the
layers' own ``quantize`` does the work: ``kcompile.quantizers``)."""

from __future__ import annotations

import re
import warnings
from typing import Any

from kcompile import quantizers
from kcompile.models.layer_internals import tracked_layers


def quantize_model(model: Any, mode: Any, config: Any = None, filters: Any = None) -> None:
    """Keras's ``Model.quantize``: every leaf layer that passes ``filters`` quantized; a
    layer that does not quantize warns with Keras's message and stays in float."""
    mode = quantizers.resolve_mode(mode, config)
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

    changed = False
    for layer in leaf_layers(model):
        if not wanted(layer):
            continue
        try:
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


def leaf_layers(model: Any) -> list:
    """The layers ``quantize`` visits: those ``model`` holds at any depth that hold no
    layers themselves, in Keras's order (``_flatten_layers``)."""
    return [x for x in _flatten_layers(model) if x is not model and not _has_sublayers(x)]


def _has_sublayers(layer: Any) -> bool:
    return bool(tracked_layers(layer)) or bool(getattr(layer, "layers", None))


def _flatten_layers(model: Any) -> list:
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


# --- the graph --------------------------------------------------------------------------
