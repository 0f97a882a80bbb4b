"""Keras's step methods of a model: ``train_step``, ``test_step``, ``predict_step``,
``compute_metrics``, and the stateless API of Keras's JAX trainer (``stateless_call``,
``compute_loss_and_updates``, ``stateless_compute_loss``, the state tree).

kcompile compiles a model's built-in steps from ``call`` and ``compile`` directly
(``models.graphs``). These methods are what a subclass overrides and calls
(``super().train_step(data)``): they run inside the step kcompile traces for a model that
defines its own (``trainers.custom_step``), written with the same API a user's step uses.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from kcompile import tree
from kcompile.backend.symbolic import TracedTensor, current_context
from kcompile.trainers.gradients import GradientTape
from kcompile.utils.tensor_utils import unpack_x_y_sample_weight


def _in_step(model: Any, method: str):
    ctx = current_context()
    if not getattr(ctx, "records_metrics", False):
        raise NotImplementedError(
            f"model '{model.name}'.{method}(...) runs inside the step kcompile traces (fit, "
            "evaluate, predict and the on-batch methods call it); it does not run on arrays"
        )
    return ctx


def _batch_size(x: Any) -> Any:
    from kcompile import ops

    return ops.shape(tree.flatten(x)[0])[0]


class StepMethods:
    """Mixed into ``Model``."""

    # --- the steps ----------------------------------------------------------------------

    def train_step(self, data: Any) -> dict[str, Any]:
        """Keras's default training step: the loss of ``self(x, training=True)``, its
        gradients, the optimizer's update, the metrics' update; returns the logs."""
        _in_step(self, "train_step")
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        with GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self._compute_loss(x, y, y_pred, sample_weight, training=True)
            # As Keras's: the gradients are the scaled loss's (mixed_float16's loss scale;
            # optimizer.apply divides them by it again), the logs the loss's.
            scaled = self.optimizer.scale_loss(loss)
        variables = list(self.trainable_variables)
        if variables:
            self.optimizer.apply(tape.gradient(scaled, variables), variables)
        return self._step_logs(x, y, y_pred, sample_weight, loss)

    def test_step(self, data: Any) -> dict[str, Any]:
        """Keras's default evaluation step: the loss and metrics of ``self(x)``."""
        _in_step(self, "test_step")
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        y_pred = self(x, training=False)
        loss = self._compute_loss(x, y, y_pred, sample_weight, training=False)
        return self._step_logs(x, y, y_pred, sample_weight, loss)

    def _compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        """Keras's wrapper of ``compute_loss`` for its own steps: the arguments by position,
        and ``training`` only to an override whose signature names it (Keras 3.3 added the
        argument; older overrides, such as keras.io's distiller, lack it)."""
        if "training" in inspect.signature(self.compute_loss).parameters:
            return self.compute_loss(x, y, y_pred, sample_weight, training=training)
        return self.compute_loss(x, y, y_pred, sample_weight)

    def predict_step(self, data: Any) -> Any:
        """Keras's default prediction step: ``self(x, training=False)``."""
        _in_step(self, "predict_step")
        x, _, _ = unpack_x_y_sample_weight(data)
        return self(x, training=False)

    def _step_logs(self, x, y, y_pred, sample_weight, loss) -> dict[str, Any]:
        """As Keras's trainers: the loss tracker weighs the loss by the batch size."""
        from kcompile.models.tracked_metrics import LossTracker

        for metric in self.metrics:
            if isinstance(metric, LossTracker):
                metric.update_state(loss, sample_weight=_batch_size(x))
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def compute_metrics(self, x: Any, y: Any, y_pred: Any, sample_weight: Any = None) -> dict:
        """Keras's: update the compiled metrics with this batch; return every metric's
        result (inside a traced step, their running values)."""
        from kcompile.models.tracked_metrics import CompileMetrics

        _in_step(self, "compute_metrics")
        for metric in self.metrics:
            if isinstance(metric, CompileMetrics):
                metric.update_state(y, y_pred, sample_weight)
        return self.get_metrics_result()

    # --- Keras's JAX trainer: the stateless API ------------------------------------------

    def compute_loss_and_updates(
        self,
        trainable_variables: list,
        non_trainable_variables: list,
        metrics_variables: list,
        x: Any,
        y: Any,
        sample_weight: Any = None,
        training: bool = False,
        optimizer_variables: Any = None,
    ) -> tuple:
        """Keras's JAX trainer: ``(loss, (unscaled_loss, y_pred, non_trainable_variables,
        metrics_variables))`` of a forward pass with the given weights."""
        _in_step(self, "compute_loss_and_updates")
        y_pred, non_trainable = self.stateless_call(
            trainable_variables, non_trainable_variables, x, training=training
        )
        loss = self._compute_loss(x, y, y_pred, sample_weight, training=training)
        return loss, (loss, y_pred, non_trainable, list(metrics_variables))

    def stateless_compute_loss(
        self,
        trainable_variables: list,
        non_trainable_variables: list,
        metrics_variables: list,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> tuple:
        """Keras's: ``compute_loss`` with the given weights; ``(loss, (trainable,
        non_trainable, metrics_variables))``."""
        ctx = _in_step(self, "stateless_compute_loss")
        variables = list(self.trainable_variables) + list(self.non_trainable_variables)
        saved = dict(ctx.state_updates)
        for var, value in zip(variables, [*trainable_variables, *non_trainable_variables]):
            ctx.state_updates[var] = ctx.f32(value)
        try:
            loss = self._compute_loss(x, y, y_pred, sample_weight, training=training)
            non_trainable = [
                TracedTensor(ctx.state_updates[v]) for v in self.non_trainable_variables
            ]
        finally:
            ctx.state_updates.clear()
            ctx.state_updates.update(saved)
        return loss, (list(trainable_variables), non_trainable, list(metrics_variables))

    # --- the state as a tree ---------------------------------------------------------------

    def get_state_tree(self, value_format: str = "backend_tensor") -> dict:
        """Keras's: the model's variables as nested dicts by their paths, under
        ``trainable_variables``, ``non_trainable_variables``, ``optimizer_variables`` and
        ``metrics_variables`` (numpy arrays: kcompile's tensors are)."""
        if value_format not in ("backend_tensor", "numpy_array"):
            raise ValueError(
                f"get_state_tree: value_format must be 'backend_tensor' or 'numpy_array', "
                f"got {value_format!r}"
            )
        state = {
            "trainable_variables": _nested({v.path: v.numpy() for v in self.trainable_variables}),
            "non_trainable_variables": _nested(
                {v.path: v.numpy() for v in self.non_trainable_variables}
            ),
        }
        optimizer = getattr(self, "optimizer", None)
        if optimizer is not None and getattr(optimizer, "built", False):
            arrays = {
                "iterations": optimizer._iterations,
                "learning_rate": optimizer._learning_rate,
            }
            arrays.update(optimizer.slots)
            state["optimizer_variables"] = _nested(
                {
                    f"{optimizer.name}/{k}" if "/" not in k else k: np.array(a)
                    for k, a in arrays.items()
                }
            )
        state["metrics_variables"] = {}
        return state

    def set_state_tree(self, state_tree: dict) -> None:
        """Keras's: assign the variables from a tree ``get_state_tree`` made."""
        groups = {
            "trainable_variables": list(self.trainable_variables),
            "non_trainable_variables": list(self.non_trainable_variables),
        }
        for key, subtree in state_tree.items():
            if key in groups:
                flat = _flat(subtree)
                for var in groups[key]:
                    if var.path in flat:
                        var.assign(flat[var.path])
            elif key == "optimizer_variables":
                self._set_optimizer_state(_flat(subtree))
            elif key != "metrics_variables":
                raise ValueError(f"set_state_tree: unknown group {key!r}")

    def _set_optimizer_state(self, flat: dict) -> None:
        optimizer = self.optimizer
        for path, value in flat.items():
            if path in optimizer.slots:
                np.copyto(optimizer.slots[path], np.asarray(value, np.float32))
            elif path.endswith("/iterations"):
                optimizer.step_count = int(np.asarray(value))
            elif path.endswith("/learning_rate") and optimizer.schedule is None:
                optimizer.learning_rate = float(np.asarray(value))

    def jax_state_sync(self) -> None:
        """Keras's JAX trainer copies its functional state back into the variables here;
        kcompile's compiled steps update the variables in place, so they are in sync."""

    # --- Keras's step functions ----------------------------------------------------------

    def make_train_function(self, force: bool = False):
        """Keras's: the function fit runs for each batch, here one compiled train step on
        the next batch of an iterator; it returns the logs (the running values since the
        last ``reset_metrics``)."""
        if self.train_function is None or force:
            self.train_function = self._step_function("train")
        return self.train_function

    def make_test_function(self, force: bool = False):
        """Keras's: one compiled evaluation step on the next batch of an iterator."""
        if self.test_function is None or force:
            self.test_function = self._step_function("eval")
        return self.test_function

    def make_predict_function(self, force: bool = False):
        """Keras's: predictions for the next batch of an iterator."""
        if self.predict_function is None or force:
            self.predict_function = self._step_function("predict")
        return self.predict_function

    train_function = None
    test_function = None
    predict_function = None

    def _step_function(self, kind: str):
        def step(iterator) -> Any:
            data = next(iter(iterator)) if not isinstance(iterator, tuple | list) else iterator
            x, y, sample_weight = unpack_x_y_sample_weight(data)
            if kind == "predict":
                return self.predict_on_batch(x)
            return self._function_step(kind, x, y, sample_weight)

        step.__name__ = f"{kind}_function"
        return step


def _nested(flat: dict) -> dict:
    """``{"dense/kernel": a}`` as ``{"dense": {"kernel": a}}``."""
    out: dict = {}
    for path, value in flat.items():
        node = out
        *parents, leaf = path.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _flat(nested: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in nested.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, path + "/"))
        else:
            out[path] = value
    return out
