"""``Model``: a functional graph of layer calls, traced into IR on demand."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from kcompile import optimizers as optimizers_mod
from kcompile.backend.keras_tensor import KerasTensor
from kcompile.backend.session import unique_name
from kcompile.backend.variables import Variable
from kcompile.distribution import root_writes
from kcompile.ir import Value
from kcompile.layers.core.input_layer import InputLayer
from kcompile.layers.layer import CallRecord, Layer, TraceContext, topological_records
from kcompile.models import functional
from kcompile.models import graphs as G
from kcompile.models import layer_internals as internals
from kcompile.models.summary import summary_text
from kcompile.trainers.custom_trainer import CustomSteps, overrides_steps
from kcompile.trainers.step_methods import StepMethods
from kcompile.trainers.trainer import ModelSteps
from kcompile.trainers.training_loop import TrainingLoop, delegate_to_loop
from kcompile.tree import flatten
from kcompile.utils.traceback_utils import filter_traceback


def _traced_value(x: Any) -> Value:
    """The value of ``x`` (a traced tensor, a variable, an array) in the step traced now."""
    from kcompile.backend.symbolic import TracedTensor, current_context
    from kcompile.ops.core import Builder

    if isinstance(x, TracedTensor):
        return x.value
    ctx = current_context()
    return Builder(ctx.graph, ctx).value(x)


def _as_list(x: Any) -> list:
    if isinstance(x, dict):  # in Keras's flattening order: sorted keys
        return [x[k] for k in sorted(x)]
    return list(x) if isinstance(x, list | tuple) else [x]


def _is_shape_list(x: Any) -> bool:
    return isinstance(x, list | tuple) and bool(x) and all(isinstance(s, list | tuple) for s in x)


def _distinct_weight_paths(model) -> None:
    """A weight path names one weight in the step graphs. A layer nested in a user's layer
    may share its name with a model layer (a loaded file names the model's ``dense``
    while the custom layer makes its own ``dense``): its weights then take the nesting
    as a prefix, as Keras's own variable paths do (``block/dense/kernel``)."""
    seen: dict[str, int] = {}
    for layer in model.layers:
        for var in layer.weights:
            seen[var.path] = seen.get(var.path, 0) + 1
    clashes = {path for path, count in seen.items() if count > 1}
    if not clashes:
        return

    def visit(layer, prefix: str) -> None:
        for child in internals.tracked_layers(layer):
            for var in internals.own_variables(child):
                if var.path in clashes:
                    var.path = f"{prefix}/{var.path}"
            visit(child, f"{prefix}/{child.name}")

    for layer in model.layers:
        visit(layer, layer.name)


def _host_stage(name: str, inputs: list[KerasTensor], records: list[CallRecord]) -> dict:
    """{input index: (host layer, its output)}: the layers computed on the host before the
    compiled step, each on a model Input that nothing else takes."""
    stage = {}
    position = {id(t): i for i, t in enumerate(inputs)}
    for record in records:
        if not getattr(record.layer, "host", False):
            continue
        (t,) = record.inputs
        users = [r for r in records if any(x is t for x in r.inputs)]
        if id(t) not in position or len(users) > 1:
            raise NotImplementedError(
                f"model '{name}': layer '{record.layer.name}' "
                f"({type(record.layer).__name__}) runs on the host before the compiled step, "
                "so it must be the only layer that takes its Input"
            )
        stage[position[id(t)]] = (record.layer, record.outputs[0])
    return stage


def keras_layer_order(
    outputs: list[KerasTensor], inputs: Sequence[KerasTensor] = ()
) -> list[Layer]:
    """The layers in Keras's Functional order (its ``map_graph``): by depth, the longest
    path to an output, deepest first (the Inputs); layers of one depth in the order a
    depth-first walk from the outputs meets them. ``weights`` and ``get_weights`` follow
    it, so weight lists move between Keras and kcompile."""
    first_seen: dict[int, int] = {}
    layers: dict[int, Layer] = {}
    post_order: list = []
    finished: set[int] = set()

    def node_of(t: KerasTensor):
        record = t._history[0] if t._history else None
        return record if record is not None else t._input_layer

    def parents(node) -> list:
        return [node_of(t) for t in node.inputs] if isinstance(node, CallRecord) else []

    def layer_of(node) -> Layer:
        return node.layer if isinstance(node, CallRecord) else node

    def visit(node) -> None:
        if id(node) in finished:
            return
        layer = layer_of(node)
        first_seen.setdefault(id(layer), len(first_seen))
        layers[id(layer)] = layer
        for parent in parents(node):
            visit(parent)
        finished.add(id(node))
        post_order.append(node)

    for t in outputs:
        visit(node_of(t))
    unused = [t._input_layer for t in inputs if id(t._input_layer) not in layers]
    node_depth: dict[int, int] = {}
    layer_depth: dict[int, int] = {}
    for node in reversed(post_order):
        depth = max(node_depth.get(id(node), 0), layer_depth.get(id(layer_of(node)), 0))
        layer_depth[id(layer_of(node))] = node_depth[id(node)] = depth
        for parent in parents(node):
            node_depth[id(parent)] = max(depth + 1, node_depth.get(id(parent), 0))
    # Keras keeps the Inputs no output uses, at depth 0 before the layers found there
    for layer in unused:
        layers[id(layer)], layer_depth[id(layer)], first_seen[id(layer)] = layer, 0, -1
    return sorted(layers.values(), key=lambda x: (-layer_depth[id(x)], first_seen[id(x)]))


class Model(StepMethods, Layer):
    """``Model(inputs, outputs)``: Keras's functional API.

    A model is a layer that holds two components: its compiled steps (``ModelSteps``:
    compile's settings and the traced and compiled executables) and the training loop
    that runs them (``TrainingLoop``). Keras's ``fit``, ``evaluate``, ``predict`` and
    the on-batch methods delegate to the loop."""

    # model.summary()'s "Connected to" column: a functional model's, not a Sequential's.
    _summary_connections = True

    @filter_traceback
    def __init__(
        self, inputs: Any = None, outputs: Any = None, name: str | None = None, **kwargs: Any
    ) -> None:
        if name is None and type(self) is Model:  # Keras's functional models: "functional"
            name = unique_name("functional")
        Layer.__init__(self, name=name, **kwargs)
        # A model with its own train_step, test_step or predict_step has them traced.
        steps = CustomSteps if overrides_steps(type(self)) else ModelSteps
        self._steps = steps(self, self._pack_outputs)
        self._loop = TrainingLoop(self, self._steps)
        self.stop_training = False  # Keras's: a callback sets it to end fit
        self.history = None  # Keras's: the History of the last fit
        self._inputs: list[KerasTensor] = []
        self._outputs: list[KerasTensor] = []
        self._records: list[CallRecord] = []
        self._layer_order: list[Layer] = []
        self._output_keys = sorted(outputs) if isinstance(outputs, dict) else None
        if inputs is not None or outputs is not None:
            if inputs is None or outputs is None:
                raise ValueError("Model needs both inputs and outputs")
            flat_inputs, flat_outputs = functional.functional_graph(
                inputs, outputs, _as_list(inputs), _as_list(outputs)
            )
            self._set_graph(flat_inputs, flat_outputs)
        elif type(self) is Model:
            raise ValueError("Model needs inputs and outputs, or a subclass with its own call")

    # --- subclassed models -----------------------------------------------------

    @property
    def _subclassed(self) -> bool:
        """A ``keras.Model`` subclass with its own Keras-style ``call``."""
        return internals.keras_style_call(self)

    def build(self, input_shape: Any) -> None:
        """A subclassed model is built by calling it on symbolic inputs of
        ``input_shape`` (a shape, or a list of shapes, batch dimension first): its
        layers make their weights and the model learns its outputs."""
        if not self._subclassed:
            return
        shapes = input_shape if _is_shape_list(input_shape) else [input_shape]
        from kcompile.layers.core.input_layer import Input

        inputs = [
            Input(shape=tuple(shape)[1:], name=f"input_{i}") for i, shape in enumerate(shapes)
        ]
        self.built = True  # calling itself below must not build again
        structure = inputs[0] if len(inputs) == 1 else inputs
        try:
            outputs = Layer.__call__(self, structure)
        except Exception:
            self.built = False
            raise
        self._set_graph(inputs, flatten(outputs))

    def _set_graph(self, inputs: list[KerasTensor], outputs: list[KerasTensor]) -> None:
        for t in inputs:
            if getattr(t, "_input_layer", None) is None:
                raise ValueError(f"model '{self.name}': inputs must come from keras.Input, got {t}")
        self._inputs, self._outputs = inputs, outputs
        self._records = topological_records(outputs)
        self._host = _host_stage(self.name, inputs, self._records)
        self._layer_order = keras_layer_order(outputs, inputs)
        _distinct_weight_paths(self)
        # An input the outputs do not use is allowed, as in Keras: it is taken and unread.
        self.built = True
        self._steps.forget_executables()

    # --- structure ------------------------------------------------------------

    @property
    def inputs(self) -> list[KerasTensor]:
        return list(self._inputs)

    @property
    def outputs(self) -> list[KerasTensor]:
        return list(self._outputs)

    @property
    def input_shape(self) -> Any:
        """Keras's: the Inputs' shapes (one shape for one input)."""
        shapes = [t.shape for t in self._inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self) -> Any:
        """Keras's: the outputs' shapes (one shape for one output)."""
        shapes = [t.shape for t in self._outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def input_names(self) -> list[str]:
        return [t._input_layer.name for t in self._inputs]

    @property
    def compiled_inputs(self) -> list[KerasTensor]:
        """kcompile's: what the compiled steps take, each Input or its host layer's
        output (token ids from a TextVectorization, ...)."""
        host = getattr(self, "_host", {})
        return [host[i][1] if i in host else t for i, t in enumerate(self._inputs)]

    def host_inputs(self, arrays: list) -> list:
        """kcompile's: the model's input arrays with its host layers applied (numpy)."""
        host = getattr(self, "_host", {})
        return [host[i][0].host_call(a) if i in host else a for i, a in enumerate(arrays)]

    @property
    def output_names(self) -> list[str]:
        """The outputs' keys when the model's outputs are a dict, else the names of the
        layers that make them."""
        if self._output_keys is not None:
            return list(self._output_keys)
        names: list[str] = []
        for t in self._outputs:
            name = t._history[0].layer.name if t._history[0] else t.name
            taken, k = name, 0
            while taken in names:  # a layer with several outputs: name_1, name_2, ...
                k += 1
                taken = f"{name}_{k}"
            names.append(taken)
        return names

    def _pack_outputs(self, arrays: list) -> Any:
        """Outputs in the structure the model was given: a dict by key, one array, a list."""
        if self._output_keys is not None:
            return dict(zip(self._output_keys, arrays))
        return arrays[0] if len(arrays) == 1 else arrays

    @property
    def layers(self) -> list[Layer]:
        """Keras's: the model's layers; a functional model's ``keras.ops`` calls are
        operations, not layers (``operations`` lists both)."""
        from kcompile.ops.operation import Operation

        return [op for op in self._nodes() if not isinstance(op, Operation)]

    def _nodes(self) -> list[Layer]:
        """The layers and ``keras.ops`` calls of a functional model, in order."""
        # A subclass without a graph of its own (a GAN, a VAE: train_step calls the models
        # it holds) has the layers it holds, as a subclassed model does.
        if self._subclassed or not (self._layer_order or self._outputs):
            return self._tracked_layers()
        return list(self._layer_order)

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(
            f"model '{self.name}' has no layer named {name!r}; layers: "
            f"{[layer.name for layer in self.layers]}"
        )

    def _all_variables(self) -> list[Variable]:
        if self._subclassed:
            return super()._all_variables()
        out: list[Variable] = []
        for layer in self.layers:
            for v in layer.weights:
                if v not in out:
                    out.append(v)
        return out

    @property
    def trainable_weights(self) -> list[Variable]:
        if not self.trainable:
            return []
        out: list[Variable] = []
        for layer in self.layers:
            out.extend(v for v in layer.trainable_weights if v not in out)
        return out

    @property
    def non_trainable_weights(self) -> list[Variable]:
        trainable = self.trainable_weights
        return [v for v in self._all_variables() if v not in trainable]

    @property
    def weights(self) -> list[Variable]:
        # Keras's order: layer by layer, trainable then non-trainable weights.
        out: list[Variable] = []
        for layer in self.layers:
            out.extend(v for v in layer.weights if v not in out)
        return out

    # --- tracing ----------------------------------------------------------------

    def call(self, ctx: TraceContext, inputs: Any) -> list[Value]:
        values = inputs if isinstance(inputs, list) else [inputs]
        return self.trace_graph(ctx, values)

    @property
    def multi_input(self) -> bool:  # type: ignore[override]
        return len(self._inputs) > 1

    def trace_graph(self, ctx: TraceContext, values: list[Value]) -> list[Value]:
        """Emit the whole model's IR for input values; returns the output values."""
        if not self.built:
            raise ValueError(
                f"model '{self.name}' has not been built yet: call it on data, or call "
                "build(input_shape) first"
            )
        if len(values) != len(self._inputs):
            raise ValueError(
                f"model '{self.name}' has {len(self._inputs)} inputs, got {len(values)}"
            )
        env: dict[int, Value] = {id(t): v for t, v in zip(self.compiled_inputs, values)}
        for record in self._records:
            if getattr(record.layer, "host", False):
                continue  # computed on the host: its output is a compiled input
            ins = [env[id(t)] for t in record.inputs]
            outs = record.layer.trace(ctx, ins, record.kwargs)
            for t, v in zip(record.outputs, outs):
                env[id(t)] = v
        return [env[id(t)] for t in self._outputs]

    # --- compile and the training loop (Keras's Trainer API) ------------------------------

    @filter_traceback
    def compile(
        self,
        optimizer: Any = "rmsprop",
        loss: Any = None,
        loss_weights: Any = None,
        metrics: Any = None,
        weighted_metrics: Any = None,
        run_eagerly: bool = False,
        steps_per_execution: int = 1,
        jit_compile: Any = "auto",
        auto_scale_loss: bool = True,
        backend: str = "llvm",
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise TypeError(f"compile: unexpected arguments {sorted(kwargs)}")
        optimizer = optimizers_mod.get(optimizer)
        scaled = optimizer
        if (
            auto_scale_loss
            and self.dtype_policy.name == "mixed_float16"
            and not isinstance(optimizer, optimizers_mod.LossScaleOptimizer)
        ):
            # Keras's: under mixed_float16 the loss is scaled so that float16 gradients
            # do not underflow.
            scaled = optimizers_mod.LossScaleOptimizer(optimizer, name="loss_scale_optimizer")
        self._steps.compile(
            scaled, loss, loss_weights, metrics, weighted_metrics, steps_per_execution, backend
        )
        if jit_compile == "auto":
            jit_compile = not run_eagerly
        # Keras's compile config: the arguments as given (the optimizer made), which
        # get_compile_config serializes and compile_from_config replays.
        self._compile_args = {
            "optimizer": optimizer,
            "loss": loss,
            "loss_weights": loss_weights,
            "metrics": metrics,
            "weighted_metrics": weighted_metrics,
            "run_eagerly": run_eagerly,
            "steps_per_execution": steps_per_execution,
            "jit_compile": bool(jit_compile),
        }

    @property
    def compiled_steps(self) -> ModelSteps:
        """kcompile's: the model's compiled steps (compile's settings in ``config``, the
        executables, ``step_graph``'s traces), for savers, the artifact builder and
        tools."""
        return self._steps

    @property
    def optimizer(self):
        return self._steps.config.optimizer if self._steps.config else None

    @property
    def compiled(self) -> bool:
        return self._steps.config is not None

    @property
    def metrics_names(self) -> list[str]:
        return self._steps.metrics_names

    @property
    def label_names(self) -> list[str]:
        """kcompile's: the names of the step graphs' label inputs."""
        return self._steps.label_names

    def default_label_types(self, input_shapes: tuple = ()) -> list:
        """kcompile's: the labels each output's loss expects (sparse losses: integer
        class ids), for inputs of ``input_shapes`` where an Input leaves a dimension
        unknown."""
        return self._steps.default_label_types(input_shapes)

    def step_graph(self, kind: str, label_types: list | None = None, input_shapes: tuple = ()):
        """kcompile's: the traced IR graph of ``predict``, ``eval`` or ``train`` (not yet
        optimized); ``input_shapes`` sizes the dimensions the Inputs leave unknown."""
        return G.trace_step(self, kind, label_types, input_shapes=input_shapes).graph

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Keras 3's hook: the compiled losses of ``y`` and ``y_pred`` plus the layers'
        added losses. Called with traced tensors when a subclass overrides it (and calls
        ``super().compute_loss(...)``)."""
        from kcompile.backend.symbolic import TracedTensor, current_context

        ctx = current_context()
        if ctx is None or not hasattr(ctx, "losses"):
            raise NotImplementedError("compute_loss runs inside the traced train and eval steps")
        config = self._steps.require_compiled("compute_loss")
        if any(spec.loss is not None for spec in config.specs) and y_pred is None:
            raise ValueError(f"model '{self.name}'.compute_loss: y_pred is needed")
        ys = [_traced_value(t) for t in flatten(y)] if y is not None else []
        preds = [_traced_value(p) for p in flatten(y_pred)] if y_pred is not None else []
        weights = None if sample_weight is None else _traced_value(sample_weight)
        specs = config.specs if ys else [s for s in config.specs if s.loss is None]
        total, _ = G.compiled_loss(specs, ys, preds, ctx.losses, weights, ctx.mask_of)
        if total is None:
            raise ValueError(f"model '{self.name}' has no loss to compute")
        return TracedTensor(total)

    # Marks Keras's own hook: a model whose class overrides it has a custom loss.
    compute_loss.keras_default = True

    fit = delegate_to_loop(TrainingLoop.fit)
    evaluate = delegate_to_loop(TrainingLoop.evaluate)
    predict = delegate_to_loop(TrainingLoop.predict)
    train_on_batch = delegate_to_loop(TrainingLoop.train_on_batch)
    test_on_batch = delegate_to_loop(TrainingLoop.test_on_batch)
    reset_metrics = delegate_to_loop(TrainingLoop.reset_metrics)
    _function_step = delegate_to_loop(TrainingLoop.step_logs)  # make_train_function's step

    @filter_traceback
    def predict_on_batch(self, x: Any):
        return self._steps.predict_on_batch(x)

    # --- files ----------------------------------------------------------------------------

    @root_writes
    @filter_traceback
    def save_weights(self, filepath: str, overwrite: bool = True) -> None:
        """Weights to Keras 3's ``.weights.h5`` (HDF5, through h5py) or kcompile's
        ``.weights.npz`` (in ``weights`` order, by path), written atomically."""
        from kcompile.saving.kcmodel import save_weights

        save_weights(self, filepath, overwrite)

    @filter_traceback
    def load_weights(self, filepath: str, skip_mismatch: bool = False) -> None:
        from kcompile.saving.kcmodel import load_weights

        load_weights(self, filepath)

    @root_writes
    @filter_traceback
    def save(self, filepath: str, overwrite: bool = True, **kwargs: Any) -> None:
        """The whole model (architecture, compile settings, weights, optimizer state), in
        Keras 3's ``.keras`` format or kcompile's ``.kcmodel``, written atomically;
        ``keras.models.load_model`` reads both."""
        from kcompile.saving.kcmodel import save_model

        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(filepath)
        if os.fspath(filepath).endswith(".keras"):
            from kcompile.saving.saving_lib import save_keras

            with internals.model_calls(self):
                save_keras(self, filepath)
            return
        save_model(self, filepath)

    @root_writes
    @filter_traceback
    def export(self, filepath: str, probe: Any = None, seed: int = 0, cpu: str = "host") -> dict:
        """An ahead-of-time artifact of this model (``kcompile.load`` reads it): native
        code of the train, eval and predict steps for ``cpu`` (this machine's, or an
        x86-64 level such as ``"x86-64-v3"`` for any CPU that has it), weights,
        optimizer state, a probe batch (the first rows of ``probe``, else random inputs)
        and a manifest. Written atomically; returns the manifest."""
        from kcompile.artifact import export

        if getattr(self, "_host", None):
            names = [layer.name for layer, _ in self._host.values()]
            raise NotImplementedError(
                f"export: model '{self.name}' computes {names} on the host (strings, "
                "vocabularies), which an artifact cannot hold yet; export the model after "
                "them (Input of their output) and run them before the artifact"
            )
        return export(self, os.fspath(filepath), probe=probe, seed=seed, cpu=cpu)

    def report(
        self,
        path: str,
        step: str = "train",
        batch: int = 32,
        calls: int = 20,
        input_shapes: tuple = (),
    ) -> str:
        """Write ``kcompile report``'s page of ``step`` to ``path`` (one HTML file: the
        graph at every stage, each pass's changes, the memory plan, the kernel profile at
        ``batch`` rows over ``calls`` calls); the path."""
        from kcompile.report import write_report  # the report imports the models

        return write_report(self, path, step, batch, calls, input_shapes)

    @filter_traceback
    def summary(self, print_fn=print, **kwargs: Any) -> None:
        if not self.built:
            raise ValueError(
                f"model '{self.name}' has not been built yet: call it on data, or call "
                "build(input_shape) first (as in Keras)"
            )
        connections = self._summary_connections and not internals.keras_style_call(self)
        with internals.model_calls(self):
            text = summary_text(self, connections)
        print_fn(text)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"

    # --- Keras's attributes of a model ----------------------------------------------------

    def _trainable_children(self) -> list[Layer]:
        return self.layers

    @property
    def input(self) -> Any:
        """Keras's: the model's Input tensor (a list for several inputs)."""
        if not self._inputs:
            raise AttributeError(
                f"The layer {self.name} has never been called and thus has no defined input."
            )
        return self._inputs[0] if len(self._inputs) == 1 else list(self._inputs)

    @property
    def output(self) -> Any:
        """Keras's: the model's output tensor, in the structure the model was given (a
        list, or a dict by key)."""
        if not self._outputs:
            raise AttributeError(
                f"The layer {self.name} has never been called and thus has no defined output."
            )
        return self._pack_outputs(list(self._outputs))

    @property
    def input_spec(self) -> Any:
        """Keras's: a model with Inputs takes tensors of their shapes."""
        if self._input_spec is not None or not self._inputs:
            return self._input_spec
        from kcompile.layers.input_spec import InputSpec

        return [InputSpec(shape=t.shape) for t in self._inputs]

    @input_spec.setter
    def input_spec(self, value: Any) -> None:
        self._input_spec = value

    @property
    def operations(self) -> list[Layer]:
        """Keras's (a functional model's): every layer and keras.ops node of its graph,
        its Inputs first."""
        if self._subclassed:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute 'operations'")
        return list(self._layer_order)

    @property
    def loss(self) -> Any:
        """Keras's: the ``loss`` given to ``compile`` (None before)."""
        return self._compile_arg("loss")

    @property
    def run_eagerly(self) -> bool:
        """Keras's setting, as compile was given it (kcompile always runs compiled code)."""
        return bool(self._compile_arg("run_eagerly"))

    @property
    def jit_compile(self) -> bool:
        return bool(self._compile_arg("jit_compile", True))

    @property
    def steps_per_execution(self) -> int:
        return int(self._compile_arg("steps_per_execution", 1))

    def _compile_arg(self, name: str, default: Any = None) -> Any:
        return getattr(self, "_compile_args", {}).get(name, default)

    @property
    def metrics(self) -> list:
        """Keras's: after compile, the loss tracker (a metric named "loss") and the
        compiled metrics (one named "compile_metrics" holding them in ``metrics``), whose
        ``result()`` is the value of the last fit or evaluate; then the metric objects
        the layers hold."""
        from kcompile.models.tracked_metrics import compiled_metrics

        tracked = compiled_metrics(self) if self.compiled else []
        return tracked + [m for m in Layer.metrics.fget(self) if m not in tracked]

    def get_metrics_result(self) -> dict[str, Any]:
        """Keras's: each metric's current result by name (the compiled metrics' own
        names, as fit's logs show them)."""
        results: dict[str, Any] = {}
        for metric in self.metrics:
            value = metric.result()
            if isinstance(value, dict):
                results.update(value)
            else:
                results[metric.name] = value
        return results

    # --- Keras's configs -----------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """Keras's: a functional model's layers and connections (as ``to_json`` and
        ``.keras`` files hold them); a subclassed model's name and trainable."""
        if self._subclassed or not self.built:
            return Layer.get_config(self)
        from kcompile.saving.saving_lib import model_config

        with internals.model_calls(self):
            return model_config(self)["config"]

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict | None = None) -> Model:
        """Keras's: a functional model from ``get_config``'s dict (kcompile's or one real
        Keras wrote); a subclass from its constructor's arguments."""
        functional = all(k in config for k in ("name", "layers", "input_layers", "output_layers"))
        if functional and (cls is Model or not internals.keras_style_call(cls.__new__(cls))):
            from kcompile.saving.saving_lib import model_from_config

            with_class = {"class_name": "Functional", "config": config}
            return model_from_config(with_class, custom_objects)
        try:
            return cls(**config)
        except TypeError as e:
            raise TypeError(
                "Unable to revive model from config. When overriding the `get_config()` "
                "method, make sure that the returned config contains all items used as "
                f"arguments in the constructor to {cls}, which is the default behavior. "
                f"Received config={config}. Error encountered during deserialization: {e}"
            ) from None

    def to_json(self, **kwargs: Any) -> str:
        """Keras's: the model's serialized config as JSON (``model_from_json`` reads it;
        so does real Keras)."""
        import json

        from kcompile.saving.serialization_lib import serialize_keras_object

        with internals.model_calls(self):
            return json.dumps(serialize_keras_object(self), **kwargs)

    def get_build_config(self) -> dict[str, Any] | None:
        """Keras's: a functional model is built by its Inputs (``{"input_shape": None}``); a
        subclassed model by the shapes it was built with."""
        if not self.built:
            return None
        if self._subclassed:
            return {"input_shape": self.input_shape}
        return {"input_shape": None}

    def build_from_config(self, config: dict[str, Any] | None) -> None:
        if not config or self.built:
            return
        shape = config.get("input_shape")
        if shape is not None:
            self.build(_tuple_shapes(shape))

    def get_compile_config(self) -> dict[str, Any]:
        """Keras's: ``compile``'s arguments, serialized ({} before compile)."""
        if not self.compiled or not hasattr(self, "_compile_args"):
            return {}
        from kcompile.saving.serialization_lib import serialize_dict

        return serialize_dict(self._compile_args)

    def compile_from_config(self, config: dict[str, Any]) -> None:
        """Keras's: ``compile`` again with ``get_compile_config``'s arguments (a Keras
        model's too); the optimizer's state is made for the model's weights."""
        if type(self).compile is not Model.compile:
            import warnings

            warnings.warn(
                "`compile()` was not called as part of model loading because the model's "
                "`compile()` method is custom. All subclassed Models that have `compile()` "
                "overridden should also override `get_compile_config()` and "
                "`compile_from_config(config)`. Alternatively, you can call `compile()` "
                "manually after loading.",
                stacklevel=2,
            )
            return
        from kcompile.saving.serialization_lib import deserialize_keras_object

        arguments = deserialize_keras_object(config)
        arguments = {k: v for k, v in arguments.items() if k != "auto_scale_loss"}
        self.compile(**arguments)
        if self.built:
            self.optimizer.build(self.trainable_weights)

    def get_quantization_layer_structure(self, mode: Any = None) -> None:
        """Keras's hook for structure-aware quantization (GPTQ/AWQ, which kcompile
        refuses): None, as Keras's default."""
        return None

    def quantize(self, mode: Any = None, config: Any = None, filters: Any = None, **kwargs):
        """Keras's: each leaf layer (passing ``filters``) quantized in place; a layer
        that does not quantize warns and stays in float. kcompile compiles ``"int8"`` and
        ``"int4"``; the other modes are refused naming why (``kcompile.quantizers``). Beyond Keras,
        ``convolutions=True`` quantizes Conv1D and Conv2D layers to int8 too
        (docs/quantization.md)."""
        from kcompile.models.quantize import quantize_model

        kwargs.pop("type_check", None)
        convolutions = kwargs.pop("convolutions", False)
        if kwargs:
            raise ValueError(
                f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}"
            )
        quantize_model(self, mode, config, filters, convolutions=convolutions)


def _tuple_shapes(shape: Any) -> Any:
    if _is_shape_list(shape):
        return [tuple(s) for s in shape]
    return tuple(shape)


__all__ = ["InputLayer", "Model"]
