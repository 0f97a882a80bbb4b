"""Keras metrics as IR: each batch yields sufficient statistics (f32 scalars),
which the runtime accumulates over an epoch; ``result`` turns them into the
value Keras reports (a running mean, a precision, a recall).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.backend import session as backend
from kcompile.backend.keras_tensor import keras_shape
from kcompile.backend.variables import Variable
from kcompile.ir import BATCH, DType, Graph, Interpreter, TensorType, Value
from kcompile.ir import build as B
from kcompile.losses import losses
from kcompile.losses.losses import squeeze_or_expand_to_same_rank


def _f(y: Value) -> Value:
    return B.cast(y, DType.f32)


class Metric:
    stat_names: tuple[str, ...] = ("total", "count")
    default_name = "metric"
    direction = "up"  # whether larger is better (EarlyStopping's mode="auto")

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
        return type(self).update_state is not Metric.update_state

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
        from kcompile.backend.symbolic import TracedTensor, tracing

        graph = y_true.graph
        ctx = _MetricTrace(graph, self._variables)
        with tracing(ctx):
            weights = None if sample_weight is None else TracedTensor(sample_weight)
            self.update_state(TracedTensor(y_true), TracedTensor(y_pred), sample_weight=weights)
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

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


def _element_weights(sample_weight: Value | None, like: Value):
    """Weights for each element of ``like`` (1 without sample weights)."""
    if sample_weight is None:
        return 1.0
    return losses._broadcast_weights(sample_weight, like)


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


class MeanMetricWrapper(Metric):
    """The mean of a per-sample function over every sample seen: ``fn`` written with
    ``keras.ops`` (a user's function, Keras's metric functions), traced; or over IR values
    (``ir=True``, kcompile's own)."""

    def __init__(self, fn, name: str | None = None, ir: bool = False, **kwargs: Any) -> None:
        self.fn, self._ir = fn, ir
        super().__init__(name or getattr(fn, "__name__", "mean"), **kwargs)

    def stats(self, y_true, y_pred, sample_weight=None):
        values = (
            self.fn(y_true, y_pred) if self._ir else losses.traced_call(self.fn, y_true, y_pred)
        )
        values = _f(values)
        if sample_weight is None:
            return {"total": B.reduce_sum(values), "count": B.numel(values)}
        weights = B.broadcast_to(losses._broadcast_weights(sample_weight, values), values.shape)
        return {"total": B.reduce_sum(values * weights), "count": B.reduce_sum(weights)}


def accuracy(y_true: Value, y_pred: Value) -> Value:
    t, p = squeeze_or_expand_to_same_rank(_f(y_true), y_pred)
    return _f(B.eq(t, p))


def binary_accuracy(y_true: Value, y_pred: Value, threshold: float = 0.5) -> Value:
    t, p = squeeze_or_expand_to_same_rank(_f(y_true), y_pred)
    return _f(B.eq(t, _f(B.gt(p, threshold))))


def categorical_accuracy(y_true: Value, y_pred: Value) -> Value:
    return _f(B.eq(B.argmax(y_true, -1), B.argmax(y_pred, -1)))


def sparse_categorical_accuracy(y_true: Value, y_pred: Value) -> Value:
    if y_true.rank == y_pred.rank and y_true.shape[-1] == 1:
        y_true = B.reshape(y_true, y_true.shape[:-1])
    # Keras compares in the prediction's float dtype.
    return _f(B.eq(_f(y_true), _f(B.argmax(y_pred, -1))))


class Accuracy(MeanMetricWrapper):
    def __init__(self, name: str = "accuracy", **kwargs: Any) -> None:
        super().__init__(accuracy, name, ir=True, **kwargs)


class BinaryAccuracy(MeanMetricWrapper):
    def __init__(self, name: str = "binary_accuracy", threshold: float = 0.5, **kwargs: Any):
        self.threshold = threshold
        super().__init__(lambda t, p: binary_accuracy(t, p, threshold), name, ir=True, **kwargs)


class CategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name: str = "categorical_accuracy", **kwargs: Any) -> None:
        super().__init__(categorical_accuracy, name, ir=True, **kwargs)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name: str = "sparse_categorical_accuracy", **kwargs: Any) -> None:
        super().__init__(sparse_categorical_accuracy, name, ir=True, **kwargs)


class _Confusion(Metric):
    """Precision and recall at one threshold; elements are binary decisions."""

    def __init__(
        self,
        thresholds: float | None = None,
        top_k: int | None = None,
        class_id: int | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if top_k is not None or class_id is not None:
            raise NotImplementedError(
                f"{type(self).__name__}: top_k and class_id are not supported yet"
            )
        if isinstance(thresholds, list | tuple):
            raise NotImplementedError(f"{type(self).__name__}: one threshold only")
        self.threshold = 0.5 if thresholds is None else float(thresholds)
        super().__init__(name, **kwargs)

    def stats(self, y_true, y_pred, sample_weight=None):
        t, p = squeeze_or_expand_to_same_rank(_f(y_true), y_pred)
        if t.shape != p.shape:
            raise ValueError(
                f"metric {self.name}: labels of shape {keras_shape(y_true.shape)} do "
                f"not match predictions of shape {keras_shape(y_pred.shape)}"
            )
        pred_pos = _f(B.gt(p, self.threshold))
        true_pos = _f(B.ne(t, 0.0))
        w = _element_weights(sample_weight, p)
        tp = B.reduce_sum(pred_pos * true_pos * w)
        return {"tp": tp, self.other: B.reduce_sum(self.other_mask(pred_pos, true_pos) * w)}

    def ratio(self):
        return ("tp", ("tp", self.other))


class Precision(_Confusion):
    stat_names = ("tp", "fp")
    default_name = "precision"
    other = "fp"

    @staticmethod
    def other_mask(pred_pos, true_pos):
        return pred_pos * (1.0 - true_pos)


class Recall(_Confusion):
    stat_names = ("tp", "fn")
    default_name = "recall"
    other = "fn"

    @staticmethod
    def other_mask(pred_pos, true_pos):
        return (1.0 - pred_pos) * true_pos


class MeanSquaredError(MeanMetricWrapper):
    direction = "down"

    def __init__(self, name: str = "mean_squared_error", **kwargs: Any) -> None:
        super().__init__(losses.MeanSquaredError().per_sample, name, ir=True, **kwargs)


class MeanAbsoluteError(MeanMetricWrapper):
    direction = "down"

    def __init__(self, name: str = "mean_absolute_error", **kwargs: Any) -> None:
        super().__init__(losses.MeanAbsoluteError().per_sample, name, ir=True, **kwargs)


def _mean_of(name: str, function, default_name: str, direction: str = "down", **fixed):
    """A Keras metric class: the running mean of a keras.ops function of (y_true, y_pred)."""

    def __init__(self, name: str = default_name, **kwargs: Any) -> None:
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in fixed}
        options = {**fixed, **options}
        self._options = options
        MeanMetricWrapper.__init__(self, lambda t, p: function(t, p, **options), name, **kwargs)

    def get_config(self) -> dict[str, Any]:  # Keras's: the name and the function's options
        return {"name": self.name, **self._options}

    return type(
        name,
        (MeanMetricWrapper,),
        {
            "__init__": __init__,
            "get_config": get_config,
            "direction": direction,
            "__doc__": f"Keras's {name}.",
        },
    )


def cosine_similarity(y_true, y_pred, axis=-1):
    """Keras's metric (the cosine itself; the loss is its negative)."""
    return -losses.cosine_similarity(y_true, y_pred, axis=axis)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """Whether the true class (one-hot) is among the k highest predictions (ops.in_top_k:
    rank = 1 + the number of strictly higher scores)."""
    from kcompile import ops

    return sparse_top_k_categorical_accuracy(ops.argmax(y_true, axis=-1), y_pred, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    from kcompile import ops

    labels = ops.cast(y_true, "int32")
    if len(labels.shape) == len(y_pred.shape):
        labels = ops.squeeze(labels, -1)
    at_label = ops.take_along_axis(y_pred, ops.expand_dims(labels, -1), axis=-1)
    rank = 1 + ops.sum(ops.cast(ops.greater(y_pred, at_label), "int32"), axis=-1)
    return ops.cast(ops.less_equal(rank, k), "float32")


MeanAbsolutePercentageError = _mean_of(
    "MeanAbsolutePercentageError",
    losses.mean_absolute_percentage_error,
    "mean_absolute_percentage_error",
)
MeanSquaredLogarithmicError = _mean_of(
    "MeanSquaredLogarithmicError",
    losses.mean_squared_logarithmic_error,
    "mean_squared_logarithmic_error",
)
CosineSimilarity = _mean_of(
    "CosineSimilarity", cosine_similarity, "cosine_similarity", "up", axis=-1
)
LogCoshError = _mean_of("LogCoshError", losses.log_cosh, "logcosh")
KLDivergence = _mean_of("KLDivergence", losses.kl_divergence, "kl_divergence")
Poisson = _mean_of("Poisson", losses.poisson, "poisson")
Hinge = _mean_of("Hinge", losses.hinge, "hinge")
SquaredHinge = _mean_of("SquaredHinge", losses.squared_hinge, "squared_hinge")
CategoricalHinge = _mean_of("CategoricalHinge", losses.categorical_hinge, "categorical_hinge")
TopKCategoricalAccuracy = _mean_of(
    "TopKCategoricalAccuracy", top_k_categorical_accuracy, "top_k_categorical_accuracy", "up", k=5
)
SparseTopKCategoricalAccuracy = _mean_of(
    "SparseTopKCategoricalAccuracy",
    sparse_top_k_categorical_accuracy,
    "sparse_top_k_categorical_accuracy",
    "up",
    k=5,
)


class _Count(_Confusion):
    """A count of binary decisions at the threshold (Keras's TruePositives, ...)."""

    def stats(self, y_true, y_pred, sample_weight=None):
        t, p = squeeze_or_expand_to_same_rank(_f(y_true), y_pred)
        pred_pos = _f(B.gt(p, self.threshold))
        true_pos = _f(B.ne(t, 0.0))
        w = _element_weights(sample_weight, p)
        return {self.stat: B.reduce_sum(self.mask(pred_pos, true_pos) * w)}

    def ratio(self):
        return (self.stat, ())


def _count_class(name: str, stat: str, mask, direction: str):
    return type(
        name,
        (_Count,),
        {
            "stat_names": (stat,),
            "stat": stat,
            "default_name": backend.snake_case(name),
            "direction": direction,
            "mask": staticmethod(mask),
            "__doc__": f"Keras's {name}: a count over the elements seen.",
        },
    )


TruePositives = _count_class("TruePositives", "tp", lambda p, t: p * t, "up")
FalsePositives = _count_class("FalsePositives", "fp", lambda p, t: p * (1.0 - t), "down")
TrueNegatives = _count_class("TrueNegatives", "tn", lambda p, t: (1.0 - p) * (1.0 - t), "up")
FalseNegatives = _count_class("FalseNegatives", "fn", lambda p, t: (1.0 - p) * t, "down")

_VECTOR = {"AUC": "auc", "F1Score": "f1_score", "FBetaScore": "fbeta_score"}


def __getattr__(name: str) -> Any:
    """AUC, F1Score, FBetaScore and VECTOR_METRICS live in metrics_confusion, which builds
    on this module (imported on first use, so the two do not import each other)."""
    if name in _VECTOR or name == "VECTOR_METRICS":
        from kcompile.metrics import confusion_metrics as metrics_confusion

        return getattr(metrics_confusion, name)
    raise AttributeError(f"module 'kcompile.metrics.metrics' has no attribute {name!r}")


_CLASSES = {
    "binary_accuracy": BinaryAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "precision": Precision,
    "recall": Recall,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "mape": MeanAbsolutePercentageError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError,
    "mean_squared_logarithmic_error": MeanSquaredLogarithmicError,
    "cosine_similarity": CosineSimilarity,
    "logcosh": LogCoshError,
    "log_cosh_error": LogCoshError,
    "kl_divergence": KLDivergence,
    "kld": KLDivergence,
    "poisson": Poisson,
    "hinge": Hinge,
    "squared_hinge": SquaredHinge,
    "categorical_hinge": CategoricalHinge,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "true_positives": TruePositives,
    "false_positives": FalsePositives,
    "true_negatives": TrueNegatives,
    "false_negatives": FalseNegatives,
}

_LOSS_METRICS = (
    "binary_crossentropy",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
)


def get(
    identifier: Any, y_true: TensorType | None = None, y_pred: TensorType | None = None
) -> Metric:
    """Resolve a metric; "accuracy"/"acc" is chosen from the label and prediction shapes."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, dict) and "class_name" in identifier:  # a saved config
        cls = globals().get(identifier["class_name"])
        if cls is None:
            try:
                cls = __getattr__(identifier["class_name"])
            except AttributeError:
                cls = None
        if not (isinstance(cls, type) and issubclass(cls, Metric)):
            raise ValueError(f"unknown metric class {identifier['class_name']!r}")
        config = {k: v for k, v in identifier.get("config", {}).items() if k != "dtype"}
        return cls(**config)
    if isinstance(identifier, str):
        if identifier.lower() in ("accuracy", "acc"):
            return _resolve_accuracy(identifier, y_true, y_pred)
        key = identifier if identifier in _CLASSES else backend.snake_case(identifier)
        if key in _CLASSES:
            return _CLASSES[key](name=identifier)
        vector = {v: k for k, v in _VECTOR.items()}
        if key in vector:
            return __getattr__(vector[key])(name=identifier)
        if key in _LOSS_METRICS:
            metric = MeanMetricWrapper(losses.get(key).per_sample, name=identifier, ir=True)
            metric.direction = "down"
            return metric
    elif callable(identifier):
        return MeanMetricWrapper(identifier)
    known = sorted([*_CLASSES, *_VECTOR.values(), *_LOSS_METRICS, "accuracy", "acc"])
    raise ValueError(f"unknown metric {identifier!r}; known metrics: {', '.join(known)}")


def _resolve_accuracy(name: str, y_true: TensorType | None, y_pred: TensorType | None) -> Metric:
    if y_true is None or y_pred is None:
        raise ValueError(
            f"metric {name!r} is resolved from the label and prediction shapes, "
            "which are not known here"
        )
    is_binary = y_pred.shape[-1] == 1
    is_sparse = y_true.rank < y_pred.rank or (y_true.shape[-1] == 1 and y_pred.shape[-1] != 1)
    if is_binary:
        return BinaryAccuracy(name=name)
    if is_sparse:
        return SparseCategoricalAccuracy(name=name)
    return CategoricalAccuracy(name=name)
