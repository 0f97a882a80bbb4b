"""Keras's reduction metrics: ``Sum`` and ``Mean`` of given values (a custom training
loop's trackers), and ``MeanMetricWrapper``, the running mean of a per-sample function,
with the classes made from one function of (y_true, y_pred)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from kcompile.ir import DType, Graph, Interpreter, TensorType, Value
from kcompile.ir import build as B
from kcompile.losses.loss import squeeze_or_expand_to_same_rank, traced_call
from kcompile.metrics.metric import Metric, _bind, _f


def samplewise_values(
    values: Value, sample_weight: Value | None, reduce_fn
) -> tuple[Value, Value | None]:
    """Keras's ``reduce_to_samplewise_values``: values weighted and reduced to one per
    sample (``reduce_fn`` over the trailing axes), and the weights reduced alike."""
    values = _f(values)
    if sample_weight is not None:
        sample_weight = _f(sample_weight)
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        if values.rank > sample_weight.rank:
            values = reduce_fn(values, tuple(range(sample_weight.rank, values.rank)))
        sample_weight = B.broadcast_to(sample_weight, values.shape)
        values = values * sample_weight
        if sample_weight.rank > 1:
            sample_weight = reduce_fn(sample_weight, tuple(range(1, sample_weight.rank)))
    if values.rank > 1:
        values = reduce_fn(values, tuple(range(1, values.rank)))
    return values, sample_weight


def run_eagerly(name: str, fn, *arrays: Any) -> dict[str, np.ndarray]:
    """``fn`` (IR values -> named IR values) on concrete arrays, on the reference
    interpreter: how a metric's ``update_state`` runs on numpy arrays."""
    g = Graph(name)
    feeds, inputs = {}, []
    for i, array in enumerate(arrays):
        if array is None:
            inputs.append(None)
            continue
        a = np.asarray(array)
        dtype = DType.i32 if a.dtype.kind in "iub" else DType.f32
        feeds[f"in{i}"] = a.astype(dtype.numpy)
        inputs.append(g.add_input(f"in{i}", TensorType(dtype, a.shape)))
    g.set_outputs(list(fn(*inputs).items()))
    return Interpreter(g).run(feeds)


class _Reduction(Metric):
    """A reduction of the values given to ``update_state(values, sample_weight=None)``."""

    def value_stats(self, values: Value, sample_weight: Value | None = None) -> dict[str, Value]:
        """This metric's statistics of one batch of values, as IR (for compiled steps)."""
        raise NotImplementedError

    def stats(self, y_true, y_pred, sample_weight=None):
        raise TypeError(
            f"metric {self.name}: keras.metrics.{type(self).__name__} takes values "
            "(update_state(values, sample_weight=None)), not (y_true, y_pred): as in Keras, "
            "it is not a compile() metric; wrap a function in MeanMetricWrapper for that"
        )

    def _step_stats(self, ctx, args: tuple, kwargs: dict) -> dict[str, Value]:
        values, sample_weight = _bind(args, kwargs, ("values", "sample_weight"))
        weights = None if sample_weight is None else ctx.value(sample_weight)
        return self.value_stats(ctx.value(values), weights)

    def update_state(self, values, sample_weight=None) -> None:
        from kcompile.backend.symbolic import TracedTensor

        if isinstance(values, TracedTensor) or isinstance(sample_weight, TracedTensor):
            raise NotImplementedError(
                f"metric {self.name}: {type(self).__name__}.update_state on traced tensors "
                "(inside a model's or metric's traced code) is not supported; it runs on "
                "arrays, and compiled steps take its statistics from value_stats"
            )
        out = run_eagerly(self.name, self.value_stats, values, sample_weight)
        for k in self.stat_names:
            self._acc[k] = self._acc[k] + float(out[k])


class Sum(_Reduction):
    """Keras's ``Sum``: the (weighted) sum of every value seen."""

    stat_names = ("total",)
    default_name = "sum"

    def value_stats(self, values, sample_weight=None):
        values, _ = samplewise_values(values, sample_weight, B.reduce_sum)
        return {"total": B.reduce_sum(values)}

    def ratio(self):
        return ("total", ())


class Mean(_Reduction):
    """Keras's ``Mean``: the (weighted) mean of the values seen; each sample (the first
    axis) counts once, or by its weight."""

    default_name = "mean"

    def value_stats(self, values, sample_weight=None):
        values, sample_weight = samplewise_values(values, sample_weight, B.mean)
        if sample_weight is not None:
            count = B.reduce_sum(sample_weight)
        elif values.rank >= 1:
            count = B.numel(values, (0,))
        else:
            count = B.const(values.graph, 1.0)
        return {"total": B.reduce_sum(values), "count": count}


class MeanMetricWrapper(Mean):
    """The mean of a per-sample function over every sample seen: ``fn`` written with
    ``keras.ops`` (a user's function, Keras's metric functions; Keras's ``**kwargs`` are
    passed on to it), traced; or over IR values (``ir=True``, kcompile's own)."""

    # Updated with (y_true, y_pred, sample_weight) inside a model's own step, as any
    # metric of predictions is (Mean's own takes (values, sample_weight)).
    _step_stats = Metric._step_stats

    def __init__(
        self, fn, name: str | None = None, dtype: Any = None, ir: bool = False, **kwargs: Any
    ) -> None:
        self.fn, self._ir, self._fn_kwargs = fn, ir, kwargs
        Metric.__init__(self, name or getattr(fn, "__name__", "mean"), dtype)

    def stats(self, y_true, y_pred, sample_weight=None):
        if self._ir:
            values = self.fn(y_true, y_pred)
        else:
            values = traced_call(lambda t, p: self.fn(t, p, **self._fn_kwargs), y_true, y_pred)
        return Mean.value_stats(self, values, sample_weight)

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        Metric.update_state(self, y_true, y_pred, sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}


def _mean_of(name: str, function, default_name: str, direction: str = "down", **fixed):
    """A Keras metric class: the running mean of a keras.ops function of (y_true, y_pred)."""

    def __init__(
        self, *args: Any, name: str = default_name, dtype: Any = None, **kwargs: Any
    ) -> None:
        if args and isinstance(args[0], str):  # (name, dtype) by position
            name, dtype = (*args, dtype)[:2]
        else:  # Keras's signature puts the options first: TopKCategoricalAccuracy(5, ...)
            if len(args) > len(fixed):
                raise TypeError(f"{type(self).__name__}: too many positional arguments")
            for key, value in zip(fixed, args):
                if key in kwargs:
                    raise TypeError(f"{type(self).__name__}: got multiple values for {key!r}")
                kwargs[key] = value
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in fixed}
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected arguments {sorted(kwargs)}")
        options = {**fixed, **options}
        self._options = options
        MeanMetricWrapper.__init__(self, lambda t, p: function(t, p, **options), name, dtype)

    def get_config(self) -> dict[str, Any]:  # Keras's: the name, dtype, function's options
        return {"name": self.name, "dtype": self.dtype, **self._options}

    return type(
        name,
        (MeanMetricWrapper,),
        {
            "__init__": __init__,
            "get_config": get_config,
            "direction": direction,
            "__doc__": f"Keras's {name}.",
            # The module that names the class (as collections.namedtuple does), so that it
            # prints and pickles as that module's, not as this one's.
            "__module__": sys._getframe(1).f_globals["__name__"],
        },
    )
