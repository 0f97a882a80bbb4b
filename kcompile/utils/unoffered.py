"""Keras 3.15's public names that kcompile does not offer yet, each with the reason.

A program that touches one stops at that name with ``NotImplementedError`` saying what
is missing and why, instead of an ``AttributeError`` that reads like a typo. Each
namespace's module ``__getattr__`` asks ``refuse``; a name Keras does not have either
is still an ``AttributeError``.
"""

from __future__ import annotations

from typing import NoReturn

# Whole namespaces of keras that kcompile has no module for.
NAMESPACES = {
    "export": "ExportArchive writes TensorFlow SavedModels; kcompile exports with model.export",
}

_BACKEND_WRAPPER = "it wraps another framework's module, which kcompile cannot compile"

NAMES: dict[str, dict[str, str]] = {
    "layers": {
        "FlaxLayer": _BACKEND_WRAPPER,
        "JaxLayer": _BACKEND_WRAPPER,
        "TorchModuleWrapper": _BACKEND_WRAPPER,
        "TFSMLayer": "it loads a TensorFlow SavedModel, which kcompile cannot compile",
    },
    "callbacks": {
        "OrbaxCheckpoint": "it writes checkpoints with Orbax (JAX); use ModelCheckpoint",
    },
    "quantizers": {
        "Float8QuantizationConfig": "model.quantize('float8') is not offered: delayed "
        "scaling with amax histories updated by gradients, and no float8 products on these "
        "CPUs (docs/quantization.md)",
        "GPTQConfig": "model.quantize('gptq') is not offered: GPTQ's calibration is not "
        "implemented in kcompile (docs/quantization.md)",
        "AWQConfig": "model.quantize('awq') is not offered: AWQ's calibration is not "
        "implemented in kcompile (docs/quantization.md)",
    },
}


def refuse(namespace: str, name: str) -> NoReturn:
    """Raise for ``keras.<namespace>.<name>``: NotImplementedError with the reason when
    Keras has the name, else AttributeError."""
    reason = NAMES.get(namespace, {}).get(name)
    if reason is None:
        raise AttributeError(f"module 'kcompile.{namespace}' has no attribute {name!r}")
    raise NotImplementedError(f"keras.{namespace}.{name} is not offered by kcompile yet: {reason}")


def refuse_namespace(name: str) -> None:
    """Raise NotImplementedError for a keras namespace kcompile has no module for."""
    if name in NAMESPACES:
        raise NotImplementedError(f"keras.{name} is not offered by kcompile: {NAMESPACES[name]}")
