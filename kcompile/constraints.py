"""``keras.constraints``: projections Keras applies to a weight after each optimizer
step, here with Keras's math as functions on arrays and tensors (``keras.ops``, so they
run eagerly on numpy arrays and inside a traced step alike).

A layer's ``kernel_constraint=`` (any ``add_weight(constraint=)``) is applied to the
weight after each optimizer update, in the train step, as Keras's optimizers apply it.
"""

from __future__ import annotations

from typing import Any

from kcompile.backend import session as backend
from kcompile.utils.config_serialization import deserialize_object, serialize_object


def _epsilon() -> float:
    from kcompile.config import epsilon

    return epsilon()


def _norms(w: Any, axis: Any) -> Any:
    from kcompile import ops

    return ops.sqrt(ops.sum(ops.square(w), axis=axis, keepdims=True))


class Constraint:
    """The base: a constraint is called on a weight and returns the projected weight."""

    def __call__(self, w: Any) -> Any:
        return w

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Constraint:
        return cls(**config)


class MaxNorm(Constraint):
    """Rescale the slices along ``axis`` whose L2 norm exceeds ``max_value`` to that norm."""

    def __init__(self, max_value: float = 2, axis: int | list[int] = 0) -> None:
        self.max_value, self.axis = max_value, axis

    def __call__(self, w):
        from kcompile import ops

        norms = _norms(w, self.axis)
        desired = ops.clip(norms, 0, self.max_value)
        return ops.multiply(w, desired / (_epsilon() + norms))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Zero the negative entries."""

    def __call__(self, w):
        from kcompile import ops

        return ops.multiply(w, ops.cast(ops.greater_equal(w, 0.0), "float32"))


class UnitNorm(Constraint):
    """Scale the slices along ``axis`` to unit L2 norm."""

    def __init__(self, axis: int | list[int] = 0) -> None:
        self.axis = axis

    def __call__(self, w):
        from kcompile import ops

        return ops.divide(w, _epsilon() + _norms(w, self.axis))

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Move the L2 norm of the slices along ``axis`` into [min_value, max_value], by
    ``rate`` of the way (1: all the way)."""

    def __init__(
        self,
        min_value: float = 0.0,
        max_value: float = 1.0,
        rate: float = 1.0,
        axis: int | list[int] = 0,
    ) -> None:
        self.min_value, self.max_value, self.rate, self.axis = min_value, max_value, rate, axis

    def __call__(self, w):
        from kcompile import ops

        norms = _norms(w, self.axis)
        desired = (
            self.rate * ops.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        )
        return ops.multiply(w, desired / (_epsilon() + norms))

    def get_config(self):
        return {
            "min_value": self.min_value,
            "max_value": self.max_value,
            "rate": self.rate,
            "axis": self.axis,
        }


max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm
_CLASSES: dict[str, type[Constraint]] = {
    c.__name__: c for c in (Constraint, MaxNorm, MinMaxNorm, NonNeg, UnitNorm)
}
_NAMES = {**_CLASSES, **{backend.snake_case(n): c for n, c in _CLASSES.items()}}


def serialize(constraint: Constraint) -> dict[str, Any]:
    """Keras's serialized form: ``{"module", "class_name", "config", "registered_name"}``."""
    return serialize_object(constraint, "constraints", _CLASSES)


def deserialize(config: Any, custom_objects: dict | None = None) -> Constraint:
    """A constraint from Keras's serialized form (or a name)."""
    return deserialize_object(config, custom_objects, "constraint", _CLASSES, _NAMES)


def get(identifier: Any) -> Constraint | None:
    """A constraint from None, an instance, a name, a class, a serialized dict or a
    callable."""
    if identifier is None or isinstance(identifier, Constraint):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Constraint):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret constraint identifier: {identifier!r}")


__all__ = [
    "Constraint",
    "MaxNorm",
    "MinMaxNorm",
    "NonNeg",
    "UnitNorm",
    "deserialize",
    "get",
    "max_norm",
    "min_max_norm",
    "non_neg",
    "serialize",
    "unit_norm",
]
