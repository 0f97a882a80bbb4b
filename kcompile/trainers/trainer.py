"""A Keras model's compiled steps: ``compile``'s settings, and the train, eval and
predict executables that the training loop (``training_loop``) runs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from kcompile import losses as losses_mod
from kcompile import optimizers as optimizers_mod
from kcompile.backend import session
from kcompile.distribution import active as active_job
from kcompile.distribution.step import DataParallelStep
from kcompile.ir import DType, TensorType
from kcompile.models import graphs as G
from kcompile.passes import PassManager, default_passes
from kcompile.runtime import BACKENDS, make_executable
from kcompile.runtime.program import NativeProgram
from kcompile.trainers import data as D
from kcompile.trainers.logs import RunningLogs


class CompileConfig:
    """What ``compile`` set: the optimizer, each output's loss and metrics (``specs``),
    the backend and steps per native call; the metrics' keys once the steps are traced."""

    def __init__(self, optimizer, specs, backend: str, steps_per_execution: int = 1) -> None:
        self.optimizer = optimizer
        self.steps_per_execution = steps_per_execution
        self.specs: list[G.OutputSpec] = specs
        self.backend = backend
        self.metric_order: list[str] = []


def _step_key(kind: str, label_types=(), input_shapes: tuple = ()) -> tuple:
    """A model's compiled steps are kept by kind, label types, input shapes and whether
    the step runs across the ranks of a data-parallel job (the train step is then two)."""
    return (kind, tuple(label_types), input_shapes, active_job() is not None)


def _per_output(value: Any, names: list[str], what: str, broadcast_list: bool = False) -> list:
    """compile's ``value`` for each output named in ``names``: by key from a dict, one
    per output from a list, else the same for all (``broadcast_list``: a list of
    metrics is the same for all outputs unless it is a list of lists)."""
    if isinstance(value, dict):
        unknown = set(value) - set(names)
        if unknown:
            raise ValueError(f"{what}: unknown outputs {sorted(unknown)}; outputs are {names}")
        return [value.get(n) for n in names]
    if broadcast_list:
        if value is None:
            return [None] * len(names)
        value = list(value) if isinstance(value, list | tuple) else [value]
        if len(names) > 1 and value and all(isinstance(v, list | tuple) for v in value):
            return value
        return [value] * len(names)
    if isinstance(value, list | tuple):
        if len(value) != len(names):
            raise ValueError(f"{what}: the model has {len(names)} outputs, got {len(value)}")
        return list(value)
    return [value] * len(names)


class ModelSteps:
    """A Keras model's compiled steps, the ``StepProvider`` of its training loop: what
    ``compile`` set (``config``), and the train, eval and predict executables, traced and
    compiled on first use, once per kind of step, label types and input shapes.

    It uses the model's public API (``build``, ``inputs``, ``outputs``, ``weights``, ...)
    and ``compiled_inputs``, kcompile's name for what the compiled steps take; the model
    hands it ``pack_outputs``, how predict structures its outputs."""

    def __init__(self, model: Any, pack_outputs: Callable[[list], Any]) -> None:
        self.model = model
        self.pack_outputs = pack_outputs
        self.config: CompileConfig | None = None
        self.executables: dict = {}
        self.metric_objects: dict[str, Any] = {}  # metric key -> its Metric (its direction)
        self.running = RunningLogs()
        self._no_steps = np.zeros((), np.int32)  # the step count of a model never trained
        # Held by every executable of the model while it runs: predict from any thread is
        # safe, and never reads weights while a training step writes them.
        self.lock = threading.RLock()

    # --- compile ------------------------------------------------------------------

    def compile(
        self,
        optimizer: Any,
        loss: Any,
        loss_weights: Any,
        metrics: Any,
        weighted_metrics: Any,
        steps_per_execution: int,
        backend: str,
    ) -> None:
        """``Model.compile``'s settings, checked, for each output; forgets the steps."""
        model = self.model
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
        if not isinstance(steps_per_execution, int | np.integer) or steps_per_execution < 1:
            raise ValueError(
                f"steps_per_execution must be a positive integer, got {steps_per_execution!r}"
            )
        names = model.output_names if model.built else ["output"]
        losses = _per_output(loss, names, "loss")
        weights = _per_output(loss_weights, names, "loss_weights")
        metric_lists = _per_output(metrics, names, "metrics", broadcast_list=True)
        weighted_lists = _per_output(
            weighted_metrics, names, "weighted_metrics", broadcast_list=True
        )
        specs = [
            G.OutputSpec(
                name,
                losses_mod.get(l) if l is not None else None,
                1.0 if w is None else float(w),
                list(m or []),
                list(wm or []),
            )
            for name, l, w, m, wm in zip(names, losses, weights, metric_lists, weighted_lists)
        ]
        self.config = CompileConfig(
            optimizers_mod.get(optimizer), specs, backend, int(steps_per_execution)
        )
        self.executables = {}
        self.running.reset()

    def require_compiled(self, method: str) -> CompileConfig:
        """The compile settings; ``method`` names the call that needs them."""
        if self.config is None:
            raise RuntimeError(f"You must call `compile()` before using the model ({method}).")
        names = self.model.output_names if self.model.built else None
        if names is not None and len(self.config.specs) != len(names):
            self._rebind_specs(names)
        return self.config

    def _rebind_specs(self, names: list[str]) -> None:
        # A deferred-build Sequential learns its output names after compile.
        specs = self.config.specs
        if len(specs) == 1 and len(names) == 1:
            specs[0].name = names[0]
        else:
            raise ValueError("the model's outputs changed since compile; compile again")

    @property
    def metrics_names(self) -> list[str]:
        return ["loss", *(self.config.metric_order if self.config else [])]

    @property
    def steps_per_execution(self) -> int:
        return self.config.steps_per_execution

    # --- building from data -----------------------------------------------------------

    def build_for(self, x: Any) -> None:
        """Build the model from data ``x`` if it was not built yet (Keras's deferred
        build: a Sequential without an Input)."""
        model = self.model
        if model.built:
            return
        if isinstance(x, list | tuple):
            xs = [np.asarray(a) for a in x]
        elif isinstance(x, dict):
            xs = None
        else:
            xs = [np.asarray(x)]
        if xs is None:
            raise ValueError(f"model '{model.name}' is not built yet: give it an Input or data")
        shapes = [(None, *a.shape[1:]) for a in xs]
        model.build(shapes[0] if len(shapes) == 1 else shapes)
        if self.config and self.config.specs and len(self.config.specs) == 1:
            self.config.specs[0].name = model.output_names[0]

    def input_shapes(self, xs: list[np.ndarray]) -> tuple:
        """What the steps are specialized on: the data's shapes (without the batch) when
        an Input leaves a dimension unknown, else nothing (one step for all data)."""
        if not any(t.dynamic for t in self.model.compiled_inputs):
            return ()
        return tuple(tuple(x.shape[1:]) for x in xs)

    def default_label_types(self, input_shapes: tuple = ()) -> list[TensorType]:
        """The labels each output's loss expects (sparse losses: integer class ids), for
        inputs of ``input_shapes`` where an Input leaves a dimension unknown."""
        config = self.require_compiled("default_label_types")
        model = self.model
        if not D.needs_labels(model):
            return []
        if any(t.dynamic for t in model.outputs):
            graph = G.trace_predict(model, input_shapes=input_shapes)
            preds = [v.type for _, v in graph.outputs]
        else:
            preds = [t.ir_type() for t in model.outputs]
        return [
            spec.loss.label_type(pred) if spec.loss else pred
            for spec, pred in zip(config.specs, preds)
        ]

    # --- the executables ---------------------------------------------------------------

    def executable(
        self, kind: str, label_types: tuple = (), input_shapes: tuple = (), fresh: bool = False
    ):
        """The compiled step, made once per kind, label types and (for Inputs with unknown
        dimensions) input shapes: new shapes compile again, as XLA does (the code cache
        makes a shape seen before cheap). ``fresh``: made anew and not kept (an artifact's
        steps prepared for another CPU, ``runtime.prepared.preparing_for``)."""
        if fresh:
            return self._make_executable(kind, list(label_types), input_shapes)
        key = _step_key(kind, label_types, input_shapes)
        exe = self.executables.get(key)
        if exe is None:
            with self.lock:  # two threads' first calls compile it once
                exe = self.executables.get(key)
                if exe is None:
                    exe = self._make_executable(kind, list(label_types), input_shapes)
                    self.executables[key] = exe
        return exe

    def forget_executables(self) -> None:
        """The model's graph changed: its steps are traced again on next use."""
        self.executables = {}

    def _make_executable(self, kind: str, label_types: list, input_shapes: tuple = ()):
        config = self.config
        model = self.model
        backend = config.backend if config else "llvm"
        manager = PassManager(default_passes())
        job = active_job() if kind != "predict" else None
        if job is not None and kind == "train":  # the update after the gradients' sum
            traced, local, apply = self.update_parts(label_types, input_shapes, manager)
            exe = DataParallelStep(local, job, apply)
        else:
            traced = G.trace_step(model, kind, label_types, manager.stage, input_shapes)
            exe = make_executable(traced.graph, backend, manager)
            if job is not None:
                exe = DataParallelStep(exe, job)
        exe.lock = self.lock
        for var in model.weights:
            exe.bind(var.path, var.value)
        if kind == "train":
            for name, array in config.optimizer.state_arrays().items():
                exe.bind(name, array)
        elif "iterations" in [v.name for v in exe.graph.inputs]:
            # random draws outside training (keras.random in a call) are keyed by the
            # training step reached: the same for every predict between two steps (step 0
            # for a model never compiled)
            exe.bind(
                "iterations",
                config.optimizer.state_arrays()["iterations"] if config else self._no_steps,
            )
        self._register_metrics(traced.metrics)
        return exe

    def _register_metrics(self, metrics: list) -> None:
        """How the running logs compute each metric of a traced step: a ratio of its
        summed statistics, or its own ``result_from`` (a user's metric, AUC, F1)."""
        for key, metric in metrics:
            self.metric_objects.setdefault(key, metric)
            ratio = None if metric._custom else metric.ratio()
            if ratio is None:
                self.running.results[key] = metric.result_from
            else:
                self.running.ratios.setdefault(key, ratio)
        if self.config and not self.config.metric_order:
            self.config.metric_order = [k for k, _ in metrics]

    def update_parts(self, label_types, input_shapes: tuple = (), manager=None):
        """The train step in two executables, for data-parallel training: the gradients
        (with the loss and metrics; ``graphs.trace_grad``), then the optimizer's update
        (``graphs.trace_apply``). Returns (the traced gradient step, both executables)."""
        config = self.config
        backend = config.backend if config else "llvm"
        manager = manager or PassManager(default_passes())
        traced = G.trace_step(self.model, "grad", list(label_types), manager.stage, input_shapes)
        local = make_executable(traced.graph, backend, manager)
        apply = make_executable(G.trace_apply(self.model, config.optimizer), backend)
        return traced, local, apply

    # --- the StepProvider protocol -------------------------------------------------------

    @property
    def input_names(self) -> list[str]:
        return self.model.input_names

    @property
    def label_names(self) -> list[str]:
        return G.label_names(self.model)

    def data_for(self, method: str, x: Any, y: Any):
        self.require_compiled(method)
        self.build_for(x)
        return self.labelled(x, y)

    def labelled(self, x: Any, y: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
        xs = D.prepare_inputs(self.model, x)
        return xs, D.prepare_labels(self.model, y, len(xs[0]))

    def inputs_for(self, x: Any) -> list[np.ndarray]:
        self.build_for(x)
        return D.prepare_inputs(self.model, x)

    def step(self, kind: str, xs: list[np.ndarray], ys: list[np.ndarray]):
        label_types = tuple(G.label_type_for(y.dtype, y.shape) for y in ys)
        return self.executable(kind, label_types, self.input_shapes(xs))

    def predict_batch(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        exe = self.executable("predict", (), self.input_shapes(xs))
        out = exe.results(dict(zip(self.input_names, xs)))
        return [
            _in_output_dtype(out[f"out/{n}"], t)
            for n, t in zip(self.model.output_names, self.model.outputs)
        ]

    def predict_on_batch(self, x: Any) -> Any:
        """Keras's ``predict_on_batch``; a batch like one fed before (one input, its
        dtype and shape, contiguous) goes one copy in, one out."""
        model = self.model
        exe = self.executables.get(_step_key("predict"))
        plain = type(x) is np.ndarray and len(model.outputs) == 1 and not D.has_host_stage(model)
        if exe is not None and plain and isinstance(exe, NativeProgram):
            out = exe.call_single(x)
            if out is not None:
                return _in_output_dtype(out, model.outputs[0])
        if not (model.built and D.is_ready_input(model, x)):
            self.build_for(x)
            x = D.prepare_inputs(model, x)
        return self.pack_outputs(self.predict_batch(x if isinstance(x, list) else [x]))

    def epoch_order(self, epoch: int, n: int) -> np.ndarray:
        return session.rng().permutation(n)

    def epoch_finished(self, epoch: int) -> None:
        pass

    def replica_arrays(self) -> list[np.ndarray]:
        """Weights and the optimizer's state (built here, so that every rank lists the
        same arrays)."""
        model = self.model
        arrays = [v.value for v in model.weights]
        optimizer = model.optimizer
        if optimizer is not None and hasattr(optimizer, "state_arrays"):
            optimizer.build(model.trainable_weights)
            arrays += list(optimizer.state_arrays().values())
        return [a for a in arrays if isinstance(a, np.ndarray)]


def _in_output_dtype(array: np.ndarray, tensor: Any) -> np.ndarray:
    """A prediction in its output's dtype: bf16 and f16 outputs (computed held in f32)
    come back as Keras returns them, as bfloat16 (``ml_dtypes``) or float16 arrays."""
    name = str(getattr(tensor, "dtype", "float32"))
    if name not in ("bfloat16", "float16"):
        return array
    return array.astype(DType.from_keras(name).numpy)
