"""How a ``keras.ops`` function runs: on traced tensors it adds IR to the graph being
traced; on the functional API's symbolic tensors it becomes a node of the layer graph;
on arrays and numbers it runs at once on the reference interpreter (numpy).

Each op is written once, over IR values, and reads its operands through the current
``Builder`` (``val``, ``vals``); the ``op`` decorator picks the builder from the
arguments.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from kcompile.backend.keras_tensor import KerasTensor
from kcompile.backend.symbolic import TracedTensor, TraceError, current_context
from kcompile.backend.variables import Variable
from kcompile.ir import DType, Graph, Interpreter, TensorType, Value
from kcompile.ir import build as B
from kcompile.tree import flatten

_BUILDER: contextvars.ContextVar = contextvars.ContextVar("kcompile_ops_builder", default=None)
_NUMPY_KIND = {"f": DType.f32, "i": DType.i32, "u": DType.i32, "b": DType.bool}
_RANK = {DType.bool: 0, DType.i32: 1, DType.f32: 2}


class Builder:
    """Where an op's values go: the graph being traced, or a scratch graph run eagerly."""

    def __init__(self, graph: Graph, ctx: Any = None, eager: bool = False) -> None:
        self.graph = graph
        self.ctx = ctx
        self.eager = eager
        self.feeds: dict[str, np.ndarray] = {}
        self._made: dict[int, tuple[Any, Value]] = {}  # arrays and weights already made

    def value(self, x: Any, dtype: DType | None = None) -> Value:
        if is_number(x):
            return B.const(self.graph, x, dtype or scalar_dtype(x))
        made = self._made.get(id(x))
        if made is not None and made[0] is x:
            return made[1]
        v = self._value(x)
        self._made[id(x)] = (x, v)
        return v

    def _value(self, x: Any) -> Value:
        """A tensor's value in its own dtype (``val`` casts)."""
        if isinstance(x, TracedTensor):
            if x.value.graph is not self.graph:
                raise TraceError("an op mixes tensors of two different traced graphs")
            return x.value
        if isinstance(x, Value):
            return x
        if isinstance(x, KerasTensor):
            raise TraceError(f"{x} is a symbolic tensor of the functional API, not a value")
        if isinstance(x, Variable):
            if not self.eager and self.ctx is not None:
                return self.ctx.weight(x)
            x = x.value
        array = np.asarray(x)
        kind = _NUMPY_KIND.get(array.dtype.kind)
        if array.dtype.name in ("bfloat16", "float16"):  # narrow floats keep their dtype
            kind = DType.from_numpy(array.dtype)
        if kind is None:
            raise TypeError(f"cannot use an array of dtype {array.dtype} as a tensor")
        if self.eager:
            name = f"a{len(self.feeds)}"
            self.feeds[name] = array.astype(kind.numpy)
            return self.graph.add_input(name, TensorType(kind, array.shape), "data")
        flat = array.astype(kind.numpy).ravel()
        if flat.size and np.all(flat == flat[0]):
            return B.const(self.graph, flat[0].item(), kind, array.shape)
        return B.const_array(self.graph, flat.tolist(), kind, array.shape)


def scalar_dtype(x: Any) -> DType:
    if isinstance(x, bool):
        return DType.bool
    return DType.i32 if isinstance(x, int) else DType.f32


def builder() -> Builder:
    current = _BUILDER.get()
    if current is None:
        raise RuntimeError("keras.ops internals used outside an op")
    return current


@contextlib.contextmanager
def _building(b: Builder) -> Iterator[None]:
    token = _BUILDER.set(b)
    try:
        yield
    finally:
        _BUILDER.reset(token)


def val(x: Any, dtype: DType | None = None) -> Value:
    """The IR value of an operand (a number becomes a constant of ``dtype``)."""
    v = builder().value(x, dtype)
    return v if dtype is None or v.dtype is dtype else B.cast(v, dtype)


def is_number(x: Any) -> bool:
    return isinstance(x, bool | int | float) and not isinstance(x, np.generic)


def result_dtype(*xs: Any) -> DType:
    """Keras's promotion for the supported dtypes: bool < int32 < float32, with Python
    numbers weakly typed (a float makes the result float, an int only lifts bool)."""
    tensors = [builder().value(x).dtype for x in xs if not is_number(x)]
    numbers = {scalar_dtype(x) for x in xs if is_number(x)}
    if any(t not in _RANK for t in tensors):
        return _narrow_result_dtype(tensors, numbers)
    if not tensors:
        return max(numbers, key=_RANK.get) if numbers else DType.f32
    best = max(tensors, key=_RANK.get)
    if DType.f32 in numbers:
        return DType.f32
    if DType.i32 in numbers and best is DType.bool:
        return DType.i32
    return best


def _narrow_result_dtype(tensors: list[DType], numbers: set[DType]) -> DType:
    """Keras's promotion lattice (``backend.result_type``) where narrow dtypes take part:
    bf16 with f32 is f32, bf16 with a Python float stays bf16, bf16 with f16 is f32."""
    from kcompile.backend.dtypes import result_type

    weak = {DType.bool: "bool", DType.i32: int, DType.f32: float}
    return DType.from_keras(result_type(*(t.keras_name for t in tensors), *map(weak.get, numbers)))


def float_dtype(*xs: Any) -> DType:
    """The dtype of an op that computes in floats on ``xs``: their promoted dtype when it
    is a float (bf16 stays bf16), else float32 (Keras's floatx, for integers)."""
    dtype = result_dtype(*xs)
    return dtype if dtype.is_float else DType.f32


def fval(x: Any) -> Value:
    """``x`` as a float value (its own float dtype; an integer or boolean in float32)."""
    return val(x, float_dtype(x))


def fvals(*xs: Any) -> list[Value]:
    """The operands in the float dtype an op computes them in (``float_dtype``)."""
    return vals(*xs, dtype=float_dtype(*xs))


def vals(*xs: Any, dtype: DType | None = None) -> list[Value]:
    """The operands as values of one dtype (``dtype``, else Keras's promotion)."""
    target = dtype or result_dtype(*xs)
    return [val(x, target) for x in xs]


# --- dispatch ---------------------------------------------------------------------------


def _wrap(out: Any) -> Any:
    if isinstance(out, Value):
        return TracedTensor(out)
    if isinstance(out, list | tuple):
        return type(out)(_wrap(x) for x in out)
    return out


def _no_symbolic_call(fn: Callable, args: tuple, kwargs: dict) -> Any:
    raise TraceError(f"keras.ops.{fn.__name__} on symbolic tensors needs kcompile.layers")


# What an op called on the functional API's symbolic tensors does: it becomes a node of
# the model. ``kcompile.ops.operation`` (a layer, so above the ops in the layering)
# installs it; ``kcompile.layers``, which makes every symbolic tensor, imports it.
_symbolic_call: Callable[[Callable, tuple, dict], Any] = _no_symbolic_call


def handle_symbolic_calls(handler: Callable[[Callable, tuple, dict], Any]) -> None:
    global _symbolic_call
    _symbolic_call = handler


def symbolic_call(fn: Callable, args: tuple, kwargs: dict) -> Any:
    """``fn(*args, **kwargs)`` on symbolic tensors: a node of the model (for a function
    over ops that must stay one node, as a ``keras.quantizers`` function with its own
    gradient does)."""
    return _symbolic_call(fn, args, kwargs)


def op(fn: Callable) -> Callable:
    """A ``keras.ops`` function from ``fn``, written over IR values."""

    @functools.wraps(fn)
    def public(*args: Any, **kwargs: Any) -> Any:
        leaves = flatten((args, kwargs))
        if any(isinstance(x, KerasTensor) for x in leaves):
            return _symbolic_call(public, args, kwargs)
        traced = next((x for x in leaves if isinstance(x, TracedTensor)), None)
        ctx = current_context()
        if traced is not None:
            b = Builder(traced.value.graph, ctx)
        elif ctx is not None and any(isinstance(x, Variable) for x in leaves):
            b = Builder(ctx.graph, ctx)  # a weight alone, inside a traced call
        elif getattr(ctx, "records_metrics", False):
            # Inside a model's own step every op traces, constants too (folded later):
            # ``labels = ops.ones(...); labels += noise`` then stays a tensor, as a JAX
            # array does in a jitted step.
            b = Builder(ctx.graph, ctx)
        else:
            return _eager(fn, args, kwargs)
        with _building(b):
            return _wrap(fn(*args, **kwargs))

    public.__kcompile_op__ = fn
    return public


def _eager(fn: Callable, args: tuple, kwargs: dict) -> Any:
    b = Builder(Graph("eager"), eager=True)
    with _building(b):
        out = fn(*args, **kwargs)
    flat = list(out) if isinstance(out, list | tuple) else [out]
    b.graph.set_outputs([(f"y{i}", v) for i, v in enumerate(flat)])
    result = Interpreter(b.graph).run(b.feeds)
    arrays = [np.asarray(result[f"y{i}"]) for i in range(len(flat))]
    if isinstance(out, list | tuple):
        return type(out)(arrays)
    return arrays[0]


def unsupported(name: str, why: str = "") -> NotImplementedError:
    detail = f": {why}" if why else ""
    return NotImplementedError(f"keras.ops.{name} is not supported by kcompile yet{detail}")
