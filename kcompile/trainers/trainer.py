"""compile / fit / evaluate / predict, with Keras's semantics, over compiled step graphs."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from kcompile.backend import session
from kcompile.distribution import active as active_job
from kcompile.distribution import root_writes
from kcompile.distribution.step import DataParallelStep
from kcompile.ir import TensorType
from kcompile.losses import losses as losses_mod
from kcompile.models import graphs as G
from kcompile.optimizers import optimizers as optimizers_mod
from kcompile.passes import PassManager, default_passes
from kcompile.runtime import BACKENDS, make_executable
from kcompile.runtime.program import NativeProgram
from kcompile.trainers import data as D
from kcompile.trainers.logs import RunningLogs, step_columns
from kcompile.trainers.training_loop import TrainingLoop, one_call_at_a_time
from kcompile.utils.atomic import atomic_write


class _Compiled:
    def __init__(self, optimizer, specs, backend: str, steps_per_execution: int = 1) -> None:
        self.optimizer = optimizer
        self.steps_per_execution = steps_per_execution
        self.specs: list[G.OutputSpec] = specs
        self.backend = backend
        self.metric_order: list[str] = []


_CUSTOM_STEPS = ("train_step", "test_step", "predict_step")


def _step_key(kind: str, label_types=(), input_shapes: tuple = ()) -> tuple:
    """A model's compiled steps are kept by kind, label types, input shapes and whether
    the step runs across the ranks of a data-parallel job (the train step is then two)."""
    return (kind, tuple(label_types), input_shapes, active_job() is not None)


def _refuse_custom_steps(model) -> None:
    """Keras 3's custom ``train_step`` is written for one backend (``jax.grad``,
    ``tf.GradientTape`` or ``loss.backward()``); kcompile differentiates the model
    itself, so it cannot run one."""
    for name in _CUSTOM_STEPS:
        if getattr(type(model), name, None) is not None:
            raise NotImplementedError(
                f"model '{model.name}' defines {name}(): a custom {name} is backend-specific "
                "in Keras 3 (jax.grad, tf.GradientTape, loss.backward()) and kcompile cannot "
                "run it; kcompile derives the step from call() and compile(): put the loss in "
                "compile(loss=...) (a function or keras.losses.Loss subclass written with "
                "keras.ops) and the metrics in compile(metrics=...)"
            )


class ModelSteps:
    """A compiled model's steps for the training loop: traced and compiled on first use,
    once per kind of step and label types (``Trainer._executable``)."""

    def __init__(self, model: Trainer) -> None:
        self.model = model

    @property
    def input_names(self) -> list[str]:
        return self.model.input_names

    @property
    def label_names(self) -> list[str]:
        return self.model.label_names

    @property
    def steps_per_execution(self) -> int:
        return self.model._compiled.steps_per_execution

    def data_for(self, method: str, x: Any, y: Any):
        self.model._require_compiled(method)
        self.model._build_for(x)
        return self.labelled(x, y)

    def labelled(self, x: Any, y: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
        xs = D.prepare_inputs(self.model, x)
        return xs, D.prepare_labels(self.model, y, len(xs[0]))

    def inputs_for(self, x: Any) -> list[np.ndarray]:
        self.model._build_for(x)
        return D.prepare_inputs(self.model, x)

    def step(self, kind: str, xs: list[np.ndarray], ys: list[np.ndarray]):
        label_types = tuple(G.label_type_for(y.dtype, y.shape) for y in ys)
        return self.model._executable(kind, label_types, self.model._input_shapes(xs))

    def predict_batch(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        exe = self.model._executable("predict", (), self.model._input_shapes(xs))
        out = exe.results(dict(zip(self.input_names, xs)))
        return [out[f"out/{n}"] for n in self.model.output_names]

    def epoch_order(self, epoch: int, n: int) -> np.ndarray:
        return session.rng().permutation(n)

    def epoch_finished(self, epoch: int) -> None:
        pass


class Trainer(TrainingLoop):
    def __init__(self) -> None:
        self._init_loop(ModelSteps(self), RunningLogs())
        self._compiled: _Compiled | None = None
        self.stop_training = False
        self.history = None
        self._executables: dict = {}
        self._metric_objects: dict[str, Any] = {}

    def _reset_compiled_graphs(self) -> None:
        self._executables = {}

    # --- compile ------------------------------------------------------------

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
        backend: str = "llvm",
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise TypeError(f"compile: unexpected arguments {sorted(kwargs)}")
        _refuse_custom_steps(self)
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
        if not isinstance(steps_per_execution, int | np.integer) or steps_per_execution < 1:
            raise ValueError(
                f"steps_per_execution must be a positive integer, got {steps_per_execution!r}"
            )
        names = self.output_names if self.built else ["output"]
        losses = self._per_output(loss, names, "loss")
        weights = self._per_output(loss_weights, names, "loss_weights")
        metric_lists = self._per_output(metrics, names, "metrics", broadcast_list=True)
        weighted_lists = self._per_output(
            weighted_metrics, names, "weighted_metrics", broadcast_list=True
        )
        specs = []
        for name, l, w, m, wm in zip(names, losses, weights, metric_lists, weighted_lists):
            specs.append(
                G.OutputSpec(
                    name,
                    losses_mod.get(l) if l is not None else None,
                    1.0 if w is None else float(w),
                    list(m or []),
                    list(wm or []),
                )
            )
        self._compiled = _Compiled(
            optimizers_mod.get(optimizer), specs, backend, int(steps_per_execution)
        )
        self._executables = {}
        self.reset_metrics()

    def _per_output(
        self, value: Any, names: list[str], what: str, broadcast_list: bool = False
    ) -> list:
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

    @property
    def optimizer(self):
        return self._compiled.optimizer if self._compiled else None

    @property
    def compiled(self) -> bool:
        return self._compiled is not None

    def _require_compiled(self, method: str) -> _Compiled:
        if self._compiled is None:
            raise RuntimeError(f"You must call `compile()` before using the model ({method}).")
        if self.built and len(self._compiled.specs) != len(self.output_names):
            self._rebind_specs()
        return self._compiled

    def _rebind_specs(self) -> None:
        # A deferred-build Sequential learns its output names after compile.
        specs = self._compiled.specs
        if len(specs) == 1 and len(self.output_names) == 1:
            specs[0].name = self.output_names[0]
        else:
            raise ValueError("the model's outputs changed since compile; compile again")

    # --- the step graphs ----------------------------------------------------

    def _build_from_data(self, xs: list[np.ndarray] | None = None) -> None:
        if self.built:
            return
        if xs is None:
            raise ValueError(f"model '{self.name}' is not built yet: give it an Input or data")
        shapes = [(None, *x.shape[1:]) for x in xs]
        self.build(shapes[0] if len(shapes) == 1 else shapes)
        if self._compiled and self._compiled.specs and len(self._compiled.specs) == 1:
            self._compiled.specs[0].name = self.output_names[0]

    def default_label_types(self, input_shapes: tuple = ()) -> list[TensorType]:
        """The labels each output's loss expects (sparse losses: integer class ids), for
        inputs of ``input_shapes`` where an Input leaves a dimension unknown."""
        compiled = self._require_compiled("default_label_types")
        if any(t.dynamic for t in self.outputs):
            graph = G.trace_predict(self, input_shapes=input_shapes)
            preds = [v.type for _, v in graph.outputs]
        else:
            preds = [t.ir_type() for t in self.outputs]
        return [
            spec.loss.label_type(pred) if spec.loss else pred
            for spec, pred in zip(compiled.specs, preds)
        ]

    def _input_shapes(self, xs: list[np.ndarray]) -> tuple:
        """What the steps are specialized on: the data's shapes (without the batch) when
        an Input leaves a dimension unknown, else nothing (one step for all data)."""
        if not any(t.dynamic for t in getattr(self, "_compiled_inputs", self.inputs)):
            return ()
        return tuple(tuple(x.shape[1:]) for x in xs)

    def step_graph(
        self, kind: str, label_types: list[TensorType] | None = None, input_shapes: tuple = ()
    ):
        """The traced IR graph of ``predict``, ``eval`` or ``train`` (not yet optimized);
        ``input_shapes`` sizes the dimensions the Inputs leave unknown."""
        return G.trace_step(self, kind, label_types, input_shapes=input_shapes).graph

    def _executable(self, kind: str, label_types: tuple = (), input_shapes: tuple = ()):
        """The compiled step, made once per kind, label types and (for Inputs with unknown
        dimensions) input shapes: new shapes compile again, as XLA does (the code cache
        makes a shape seen before cheap)."""
        key = _step_key(kind, label_types, input_shapes)
        exe = self._executables.get(key)
        if exe is None:
            with self._steps_lock:  # two threads' first calls compile it once
                exe = self._executables.get(key)
                if exe is None:
                    exe = self._make_executable(kind, list(label_types), input_shapes)
                    self._executables[key] = exe
        return exe

    def _make_executable(self, kind: str, label_types: list, input_shapes: tuple = ()):
        compiled = self._compiled
        backend = compiled.backend if compiled else "llvm"
        manager = PassManager(default_passes())
        job = active_job() if kind != "predict" else None
        if job is not None and kind == "train":  # the update after the gradients' sum
            traced, local, apply = self._update_parts(label_types, input_shapes, manager)
            exe = DataParallelStep(local, job, apply)
        else:
            traced = G.trace_step(self, kind, label_types, manager.stage, input_shapes)
            exe = make_executable(traced.graph, backend, manager)
            if job is not None:
                exe = DataParallelStep(exe, job)
        metrics = traced.metrics
        exe.lock = self._steps_lock
        for var in self.weights:
            exe.bind(var.path, var.value)
        if kind == "train":
            for name, array in compiled.optimizer.state_arrays().items():
                exe.bind(name, array)
        elif compiled and "iterations" in [v.name for v in exe.graph.inputs]:
            # random draws outside training (keras.random in a call) are keyed by the
            # training step reached: the same for every predict between two steps
            exe.bind("iterations", compiled.optimizer.state_arrays()["iterations"])
        for key_name, metric in metrics:
            self._metric_objects.setdefault(key_name, metric)
            ratio = None if metric._custom else metric.ratio()
            if ratio is None:  # computed from its sums (a user's metric, AUC, F1)
                self._running.results[key_name] = metric.result_from
            else:
                self._running.ratios.setdefault(key_name, ratio)
        if compiled and not compiled.metric_order:
            compiled.metric_order = [k for k, _ in metrics]
        return exe

    def _update_parts(self, label_types, input_shapes: tuple = (), manager=None):
        """The train step in two executables, for data-parallel training: the gradients
        (with the loss and metrics; ``graphs.trace_grad``), then the optimizer's update
        (``graphs.trace_apply``). Returns (the traced gradient step, both executables)."""
        compiled = self._compiled
        backend = compiled.backend if compiled else "llvm"
        manager = manager or PassManager(default_passes())
        traced = G.trace_step(self, "grad", list(label_types), manager.stage, input_shapes)
        local = make_executable(traced.graph, backend, manager)
        apply = make_executable(G.trace_apply(self, compiled.optimizer), backend)
        return traced, local, apply

    def _run_step(self, kind: str, xs: list[np.ndarray], ys: list[np.ndarray]) -> dict:
        out = self._steps.step(kind, xs, ys).results(self._feeds(xs, ys))
        names, values = step_columns(out)
        self._accumulate(names, values, np.array([len(xs[0])]))
        return self._logs()

    @property
    def label_names(self) -> list[str]:
        """The names of the step graphs' label inputs."""
        return G.label_names(self)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Keras 3's hook: the compiled losses of ``y`` and ``y_pred`` plus the layers'
        added losses. Called with traced tensors when a subclass overrides it (and calls
        ``super().compute_loss(...)``)."""
        from kcompile.backend.symbolic import TracedTensor, current_context

        ctx = current_context()
        if ctx is None or not isinstance(y_pred, TracedTensor | list | tuple):
            raise NotImplementedError("compute_loss runs inside the traced train and eval steps")
        compiled = self._require_compiled("compute_loss")
        ys = [t.value for t in (y if isinstance(y, list | tuple) else [y])]
        preds = [p.value for p in (y_pred if isinstance(y_pred, list | tuple) else [y_pred])]
        total, _ = G.compiled_loss(compiled.specs, ys, preds, ctx.losses, None, ctx.mask_of)
        if total is None:
            raise ValueError(f"model '{self.name}' has no loss to compute")
        return TracedTensor(total)

    # --- metrics --------------------------------------------------------------

    @property
    def metrics_names(self) -> list[str]:
        order = self._compiled.metric_order if self._compiled else []
        return ["loss", *order]

    # --- fit / evaluate / predict -------------------------------------------------

    def _build_for(self, x: Any) -> None:
        """Build the model from ``x`` if it was not built yet."""
        if isinstance(x, list | tuple):
            self._build_from_data([np.asarray(a) for a in x])
        else:
            self._build_from_data([np.asarray(x)] if not isinstance(x, dict) else None)

    @one_call_at_a_time
    def train_on_batch(
        self,
        x: Any,
        y: Any = None,
        sample_weight: Any = None,
        class_weight: Any = None,
        return_dict: bool = False,
    ):
        self._require_compiled("train_on_batch")
        if isinstance(x, list | tuple):
            self._build_from_data([np.asarray(a) for a in x])
        else:
            self._build_from_data([np.asarray(x)] if not isinstance(x, dict) else None)
        xs = D.prepare_inputs(self, x)
        self.reset_metrics()  # as recent Keras 3 trainers do: the logs are this batch's
        ys = D.prepare_labels(self, y, len(xs[0]))
        ys = D.with_sample_weights(ys, sample_weight, class_weight, "train_on_batch")
        logs = self._run_step("train", xs, ys)
        return logs if return_dict else self._flatten_in_order(logs)

    @one_call_at_a_time
    def test_on_batch(
        self, x: Any, y: Any = None, sample_weight: Any = None, return_dict: bool = False
    ):
        self._require_compiled("test_on_batch")
        xs = D.prepare_inputs(self, x)
        self.reset_metrics()
        ys = D.with_sample_weights(
            D.prepare_labels(self, y, len(xs[0])), sample_weight, None, "test_on_batch"
        )
        logs = self._run_step("eval", xs, ys)
        return logs if return_dict else self._flatten_in_order(logs)

    def predict_on_batch(self, x: Any):
        exe = self._executables.get(_step_key("predict"))
        host = getattr(self, "_host", None)  # data the host stage must see first
        if exe is not None and type(x) is np.ndarray and len(self.outputs) == 1 and not host:
            out = exe.call_single(x) if isinstance(exe, NativeProgram) else None
            if out is not None:  # a batch like one fed before: one copy in, one out
                return out
        if not (self.built and D.is_ready_input(self, x)):
            self._build_for(x)
            x = D.prepare_inputs(self, x)
        outs = self._steps.predict_batch(x if isinstance(x, list) else [x])
        return self._pack_outputs(outs)

    # --- weights on disk ------------------------------------------------------------

    @root_writes
    def save_weights(self, filepath: str, overwrite: bool = True) -> None:
        """Weights to Keras 3's ``.weights.h5`` (HDF5, through h5py) or kcompile's
        ``.weights.npz`` (in ``weights`` order, by path), written atomically."""
        filepath = os.fspath(filepath)
        if not filepath.endswith((".weights.npz", ".weights.h5")):
            raise ValueError(
                "save_weights: the file name must end in .weights.h5 (Keras's format) or "
                f".weights.npz, got {filepath!r}"
            )
        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(filepath)
        if filepath.endswith(".weights.h5"):
            from kcompile.saving.saving_lib import save_weights_h5

            save_weights_h5(self, filepath)
            return
        arrays = {f"{i:04d}:{v.path}": v.value for i, v in enumerate(self.weights)}
        atomic_write(filepath, lambda f: np.savez(f, **arrays))

    @root_writes
    def save(self, filepath: str, overwrite: bool = True, **kwargs: Any) -> None:
        """The whole model (architecture, compile settings, weights, optimizer state), in
        Keras 3's ``.keras`` format or kcompile's ``.kcmodel``, written atomically;
        ``keras.models.load_model`` reads both."""
        from kcompile.saving.kcmodel import save_model

        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(filepath)
        if os.fspath(filepath).endswith(".keras"):
            from kcompile.saving.saving_lib import save_keras

            save_keras(self, filepath)
            return
        save_model(self, filepath)

    @root_writes
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

    def load_weights(self, filepath: str, skip_mismatch: bool = False) -> None:
        filepath = os.fspath(filepath)
        if filepath.endswith(".weights.h5"):
            from kcompile.saving.saving_lib import load_weights_h5

            load_weights_h5(self, filepath)
            return
        try:
            with np.load(filepath, allow_pickle=False) as data:
                stored = sorted(data.files)
                arrays = [data[k] for k in stored]
        except (OSError, ValueError) as e:
            raise ValueError(f"{filepath}: not a readable weights file ({e})") from None
        mine = self.weights
        by_path = {key.partition(":")[2]: a for key, a in zip(stored, arrays)}
        if len(by_path) == len(arrays) and set(by_path) == {v.path for v in mine}:
            arrays = [by_path[v.path] for v in mine]  # by name: any order of the layers
        if len(arrays) != len(mine):
            raise ValueError(
                f"{filepath}: holds {len(arrays)} weight arrays, model "
                f"'{self.name}' has {len(mine)}"
            )
        self.set_weights(arrays)
