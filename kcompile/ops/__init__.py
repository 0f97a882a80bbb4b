"""``keras.ops`` for kcompile: ``from kcompile import ops``.

On traced tensors (inside a custom layer's ``call``, a ``Lambda``, a loss or metric)
an op adds IR to the step being compiled; on the functional API's symbolic tensors it
becomes a node of the model; on arrays and numbers it computes at once (numpy, through
the reference interpreter). An op kcompile does not have raises ``NotImplementedError``
naming it.
"""

from kcompile.ops import nn
from kcompile.ops.nn import (
    binary_crossentropy,
    categorical_crossentropy,
    elu,
    gelu,
    hard_sigmoid,
    hard_silu,
    hard_swish,
    leaky_relu,
    log_softmax,
    mish,
    moments,
    normalize,
    relu,
    relu6,
    selu,
    sigmoid,
    silu,
    softmax,
    softplus,
    softsign,
    sparse_categorical_crossentropy,
    swish,
)
from kcompile.ops.numpy import *  # noqa: F403
from kcompile.ops.numpy import __all__ as _numpy_names

__all__ = [
    *_numpy_names,
    "binary_crossentropy",
    "categorical_crossentropy",
    "elu",
    "gelu",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "leaky_relu",
    "log_softmax",
    "mish",
    "moments",
    "nn",
    "normalize",
    "relu",
    "relu6",
    "selu",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
    "softsign",
    "sparse_categorical_crossentropy",
    "swish",
]


def __getattr__(name: str):
    raise NotImplementedError(f"keras.ops.{name} is not supported by kcompile yet")
