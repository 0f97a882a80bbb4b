"""kcompile: Keras-style models compiled to native CPU code.

``import kcompile as keras`` runs Keras programs in kcompile's scope.
"""

from kcompile import (
    activations,
    callbacks,
    datasets,
    initializers,
    inspect,
    layers,
    losses,
    metrics,
    optimizers,
    saving,
    utils,
)
from kcompile import backend as backend
from kcompile.layers import Input
from kcompile.models import Model, Sequential

__version__ = "0.1.0"

__all__ = [
    "Input",
    "Model",
    "Sequential",
    "activations",
    "backend",
    "callbacks",
    "datasets",
    "initializers",
    "inspect",
    "layers",
    "losses",
    "metrics",
    "optimizers",
    "saving",
    "utils",
]
