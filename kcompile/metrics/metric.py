"""Keras's ``Metric`` base as IR: each batch yields sufficient statistics (f32 scalars),
which the runtime accumulates over an epoch; ``result`` turns them into the value Keras
reports (a running mean, a precision, a recall). A user's subclass, written with
Keras's ``add_variable`` / ``update_state`` / ``result``, is traced into the same form.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.backend.variables import Variable
from kcompile.ir import BATCH, DType, Graph, Interpreter, TensorType, Value
from kcompile.ir import build as B
from kcompile.losses.loss import _broadcast_weights


def _f(y: Value) -> Value:
    return B.cast(y, DType.f32)


def _step_trace():
    """The trace of a model's own train_step, when one is being traced (it records the
    metrics' updates: ``trainers.custom_step``)."""
    from kcompile.backend.symbolic import current_context

    ctx = current_context()
    return ctx if getattr(ctx, "records_metrics", False) else None


def _update_in_step(update_state):
    """``update_state`` that, inside a model's traced train_step, adds this batch's
    statistics to the step's (the running logs sum them over the epoch)."""

    def wrapped(self, *args: Any, **kwargs: Any) -> None:
        ctx = _step_trace()
        if ctx is None:
            return update_state(self, *args, **kwargs)
        ctx.update_metric(self, lambda: self._step_stats(ctx, args, kwargs))

    wrapped.__name__, wrapped.__doc__ = update_state.__name__, update_state.__doc__
    wrapped.__wrapped__ = update_state
    return wrapped


def _result_in_step(result):
    """``result`` that, inside a model's traced train_step, is the metric's running value
    (a ``MetricResult`` the step returns in its logs)."""

    def wrapped(self) -> Any:
        ctx = _step_trace()
        return result(self) if ctx is None else ctx.metric_result(self)

    wrapped.__name__, wrapped.__doc__ = result.__name__, result.__doc__
    wrapped.__wrapped__ = result
    return wrapped


class Metric:
    stat_names: tuple[str, ...] = ("total", "count")
    default_name = "metric"
    direction = "up"  # whether larger is better (EarlyStopping's mode="auto")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # A subclass's own update_state and result (a user's, or kcompile's) also work
        # inside a model's traced train_step.
        super().__init_subclass__(**kwargs)
        for name, wrap in (("update_state", _update_in_step), ("result", _result_in_step)):
            own = cls.__dict__.get(name)
            if own is not None and not hasattr(own, "__wrapped__"):
                setattr(cls, name, wrap(own))

    def __init__(self, name: str | None = None, dtype: Any = None) -> None:
        self.name = name or self.default_name
        self.dtype = "float32"
        self._variables: list[MetricVariable] = []
        if not self._custom:
            self.reset_state()

    # --- a user's subclass: Keras's add_variable / update_state / result --------------

    @property
    def _custom(self) -> bool:
        """A user's Keras-style metric: it defines update_state (with keras.ops) and result."""
        own = getattr(type(self).update_state, "__wrapped__", type(self).update_state)
        base = Metric.update_state.__wrapped__
        return own is not base and not own.__module__.startswith("kcompile.")

    def add_variable(
        self, shape=(), initializer="zeros", dtype=None, aggregation="sum", name=None
    ) -> MetricVariable:
        from kcompile import initializers

        if tuple(shape) != ():
            raise NotImplementedError(
                f"metric {self.name}: only scalar state variables are supported yet"
            )
        name = name or f"variable_{len(self._variables)}"
        value = initializers.get(initializer)(())
        var = MetricVariable(value, f"{self.name}/{name}", trainable=False)
        self._variables.append(var)
        return var

    def add_weight(self, shape=(), initializer="zeros", dtype=None, name=None) -> MetricVariable:
        return self.add_variable(shape, initializer, dtype, name=name)

    @property
    def variables(self) -> list[MetricVariable]:
        return list(self._variables)

    def _traced_stats(
        self, y_true: Value, y_pred: Value, sample_weight: Value | None = None
    ) -> dict[str, Value]:
        """Each state variable's increment over one batch: ``update_state`` traced with
        the variables at zero, which must add to them (``v.assign(v + x)`` or
        ``v.assign_add(x)``); the runtime sums the increments over the epoch."""
        from kcompile.backend.symbolic import TracedTensor

        weights = None if sample_weight is None else TracedTensor(sample_weight)
        args = (TracedTensor(y_true), TracedTensor(y_pred))
        return self._traced_update(y_true.graph, args, {"sample_weight": weights})

    def _traced_update(self, graph: Graph, args: tuple, kwargs: dict) -> dict[str, Value]:
        """``update_state(*args, **kwargs)`` traced into ``graph`` with the variables at
        zero: each variable's increment."""
        from kcompile.backend.symbolic import tracing

        ctx = _MetricTrace(graph, self._variables)
        with tracing(ctx):
            self.update_state(*args, **kwargs)
        stats = {}
        for var in self._variables:
            new = ctx.updates.get(var)
            if new is None:
                stats[var.name] = B.const(graph, 0.0)
            elif ctx.zero[var] in (new.node.inputs if new.node else ()) and new.node.op == "add":
                stats[var.name] = new  # zero + the batch's increment (variables are scalars)
            elif new is ctx.zero[var]:
                stats[var.name] = B.const(graph, 0.0)
            else:
                raise NotImplementedError(
                    f"metric {self.name}: update_state must add to its variables "
                    f"(v.assign(v + x) or v.assign_add(x)); {var.name} is set otherwise"
                )
        return stats

    def _step_stats(self, ctx, args: tuple, kwargs: dict) -> dict[str, Value]:
        """This batch's statistics from ``update_state``'s arguments inside a model's own
        traced step (``ctx``): (y_true, y_pred, sample_weight=None) by default."""
        if self._custom:
            return self._traced_update(ctx.graph, args, kwargs)
        y_true, y_pred, sample_weight = _bind(args, kwargs, ("y_true", "y_pred", "sample_weight"))
        weights = None if sample_weight is None else ctx.value(sample_weight)
        return self.stats(ctx.value(y_true), ctx.value(y_pred), weights)

    def _result_from_sums(self, acc: dict[str, float]) -> float:
        for var in self._variables:
            var.assign(np.float32(acc.get(var.name, 0.0)))
        return float(np.asarray(self.result()))

    def stats(
        self, y_true: Value, y_pred: Value, sample_weight: Value | None = None
    ) -> dict[str, Value]:
        """Each statistic of one batch (its samples weighted by ``sample_weight``)."""
        if self._custom:
            return self._traced_stats(y_true, y_pred, sample_weight)
        raise NotImplementedError

    def ratio(self) -> tuple[str, tuple[str, ...]] | None:
        """The result as data: (numerator statistic, statistics summed below it); None
        when ``result_from`` computes it otherwise (AUC, F1)."""
        return ("total", ("count",))

    def result_from(self, acc: dict[str, float]) -> float:
        if self._custom:
            return self._result_from_sums(acc)
        numerator, below = self.ratio()
        if not below:
            return acc[numerator]
        denominator = sum(acc[s] for s in below)
        return acc[numerator] / denominator if denominator else 0.0

    # --- standalone use, as keras.metrics objects are used ---------------------

    def reset_state(self) -> None:
        self._acc = dict.fromkeys(self.stat_names, 0.0)

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred, dtype=np.float32)
        g = Graph(self.name)
        t_dtype = DType.i32 if y_true.dtype.kind in "iub" else DType.f32
        t = g.add_input("y_true", TensorType(t_dtype, (BATCH, *y_true.shape[1:])))
        p = g.add_input("y_pred", TensorType(DType.f32, (BATCH, *y_pred.shape[1:])))
        feeds = {"y_true": y_true.astype(t_dtype.numpy), "y_pred": y_pred}
        w = None
        if sample_weight is not None:
            weights = np.asarray(sample_weight, np.float32)
            w = g.add_input("sample_weight", TensorType(DType.f32, (BATCH, *weights.shape[1:])))
            feeds["sample_weight"] = np.broadcast_to(weights, (len(y_pred), *weights.shape[1:]))
        g.set_outputs(list(self.stats(t, p, w).items()))
        out = Interpreter(g).run(feeds)
        for k in self.stat_names:
            value = np.asarray(out[k], np.float64)
            self._acc[k] = self._acc[k] + (float(value) if value.ndim == 0 else value)

    def result(self) -> float:
        return self.result_from(self._acc)

    def stateless_update_state(self, metric_variables: list, *args: Any, **kwargs: Any) -> list:
        """JAX's form of ``update_state`` inside a model's traced ``train_step(state,
        data)``: kcompile's metrics keep their statistics in the running logs, not in
        variables, so ``metric_variables`` (empty) come back as they were given."""
        if _step_trace() is None:
            raise NotImplementedError(
                f"metric {self.name}: stateless_update_state runs inside a model's traced "
                "train_step; on arrays, use update_state"
            )
        self.update_state(*args, **kwargs)
        return list(metric_variables)

    def stateless_result(self, metric_variables: list) -> Any:
        """JAX's form of ``result``: inside a traced step, the metric's running value."""
        return self.result()

    def stateless_reset_state(self) -> list:
        return []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Keras's: ``update_state`` with these arguments, then ``result()``."""
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Metric:
        """Keras's: the metric ``get_config`` describes."""
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


Metric.update_state = _update_in_step(Metric.update_state)
Metric.result = _result_in_step(Metric.result)


def _bind(args: tuple, kwargs: dict, names: tuple[str, ...]) -> list:
    """``update_state``'s arguments by position or name, None where not given."""
    values = list(args) + [None] * (len(names) - len(args))
    for i, name in enumerate(names):
        if name in kwargs:
            values[i] = kwargs[name]
    unknown = set(kwargs) - set(names)
    if len(args) > len(names) or unknown:
        raise TypeError(f"update_state takes {', '.join(names)}; got {len(args)} and {unknown}")
    return values


def _element_weights(sample_weight: Value | None, like: Value):
    """Weights for each element of ``like`` (1 without sample weights)."""
    if sample_weight is None:
        return 1.0
    return _broadcast_weights(sample_weight, like)


class MetricVariable(Variable):
    """A metric's state: assignable eagerly, and recorded as an update while traced."""

    def assign(self, value) -> None:
        from kcompile.backend.symbolic import TracedTensor, current_context

        ctx = current_context()
        if isinstance(ctx, _MetricTrace) and self in ctx.zero:
            ctx.updates[self] = ctx.value_of(value)
            return
        if isinstance(value, TracedTensor):
            raise TypeError(f"metric variable {self.path} assigned a traced value outside tracing")
        super().assign(np.asarray(value, np.float32).reshape(self.shape))

    def assign_add(self, value) -> None:
        from kcompile import ops

        self.assign(ops.add(self, value))


class _MetricTrace:
    """Tracing a metric's update_state: its variables read as zero."""

    def __init__(self, graph: Graph, variables: list[MetricVariable]) -> None:
        self.graph = graph
        self.training = False
        self.zero = {v: B.const(graph, 0.0) for v in variables}
        self.updates: dict[MetricVariable, Value] = {}

    def weight(self, var) -> Value:
        if var not in self.zero:
            raise TypeError(f"a metric's update_state read {var.path}, not one of its variables")
        return self.zero[var]

    def value_of(self, x) -> Value:
        from kcompile.ops.core import Builder

        return B.cast(Builder(self.graph, self).value(x), DType.f32)

    def step_counter(self):
        raise NotImplementedError("random numbers inside a metric's update_state")
