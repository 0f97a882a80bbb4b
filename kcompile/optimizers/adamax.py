"""Keras's Adamax: Adam with the infinity norm."""

from __future__ import annotations

from typing import Any

from kcompile.ir import build as B
from kcompile.optimizers.optimizer import Optimizer


class Adamax(Optimizer):
    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def slot_names(self):
        return ("momentum", "norm")

    def update_step(self, g, w, slots, lr, local_step):
        b1_power = B.power(B.const(w.graph, self.beta_1, w.dtype), local_step)
        m = slots["momentum"] + (g - slots["momentum"]) * (1 - self.beta_1)
        u = B.maximum(self.beta_2 * slots["norm"], B.abs(g))
        return w - (lr * m) / ((1 - b1_power) * (u + self.epsilon)), {"momentum": m, "norm": u}

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }
