"""Tensors that user code sees while kcompile traces it into IR.

A custom layer's ``call``, a ``Lambda``, a loss written with ``keras.ops``: while a
step graph is traced, their inputs are ``TracedTensor`` objects, each holding an IR
value. Arithmetic, indexing and ``keras.ops`` on them add IR to the graph being traced
(as a JAX tracer adds to a jaxpr); Python control flow on their values cannot be traced
and is refused with a message that says what to use instead.

The trace context of the graph being traced (its weights, whether it trains) is
current while user code runs, so a layer's weights used in an op become inputs of
that graph.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

from kcompile.backend.keras_tensor import keras_dtype, keras_shape
from kcompile.ir import Value

_CONTEXT: contextvars.ContextVar = contextvars.ContextVar("kcompile_trace", default=None)


def current_context():
    """The ``TraceContext`` of the graph being traced, or None outside tracing."""
    return _CONTEXT.get()


@contextlib.contextmanager
def tracing(ctx) -> Iterator[None]:
    """Make ``ctx`` current while user code runs."""
    token = _CONTEXT.set(ctx)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class TraceError(TypeError):
    """User code did something with a traced tensor that cannot become IR."""


class TracedTensor:
    """A value of the graph being traced, with Keras's tensor interface."""

    __slots__ = ("value",)

    def __init__(self, value: Value) -> None:
        self.value = value

    @property
    def shape(self) -> tuple:
        return keras_shape(self.value.shape)

    @property
    def dtype(self) -> str:
        return keras_dtype(self.value.type)

    @property
    def ndim(self) -> int:
        return self.value.rank

    def __repr__(self) -> str:
        return f"<TracedTensor shape={self.shape}, dtype={self.dtype}>"

    # Python control flow needs a value that exists only when the step runs.
    def __bool__(self) -> bool:
        raise TraceError(
            "a traced tensor has no value while kcompile traces the model: Python `if`, "
            "`while`, `and`/`or` on tensors cannot be compiled; use keras.ops.where (or "
            "ops.maximum, ops.clip) to choose between values"
        )

    def _no_number(self, *args: Any) -> Any:
        raise TraceError(
            "a traced tensor has no value while kcompile traces the model: float(), int() "
            "and .item() cannot be compiled; keep computing with keras.ops (ops.cast for a "
            "dtype)"
        )

    __float__ = __int__ = __index__ = __complex__ = item = numpy = _no_number

    def __len__(self) -> int:
        first = self.shape[0] if self.shape else None
        if first is None:
            raise TraceError("len() of a tensor whose first dimension is the batch: use x.shape")
        return first

    def __iter__(self):
        raise TraceError("iterating over a traced tensor: index it (x[i]) or use ops.unstack")

    def __array__(self, *args: Any, **kwargs: Any):
        raise TraceError(
            "a traced tensor cannot become a numpy array while the model is traced: use "
            "keras.ops instead of numpy inside call()"
        )

    __hash__ = object.__hash__
    # numpy defers to the tensor's operators: ``array + traced`` and ``array += traced``
    # (an op on constants runs eagerly and gives an array) trace, as with JAX's arrays.
    __array_ufunc__ = None


class BatchSize(TracedTensor):
    """The batch dimension in ``ops.shape(x)`` of a traced tensor: the number of rows at
    run time, as an int32 scalar (what Keras gives for a dimension unknown while
    tracing). Shapes given to ``reshape``, ``broadcast_to``, ``zeros`` or ``keras.random``
    read it as the batch dimension."""

    __slots__ = ()


def static_dims(shape) -> tuple:
    """``shape`` with each ``BatchSize`` as None (the batch dimension)."""
    return tuple(None if isinstance(d, BatchSize) else d for d in shape)
