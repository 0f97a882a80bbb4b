"""Keras's Ftrl (follow the regularized leader)."""

from __future__ import annotations

from typing import Any

from kcompile.ir import build as B
from kcompile.optimizers.optimizer import Optimizer


class Ftrl(Optimizer):
    def __init__(
        self,
        learning_rate: float = 0.001,
        learning_rate_power: float = -0.5,
        initial_accumulator_value: float = 0.1,
        l1_regularization_strength: float = 0.0,
        l2_regularization_strength: float = 0.0,
        l2_shrinkage_regularization_strength: float = 0.0,
        beta: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, **kwargs)
        checks = {
            "initial_accumulator_value": initial_accumulator_value,
            "l1_regularization_strength": l1_regularization_strength,
            "l2_regularization_strength": l2_regularization_strength,
            "l2_shrinkage_regularization_strength": l2_shrinkage_regularization_strength,
        }
        for what, value in checks.items():
            if value < 0:
                raise ValueError(f"Ftrl: {what} needs to be positive or zero, got {value}")
        if learning_rate_power > 0:
            raise ValueError(f"Ftrl: learning_rate_power must be <= 0, got {learning_rate_power}")
        self.learning_rate_power = learning_rate_power
        self.initial_accumulator_value = initial_accumulator_value
        self.l1 = l1_regularization_strength
        self.l2 = l2_regularization_strength
        self.l2_shrinkage = l2_shrinkage_regularization_strength
        self.beta = beta

    def slot_names(self):
        return ("accumulator", "linear")

    def slot_initial(self, slot):
        return self.initial_accumulator_value if slot == "accumulator" else 0.0

    def update_step(self, g, w, slots, lr, local_step):
        power = -self.learning_rate_power
        l2 = self.l2 + self.beta / (2.0 * lr)
        accum = slots["accumulator"]
        grad = g + 2 * self.l2_shrinkage * w
        new_accum = accum + B.square(g)
        linear = slots["linear"] + (
            grad - ((B.power(new_accum, power) - B.power(accum, power)) / lr) * w
        )
        quadratic = B.power(new_accum, power) / lr + 2 * l2
        clipped = B.minimum(B.maximum(linear, -self.l1), self.l1)
        return (clipped - linear) / quadratic, {"accumulator": new_accum, "linear": linear}

    def get_config(self):
        return {
            **super().get_config(),
            "learning_rate_power": self.learning_rate_power,
            "initial_accumulator_value": self.initial_accumulator_value,
            "l1_regularization_strength": self.l1,
            "l2_regularization_strength": self.l2,
            "l2_shrinkage_regularization_strength": self.l2_shrinkage,
            "beta": self.beta,
        }
