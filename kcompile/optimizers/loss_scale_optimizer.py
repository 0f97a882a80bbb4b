"""Keras's ``LossScaleOptimizer``: dynamic loss scaling around an inner optimizer.

The train step multiplies the loss by the dynamic scale (``initial_scale``, 2^15 by
default) before differentiating, so that float16 gradients do not flush to zero, and
divides the gradients by it again before the inner update. A step whose gradients are
not finite is skipped (weights, slots and the inner iteration count stay as they were)
and halves the scale; after ``dynamic_growth_steps`` finite steps in a row the scale
doubles. The scale and the count of finite steps are arrays of the train step
(``state_arrays``), updated in place as the iteration count is. In float32 the scaling
is exact (a power of two); under ``mixed_float16`` it changes the gradients as Keras's
does, and ``Model.compile`` wraps the optimizer in one, as Keras's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.backend.session import auto_name
from kcompile.backend.variables import stable_array
from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.optimizers.optimizer import (
    Optimizer,
    _step_context,
    deserialize,
    serialize,
)

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


def _inner_property(name: str) -> property:
    """The wrapper's ``name``: the inner optimizer's, read and set."""
    return property(
        lambda self: getattr(self.inner_optimizer, name),
        lambda self, value: setattr(self.inner_optimizer, name, value),
    )


class LossScaleOptimizer(Optimizer):
    """Every piece of state is the inner optimizer's (its slots, iterations and learning
    rate); only ``apply`` differs."""

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
        self.name = name or auto_name(type(self))
        # Keras disables the inner optimizer's own scaling: the gradients would be
        # unscaled twice.
        inner_optimizer.loss_scale_factor = None
        # The scale and the count of finite steps since it last changed, each a float32
        # scalar of the step (the count is exact far beyond any growth interval).
        self._scale_state = {
            self._state_path("step_counter"): stable_array(np.float32(0.0), np.float32),
            self._state_path("dynamic_scale"): stable_array(
                np.float32(self.initial_scale), np.float32
            ),
        }

    def _state_path(self, name: str) -> str:
        return f"{self.name}/{name}"

    @property
    def step_counter(self) -> np.ndarray:
        """Finite steps since the scale last changed."""
        return self._scale_state[self._state_path("step_counter")]

    @property
    def dynamic_scale(self) -> np.ndarray:
        """The loss scale of the next step."""
        return self._scale_state[self._state_path("dynamic_scale")]

    # --- the inner optimizer's state and rule ------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # Attributes not set on the wrapper (weight_decay, clipnorm, schedule, ...) are
        # the inner optimizer's; reached only when normal lookup fails.
        if name == "inner_optimizer":
            raise AttributeError(name)
        return getattr(self.inner_optimizer, name)

    # Properties of Optimizer itself (so ``__getattr__`` never sees them), read and set on
    # the inner optimizer.
    learning_rate = _inner_property("learning_rate")
    iterations = _inner_property("iterations")
    step_count = _inner_property("step_count")

    @property
    def built(self) -> bool:
        return self.inner_optimizer.built

    @property
    def variables(self) -> list:
        return [*self._scale_state.values(), *self.inner_optimizer.variables]

    @property
    def slots(self) -> dict[str, np.ndarray]:
        """The inner optimizer's slots, and the scale's state, read as slots are."""
        return {**self.inner_optimizer.slots, **self._scale_state}

    @property
    def loss_scale_factor(self) -> None:
        return None  # Keras's: the scale is dynamic, never a fixed factor

    def step_learning_rate(self, graph, iterations):
        return self.inner_optimizer.step_learning_rate(graph, iterations)

    def state_arrays(self):
        return {**self.inner_optimizer.state_arrays(), **self._scale_state}

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

    def scale_loss(self, loss: Any) -> Any:
        """Keras's: the loss times the current scale (inside a traced train_step, the
        scale the step reads)."""
        from kcompile.backend.symbolic import TracedTensor

        if isinstance(loss, TracedTensor):
            path = self._state_path("dynamic_scale")
            scale = _step_context(self, "scale_loss").optimizer_array(self, path)
            return TracedTensor(loss.value * scale)
        return loss * float(self.dynamic_scale)

    def scale_loss_ir(self, loss: Value, state_value) -> Value:
        return loss * state_value(self._state_path("dynamic_scale"))

    def apply_ir(self, params, slot_value, lr, iterations):
        """The inner update of the unscaled gradients where every gradient is finite
        (and the scale doubled after ``dynamic_growth_steps`` such steps); else nothing
        moves and the scale halves."""
        read: dict[str, Any] = {}

        def slot(path: str):  # each slot is one input of the step, read once
            if path not in read:
                read[path] = slot_value(path)
            return read[path]

        scale = slot(self._state_path("dynamic_scale"))
        counter = slot(self._state_path("step_counter"))
        graph = iterations.graph
        with graph.layer_scope(self.name):
            # g * 0 is 0 for a finite g and NaN for an infinite or NaN one.
            probe = B.const(graph, 0.0)
            for _, _, g in params:
                probe = probe + B.reduce_sum(g * 0.0)
            finite = B.eq(probe, 0.0)
            unscaled = [(var, w, B.div(g, scale)) for var, w, g in params]
        updates = self.inner_optimizer.apply_ir(unscaled, slot, lr, iterations)
        with graph.layer_scope(self.name):
            grow = B.eq(counter, float(self.dynamic_growth_steps - 1))
            new_counter = B.select(finite, B.select(grow, 0.0, counter + 1.0), 0.0)
            new_scale = B.select(finite, B.select(grow, scale * 2.0, scale), scale * 0.5)
        old = {var.path: w for var, w, _ in params}
        old["iterations"] = iterations
        kept = {}
        for path, new in updates.items():
            before = old[path] if path in old else slot(path)
            kept[path] = B.select(finite, new, before)
        kept[self._state_path("step_counter")] = new_counter
        kept[self._state_path("dynamic_scale")] = new_scale
        return kept

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
