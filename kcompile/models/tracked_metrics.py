"""``model.metrics`` as Keras lists it after ``compile``: the loss tracker (a metric named
"loss") and the compiled metrics (one named "compile_metrics", which holds them).

kcompile computes the loss and metrics inside the compiled steps and sums their
statistics over an epoch in the running logs (``trainers.logs``); these objects read
them, so ``result()`` is what the last ``fit`` or ``evaluate`` reported, as the Keras
objects' state is.
"""

from __future__ import annotations

from typing import Any

from kcompile.metrics.metric import _bind, _step_trace
from kcompile.metrics.reduction_metrics import Mean


class _StepMetric:
    """A metric the compiled steps update; readable, not updatable by hand."""

    def __init__(self, model: Any, name: str) -> None:
        self._model = model
        self.name = name
        self.dtype = "float32"

    @property
    def variables(self) -> list:
        """Its statistics live in the running logs, not in variables."""
        return []

    def _logs(self) -> dict[str, Any]:
        return self._model.compiled_steps.running.logs()

    def update_state(self, *args: Any, **kwargs: Any) -> None:
        ctx = _step_trace()
        if ctx is None:
            raise NotImplementedError(
                f"metric '{self.name}' of model '{self._model.name}' is updated inside the "
                "compiled train and test steps (the built-in ones, or the model's own "
                "train_step), not on arrays"
            )
        self._update_in_step(ctx, args, kwargs)

    def stateless_update_state(self, metric_variables: list, *args: Any, **kwargs: Any) -> list:
        """JAX's form of ``update_state``: the statistics live in the running logs, so
        ``metric_variables`` (empty) come back as given."""
        self.update_state(*args, **kwargs)
        return list(metric_variables)

    def stateless_result(self, metric_variables: list) -> Any:
        return self.result()

    def reset_state(self) -> None:
        self._model.reset_metrics()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


class LossTracker(_StepMetric):
    """Keras's ``Mean(name="loss")`` of a compiled model: the running mean of the loss."""

    def __init__(self, model: Any, name: str) -> None:
        super().__init__(model, name)
        self._mean = Mean(name=name)  # its statistics inside a model's own step

    def _update_in_step(self, ctx, args, kwargs) -> None:
        ctx.update_metric(self._mean, lambda: self._mean._step_stats(ctx, args, kwargs))

    def result(self) -> Any:
        ctx = _step_trace()
        if ctx is not None:
            return ctx.metric_result(self._mean)
        return float(self._logs().get("loss", 0.0))


class CompileMetrics(_StepMetric):
    """Keras's ``CompileMetrics``: the metrics given to ``compile``, as ``metrics`` (known
    once a step has been traced, as Keras builds them on the first batch); ``result()`` is
    a dict of their values."""

    def __init__(self, model: Any, name: str) -> None:
        super().__init__(model, name)
        self._in_step: dict[str, Any] = {}  # key -> metric, inside a model's own step

    @property
    def metrics(self) -> list:
        return list(self._model.compiled_steps.metric_objects.values())

    def _update_in_step(self, ctx, args, kwargs) -> None:
        from kcompile.models.graphs import compiled_metric_stats
        from kcompile.tree import flatten

        y, y_pred, sample_weight = _bind(args, kwargs, ("y_true", "y_pred", "sample_weight"))
        specs = self._model.compiled_steps.config.specs
        labels = [ctx.value(t) for t in flatten(y)]
        preds = [ctx.value(p) for p in flatten(y_pred)]
        weights = None if sample_weight is None else ctx.value(sample_weight)
        for key, metric, stats in compiled_metric_stats(specs, labels, preds, weights):
            metric = self._in_step.setdefault(key, metric)
            ctx.update_metric(metric, lambda stats=stats: stats)

    def result(self) -> dict[str, Any]:
        ctx = _step_trace()
        if ctx is not None:
            return {key: ctx.metric_result(m) for key, m in self._in_step.items()}
        logs = self._logs()
        keys = self._model.compiled_steps.metric_objects
        return {key: logs[key] for key in keys if key in logs}


def compiled_metrics(model: Any) -> list:
    """The loss tracker, and the compiled metrics when compile was given any: the same
    objects until the model is compiled again (a custom train_step updates them)."""
    config = model.compiled_steps.config
    made = getattr(config, "tracked_metrics", None)
    if made is None:
        made = [LossTracker(model, "loss")]
        if any(spec.metric_ids or spec.weighted_metric_ids for spec in config.specs):
            made.append(CompileMetrics(model, "compile_metrics"))
        config.tracked_metrics = made
    return list(made)
