"""``model.metrics`` as Keras lists it after ``compile``: the loss tracker (a metric named
"loss") and the compiled metrics (one named "compile_metrics", which holds them).

kcompile computes the loss and metrics inside the compiled steps and sums their
statistics over an epoch in the running logs (``trainers.logs``); these objects read
them, so ``result()`` is what the last ``fit`` or ``evaluate`` reported, as the Keras
objects' state is.
"""

from __future__ import annotations

from typing import Any


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
        raise NotImplementedError(
            f"metric '{self.name}' of model '{self._model.name}' is updated inside the "
            "compiled train and test steps; kcompile cannot run a custom train_step that "
            "updates it by hand"
        )

    def reset_state(self) -> None:
        self._model.reset_metrics()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


class LossTracker(_StepMetric):
    """Keras's ``Mean(name="loss")`` of a compiled model: the running mean of the loss."""

    def result(self) -> float:
        return float(self._logs().get("loss", 0.0))


class CompileMetrics(_StepMetric):
    """Keras's ``CompileMetrics``: the metrics given to ``compile``, as ``metrics`` (known
    once a step has been traced, as Keras builds them on the first batch); ``result()`` is
    a dict of their values."""

    @property
    def metrics(self) -> list:
        return list(self._model.compiled_steps.metric_objects.values())

    def result(self) -> dict[str, Any]:
        logs = self._logs()
        keys = self._model.compiled_steps.metric_objects
        return {key: logs[key] for key in keys if key in logs}


def compiled_metrics(model: Any) -> list:
    """The loss tracker, and the compiled metrics when compile was given any."""
    out: list = [LossTracker(model, "loss")]
    config = model.compiled_steps.config
    if any(spec.metric_ids or spec.weighted_metric_ids for spec in config.specs):
        out.append(CompileMetrics(model, "compile_metrics"))
    return out
