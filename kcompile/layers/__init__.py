"""Keras layers (``kcompile.layers``)."""

from kcompile.layers.core import (
    Activation,
    Dense,
    Dropout,
    Flatten,
    Input,
    InputLayer,
    LeakyReLU,
    ReLU,
    Reshape,
    Softmax,
)
from kcompile.layers.layer import Layer
from kcompile.layers.merging import (
    Add,
    Average,
    Concatenate,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
)

__all__ = [
    "Activation",
    "Add",
    "Average",
    "Concatenate",
    "Dense",
    "Dropout",
    "Flatten",
    "Input",
    "InputLayer",
    "Layer",
    "LeakyReLU",
    "Maximum",
    "Minimum",
    "Multiply",
    "ReLU",
    "Reshape",
    "Softmax",
    "Subtract",
]
