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


def set_num_threads(count: int) -> None:
    """Threads that compiled code uses (the caller's included); the default is every
    core this process may run on, or ``$KCOMPILE_NUM_THREADS``."""
    from codegen.runtime import runtime

    runtime().set_threads(count)


def get_num_threads() -> int:
    from codegen.runtime import runtime

    return runtime().threads()


__all__ = [
    "Input",
    "Model",
    "Sequential",
    "activations",
    "backend",
    "callbacks",
    "datasets",
    "get_num_threads",
    "initializers",
    "inspect",
    "layers",
    "losses",
    "metrics",
    "optimizers",
    "saving",
    "set_num_threads",
    "utils",
]
