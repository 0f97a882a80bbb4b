"""``keras.utils`` functions of symbolic tensors and of data tuples: ``is_keras_tensor``,
``get_source_inputs``, ``pack_x_y_sample_weight`` and ``unpack_x_y_sample_weight``."""

from __future__ import annotations

from typing import Any

from kcompile.backend.keras_tensor import KerasTensor


def is_keras_tensor(x: Any) -> bool:
    """Keras's: whether ``x`` is a symbolic tensor of the functional API."""
    return isinstance(x, KerasTensor)


def get_source_inputs(tensor: Any) -> list[KerasTensor]:
    """Keras's: the Input tensors ``tensor`` was computed from, in the order a walk back
    through its layer calls meets them (``tensor`` itself when it is an Input)."""
    if not isinstance(tensor, KerasTensor):
        raise ValueError(f"get_source_inputs takes a KerasTensor, got {tensor!r}")
    found: list[KerasTensor] = []
    seen: set[int] = set()

    def visit(t: KerasTensor) -> None:
        history = t._history  # (the layer call that made it, output index); None: an Input
        record = history[0] if history else None
        if record is None:
            if id(t) not in seen:
                seen.add(id(t))
                found.append(t)
            return
        for x in record.inputs:
            visit(x)

    visit(tensor)
    return found


def pack_x_y_sample_weight(x: Any, y: Any = None, sample_weight: Any = None) -> Any:
    """Keras's: ``x`` alone, or the tuple ``(x, y)`` or ``(x, y, sample_weight)``."""
    if y is None:
        if not isinstance(x, tuple | list):
            return x
        return (x,)
    if sample_weight is None:
        return (x, y)
    return (x, y, sample_weight)


def unpack_x_y_sample_weight(data: Any) -> tuple[Any, Any, Any]:
    """Keras's: ``(x, y, sample_weight)`` from a data element (a tuple of one to three,
    or ``x`` alone)."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return (data, None, None)
    if len(data) == 1:
        return (data[0], None, None)
    if len(data) == 2:
        return (data[0], data[1], None)
    if len(data) == 3:
        return (data[0], data[1], data[2])
    raise ValueError(
        "Data is expected to be in format `x`, `(x,)`, `(x, y)`, or `(x, y, sample_weight)`, "
        f"found: {data}"
    )
