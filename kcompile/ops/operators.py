"""Python's operators on tensors and weights, through ``keras.ops``.

``+ - * / // % ** @``, comparisons, negation, ``~ & |``, indexing and ``.T`` on traced
tensors, on the functional API's ``KerasTensor`` and (arithmetic only, so that weights
stay usable as dictionary keys) on weights. They are installed on those classes here,
when ``kcompile.ops`` is imported, rather than defined with the classes: the classes sit
below the ops in the layering, and every path that makes a tensor or a weight (a layer)
imports the ops first.
"""

from __future__ import annotations

from collections.abc import Callable

from kcompile.backend.keras_tensor import KerasTensor
from kcompile.backend.symbolic import TracedTensor
from kcompile.backend.variables import Variable
from kcompile.ops import numpy as knp
from kcompile.utils.traceback_utils import filter_traceback

_BINARY = {
    "add": "add",
    "sub": "subtract",
    "mul": "multiply",
    "truediv": "divide",
    "floordiv": "floor_divide",
    "mod": "mod",
    "pow": "power",
    "matmul": "matmul",
}
_COMPARISONS = {
    "lt": "less",
    "le": "less_equal",
    "gt": "greater",
    "ge": "greater_equal",
    "eq": "equal",
    "ne": "not_equal",
}


_UNARY = {"neg": "negative", "abs": "abs", "invert": "logical_not"}
_LOGICAL = {"and": "logical_and", "or": "logical_or"}


def _op(name: str) -> Callable:
    # Filtered as the public ops are: `x + y` with shapes that do not broadcast ends at
    # the user's line.
    return filter_traceback(getattr(knp, name))


def _binary(fn: Callable) -> tuple[Callable, Callable]:
    return (lambda a, b: fn(a, b)), (lambda a, b: fn(b, a))


def install_operators(cls: type, compare: bool = True) -> None:
    for dunder, name in _BINARY.items():
        forward, reflected = _binary(_op(name))
        setattr(cls, f"__{dunder}__", forward)
        setattr(cls, f"__r{dunder}__", reflected)
    for dunder, name in ((_COMPARISONS if compare else {}) | _LOGICAL).items():
        setattr(cls, f"__{dunder}__", _binary(_op(name))[0])
    for dunder, name in _UNARY.items():
        setattr(cls, f"__{dunder}__", _op(name))
    cls.__pos__ = lambda a: a
    cls.__getitem__ = _op("getitem")
    if compare:
        cls.__hash__ = object.__hash__


install_operators(TracedTensor)
install_operators(KerasTensor)
install_operators(Variable, compare=False)
TracedTensor.T = property(_op("transpose"))
