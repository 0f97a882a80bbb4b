"""``keras.regularizers``: penalties on weights and activations, added to the loss of
the train and eval steps (Keras's ``layer.losses``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.backend import session as backend
from kcompile.utils.config_serialization import deserialize_object, serialize_object


class Regularizer:
    def __call__(self, x: Any) -> Any:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Regularizer:
        return cls(**config)


class L1L2(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x²)``."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, x):
        from kcompile import ops

        total = 0.0
        if self.l1:
            total = total + self.l1 * ops.sum(ops.abs(x))
        if self.l2:
            total = total + self.l2 * ops.sum(ops.square(x))
        return total

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    def __init__(self, l1: float = 0.01) -> None:
        super().__init__(l1=l1)

    def get_config(self):  # (Keras holds l1 as a float32 tensor)
        return {"l1": float(np.float32(self.l1))}


class L2(L1L2):
    def __init__(self, l2: float = 0.01) -> None:
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


class OrthogonalRegularizer(Regularizer):
    """``factor`` times the mean |cosine| between distinct rows (``mode="rows"``) or
    columns (``mode="columns"``) of a 2-D weight, as Keras computes it."""

    def __init__(self, factor: float = 0.01, mode: str = "rows") -> None:
        if isinstance(factor, bool) or not isinstance(factor, int | float):
            raise ValueError(f"OrthogonalRegularizer: factor must be a float, got {factor!r}")
        if mode not in ("rows", "columns"):
            raise ValueError(
                'Invalid value for argument `mode`. Expected one of {"rows", "columns"}. '
                f"Received: mode={mode}"
            )
        self.factor, self.mode = float(factor), mode

    def __call__(self, x):
        from kcompile import ops

        if len(x.shape) != 2:
            raise ValueError(
                "Inputs to OrthogonalRegularizer must have rank 2. Received: "
                f"inputs.shape={tuple(x.shape)}"
            )
        if self.mode == "rows":
            x = ops.nn.normalize(x, axis=1)
            product, size = ops.matmul(x, ops.transpose(x)), x.shape[0]
        else:
            x = ops.nn.normalize(x, axis=0)
            product, size = ops.matmul(ops.transpose(x), x), x.shape[1]
        off_diagonal = product * (1.0 - ops.eye(size))
        pairs = size * (size - 1.0) / 2.0
        return self.factor * 0.5 * ops.sum(ops.abs(off_diagonal)) / pairs

    def get_config(self):
        return {"factor": self.factor, "mode": self.mode}


l1, l2, l1_l2, orthogonal_regularizer = L1, L2, L1L2, OrthogonalRegularizer
_CLASSES: dict[str, type[Regularizer]] = {
    "Regularizer": Regularizer,
    "L1": L1,
    "L2": L2,
    "L1L2": L1L2,
    "OrthogonalRegularizer": OrthogonalRegularizer,
}
_NAMES = {
    **_CLASSES,
    "l1": L1,
    "l2": L2,
    "l1_l2": L1L2,
    "l1l2": L1L2,
    "orthogonal_regularizer": OrthogonalRegularizer,
}


def serialize(regularizer: Regularizer) -> dict[str, Any]:
    """Keras's serialized form: ``{"module", "class_name", "config", "registered_name"}``."""
    return serialize_object(regularizer, "regularizers", _CLASSES)


def deserialize(config: Any, custom_objects: dict | None = None) -> Regularizer:
    """A regularizer from Keras's serialized form (or a name)."""
    return deserialize_object(config, custom_objects, "regularizer", _CLASSES, _NAMES)


def get(identifier: Any) -> Regularizer | None:
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _NAMES.get(identifier) or _NAMES.get(backend.snake_case(identifier))
        if cls is not None:
            return cls()
    if isinstance(identifier, type) and issubclass(identifier, Regularizer):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(
        f"Could not interpret regularizer identifier: {identifier!r}; known regularizers: "
        f"{', '.join(sorted(_NAMES))}"
    )
