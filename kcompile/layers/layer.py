"""The Layer base class and the tracing context layers emit IR into.

A layer called on symbolic tensors records the call (the functional graph of
layers) and learns its output shape by tracing its ``call`` once into a
scratch IR graph: the IR's shape rules are the single source of truth for
shapes, and a mismatch is reported with the layer's name and both shapes.
Called on numpy arrays, a layer runs eagerly on the reference interpreter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kcompile import backend, initializers
from kcompile.ir import BATCH, DType, Graph, Interpreter, ShapeError, TensorType, Value
from kcompile.tensor import KerasTensor, ir_dtype, keras_dtype, keras_shape
from kcompile.variables import Variable


class TraceContext:
    """One graph being traced: weights become inputs, dropout reads the step counter."""

    def __init__(self, graph: Graph, training: bool) -> None:
        self.graph = graph
        self.training = training
        self.weights: dict[Variable, Value] = {}
        self.state_updates: dict[Variable, Value] = {}

    def weight(self, var: Variable) -> Value:
        value = self.weights.get(var)
        if value is None:
            role = "param" if var.trainable else "state"
            value = self.graph.add_input(var.path, TensorType(DType.f32, var.shape), role)
            self.weights[var] = value
        return value

    def step_counter(self) -> Value:
        """The optimizer's iteration count: the counter of random ops in a train step."""
        try:
            return self.graph.input("iterations")
        except KeyError:
            return self.graph.add_input("iterations", TensorType(DType.i32, ()), "opt")


class CallRecord:
    """One call of a layer on symbolic tensors: a node of the functional graph."""

    def __init__(
        self,
        layer: Layer,
        inputs: list[KerasTensor],
        outputs: list[KerasTensor],
        kwargs: dict[str, Any],
    ) -> None:
        self.layer = layer
        self.inputs = inputs
        self.outputs = outputs
        self.kwargs = kwargs


class Layer:
    multi_input = False  # call takes a list of tensors (Add, Concatenate)

    def __init__(
        self,
        name: str | None = None,
        trainable: bool = True,
        dtype: Any = None,
        input_shape: Sequence[int] | None = None,
        input_dim: int | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected arguments {sorted(kwargs)}")
        self.name = name or backend.unique_name(backend.snake_case(type(self).__name__))
        self.trainable = trainable
        self.built = False
        self._variables: list[Variable] = []
        self._calls: list[CallRecord] = []
        self._build_shapes: list[tuple] | None = None
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        self._input_shape_arg = tuple(input_shape) if input_shape is not None else None

    # --- weights ------------------------------------------------------------

    def add_weight(
        self,
        shape: Sequence[int],
        initializer: Any = "glorot_uniform",
        name: str = "weight",
        trainable: bool = True,
    ) -> Variable:
        value = initializers.get(initializer)(tuple(shape))
        var = Variable(value, f"{self.name}/{name}", trainable)
        self._variables.append(var)
        return var

    @property
    def weights(self) -> list[Variable]:
        return self.trainable_weights + self.non_trainable_weights

    @property
    def trainable_weights(self) -> list[Variable]:
        if not self.trainable:
            return []
        return [v for v in self._all_variables() if v.trainable]

    @property
    def non_trainable_weights(self) -> list[Variable]:
        if not self.trainable:
            return list(self._all_variables())
        return [v for v in self._all_variables() if not v.trainable]

    def _all_variables(self) -> list[Variable]:
        return self._variables

    def get_weights(self) -> list[np.ndarray]:
        return [v.numpy() for v in self.weights]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        mine = self.weights
        kind = "model" if hasattr(self, "trace_graph") else "layer"
        if len(weights) != len(mine):
            raise ValueError(
                f"{kind} '{self.name}' has {len(mine)} weight arrays, got {len(weights)}"
            )
        for var, w in zip(mine, weights):
            w = np.asarray(w)
            if w.shape != var.shape:
                raise ValueError(
                    f"{kind} '{self.name}': weight {var.path} has shape {var.shape}, "
                    f"got an array of shape {w.shape}"
                )
        for var, w in zip(mine, weights):
            var.assign(w)

    def count_params(self) -> int:
        return int(sum(np.prod(v.shape) for v in self.weights))

    # --- the parts a layer defines -------------------------------------------

    def build(self, input_shape: Any) -> None:
        """Create weights for inputs of ``input_shape`` (batch dimension None)."""

    def call(self, ctx: TraceContext, inputs: Any) -> Value | list[Value]:
        raise NotImplementedError(f"{type(self).__name__} does not define call")

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "trainable": self.trainable}

    # --- calling ------------------------------------------------------------

    def __call__(self, inputs: Any, training: bool | None = None, **kwargs: Any) -> Any:
        flat = list(inputs) if isinstance(inputs, list | tuple) else [inputs]
        if self.multi_input and not isinstance(inputs, list | tuple):
            raise ValueError(
                f"layer '{self.name}' ({type(self).__name__}) expects a list of inputs"
            )
        if not self.multi_input and len(flat) != 1:
            raise ValueError(
                f"layer '{self.name}' ({type(self).__name__}) expects one input, got {len(flat)}"
            )
        if all(isinstance(t, KerasTensor) for t in flat):
            return self._symbolic_call(flat)
        if any(isinstance(t, KerasTensor) for t in flat):
            raise ValueError(f"layer '{self.name}': mix of symbolic tensors and arrays")
        return self._eager_call(flat, bool(training))

    def _ensure_built(self, shapes: list[tuple]) -> None:
        if not self.built:
            self.build(shapes if self.multi_input else shapes[0])
            self.built = True
            self._build_shapes = shapes
            return
        if self._build_shapes is not None:
            self._check_compatible(shapes)

    def _check_compatible(self, shapes: list[tuple]) -> None:
        for i, (want, got) in enumerate(zip(self._build_shapes, shapes)):
            same = len(want) == len(got) and all(
                a is None or b is None or a == b for a, b in zip(want, got)
            )
            if not same:
                raise ValueError(
                    f"Input {i} of layer '{self.name}' ({type(self).__name__}) is incompatible "
                    f"with the layer: expected shape {want}, got shape {got}"
                )

    def _symbolic_call(self, flat: list[KerasTensor]) -> Any:
        self._ensure_built([t.shape for t in flat])
        graph = Graph(f"{self.name}_shape")
        ctx = TraceContext(graph, training=False)
        values = [graph.add_input(f"in{i}", t.ir_type()) for i, t in enumerate(flat)]
        outs = self.trace(ctx, values)
        outputs = [
            KerasTensor(keras_shape(v.shape), keras_dtype(v.type), name=f"{self.name}")
            for v in outs
        ]
        record = CallRecord(self, flat, outputs, {})
        self._calls.append(record)
        for i, t in enumerate(outputs):
            t._history = (record, i)
        return outputs[0] if len(outputs) == 1 else outputs

    def trace(self, ctx: TraceContext, values: list[Value]) -> list[Value]:
        """Emit this layer's IR for ``values``; shape errors name the layer and shapes."""
        with ctx.graph.layer_scope(self.name):
            try:
                out = self.call(ctx, values if self.multi_input else values[0])
            except ShapeError as e:
                shapes = ", ".join(str(keras_shape(v.shape)) for v in values)
                raise ValueError(
                    f"layer '{self.name}' ({type(self).__name__}) cannot take "
                    f"input shape {shapes}: {e}"
                ) from None
        return list(out) if isinstance(out, list | tuple) else [out]

    def _eager_call(self, arrays: list, training: bool) -> Any:
        arrays = [np.asarray(a) for a in arrays]
        self._ensure_built([(None, *a.shape[1:]) for a in arrays])
        graph = Graph(f"{self.name}_eager")
        ctx = TraceContext(graph, training=training)
        values = []
        for i, a in enumerate(arrays):
            dtype = ir_dtype(str(a.dtype)) if a.dtype.kind != "f" else DType.f32
            values.append(graph.add_input(f"in{i}", TensorType(dtype, (BATCH, *a.shape[1:]))))
        outs = self.trace(ctx, values)
        graph.set_outputs([(f"out{i}", v) for i, v in enumerate(outs)])
        feeds = {f"in{i}": a.astype(v.dtype.numpy) for i, (a, v) in enumerate(zip(arrays, values))}
        feeds.update({v.name: var.value for var, v in ctx.weights.items()})
        if "iterations" in [v.name for v in graph.inputs]:
            feeds["iterations"] = np.int32(0)
        result = Interpreter(graph).run(feeds)
        outs = [result[f"out{i}"] for i in range(len(outs))]
        return outs[0] if len(outs) == 1 else outs

    # --- Keras conveniences -------------------------------------------------

    @property
    def output(self) -> KerasTensor:
        if not self._calls:
            raise AttributeError(f"layer '{self.name}' has not been called yet")
        outs = self._calls[0].outputs
        return outs[0] if len(outs) == 1 else outs

    @property
    def input(self) -> KerasTensor:
        if not self._calls:
            raise AttributeError(f"layer '{self.name}' has not been called yet")
        ins = self._calls[0].inputs
        return ins if self.multi_input else ins[0]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"
