"""Keras's mean metrics: ``MeanMetricWrapper``, the running mean of a per-sample function,
and the classes made from one function of (y_true, y_pred)."""

from __future__ import annotations

import sys
from typing import Any

from kcompile.ir import build as B
from kcompile.losses.loss import _broadcast_weights, traced_call
from kcompile.metrics.metric import Metric, _f


class MeanMetricWrapper(Metric):
    """The mean of a per-sample function over every sample seen: ``fn`` written with
    ``keras.ops`` (a user's function, Keras's metric functions), traced; or over IR values
    (``ir=True``, kcompile's own)."""

    def __init__(self, fn, name: str | None = None, ir: bool = False, **kwargs: Any) -> None:
        self.fn, self._ir = fn, ir
        super().__init__(name or getattr(fn, "__name__", "mean"), **kwargs)

    def stats(self, y_true, y_pred, sample_weight=None):
        values = self.fn(y_true, y_pred) if self._ir else traced_call(self.fn, y_true, y_pred)
        values = _f(values)
        if sample_weight is None:
            return {"total": B.reduce_sum(values), "count": B.numel(values)}
        weights = B.broadcast_to(_broadcast_weights(sample_weight, values), values.shape)
        return {"total": B.reduce_sum(values * weights), "count": B.reduce_sum(weights)}


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
            # The module that names the class (as collections.namedtuple does), so that it
            # prints and pickles as that module's, not as this one's.
            "__module__": sys._getframe(1).f_globals["__name__"],
        },
    )
