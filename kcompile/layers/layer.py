"""The Layer base class and the tracing context layers emit IR into.

A layer called on symbolic tensors records the call (the functional graph of
layers) and learns its output shape by tracing its ``call`` once into a
scratch IR graph: the IR's shape rules are the single source of truth for
shapes, and a mismatch is reported with the layer's name and both shapes.
Called on numpy arrays, a layer runs eagerly on the reference interpreter.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kcompile import dtype_policies, initializers
from kcompile import ops as _ops  # noqa: F401  (Python's operators on tensors and weights)
from kcompile.backend import masked_array
from kcompile.backend import session as backend
from kcompile.backend.keras_tensor import KerasTensor, ir_dtype, keras_dtype, keras_shape
from kcompile.backend.symbolic import TracedTensor, TraceError, current_context, tracing
from kcompile.backend.variables import Variable, variable_dtype
from kcompile.ir import DType, Graph, Interpreter, ShapeError, TensorType, Value
from kcompile.ir import build as B
from kcompile.layers.input_spec import assert_input_compatibility
from kcompile.layers.layer_attributes import LayerAttributes
from kcompile.layers.layer_calls import LayerCalls
from kcompile.ops.core import Builder
from kcompile.tree import flatten, map_structure, pack_sequence_as
from kcompile.utils.traceback_utils import filter_traceback


@functools.cache
def _call_parameters(cls: type) -> tuple[str, ...]:
    return tuple(inspect.signature(cls.call).parameters)


# The sizes an unknown (None) non-batch dimension takes while a layer's output shape is
# traced: two odd primes no layer is likely to produce by itself.
PROBE_SIZES = (83, 89)


class TraceContext:
    """One graph being traced: weights become inputs, dropout reads the step counter."""

    def __init__(self, graph: Graph, training: bool) -> None:
        self.graph = graph
        self.training = training
        self.weights: dict[Variable, Value] = {}
        self.state_updates: dict[Variable, Value] = {}
        # Scalar losses the layers added (add_loss, regularizers), summed into the loss.
        self.losses: list[Value] = []
        self._regularized: set[int] = set()  # layers whose weight penalties are in
        # Keras's masks (``_keras_mask``): a tensor's mask, by the tensor's value.
        self._masks: dict[int, tuple[Value, Value]] = {}
        # The compute dtype of the layer being traced when it casts its variables
        # (Keras's autocast scope), innermost last.
        self._autocast: list[DType | None] = []
        # A narrow variable's read (its float32 array cast to its dtype), one per value it
        # has: a gradient taken with respect to the variable reaches every use of it.
        self._narrow_reads: dict[Variable, tuple[Value, Value]] = {}
        # The outermost Keras-style call's outputs that are its variables themselves
        # (``return self.total``), None for the others: an eager call returns them.
        self.returned_variables: list[Variable | None] = []

    def mask_of(self, value: Value) -> Value | None:
        """The mask a layer attached to ``value`` (an Embedding with mask_zero, a Masking
        layer, and the layers that pass a mask on), or None."""
        entry = self._masks.get(id(value))
        return entry[1] if entry is not None and entry[0] is value else None

    def set_mask(self, value: Value, mask: Value) -> None:
        self._masks[id(value)] = (value, mask)

    def assign(self, var: Variable, value: Any) -> None:
        """``var.assign(value)`` inside the step: the step writes ``value`` to it."""
        new = Builder(self.graph, self).value(value)
        new = B.cast(B.cast(new, ir_dtype(var.dtype)), DType.f32)  # rounded to a narrow var's
        if new.shape != var.shape:
            new = B.broadcast_to(new, var.shape)
        self.state_updates[var] = new

    def weight(self, var: Variable) -> Value:
        """The weight's value in this step: its input, or its new value once assigned;
        inside a layer whose policy computes in another dtype, cast to that dtype (unless
        the weight was made with ``autocast=False``)."""
        value = self.state_updates.get(var)
        if value is None:
            value = self.weights.get(var)
        if value is None:
            role = "param" if var.trainable else "state"
            # (an int8 variable's array is int8, read as it is: a quantized kernel)
            stored = DType.from_numpy(var.value.dtype)
            value = self.graph.add_input(var.path, TensorType(stored, var.shape), role)
            self.weights[var] = value
        if not value.dtype.is_float:
            return value  # Keras autocasts float variables only
        value = self._read_as_own_dtype(var, value)
        dtype = self._autocast[-1] if self._autocast else None
        if dtype is not None and var.autocast:
            return B.cast(value, dtype)
        return value

    def _read_as_own_dtype(self, var: Variable, value: Value) -> Value:
        """A bfloat16/float16 variable's array holds its numbers in float32: read as its
        dtype (one cast per value, see ``_narrow_reads``)."""
        dtype = ir_dtype(var.dtype)
        if dtype is value.dtype:
            return value
        cached = self._narrow_reads.get(var)
        if cached is None or cached[0] is not value:
            cached = self._narrow_reads[var] = (value, B.cast(value, dtype))
        return cached[1]

    @contextlib.contextmanager
    def autocast_scope(self, dtype: DType | None) -> Iterator[None]:
        """Variables read inside are cast to ``dtype`` (None: read as they are)."""
        self._autocast.append(dtype)
        try:
            yield
        finally:
            self._autocast.pop()

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


def topological_records(
    outputs: list[KerasTensor], inputs: list[KerasTensor] = ()
) -> list[CallRecord]:
    """The layer calls that produce ``outputs``, each after the calls it depends on, in
    the order of their inputs (a depth-first walk from the outputs, as Keras's
    ``_build_map``); with ``inputs``, the walk stops at them (a model made on
    intermediate tensors)."""
    stop = {id(t) for t in inputs}
    order: list[CallRecord] = []
    seen: set[int] = set()

    def unseen(t: KerasTensor) -> CallRecord | None:
        if id(t) in stop:
            return None
        if t._history is None:
            raise ValueError(f"tensor {t} was not made by a layer called on an Input")
        record = t._history[0]
        if record is None or id(record) in seen:
            return None
        seen.add(id(record))
        return record

    for t in outputs:
        # Without recursion: an EfficientNet's graph is deeper than Python's stack.
        record = unseen(t)
        stack = [] if record is None else [(record, iter(record.inputs))]
        while stack:
            record, pending = stack[-1]
            for x in pending:
                inner = unseen(x)
                if inner is not None:
                    stack.append((inner, iter(inner.inputs)))
                    break
            else:
                order.append(record)
                stack.pop()
    return order


def _build_wrapper(build):
    """Keras's: a direct ``layer.build(shape)`` marks the layer built and records the
    shapes it was given (its ``get_build_config``)."""

    @functools.wraps(build)
    def wrapped(self, *args: Any, **kwargs: Any) -> Any:
        result = build(self, *args, **kwargs)
        if self.__dict__.get("_build_shapes_dict") is None:
            if args:
                self._build_shapes_dict = {"input_shape": args[0]}
            elif kwargs:
                self._build_shapes_dict = dict(kwargs)
        self.built = True
        return result

    wrapped._keras_build_wrapper = True
    return wrapped


class Layer(LayerCalls, LayerAttributes):
    multi_input = False  # call takes a list of tensors (Add, Concatenate)
    propagates_mask = False  # a built-in layer that passes its input's mask on (Dense)
    # Before the layer's name in its weights' paths: "<outer>/" for an inner layer its
    # outer layer makes and builds (Keras's parent path: ``mha/query/kernel``).
    _path_prefix = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        build = cls.__dict__.get("build")
        if build is not None and not getattr(build, "_keras_build_wrapper", False):
            cls.build = _build_wrapper(build)
        mask = cls.__dict__.get("compute_mask")
        if mask is not None and cls.__module__.startswith("kcompile."):
            cls.compute_mask = _mask_on_arrays(mask)

    def __init__(
        self,
        name: str | None = None,
        trainable: bool = True,
        dtype: Any = None,
        input_shape: Sequence[int] | None = None,
        input_dim: int | None = None,
        activity_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected arguments {sorted(kwargs)}")
        self.name = name or backend.auto_name(type(self))
        self._dtype_policy = dtype_policies.get(dtype)
        self._trainable = bool(trainable)
        self.built = False
        self._build_shapes_dict: dict | None = None  # Keras's: what build was given
        # The InputSpec a layer sets itself (``self.input_spec = ...``), checked on calls;
        # a model's own spec (its Inputs' shapes) is left to kcompile's shape checks.
        self.__dict__.setdefault("_input_spec", None)
        self._variables: list[Variable] = []
        self._calls: list[CallRecord] = []
        self._build_shapes: list[tuple] | None = None
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        self._input_shape_arg = tuple(input_shape) if input_shape is not None else None
        from kcompile import regularizers

        self.activity_regularizer = regularizers.get(activity_regularizer)
        self._regularizers: dict[Variable, Any] = {}
        self._eager_losses: list = []
        # Keras: a layer that overrides compute_mask supports masking; built-in layers
        # that pass a mask on say so with ``propagates_mask``.
        self._supports_masking = self.propagates_mask or (
            type(self).compute_mask is not Layer.compute_mask
        )

    # --- weights ------------------------------------------------------------

    def add_weight(
        self,
        shape: Sequence[int] | None = None,
        initializer: Any = None,
        dtype: Any = None,
        trainable: bool = True,
        autocast: bool = True,
        regularizer: Any = None,
        constraint: Any = None,
        aggregation: str = "none",
        name: str | None = None,
    ) -> Variable:
        """Keras's ``add_weight``: a weight of ``shape`` in ``dtype`` (the policy's variable
        dtype unless given: float32, or bfloat16/float16 under a ``"bfloat16"``/``"float16"``
        policy), glorot uniform unless ``initializer`` says otherwise, trainable or not; a
        ``constraint`` is applied to it after each optimizer update, as Keras's optimizers
        do."""
        try:
            dtype = variable_dtype(dtype if dtype is not None else self.variable_dtype)
        except NotImplementedError as e:
            raise NotImplementedError(f"layer '{self.name}': {e}") from None
        shape = () if shape is None else tuple(shape)
        if any(d is None for d in shape):
            raise ValueError(
                f"layer '{self.name}' ({type(self).__name__}): weight '{name or 'variable'}' "
                f"would have shape {shape}: it depends on an input dimension that is unknown "
                "(None); give that dimension a size in Input(shape=...)"
            )
        value = initializers.get(initializer or "glorot_uniform")(shape)
        taken = {v.path for v in self._variables}
        base = f"{self._path_prefix}{self.name}/{name or 'variable'}"
        path, k = base, 0
        while path in taken:
            k += 1
            path = f"{base}_{k}"
        var = Variable(value, path, trainable, dtype)
        var.autocast = bool(autocast)
        if constraint is not None:
            from kcompile import constraints

            var.constraint = constraints.get(constraint)
        self._variables.append(var)
        if regularizer is not None:
            from kcompile import regularizers

            self._regularizers[var] = regularizers.get(regularizer)
        return var

    # --- losses (Keras's add_loss and regularizers) -----------------------------

    def add_loss(self, loss: Any) -> None:
        """Add ``loss`` (summed to a scalar) to the model's loss: inside a traced call it
        joins the step's loss; eagerly, ``layer.losses`` holds it."""
        ctx = current_context()
        if ctx is None:
            self._eager_losses.append(np.sum(np.asarray(getattr(loss, "value", loss))))
            return
        value = _as_value(ctx, loss, self)
        ctx.losses.append(B.reduce_sum(value) if value.rank else value)

    @property
    def losses(self) -> list:
        """The losses of the last eager call (add_loss, activity and weight penalties)."""
        out = list(self._eager_losses)
        for layer in self._tracked_layers():
            out.extend(layer.losses)
        return out

    def _add_penalties(self, ctx: TraceContext, outputs: list[Value]) -> None:
        """Weight penalties once per step, activity penalties on each call's outputs."""
        if self._regularizers and id(self) not in ctx._regularized:
            ctx._regularized.add(id(self))
            # Keras's: weight penalties in the variables' dtype, not the compute dtype.
            with ctx.autocast_scope(None):
                for var, regularizer in self._regularizers.items():
                    ctx.losses.append(_penalty(ctx, regularizer, ctx.weight(var), self))
        if self.activity_regularizer is not None:
            for v in outputs:
                # (in float32, as the loss it joins)
                v = B.cast(v, DType.f32) if v.dtype.is_narrow_float else v
                penalty = _penalty(ctx, self.activity_regularizer, v, self)
                # Keras 3 divides an activity penalty by the batch size
                ctx.losses.append(penalty / B.numel(v, 0) if v.rank else penalty)

    @property
    def weights(self) -> list[Variable]:
        """Keras's order: its own trainable weights, its own others, then each held
        layer's ``weights`` (so an inner layer's int8 kernel follows its bias, as after
        Keras's ``quantize``)."""
        every = self._all_variables()
        mine = {id(w) for w in self._variables}
        own = [v for v in every if id(v) in mine]
        held = [v for v in every if id(v) not in mine]
        return [v for v in own if v.trainable] + [v for v in own if not v.trainable] + held

    @property
    def trainable_weights(self) -> list[Variable]:
        if not self.trainable:
            return []
        return [v for v in self.weights if v.trainable]

    @property
    def non_trainable_weights(self) -> list[Variable]:
        if not self.trainable:
            return self.weights
        return [v for v in self.weights if not v.trainable]

    def _all_variables(self) -> list[Variable]:
        """Its own weights, then those of the layers it holds as attributes (Keras's
        automatic tracking), in the order they were assigned."""
        out = list(self._variables)
        for layer in self._tracked_layers():
            out.extend(v for v in layer.weights if v not in out)
        return out

    def _nest(self, inner: Layer) -> Layer:
        """``inner``, a layer this one makes and builds itself, with its weights' paths
        under this layer's (Keras's parent path: ``mha/query/kernel``)."""
        inner._path_prefix = f"{self._path_prefix}{self.name}/"
        return inner

    def _forget_variable(self, variable: Any) -> None:
        """``variable`` no longer the layer's (Keras's ``del self._kernel`` before a
        quantized layer builds its int8 kernel): out of its weights and regularizers."""
        self._variables = [v for v in self._variables if v is not variable]
        self._regularizers.pop(variable, None)

    def _tracked_layers(self) -> list[Layer]:
        found: list[Layer] = []
        for name, value in vars(self).items():
            if name.startswith("_") and name != "_layers":
                continue
            for x in flatten(value):
                if isinstance(x, Layer) and x is not self and x not in found:
                    found.append(x)
        return found

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
        """Keras's: the number of weights' elements; a layer not built yet has none to
        count, and Keras refuses it likewise."""
        if not self.built:
            raise ValueError(
                f"You tried to call `count_params` on layer '{self.name}', but the layer "
                "isn't built. You can build it manually via: `layer.build(input_shape)`."
            )
        return int(sum(np.prod(v.shape) for v in self.weights))

    # --- Keras's attributes of state --------------------------------------------

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        """Keras's: setting it sets it on every layer this one holds too."""
        seen: set[int] = set()

        def visit(layer: Layer) -> None:
            if id(layer) in seen:
                return
            seen.add(id(layer))
            layer._trainable = bool(value)
            for child in layer._trainable_children():
                visit(child)

        visit(self)

    def _trainable_children(self) -> list[Layer]:
        return self._tracked_layers()

    # --- build and output shapes, as Keras's -------------------------------------

    def get_build_config(self) -> dict[str, Any] | None:
        """Keras's: the shapes ``build`` was given (``{"input_shape": ...}``, or
        ``{"shapes_dict": ...}`` for a build of several arguments); None if not built."""
        shapes = self._build_shapes_dict
        if shapes is None:
            return None
        if len(shapes) == 1:
            return {"input_shape": next(iter(shapes.values()))}
        return {"shapes_dict": dict(shapes)}

    def build_from_config(self, config: dict[str, Any] | None) -> None:
        """Keras's: build from ``get_build_config``'s shapes."""
        if not config or self.built:
            return
        if "input_shape" in config:
            shape = _shape_structure(config["input_shape"])
            if self._keras_call:
                self._ensure_built(shape)
            else:
                self._ensure_built(list(shape) if self.multi_input else [shape])
        elif "shapes_dict" in config:
            shapes = {k: _shape_structure(v) for k, v in config["shapes_dict"].items()}
            self._ensure_built(_BuildShapes(shapes))

    def compute_output_spec(self, *args: Any, **kwargs: Any) -> Any:
        """Keras's: the output KerasTensors of a call on ``args`` (KerasTensors),
        from tracing ``call``, without recording the call."""
        leaves = flatten((args, kwargs))
        tensors = [t for t in leaves if isinstance(t, KerasTensor)]
        if not tensors:
            raise ValueError(
                f"layer '{self.name}': compute_output_spec takes KerasTensors "
                "(keras.KerasTensor(shape) or keras.Input), got none"
            )
        batch = tensors[0].shape[0] if tensors[0].shape else None
        free = [_unbatched(t) for t in tensors]
        spec = None
        if self._keras_call:
            by_id = {id(t): f for t, f in zip(tensors, free)}
            swapped = map_structure(lambda x: by_id.get(id(x), x), (tuple(args), dict(kwargs)))
            training = swapped[1].pop("training", None)
            spec = _CallSpec.of(self, swapped[0], swapped[1], training, KerasTensor)
            self._ensure_built(spec.build_shapes(self, [t.shape for t in spec.tensors]))
            free = spec.tensors
        else:
            self._ensure_built([t.shape for t in free])
        outs = [
            KerasTensor(_with_batch(shape, batch), dtype, name=self.name)
            for shape, dtype, _ in self._output_specs(free, spec)
        ]
        return outs[0] if len(outs) == 1 else outs

    def compute_output_shape(self, input_shape: Any) -> Any:
        """Keras's: the output shape(s) for ``input_shape`` (batch dimension included),
        from tracing ``call`` on symbolic inputs of that shape."""
        shapes = _shape_structure(input_shape)
        several = isinstance(shapes, list)
        tensors = [KerasTensor(s) for s in shapes] if several else [KerasTensor(shapes)]
        out = self.compute_output_spec(tensors if several else tensors[0])
        return [t.shape for t in out] if isinstance(out, list) else out.shape

    # --- the parts a layer defines -------------------------------------------

    def build(self, input_shape: Any) -> None:
        """Create weights for inputs of ``input_shape`` (batch dimension None)."""

    def call(self, ctx: TraceContext, inputs: Any) -> Value | list[Value]:
        raise NotImplementedError(f"{type(self).__name__} does not define call")

    @property
    def _keras_call(self) -> bool:
        """Whether ``call`` has Keras's contract (``call(self, inputs, training=None,
        ...)`` with keras.ops) rather than kcompile's own (``call(self, ctx, x)`` with
        IR builders)."""
        return "ctx" not in _call_parameters(type(self))

    def get_config(self) -> dict[str, Any]:
        """Keras's base config: name, trainable and the dtype policy as Keras writes it
        (so ``from_config`` makes a layer that computes in the same dtype), and the
        activity regularizer when there is one."""
        policy = dtype_policies.serialize(self.dtype_policy)
        config = {"name": self.name, "trainable": self.trainable, "dtype": policy}
        activity = getattr(self, "activity_regularizer", None)
        if activity is not None:
            from kcompile import regularizers

            config["activity_regularizer"] = regularizers.serialize(activity)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        """Keras's default: the layer made again from its ``get_config``."""
        return cls(**config)

    # --- masks -------------------------------------------------------------

    @property
    def supports_masking(self) -> bool:
        return getattr(self, "_supports_masking", False)

    @supports_masking.setter
    def supports_masking(self, value: bool) -> None:
        self._supports_masking = bool(value)

    def compute_mask(self, inputs: Any, previous_mask: Any = None, mask: Any = None) -> Any:
        """Keras's: the mask of the outputs (IR values for a built-in layer, traced
        tensors for a user's, or arrays); by default the input's."""
        return mask if previous_mask is None else previous_mask

    def _set_output_masks(self, ctx: TraceContext, inputs: Any, previous: Any, outs: list) -> list:
        """Keras's ``_set_mask_metadata``: outputs that have no mask yet get
        ``compute_mask(inputs, previous)``; a layer that does not support masking drops
        the mask, with Keras's warning. Returns the outputs: one that is an input
        (``return inputs``) becomes a view of it, a tensor of its own as a Keras node's
        output is, so its mask is the layer's."""
        if self.supports_masking and any(m is not None for m in flatten(previous)):
            given = {id(v) for v in flatten(inputs) if isinstance(v, Value)}
            given |= {id(v.value) for v in flatten(inputs) if isinstance(v, TracedTensor)}
            outs = [
                v.graph.emit1("reshape", [v], shape=v.shape) if id(v) in given else v for v in outs
            ]
        if not self.supports_masking:
            if any(m is not None for m in flatten(previous)):
                warnings.warn(
                    f"Layer '{self.name}' (of type {type(self).__name__}) was passed an input "
                    "with a mask attached to it. However, this layer does not support "
                    "masking and will therefore destroy the mask information. Downstream "
                    "layers will not see the mask.",
                    stacklevel=2,
                )
            return outs
        if all(ctx.mask_of(v) is not None for v in outs):
            return outs
        masks = self.compute_mask(inputs, previous)
        if masks is None:
            return outs
        for value, mask in zip(outs, flatten(masks)):
            if mask is not None and ctx.mask_of(value) is None:
                ctx.set_mask(value, mask if isinstance(mask, Value) else _as_value(ctx, mask, self))
        return outs

    # --- calling ------------------------------------------------------------

    @filter_traceback
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._keras_call:
            return self._keras_style_call(args, kwargs)
        inputs, training = _own_call_arguments(self, args, kwargs)
        leaves = flatten(inputs)
        traced = any(isinstance(t, TracedTensor) for t in leaves)
        # Inside a traced call, arrays (ops.arange positions) are constants of the step.
        inside = current_context() is not None and not any(
            isinstance(t, KerasTensor) for t in leaves
        )
        if traced or inside:
            return self._traced_call(_CallSpec.of(self, (inputs,), {}, training, _TRACED_INPUTS))
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

    def _keras_style_call(self, args: tuple, kwargs: dict) -> Any:
        """A call with Keras's contract: every tensor among the arguments (the first,
        ``value`` and ``key`` of an attention, a ``mask=``) is an input of the node."""
        training = (
            kwargs.pop("training", None) if "training" not in _call_parameters(type(self)) else None
        )
        leaves = flatten((args, kwargs))
        if any(isinstance(t, TracedTensor) for t in leaves) or (
            current_context() is not None and not any(isinstance(t, KerasTensor) for t in leaves)
        ):
            return self._traced_call(_CallSpec.of(self, args, kwargs, training, _TRACED_INPUTS))
        if any(isinstance(t, KerasTensor) for t in leaves):
            first = flatten(args[0]) if args else []
            if any(isinstance(t, KerasTensor) for t in first) and not all(
                isinstance(t, KerasTensor) for t in first
            ):
                raise ValueError(f"layer '{self.name}': mix of symbolic tensors and arrays")
            spec = _CallSpec.of(self, args, kwargs, training, KerasTensor)
            return self._symbolic_call(spec.tensors, spec)
        spec = _CallSpec.of(self, args, kwargs, training, np.ndarray | Variable)
        return self._eager_call(spec.tensors, bool(spec.training), spec)

    def _traced_call(self, spec: _CallSpec) -> Any:
        """Called inside another layer's ``call`` while a step is traced: emit inline."""
        ctx = current_context()
        if ctx is None:
            raise TraceError(f"layer '{self.name}' called on a traced tensor outside tracing")
        leaves = [t if isinstance(t, TracedTensor) else _constant(ctx, t) for t in spec.tensors]
        # Inside a call the shapes are those of one trace (the data's, or a probe size
        # where an Input leaves a dimension unknown): only the features are the layer's,
        # as Keras's input specs check the last axis.
        shapes = [t.shape for t in leaves]
        if self._keras_call:
            shapes = spec.build_shapes(self, shapes)
        self._ensure_built(shapes, features_only=True, ids=_integer_inputs(leaves))
        outs = self.trace(ctx, [t.value for t in leaves], spec)
        wrapped = [TracedTensor(v) for v in outs]
        self._traced_shapes = [t.shape for t in wrapped]  # what summary() shows
        return wrapped[0] if len(wrapped) == 1 else wrapped

    def _ensure_built(
        self, shapes: Any, features_only: bool = False, ids: Sequence[bool] = ()
    ) -> None:
        if self._keras_call:
            if not self.built:
                if isinstance(shapes, _BuildShapes):
                    self.build(**shapes.by_name)
                    self._build_shapes_dict = dict(shapes.by_name)
                else:
                    self.build(shapes)
                    self._build_shapes_dict = {"input_shape": shapes}
                self.built = True
            return
        if not self.built:
            self.build(shapes if self.multi_input else shapes[0])
            self.built = True
            self._build_shapes_dict = {
                "input_shape": list(shapes) if self.multi_input else shapes[0]
            }
            if features_only:
                shapes = [(*[None] * (len(s) - 1), *s[-1:]) for s in shapes]
            self._build_shapes = shapes
            return
        if self._build_shapes is not None:
            self._check_compatible(shapes, ids)

    def _check_compatible(self, shapes: list[tuple], ids: Sequence[bool] = ()) -> None:
        """kcompile's stand-in for the input specs Keras's layers set when built: the
        shapes a built layer takes are those it was built for, unknown dimensions aside.
        Integer inputs are ids (an Embedding's, a lookup's): their last axis is a length,
        not features, and no Keras layer checks it (the probe sizes of a dynamic
        sequence come one after the other)."""
        for i, (want, got) in enumerate(zip(self._build_shapes, shapes)):
            if i < len(ids) and ids[i]:
                continue
            same = len(want) == len(got) and all(
                a is None or b is None or a == b for a, b in zip(want, got)
            )
            if not same:
                raise ValueError(
                    f"Input {i} of layer '{self.name}' ({type(self).__name__}) is incompatible "
                    f"with the layer: expected shape {want}, got shape {got}"
                )

    def _symbolic_call(self, flat: list[KerasTensor], call: _CallSpec | None = None) -> Any:
        shapes = [t.shape for t in flat]
        assert_input_compatibility(getattr(self, "_input_spec", None), shapes, self.name)
        self._ensure_built(
            call.build_shapes(self, shapes) if call else shapes, ids=_integer_inputs(flat)
        )
        outputs = []
        for shape, dtype, mask in self._output_specs(flat, call):
            out = KerasTensor(shape, dtype, name=f"{self.name}")
            out._keras_mask = None if mask is None else KerasTensor(*mask)
            outputs.append(out)
        record = CallRecord(self, flat, outputs, call)
        self._calls.append(record)
        for i, t in enumerate(outputs):
            t._history = (record, i)
        return outputs[0] if len(outputs) == 1 else outputs

    def _output_specs(self, flat: list[KerasTensor], call: dict | None) -> list[tuple]:
        """The shapes and dtypes of the outputs, from tracing ``call`` into a scratch
        graph. Unknown dimensions other than the batch are traced at two probe sizes (as
        Keras's JAX backend does): an output dimension that follows them is unknown."""
        probes = PROBE_SIZES if any(t.dynamic for t in flat) else (None,)
        runs = []
        for size in probes:
            graph = Graph(f"{self.name}_shape")
            ctx = TraceContext(graph, training=False)
            values = [graph.add_input(f"in{i}", t.ir_type(size)) for i, t in enumerate(flat)]
            for i, (t, v) in enumerate(zip(flat, values)):  # masks are known when building
                if getattr(t, "_keras_mask", None) is not None:
                    ctx.set_mask(v, graph.add_input(f"mask{i}", t._keras_mask.ir_type(size)))
            outs = self.trace(ctx, values, call)
            masks = [ctx.mask_of(v) for v in outs]
            runs.append([_spec(v) for v in outs] + [None if m is None else _spec(m) for m in masks])
        first = runs[0]
        for other in runs[1:]:
            if [s and len(s[0]) for s in other] != [s and len(s[0]) for s in first]:
                raise ValueError(
                    f"layer '{self.name}' ({type(self).__name__}): the rank of its output "
                    "depends on the size of an unknown input dimension"
                )
            first = [
                a and (tuple(x if x == y else None for x, y in zip(a[0], b[0])), a[1])
                for a, b in zip(first, other)
            ]
        half = len(first) // 2
        return [(*spec, mask) for spec, mask in zip(first[:half], first[half:])]

    def _variable_cast(self) -> DType | None:
        """The dtype this layer reads its variables in (None: their own): its compute
        dtype under a mixed policy (Keras's autocast), float32 in a layer that normalizes
        in float32 (Keras's casts its bf16 weights up)."""
        if not self.autocast:
            return None
        if self.computes_in_float32:
            return DType.f32
        dtype = _float_dtype(self.dtype_policy.compute_dtype)
        return None if dtype in (None, DType.f32) else dtype

    def _autocast_inputs(self, values: list[Value]) -> list[Value]:
        """Keras's ``convert_input``: floating inputs cast to the compute dtype (integers
        and booleans as they are); a layer that normalizes computes in float32."""
        if not self.autocast and not self.computes_in_float32:
            return values
        dtype = DType.f32 if self.computes_in_float32 else _float_dtype(self.compute_dtype)
        return values if dtype is None else _floats_as(values, dtype)

    def trace(
        self, ctx: TraceContext, values: list[Value], call: _CallSpec | None = None
    ) -> list[Value]:
        """Emit this layer's IR for ``values``; shape errors name the layer and shapes.
        ``call`` holds a Keras-style call's arguments, its tensors left out."""
        values = self._autocast_inputs(values)
        with ctx.graph.layer_scope(self.name), ctx.autocast_scope(self._variable_cast()):
            try:
                if self._keras_call:
                    outs = self._trace_keras_call(ctx, values, call or _CallSpec.single(values))
                    self._add_penalties(ctx, outs)
                    return outs
                masks = [ctx.mask_of(v) for v in values]
                previous = masks if self.multi_input else masks[0]
                arguments = {}
                if "mask" in _call_parameters(type(self)) and any(m is not None for m in masks):
                    arguments["mask"] = previous
                out = self.call(ctx, values if self.multi_input else values[0], **arguments)
            except ShapeError as e:
                shapes = ", ".join(str(keras_shape(v.shape)) for v in values)
                # The shape error's own traceback is kept: it holds the user's line when
                # the layer is theirs.
                raise ValueError(
                    f"layer '{self.name}' ({type(self).__name__}) cannot take "
                    f"input shape {shapes}: {e}"
                ).with_traceback(e.__traceback__) from None
        outs = list(out) if isinstance(out, list | tuple) else [out]
        with ctx.graph.layer_scope(self.name):
            output_dtype = _float_dtype(self.compute_dtype) if self.computes_in_float32 else None
            if output_dtype is not None:  # (computed in float32, given in the compute dtype)
                outs = _floats_as(outs, output_dtype)
            self._add_penalties(ctx, outs)
            first = values if self.multi_input else values[0]
            return self._set_output_masks(ctx, first, previous, outs)

    def _trace_keras_call(
        self, ctx: TraceContext, values: list[Value], call: _CallSpec
    ) -> list[Value]:
        args, kwargs = call.arguments([TracedTensor(v) for v in values])
        if "training" in _call_parameters(type(self)):
            kwargs["training"] = ctx.training if call.training is None else call.training
        first, previous = self._fill_masks(ctx, args, kwargs)
        with tracing(ctx):
            try:
                out = self.call(*args, **kwargs)
            except (TraceError, NotImplementedError) as e:
                raise type(e)(
                    f"layer '{self.name}' ({type(self).__name__}){_user_line(e)}: {e}"
                ) from None
            leaves = flatten(out)
            ctx.returned_variables = [x if isinstance(x, Variable) else None for x in leaves]
            outs = [_as_value(ctx, x, self) for x in leaves]
            return self._set_output_masks(ctx, first, previous, outs)

    def _fill_masks(self, ctx: TraceContext, args: tuple, kwargs: dict) -> tuple[Any, Any]:
        """Keras's step 6 of ``__call__``: a call with one tensor argument gets its mask
        as ``mask=``, one with several gets ``<name>_mask=`` for each, where ``call``
        takes them and they were not given. Returns the first argument and the mask of
        the outputs' default (the given mask, else the first argument's)."""
        params = _call_parameters(type(self))

        def mask_of(x: Any) -> Any:
            mask = ctx.mask_of(x.value) if isinstance(x, TracedTensor) else None
            return None if mask is None else TracedTensor(mask)

        bound = inspect.signature(type(self).call).bind(None, *args, **kwargs).arguments
        named = dict(list(bound.items())[1:])
        tensors = {
            k: v
            for k, v in named.items()
            if k != "training" and any(isinstance(x, TracedTensor) for x in flatten(v))
        }
        wanted = ["mask"] if len(tensors) == 1 else [f"{k}_mask" for k in tensors]
        for value, mask_name in zip(tensors.values(), wanted):
            if mask_name in params and named.get(mask_name) is None:
                masks = map_structure(mask_of, value)
                if any(m is not None for m in flatten(masks)):
                    kwargs[mask_name] = masks
        first = args[0] if args else next(iter(named.values()), None)
        given = kwargs.get("mask", named.get("mask"))
        return first, given if given is not None else map_structure(mask_of, first)

    def _eager_call(self, arrays: list, training: bool, call: _CallSpec | None = None) -> Any:
        masks = [masked_array.mask_of(a) for a in arrays]  # set by an earlier eager call
        arrays = [np.asarray(getattr(a, "value", a)) for a in arrays]
        if getattr(self, "_host", None):  # a model's host layers (TextVectorization, ...)
            arrays = [np.asarray(a) for a in self.host_inputs(arrays)]
        shapes = [(None, *a.shape[1:]) for a in arrays]
        assert_input_compatibility(
            getattr(self, "_input_spec", None), [a.shape for a in arrays], self.name
        )
        self._ensure_built(
            call.build_shapes(self, shapes) if call else shapes, ids=_integer_inputs(arrays)
        )
        graph = Graph(f"{self.name}_eager")
        ctx = TraceContext(graph, training=training)
        values = []
        # The arrays' own shapes, batch included: called on arrays, a layer sees concrete
        # shapes (``inputs.shape[0]`` is the number of rows), as in Keras.
        for i, a in enumerate(arrays):
            dtype = ir_dtype(str(a.dtype)) if a.dtype.kind != "f" else DType.f32
            values.append(graph.add_input(f"in{i}", TensorType(dtype, a.shape)))
        feeds = {f"in{i}": a.astype(v.dtype.numpy) for i, (a, v) in enumerate(zip(arrays, values))}
        for i, (value, mask) in enumerate(zip(values, masks)):
            if mask is not None:
                ctx.set_mask(value, graph.add_input(f"mask{i}", TensorType(DType.bool, mask.shape)))
                feeds[f"mask{i}"] = mask
        outs = self.trace(ctx, values, call)
        losses = [(f"loss{i}", v) for i, v in enumerate(ctx.losses)]
        updates = [(f"state{i}", v) for i, v in enumerate(ctx.state_updates.values())]
        out_masks = [(f"outmask{i}", ctx.mask_of(v)) for i, v in enumerate(outs)]
        out_masks = [(name, m) for name, m in out_masks if m is not None]
        graph.set_outputs(
            [(f"out{i}", v) for i, v in enumerate(outs)] + losses + updates + out_masks
        )
        feeds.update({v.name: var.value for var, v in ctx.weights.items()})
        if "iterations" in [v.name for v in graph.inputs]:
            feeds["iterations"] = np.int32(0)
        result = Interpreter(graph).run(feeds)
        # Keras sets an output's mask on the array it returns (``_keras_mask``)
        outs = [
            masked_array.with_mask(result[f"out{i}"], result.get(f"outmask{i}"))
            for i in range(len(outs))
        ]
        self._eager_losses = [result[name] for name, _ in losses]
        for (name, _), var in zip(updates, ctx.state_updates):
            var.assign(result[name])  # an eager call updates its state at once, as in Keras
        # A variable the call returns is what Keras returns: the variable, not its value
        returned = ctx.returned_variables
        if len(returned) == len(outs):
            outs = [out if var is None else var for out, var in zip(outs, returned)]
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


def _own_call_arguments(layer: Layer, args: tuple, kwargs: dict) -> tuple[Any, Any]:
    """``inputs`` and ``training`` of a call of one of kcompile's own layers."""
    training = kwargs.pop("training", None)
    if kwargs:
        raise TypeError(f"layer '{layer.name}': unexpected call arguments {sorted(kwargs)}")
    if not args or len(args) > 2:
        raise TypeError(f"layer '{layer.name}' takes its inputs (and training), got {args}")
    return args[0], args[1] if len(args) == 2 else training


# What a call inside a traced step takes as tensors: traced values, and arrays (ops.arange
# positions), which become constants of the step.
_TRACED_INPUTS = TracedTensor | np.ndarray


class _Slot:
    """Where a tensor was among a call's arguments."""


class _BuildShapes:
    """``build``'s keyword arguments: ``<argument>_shape`` for each tensor argument."""

    def __init__(self, by_name: dict) -> None:
        self.by_name = by_name


class _CallSpec:
    """A Keras-style call's arguments with each tensor replaced by a slot (Keras's
    CallSpec): the tensors are the node's inputs, in the order of the slots;
    ``arguments`` puts values back."""

    def __init__(self, template: tuple, tensors: list, training: Any, names: dict) -> None:
        self.template = template  # (args, kwargs) with _Slot where tensors were
        self.tensors = tensors
        self.training = training
        self.names = names  # argument name -> its value in the template

    @classmethod
    def of(cls, layer: Layer, args: tuple, kwargs: dict, training: Any, kind) -> _CallSpec:
        found: dict[int, Any] = {}

        def slot(x: Any) -> Any:
            if not isinstance(x, kind):
                return x
            made = _Slot()
            found[id(made)] = x
            return made

        template = map_structure(slot, (tuple(args), dict(kwargs)))
        tensors = [found[id(x)] for x in _slots(template)]
        if not layer._keras_call:  # kcompile's own call(ctx, x): the inputs only
            return cls(template, tensors, training, {"inputs": template[0][0]})
        try:
            bound = inspect.signature(type(layer).call).bind(None, *template[0], **template[1])
        except TypeError as e:
            raise TypeError(f"layer '{layer.name}' ({type(layer).__name__}).call: {e}") from None
        names = dict(list(bound.arguments.items())[1:])
        if "training" in names:
            training = names.pop("training")
        return cls(template, tensors, training, names)

    @classmethod
    def single(cls, values: list) -> _CallSpec:
        first = [_Slot() for _ in values] if len(values) > 1 else _Slot()
        return cls(((first,), {}), list(values), None, {"inputs": first})

    def _fill(self, values: list, structure: Any) -> Any:
        by_slot = {id(x): v for x, v in zip(_slots(self.template), values)}
        return map_structure(lambda x: by_slot[id(x)] if isinstance(x, _Slot) else x, structure)

    def arguments(self, values: list) -> tuple[tuple, dict]:
        args, kwargs = self._fill(values, self.template)
        return args, kwargs

    def build_shapes(self, layer: Layer, shapes: list) -> Any:
        """Keras's rule: a ``build`` of one parameter gets the first tensor argument's
        shapes (in its structure); one of several gets ``<name>_shape`` for each."""
        by_name = {
            f"{name}_shape": self._fill(shapes, value)
            for name, value in self.names.items()
            if name != "mask" and _slots(value)
        }
        wanted = [
            p.name
            for p in inspect.signature(layer.build).parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if len(wanted) <= 1:
            return next(iter(by_name.values()), None)
        return _BuildShapes({name: by_name[name] for name in wanted if name in by_name})


def _shape_structure(shape: Any) -> Any:
    """A shape as tuples (JSON gives lists): one shape, or a list of shapes."""
    if isinstance(shape, dict):
        return {k: _shape_structure(v) for k, v in shape.items()}
    if (
        isinstance(shape, list | tuple)
        and shape
        and all(isinstance(s, list | tuple) or s is None for s in shape)
        and any(isinstance(s, list | tuple) for s in shape)
    ):
        return [_shape_structure(s) for s in shape]
    return tuple(shape) if isinstance(shape, list | tuple) else shape


def _unbatched(t: KerasTensor) -> KerasTensor:
    """``t`` with its batch dimension unknown (how kcompile traces shapes)."""
    if not t.shape or t.shape[0] is None:
        return t
    return KerasTensor((None, *t.shape[1:]), t.dtype, name=t.name)


def _with_batch(shape: tuple, batch: int | None) -> tuple:
    if batch is None or not shape or shape[0] is not None:
        return tuple(shape)
    return (batch, *shape[1:])


def _spec(value: Value) -> tuple[tuple, str]:
    return keras_shape(value.shape), keras_dtype(value.type)


def _slots(structure: Any) -> list[_Slot]:
    return [x for x in flatten(structure) if isinstance(x, _Slot)]


def _mask_on_arrays(compute_mask: Callable) -> Callable:
    """A built-in layer's ``compute_mask`` (written over IR values) that also takes
    arrays, as Keras's ``layer.compute_mask(inputs, mask=None)`` does: it then runs on
    the reference interpreter."""

    @functools.wraps(compute_mask)
    def wrapped(self, inputs: Any, previous_mask: Any = None, mask: Any = None) -> Any:
        previous = mask if previous_mask is None else previous_mask
        leaves = flatten((inputs, previous))
        traced = any(isinstance(x, TracedTensor) for x in leaves)
        if traced and not self._keras_call and not any(isinstance(x, Value) for x in leaves):
            # A user's layer asks inside its traced call (``self.embedding.compute_mask(x)``
            # in Keras's masking guide): a rule over IR values, on the tensors' values.
            out = compute_mask(
                self, map_structure(_value_of, inputs), map_structure(_value_of, previous)
            )
            return map_structure(lambda v: TracedTensor(v) if isinstance(v, Value) else v, out)
        if any(isinstance(x, Value | TracedTensor | KerasTensor) for x in leaves):
            return compute_mask(self, inputs, previous)
        graph = Graph(f"{self.name}_mask")
        feeds: dict[str, np.ndarray] = {}

        def value(x: Any) -> Any:
            if x is None:
                return None
            a = np.asarray(x)
            dtype = DType.f32 if a.dtype.kind == "f" else ir_dtype(str(a.dtype))
            name = f"in{len(feeds)}"
            feeds[name] = a.astype(dtype.numpy)
            return graph.add_input(name, TensorType(dtype, a.shape))

        out = compute_mask(self, map_structure(value, inputs), map_structure(value, previous))
        if out is None:
            return None
        outs = flatten(out)
        graph.set_outputs([(f"mask{i}", v) for i, v in enumerate(outs)])
        result = Interpreter(graph).run(feeds)
        arrays = [np.asarray(result[f"mask{i}"]) for i in range(len(outs))]
        return pack_sequence_as(out, arrays) if isinstance(out, list | tuple) else arrays[0]

    return wrapped


def _integer_inputs(tensors: Sequence[Any]) -> list[bool]:
    """Which of a call's inputs (KerasTensors, traced tensors or arrays) hold integers."""
    kinds = []
    for t in tensors:
        dtype = t.value.dtype.keras_name if isinstance(t, TracedTensor) else t.dtype
        kinds.append(str(getattr(dtype, "name", dtype)).startswith(("int", "uint")))
    return kinds


def _value_of(x: Any) -> Any:
    return x.value if isinstance(x, TracedTensor) else x


def _constant(ctx: TraceContext, x: Any) -> TracedTensor:
    return TracedTensor(Builder(ctx.graph, ctx).value(x))


def _as_value(ctx: TraceContext, x: Any, layer: Layer) -> Value:
    if isinstance(x, TracedTensor):
        return x.value
    if isinstance(x, Variable):
        return ctx.weight(x)
    if isinstance(x, KerasTensor):
        raise TraceError(
            f"layer '{layer.name}': call() returned a symbolic tensor of the functional API; "
            "inside call(), compute with the inputs it was given"
        )
    return _constant(ctx, x).value


def _user_line(error: BaseException) -> str:
    """`` at file:line`` of the innermost frame of user code in ``error``'s traceback."""
    import kcompile.ir

    ours = (str(Path(__file__).resolve().parent.parent), str(Path(kcompile.ir.__file__).parent))
    where = ""
    for frame in traceback.extract_tb(error.__traceback__):
        if not str(Path(frame.filename).resolve()).startswith(ours):
            where = f" at {frame.filename}:{frame.lineno}"
    return where


def _penalty(ctx: TraceContext, regularizer: Any, value: Value, layer: Layer) -> Value:
    with tracing(ctx):
        out = regularizer(TracedTensor(value))
    penalty = _as_value(ctx, out, layer)
    return B.reduce_sum(penalty) if penalty.rank else penalty


def _float_dtype(name: str) -> DType | None:
    """The IR dtype of a float dtype name (float64 computes in f32), else None: a layer
    of an integer or string policy (a preprocessing layer's output dtype) casts nothing."""
    if not name.startswith(("float", "bfloat")):
        return None
    return DType.from_keras(name)


def _floats_as(values: list[Value], dtype: DType) -> list[Value]:
    """The floating values cast to ``dtype``; integers and booleans as they are."""
    return [B.cast(v, dtype) if v.dtype.is_float else v for v in values]
