"""Keras's ``LossScaleOptimizer`` in float32: a wrapper that applies its inner
optimizer's update, and skips the step (weights, slots and the iteration count stay as
they were) when a gradient is not finite, as Keras's does.

Keras multiplies the loss by a dynamic scale (2^15 to start, halved after a non-finite
step, doubled after ``dynamic_growth_steps`` finite ones) and divides the gradients by
it. kcompile computes in float32, where that scale is there for float16's range only:
multiplying by a power of two and dividing by it again is exact, so the scale is left
out, and ``dynamic_scale`` is not offered. What remains observable, the skipped steps,
is kept.
"""

from __future__ import annotations

from typing import Any

from kcompile.ir import build as B
from kcompile.optimizers.optimizer import Optimizer, deserialize, serialize

_BASE_DEFAULTS = {
    "weight_decay": None,
    "clipnorm": None,
    "global_clipnorm": None,
    "clipvalue": None,
    "use_ema": False,
    "ema_momentum": 0.99,
    "ema_overwrite_frequency": None,
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
}


class LossScaleOptimizer(Optimizer):
    """Every piece of state is the inner optimizer's (its slots, iterations and learning
    rate); only ``apply`` differs."""

    default_name = "loss_scale_optimizer"

    def __init__(
        self,
        inner_optimizer: Optimizer,
        initial_scale: float = 2.0**15,
        dynamic_growth_steps: int = 2000,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if not kwargs.pop("dynamic", True):
            raise ValueError(
                "LossScaleOptimizer no longer supports `dynamic=False`. Instead, simply set "
                "`loss_scale_factor` directly on the `inner_optimizer`."
            )
        for arg, default in _BASE_DEFAULTS.items():
            if arg in kwargs and kwargs.pop(arg) != default:
                raise ValueError(
                    f"LossScaleOptimizer does not support `{arg}`. Instead, set `{arg}` on "
                    "the `inner_optimizer`."
                )
        if kwargs:
            raise ValueError(f"LossScaleOptimizer does not support arguments: {kwargs}")
        if isinstance(inner_optimizer, dict):
            inner_optimizer = deserialize(inner_optimizer)
        if not isinstance(inner_optimizer, Optimizer):
            raise ValueError(
                "Argument `inner_optimizer` must be an instance of `keras.optimizers."
                f"Optimizer`. Received: inner_optimizer={inner_optimizer}"
            )
        self.inner_optimizer = inner_optimizer
        self.initial_scale = float(initial_scale)
        self.dynamic_growth_steps = int(dynamic_growth_steps)
        self.name = name or self.default_name

    # --- the inner optimizer's state and rule ------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # Attributes not set on the wrapper (weight_decay, clipnorm, schedule, ...) are
        # the inner optimizer's; reached only when normal lookup fails.
        if name == "inner_optimizer":
            raise AttributeError(name)
        return getattr(self.inner_optimizer, name)

    @property
    def learning_rate(self) -> float:
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self.inner_optimizer.learning_rate = value

    @property
    def iterations(self) -> int:
        return self.inner_optimizer.iterations

    @iterations.setter
    def iterations(self, value: int) -> None:
        self.inner_optimizer.iterations = value

    @property
    def built(self) -> bool:
        return self.inner_optimizer.built

    @property
    def variables(self) -> list:
        return self.inner_optimizer.variables

    def step_learning_rate(self, graph, iterations):
        return self.inner_optimizer.step_learning_rate(graph, iterations)

    def state_arrays(self):
        return self.inner_optimizer.state_arrays()

    def slot_names(self):
        return self.inner_optimizer.slot_names()

    def all_slots(self):
        return self.inner_optimizer.all_slots()

    def slot_path(self, var, slot):
        return self.inner_optimizer.slot_path(var, slot)

    def slot_shape(self, var, slot):
        return self.inner_optimizer.slot_shape(var, slot)

    def slot_initial(self, slot):
        return self.inner_optimizer.slot_initial(slot)

    def build(self, variables) -> None:
        self.inner_optimizer.build(variables)

    def finalize_variable_values(self, variables) -> None:
        self.inner_optimizer.finalize_variable_values(variables)

    def apply_ir(self, params, slot_value, lr, iterations):
        """The inner update where every gradient is finite; else nothing moves."""
        read: dict[str, Any] = {}

        def slot(path: str):  # each slot is one input of the step, read once
            if path not in read:
                read[path] = slot_value(path)
            return read[path]

        updates = self.inner_optimizer.apply_ir(params, slot, lr, iterations)
        graph = iterations.graph
        with graph.layer_scope(self.name):
            # g * 0 is 0 for a finite g and NaN for an infinite or NaN one.
            probe = B.const(graph, 0.0)
            for _, _, g in params:
                probe = probe + B.reduce_sum(g * 0.0)
            finite = B.eq(probe, 0.0)
        old = {var.path: w for var, w, _ in params}
        old["iterations"] = iterations
        skipped = {}
        for path, new in updates.items():
            before = old[path] if path in old else slot(path)
            skipped[path] = B.select(finite, new, before)
        return skipped

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "inner_optimizer": serialize(self.inner_optimizer),
            "initial_scale": self.initial_scale,
            "dynamic_growth_steps": self.dynamic_growth_steps,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict | None = None):
        config = dict(config)
        inner = deserialize(config.pop("inner_optimizer"), custom_objects)
        return cls(inner, **config)
