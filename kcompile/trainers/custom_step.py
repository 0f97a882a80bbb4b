"""A model's own ``train_step`` / ``test_step`` / ``predict_step``, traced into one
compiled step.

Keras 3 lets a model override its steps; kcompile traces the override as it traces a
layer's ``call``: the batch arrives as traced tensors, ``self(x, training=True)``,
``compute_loss``, ``keras.ops``, the gradients (``kcompile.GradientTape`` or
``kcompile.value_and_grad``, see ``trainers.gradients``), ``optimizer.apply`` and the
metrics' ``update_state`` all add IR to the step's graph. Two styles, as Keras's
backends have them:

- stateful (TensorFlow's and PyTorch's): ``train_step(self, data)`` returns the logs;
  ``optimizer.apply`` and ``variable.assign`` update the weights;
- stateless (JAX's): ``train_step(self, state, data)`` gets ``(trainable_variables,
  non_trainable_variables, optimizer_variables, metrics_variables)`` as tensors and
  returns ``(logs, new_state)``; ``stateless_call`` and ``optimizer.stateless_apply``.

The step's results: every weight and optimizer slot it updates (written back in place),
and its logs. A log that is a metric's ``result()`` is that metric's running value over
the epoch: its statistics are step results summed by the running logs, as the built-in
steps' metrics are (so kcompile's metrics hold no variables: ``metrics_variables`` is
empty). Any other log is a scalar tensor, and the epoch reports its last value, as
Keras's logs are those of the last batch.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kcompile import tree
from kcompile.backend.symbolic import TracedTensor, tracing
from kcompile.backend.variables import Variable, stable_array
from kcompile.ir import DType, Graph, TensorType, Value
from kcompile.ir import build as B
from kcompile.layers.layer import TraceContext
from kcompile.ops.core import Builder

LAST = "last/"  # a log reported as its value at the epoch's last step
COUNTER = "step/counter"  # the custom step's own count: random draws are keyed by it
STEP_METHODS = {"train": "train_step", "eval": "test_step", "predict": "predict_step"}


class MetricResult:
    """What ``metric.result()`` gives inside a traced step: the metric's running value,
    which the running logs compute after the step from its summed statistics. It can be
    returned in the logs, not computed with."""

    def __init__(self, metric: Any) -> None:
        self.metric = metric

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"{self.metric.name}.result() inside a compiled step is the metric's "
            "running value over the epoch, which kcompile computes after each step: return "
            "it in the logs; to compute with this batch's value, use the value you passed "
            "to update_state"
        )

    __array__ = __float__ = __bool__ = __add__ = __radd__ = __mul__ = __rmul__ = _refuse
    __sub__ = __rsub__ = __truediv__ = __rtruediv__ = _refuse

    def __repr__(self) -> str:
        return f"<running result of metric {self.metric.name}>"


@dataclass
class OptimizerState:
    """One optimizer's arrays in the step: its inputs by name, what it bound them to."""

    prefix: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


class StepTrace(TraceContext):
    """Tracing a model's own step: the TraceContext a layer's call gets, which also
    records metric updates and optimizer applications."""

    records_metrics = True

    def __init__(self, graph: Graph, training: bool, counter: np.ndarray, model: Any) -> None:
        super().__init__(graph, training)
        self.model = model
        self.counter = counter
        self.bindings: dict[str, np.ndarray] = {}  # step inputs -> the arrays bound to them
        self.outputs: dict[str, Value] = {}  # updated state (optimizer slots), by input name
        self.metric_stats: dict[int, tuple[Any, dict[str, Value]]] = {}
        self.optimizers: dict[int, OptimizerState] = {}

    # --- the step counter (random draws) ---------------------------------------------

    def step_counter(self) -> Value:
        try:
            return self.graph.input(COUNTER)
        except KeyError:
            self.bindings[COUNTER] = self.counter
            return self.graph.add_input(COUNTER, TensorType(DType.i32, ()), "opt")

    # --- values -------------------------------------------------------------------------

    def value(self, x: Any) -> Value:
        if isinstance(x, Variable):
            return self.weight(x)
        if isinstance(x, TracedTensor):
            return x.value
        return Builder(self.graph, self).value(x)

    def f32(self, x: Any) -> Value:
        return B.cast(self.value(x), DType.f32)

    # --- metrics ----------------------------------------------------------------------------

    def update_metric(self, metric: Any, stats: Callable[[], dict[str, Value]]) -> None:
        """Add this batch's statistics of ``metric`` (``stats()``, traced now) to the step's."""
        with self.graph.layer_scope(f"metrics/{metric.name}"):
            new = stats()
        entry = self.metric_stats.get(id(metric))
        if entry is None:
            self.metric_stats[id(metric)] = (metric, dict(new))
            return
        old = entry[1]
        for stat, value in new.items():
            old[stat] = old[stat] + value if stat in old else value

    def metric_result(self, metric: Any) -> MetricResult:
        return MetricResult(metric)

    def stats_of(self, metric: Any) -> dict[str, Value]:
        entry = self.metric_stats.get(id(metric))
        if entry is not None:
            return entry[1]
        return {stat: B.const(self.graph, 0.0) for stat in metric.stat_names}

    # --- optimizers -------------------------------------------------------------------------

    def _optimizer(self, optimizer: Any) -> OptimizerState:
        state = self.optimizers.get(id(optimizer))
        if state is None:
            # The model's optimizer keeps the names the built-in steps give its arrays; a
            # second one (a GAN's) gets its own prefix.
            prefix = (
                "" if optimizer is self.model.optimizer else f"optimizer{len(self.optimizers)}/"
            )
            state = self.optimizers[id(optimizer)] = OptimizerState(prefix)
        return state

    def _full_name(self, optimizer, name: str) -> str:
        """The step's name of an optimizer array: its slots by their paths; its iteration
        count and learning rate prefixed but for the model's own optimizer."""
        if name in ("iterations", "learning_rate"):
            return f"{self._optimizer(optimizer).prefix}{name}"
        return name

    def _optimizer_input(self, optimizer, name: str, array: np.ndarray) -> Value:
        full = self._full_name(optimizer, name)
        try:
            return self.graph.input(full)
        except KeyError:
            self.bindings[full] = array
            dtype = DType.i32 if array.dtype == np.int32 else DType.f32
            return self.graph.add_input(full, TensorType(dtype, array.shape), "opt")

    def _optimizer_output(self, optimizer, name: str, value: Value) -> None:
        self.outputs[self._full_name(optimizer, name)] = value

    def apply_optimizer(self, optimizer: Any, grads: list, variables: list[Variable]) -> None:
        """``optimizer.apply(grads, variables)``: the update traced, each weight's new value
        recorded as its assignment, the slots' as the step's results."""
        variables = _variables(optimizer, variables)
        if len(grads) != len(variables):
            raise ValueError(
                f"{optimizer.name}.apply: {len(grads)} gradients for {len(variables)} variables"
            )
        optimizer.build(variables)
        params = [
            (var, self.weight(var), self._gradient(g, var)) for g, var in zip(grads, variables)
        ]
        updates = self._traced_update(optimizer, params, self._slot_reader(optimizer))
        for var in variables:
            self.state_updates[var] = updates.pop(var.path)
        for name, value in updates.items():
            self._optimizer_output(optimizer, name, value)

    def stateless_apply(
        self, optimizer: Any, optimizer_variables: list, grads: list, variables: list
    ) -> tuple[list, list]:
        """JAX's ``optimizer.stateless_apply``: (new trainable values, new optimizer
        variables) from the given ones, in ``optimizer.variables``'s order."""
        model_vars = list(self.model.trainable_variables)
        if len(variables) != len(model_vars) or len(grads) != len(model_vars):
            raise ValueError(
                f"{optimizer.name}.stateless_apply: expected {len(model_vars)} gradients and "
                f"trainable values (the model's trainable_variables), got {len(grads)} and "
                f"{len(variables)}"
            )
        names = optimizer_variable_names(optimizer, model_vars)
        if len(optimizer_variables) != len(names):
            raise ValueError(
                f"{optimizer.name}.stateless_apply: expected {len(names)} optimizer variables "
                f"(optimizer.variables), got {len(optimizer_variables)}"
            )
        given = {
            n: self.value(v) if n == "iterations" else self.f32(v)
            for n, v in zip(names, optimizer_variables)
        }
        params = [
            (var, self.f32(w), self._gradient(g, var))
            for var, w, g in zip(model_vars, variables, grads)
        ]
        updates = self._traced_update(optimizer, params, given.__getitem__, given)
        new_values = [TracedTensor(updates.pop(var.path)) for var in model_vars]
        new_opt = [TracedTensor(updates.get(n, given[n])) for n in names]
        return new_values, new_opt

    def _gradient(self, g: Any, var: Variable) -> Value:
        if g is None:
            raise ValueError(f"no gradient for variable {var.path}")
        value = self.f32(g)
        if value.shape != var.shape:
            raise ValueError(f"gradient of shape {value.shape} for variable {var.path} {var.shape}")
        return value

    def optimizer_array(self, optimizer, path: str) -> Value:
        """The step's input of the optimizer's slot or state array ``path`` (a loss
        scale read by ``scale_loss``)."""
        return self._optimizer_input(optimizer, path, optimizer.slots[path])

    def _slot_reader(self, optimizer) -> Callable[[str], Value]:
        return lambda path: self.optimizer_array(optimizer, path)

    def _traced_update(self, optimizer, params, slot_value, given: dict | None = None) -> dict:
        if given is not None:
            iterations = given["iterations"]
        else:
            iterations = self._optimizer_input(optimizer, "iterations", optimizer._iterations)
        if optimizer.schedule is not None:
            lr = optimizer.step_learning_rate(self.graph, iterations)
        elif given is not None:
            lr = given["learning_rate"]
        else:
            lr = self._optimizer_input(optimizer, "learning_rate", optimizer._learning_rate)
        with self.graph.layer_scope("optimizer"):
            return optimizer.apply_ir(params, slot_value, lr, iterations)


def _variables(optimizer, variables) -> list[Variable]:
    if variables is None:
        variables = getattr(optimizer, "_built_variables", None)
        if variables is None:
            raise ValueError(
                f"{optimizer.name}.apply(grads): give the variables (optimizer.apply(grads, "
                "model.trainable_variables)); the optimizer was not built with any"
            )
    variables = list(variables)
    for var in variables:
        if not isinstance(var, Variable):
            raise TypeError(f"optimizer.apply: expected variables, got {var!r}")
    return variables


def optimizer_variable_names(optimizer, variables: list[Variable]) -> list[str]:
    """The names of ``optimizer.variables`` once built for ``variables``: the iteration
    count, the learning rate, then each variable's slots."""
    optimizer.build(variables)
    return ["iterations", "learning_rate", *optimizer.slots]


# --- the trace -------------------------------------------------------------------------------


def uses_state(method: Callable) -> bool:
    """Whether a step override is JAX's stateless form ``step(self, state, data)``."""
    params = [
        p
        for p in inspect.signature(method).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return len(params) >= 2


@dataclass(frozen=True)
class DataLeaf:
    """One array of the batch a step is traced for: its input's name and type."""

    name: str
    type: TensorType


@dataclass
class TracedCustomStep:
    graph: Graph
    bindings: dict[str, np.ndarray]
    metrics: list  # (log key, metric) whose running value is a log
    log_keys: list[str]
    structure: Any = None  # predict: the structure of the step's outputs


def trace_custom_step(
    model: Any, kind: str, data: Any, counter: np.ndarray, record=None
) -> TracedCustomStep:
    """The step ``kind`` (train, eval, predict) of ``model``, its own override or Keras's
    default written with the same API, traced for ``data``: a structure of
    ``DataLeaf`` leaves, which arrive as traced tensors."""
    graph = Graph(STEP_METHODS[kind])
    ctx = StepTrace(graph, kind == "train", counter, model)
    traced = tree.map_structure(
        lambda leaf: TracedTensor(graph.add_input(leaf.name, leaf.type, "data")),
        data,
        none_is_leaf=False,
    )
    method = getattr(model, STEP_METHODS[kind])
    stateless = uses_state(method)
    try:
        with tracing(ctx):
            out = method(_state(ctx, model, kind), traced) if stateless else method(traced)
    except Exception as error:
        backend = backend_used(error)
        if backend is None:
            raise
        raise NotImplementedError(
            f"model '{model.name}'.{STEP_METHODS[kind]} differentiates with {backend}, which "
            "cannot see kcompile's trace: kcompile compiles the step itself. Write the "
            "gradients with kcompile.GradientTape (for tf.GradientTape or loss.backward()) "
            "or kcompile.value_and_grad (for jax.value_and_grad); see "
            "docs/training-loop.md, 'A model's own train_step'"
        ) from error
    if kind == "predict":
        traced_step = _predict_outputs(ctx, out)
    else:
        traced_step = _step_outputs(ctx, model, kind, out, stateless)
    for var in ctx.weights:
        ctx.bindings[var.path] = var.value
    if record:
        record("traced", graph)
    return traced_step


def _step_outputs(ctx: StepTrace, model, kind: str, out, stateless: bool) -> TracedCustomStep:
    """A train or test step's results: its logs, then every state it updates."""
    graph = ctx.graph
    if stateless:
        if not (isinstance(out, tuple | list) and len(out) == 2):
            raise TypeError(
                f"model '{model.name}': a stateless {STEP_METHODS[kind]}(state, data) returns "
                f"(logs, state), got {type(out).__name__}"
            )
        out, state = out
        _commit_state(ctx, model, kind, state)
    outputs, metrics, keys = _log_outputs(ctx, model, kind, out)
    if kind == "train":
        counter_value = ctx.step_counter()
        ctx.outputs[COUNTER] = counter_value + B.const(graph, 1, DType.i32)
    graph.set_outputs(outputs + _state_outputs(ctx))
    return TracedCustomStep(graph, ctx.bindings, metrics, keys)


_BACKENDS = {"jax": "JAX", "tensorflow": "TensorFlow", "torch": "PyTorch"}


def backend_used(error: BaseException) -> str | None:
    """The backend a failed step was written for: an error raised inside one, its import
    failing, or PyTorch's ``loss.backward()`` on a traced tensor; None for any other."""
    if isinstance(error, ModuleNotFoundError) and error.name:
        return _BACKENDS.get(error.name.split(".")[0])
    if isinstance(error, AttributeError) and "'backward'" in str(error):
        return _BACKENDS["torch"]
    tb = error.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        found = _BACKENDS.get(module.split(".")[0])
        if found:
            return found
        tb = tb.tb_next
    return None


def _state(ctx: StepTrace, model, kind: str) -> tuple:
    """JAX's step state as traced tensors: trainable, non-trainable, optimizer and
    metrics variables (kcompile's metrics keep theirs in the running logs: none)."""
    trainable = [TracedTensor(ctx.weight(v)) for v in model.trainable_variables]
    non_trainable = [TracedTensor(ctx.weight(v)) for v in model.non_trainable_variables]
    if kind != "train":
        return trainable, non_trainable, []
    optimizer = model.optimizer
    names = optimizer_variable_names(optimizer, list(model.trainable_variables))
    arrays = [optimizer._iterations, optimizer._learning_rate, *optimizer.slots.values()]
    opt = [TracedTensor(ctx._optimizer_input(optimizer, n, a)) for n, a in zip(names, arrays)]
    return trainable, non_trainable, opt, []


def _commit_state(ctx: StepTrace, model, kind: str, state) -> None:
    """The new state a stateless step returned, written as the step's updates."""
    expected = 4 if kind == "train" else 3
    if not isinstance(state, tuple | list) or len(state) != expected:
        raise TypeError(
            f"model '{model.name}': {STEP_METHODS[kind]} must return (logs, state) with a "
            f"state of {expected} lists, as it was given"
        )
    groups = [list(model.trainable_variables), list(model.non_trainable_variables)]
    for variables, values in zip(groups, state[:2]):
        if len(values) != len(variables):
            raise ValueError(
                f"model '{model.name}': the returned state has {len(values)} values for "
                f"{len(variables)} variables"
            )
        for var, value in zip(variables, values):
            new = ctx.f32(value)
            if new is not ctx.weights.get(var):
                ctx.state_updates[var] = new
    if kind == "train":
        optimizer = model.optimizer
        names = optimizer_variable_names(optimizer, list(model.trainable_variables))
        for name, value in zip(names, state[2]):
            v = ctx.value(value)
            if v is not ctx.graph.input(ctx._full_name(optimizer, name)):
                ctx._optimizer_output(optimizer, name, v)


def _log_outputs(ctx: StepTrace, model, kind: str, logs) -> tuple[list, list, list[str]]:
    """The step's logs as results: each metric result's statistics (summed over the epoch
    by the running logs) and each other scalar as its value (the last one reported)."""
    if logs is None:
        logs = {}
    if not isinstance(logs, dict):
        raise TypeError(
            f"model '{model.name}': {STEP_METHODS[kind]} must return a dict of logs, got "
            f"{type(logs).__name__}"
        )
    outputs, metrics, keys = [], [], []
    for key, value in _flat_logs(logs).items():
        keys.append(key)
        if isinstance(value, MetricResult):
            for stat, v in ctx.stats_of(value.metric).items():
                outputs.append((f"metric/{key}/{stat}", v))
            metrics.append((key, value.metric))
            continue
        v = ctx.f32(value)
        if v.rank != 0:
            raise ValueError(
                f"model '{model.name}': log {key!r} of {STEP_METHODS[kind]} has shape "
                f"{value.shape}; kcompile's logs are scalars"
            )
        outputs.append((f"{LAST}{key}", v))
    return outputs, metrics, keys


def _flat_logs(logs: dict) -> dict:
    """Keras flattens a dict among the logs (``compile_metrics``'s result) into them."""
    flat = {}
    for key, value in logs.items():
        if isinstance(value, dict):
            flat.update(_flat_logs(value))
        else:
            flat[str(key)] = value
    return flat


def _state_outputs(ctx: StepTrace) -> list[tuple[str, Value]]:
    outputs = []
    for var, value in ctx.state_updates.items():
        if var not in ctx.weights:  # assigned, never read: still bound to be written
            ctx.weights[var] = ctx.graph.add_input(
                var.path, TensorType(DType.f32, var.shape), "state"
            )
        outputs.append((var.path, value))
    return outputs + list(ctx.outputs.items())


def _predict_outputs(ctx: StepTrace, out) -> TracedCustomStep:
    """predict_step's results ``out/0``, ``out/1``, ... and the structure they fill."""
    leaves = tree.flatten(out)
    outputs = [(f"out/{i}", ctx.value(leaf)) for i, leaf in enumerate(leaves)]
    ctx.graph.set_outputs(outputs + _state_outputs(ctx))
    return TracedCustomStep(ctx.graph, ctx.bindings, [], [], out)


def new_counter() -> np.ndarray:
    return stable_array(np.int32(0), np.int32)
