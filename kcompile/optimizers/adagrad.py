"""Keras's Adagrad."""

from __future__ import annotations

from typing import Any

from kcompile.ir import build as B
from kcompile.optimizers.optimizer import Optimizer


class Adagrad(Optimizer):
    def __init__(
        self,
        learning_rate: float = 0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value, self.epsilon = initial_accumulator_value, epsilon

    def slot_names(self):
        return ("accumulator",)

    def slot_initial(self, slot):
        return self.initial_accumulator_value

    def update_step(self, g, w, slots, lr, local_step):
        accumulator = slots["accumulator"] + B.square(g)
        return w - (lr * g) / B.sqrt(accumulator + self.epsilon), {"accumulator": accumulator}

    def get_config(self):
        return {
            **super().get_config(),
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
        }
